/**
 * sluice/redis against a real redis-server of the test's own (127.0.0.1, a
 * free port): bad input, claiming a dead consumer's entries, poison
 * messages, and three consumer processes over 20,000 entries, one of them
 * SIGKILLed mid-run.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { Redis } from "ioredis";
import {
  ConfigError,
  type DeadLetter,
  DeadLetterSchema,
  flatMapStage,
  PermanentError,
  Pipeline,
  stage,
} from "../mod.ts";
import {
  PoisonMessageError,
  redisDeadLetterStream,
  type RedisStreamEntry,
  RedisStreamError,
  redisStreamSink,
  redisStreamSource,
} from "../redis.ts";
import { type RedisServer, startRedis } from "./fixtures/redis_server.ts";
import { PROCESS_LIMIT_MS, root, runtime } from "./fixtures/runtimes.ts";

async function withRedis(body: (client: Redis, server: RedisServer) => Promise<void>): Promise<void> {
  const server = await startRedis();
  const client = new Redis(server.port, "127.0.0.1");
  try {
    await body(client, server);
  } finally {
    client.disconnect();
    await server.stop();
  }
}

async function addEntries(client: Redis, stream: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < count; start += 1000) {
    const batch = client.pipeline();
    for (let n = start; n < Math.min(count, start + 1000); n++) batch.xadd(stream, "*", "n", String(n));
    for (const [error, id] of (await batch.exec())!) {
      assert.ifError(error);
      ids.push(id as string);
    }
  }
  return ids;
}

async function pendingCount(client: Redis, stream: string, group: string): Promise<number> {
  return ((await client.xpending(stream, group)) as [number])[0];
}

test("bad input: a client not connected, a missing stream, a missing group, bad options — clear errors, nothing acked", async () => {
  await withRedis(async (client, server) => {
    const idle = new Redis(server.port, "127.0.0.1", { lazyConnect: true });
    const pipeline = new Pipeline({ name: "p", stages: [stage("s", (entry: RedisStreamEntry) => entry.id)] });
    const notConnected = redisStreamSource({ client: idle, stream: "in", group: "g", consumer: "c" });
    await assert.rejects(pipeline.run(notConnected), (error: Error) => {
      assert.ok(error instanceof RedisStreamError);
      assert.match(error.message, /not connected \(status "wait"\); call await client\.connect\(\) first/);
      return true;
    });
    await assert.rejects(
      pipeline.run(redisStreamSource({ client, stream: "nowhere", group: "g", consumer: "c" })),
      /the stream "nowhere" does not exist; add entries to it first, or pass createGroup: true/,
    );
    await addEntries(client, "in", 3);
    await assert.rejects(
      pipeline.run(redisStreamSource({ client, stream: "in", group: "g", consumer: "c" })),
      /the consumer group "g" does not exist \(the stream has no groups\); create it with XGROUP CREATE in g 0/,
    );
    assert.throws(
      () => redisStreamSource({ client, stream: "in", group: "g", consumer: "c", blockMs: 0 }),
      (error: ConfigError) => error instanceof ConfigError && error.field === "blockMs",
    );
    assert.throws(
      () => redisStreamSource({ client: {} as Redis, stream: "in", group: "g", consumer: "c" }),
      /option "client" must be an ioredis client/,
    );
    assert.throws(() => redisStreamSink({ client, stream: "" }), /option "stream" must be a non-empty string/);
    await client.xgroup("CREATE", "in", "g", "0");
    assert.equal(await pendingCount(client, "in", "g"), 0, "nothing was read, nothing acked");
    const withId = new Pipeline({ name: "p", stages: [stage("s", (e: RedisStreamEntry) => e)], id: () => 1 });
    await assert.rejects(
      withId.run(redisStreamSource({ client, stream: "in", group: "g", consumer: "c" })),
      /the source gives its items their ids \(an AcknowledgingSource\); remove the id option/,
    );
  });
});

test("a non-string field dead-letters its item only; every entry ends in the sink or the dead letter stream, acked", async () => {
  await withRedis(async (client) => {
    const ids = await addEntries(client, "in", 20);
    const source = redisStreamSource({ client, stream: "in", group: "g", consumer: "c", createGroup: true });
    const stop = new AbortController();
    let read = 0;
    const pipeline = new Pipeline({
      name: "fields",
      stages: [
        stage("shape", (entry: RedisStreamEntry) => {
          const n = Number(entry.fields.n);
          return (n % 5 === 0 ? { n } : { n: String(n) }) as unknown as Record<string, string>;
        }),
        redisStreamSink({ client, stream: "out", source }),
      ],
      deadLetterQueue: () => redisDeadLetterStream({ client, stream: "dlq", source }),
      onEvent: (event) => {
        if (event.type === "started" && event.stage === "shape" && ++read === 20) stop.abort();
      },
    });
    const metrics = await pipeline.run(source, { signal: stop.signal });
    assert.equal(metrics.totalCompleted, 16);
    assert.equal(metrics.totalFailed, 4);
    const letters = (await client.xrange("dlq", "-", "+")).map(([, fields]) =>
      DeadLetterSchema.parse(fields[fields.indexOf("deadLetter") + 1]) as DeadLetter
    );
    assert.deepEqual(letters.map((letter) => letter.itemId).sort(), [ids[0], ids[5], ids[10], ids[15]].sort());
    assert.match(letters[0].reason, /field "n" is 0; stream entry fields must be strings/);
    assert.equal(letters[0].error.name, "PermanentError");
    assert.equal(await client.xlen("out"), 16);
    assert.equal(await pendingCount(client, "in", "g"), 0);
  });
});

test("flatMap before a linked sink and dead letter stream: every entry is acked once its outputs are written or dead-lettered", async () => {
  await withRedis(async (client) => {
    const ids = await addEntries(client, "in", 30);
    const source = redisStreamSource({ client, stream: "in", group: "g", consumer: "c", createGroup: true });
    const stop = new AbortController();
    let read = 0;
    const pipeline = new Pipeline({
      name: "split",
      stages: [
        // n % 10 === 3 fails before the split: a dead letter with the entry's own id.
        stage("parse", (entry: RedisStreamEntry) => {
          const n = Number(entry.fields.n);
          if (n % 10 === 3) throw new PermanentError(`entry ${n}`);
          return n;
        }),
        // Two outputs per entry, with ids "<entry id>.0" and "<entry id>.1", which are not stream ids.
        flatMapStage("split", (n: number) => [n, -n]),
        // An entry's second output fails when n % 10 === 7: a dead letter with an output's id.
        stage("shape", (n: number) => {
          if (n < 0 && -n % 10 === 7) throw new PermanentError(`output ${n}`);
          return { n: String(n) };
        }),
        redisStreamSink({ client, stream: "out", source }),
      ],
      deadLetterQueue: () => redisDeadLetterStream({ client, stream: "dlq", source }),
      onEvent: (event) => {
        if (event.type === "started" && event.stage === "parse" && ++read === 30) stop.abort();
      },
    });
    const metrics = await pipeline.run(source, { signal: stop.signal });
    assert.equal(metrics.totalExpanded, 27);
    assert.equal(metrics.totalCompleted, 54 - 3);
    assert.equal(metrics.totalFailed, 3 + 3);
    const letters = (await client.xrange("dlq", "-", "+")).map(([, fields]) =>
      DeadLetterSchema.parse(fields[fields.indexOf("deadLetter") + 1]) as DeadLetter
    );
    assert.deepEqual(
      letters.map((letter) => letter.itemId).sort(),
      [ids[3], ids[13], ids[23], `${ids[7]}.1`, `${ids[17]}.1`, `${ids[27]}.1`].sort(),
    );
    assert.equal(await client.xlen("out"), 51);
    // An XACK naming an output's id ("…-0.1") would fail whole, leaving the entries beside it pending.
    assert.equal(await pendingCount(client, "in", "g"), 0);
  });
});

test("XAUTOCLAIM takes over a dead consumer's entries; one delivered more than maxDeliveries is a PoisonMessageError", async () => {
  await withRedis(async (client) => {
    const ids = await addEntries(client, "in", 6);
    await client.xgroup("CREATE", "in", "g", "0");
    // A consumer that reads and dies: 4 entries pending on it, delivered once; 2 of them a second time.
    await client.xreadgroup("GROUP", "g", "dead", "COUNT", 4, "STREAMS", "in", ">");
    await client.xclaim("in", "g", "dead", 0, ids[0], ids[1]);
    const source = redisStreamSource({
      client,
      stream: "in",
      group: "g",
      consumer: "alive",
      claimIdleMs: 1,
      maxDeliveries: 2,
      blockMs: 50,
    });
    const stop = new AbortController();
    const ran: string[] = [];
    let settled = 0;
    const letters: DeadLetter[] = [];
    const pipeline = new Pipeline({
      name: "claim",
      stages: [stage("run", (entry: RedisStreamEntry) => void ran.push(entry.id))],
      deadLetterQueue: new WritableStream<DeadLetter>({ write: (letter) => void letters.push(letter) }),
      onEvent: (event) => {
        if ((event.type === "completed" || event.type === "dead-lettered") && ++settled === 6) stop.abort();
      },
    });
    await pipeline.run(source, { signal: stop.signal });
    assert.deepEqual(ran.sort(), ids.slice(2).sort(), "claimed (2, 3) and new (4, 5) entries ran");
    assert.deepEqual(letters.map((letter) => letter.itemId).sort(), [ids[0], ids[1]].sort());
    assert.equal(letters[0].error.name, "PoisonMessageError");
    assert.match(letters[0].reason, /was delivered 3 times, more than maxDeliveries \(2\)/);
    assert.ok(new PoisonMessageError("in", ids[0], 3, 2) instanceof Error);
    assert.equal(await pendingCount(client, "in", "g"), 0, "all acked once their fate was final");
  });
});

test("a failing stage's entries are not acked by a run without a durable dead letter stream when the write fails", async () => {
  await withRedis(async (client) => {
    await addEntries(client, "in", 3);
    const source = redisStreamSource({ client, stream: "in", group: "g", consumer: "c", createGroup: true });
    const stop = new AbortController();
    let failed = 0;
    const pipeline = new Pipeline({
      name: "refused",
      stages: [stage("fail", (_: RedisStreamEntry) => {
        throw new PermanentError("no");
      })],
      deadLetterQueue: new WritableStream<DeadLetter>({
        write: () => Promise.reject(new Error("the dead letter store is down")),
      }),
      onEvent: (event) => {
        if (event.type === "dead-lettered" && ++failed === 3) stop.abort();
      },
    });
    await assert.rejects(pipeline.run(source, { signal: stop.signal }), { name: "DeadLetterSinkError" });
    assert.equal(await pendingCount(client, "in", "g"), 3, "entries whose dead letter was not written stay pending");
  });
});

/** The consumer fixture's command line for the runtime running the tests. */
function consumerCommand(port: number, name: string): [string, string[]] {
  const fixture = join(root, "tests", "fixtures", "redis_consumer.ts");
  const args = [fixture, String(port), name];
  if (runtime === "deno") return [process.execPath, ["run", "-A", ...args]];
  if (runtime === "bun") return [process.execPath, args];
  return [process.execPath, ["--import", "tsx", ...args]];
}

interface Consumer {
  readonly name: string;
  /** Resolves once the consumer printed `PROGRESS <at least n>`. */
  progressed(n: number): Promise<void>;
  kill(signal: "SIGINT" | "SIGKILL"): void;
  readonly exited: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>;
}

function startConsumer(port: number, name: string): Consumer {
  const [command, args] = consumerCommand(port, name);
  const child = spawn(command, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const waiters: { n: number; resolve: () => void }[] = [];
  let progress = 0;
  child.stdout.on("data", (data: Buffer) => {
    stdout += data.toString();
    for (const match of stdout.matchAll(/PROGRESS (\d+)/g)) progress = Math.max(progress, Number(match[1]));
    for (const waiter of waiters.filter((w) => progress >= w.n)) waiter.resolve();
  });
  child.stderr.on("data", (data: Buffer) => (stderr += data.toString()));
  const limit = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), PROCESS_LIMIT_MS);
  const exited = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>(
    (resolve) =>
      child.on("close", (code, signal) => {
        clearTimeout(limit);
        resolve({ code, signal, stdout, stderr });
      }),
  );
  return {
    name,
    progressed: (n) =>
      progress >= n ? Promise.resolve() : new Promise<void>((resolve) => {
        waiters.push({ n, resolve });
        void exited.then(() => resolve());
      }),
    // process.kill rather than child.kill: under Deno, child.kill makes the exit look like death by that signal.
    kill: (signal) => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, signal);
    },
    exited,
  };
}

/** Waits until the condition on Redis' state holds (Redis tells no one when a stream grows). */
async function until(what: string, condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + PROCESS_LIMIT_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test(
  `3 consumer processes (${runtime}) over 20,000 entries, one SIGKILLed mid-run: nothing lost, none pending, duplicates only of the killed one's in-flight entries`,
  { timeout: PROCESS_LIMIT_MS * 2 },
  async () => {
    await withRedis(async (client, server) => {
      const total = 20_000;
      const ids = await addEntries(client, "in", total);
      await client.xgroup("CREATE", "in", "workers", "0");
      const consumers = ["a", "b", "victim"].map((name) => startConsumer(server.port, name));
      const victim = consumers[2];
      await victim.progressed(1000);
      victim.kill("SIGKILL");
      const killed = await victim.exited;
      assert.equal(killed.signal, "SIGKILL", killed.stderr);
      const inFlight = new Set(
        ((await client.xpending("in", "workers", "-", "+", total, "victim")) as [string][]).map(([id]) => id),
      );
      assert.ok(inFlight.size > 0, "the killed consumer had entries in flight");
      await until(
        "every entry is in out or dlq",
        async () => (await client.xlen("out")) + (await client.xlen("dlq")) >= total,
      );
      await until("nothing is pending", async () => (await pendingCount(client, "in", "workers")) === 0);
      for (const survivor of consumers.slice(0, 2)) survivor.kill("SIGINT");
      for (const survivor of consumers.slice(0, 2)) {
        const finished = await survivor.exited;
        assert.equal(
          finished.code,
          0,
          `${survivor.name} exits 0 on SIGINT (${finished.signal})\n${finished.stdout.slice(-500)}\n${finished.stderr}`,
        );
        const metrics = JSON.parse(finished.stdout.trim().split("\n").at(-1)!);
        assert.equal(metrics.itemsInFlight, 0);
      }
      const written = (await client.xrange("out", "-", "+")).map(([, fields]) => fields[fields.indexOf("src") + 1]);
      const dead = (await client.xrange("dlq", "-", "+")).map(([, fields]) => fields[fields.indexOf("itemId") + 1]);
      assert.equal(
        new Set(written).size,
        written.length,
        "no entry's output was written twice (written and acked in one MULTI)",
      );
      assert.equal(new Set(dead).size, dead.length, "no entry was dead-lettered twice");
      assert.equal(written.length + dead.length, total);
      assert.deepEqual([...written, ...dead].sort(), [...ids].sort(), "every entry is in out or in dlq");
      assert.equal(dead.length, total / 50, "the entries with n % 50 === 7 are dead letters");
      assert.equal(await pendingCount(client, "in", "workers"), 0);
      // The idempotent sink: one key per entry, however often it ran.
      const runs = await client.hgetall("runs");
      const results = await client.hgetall("results");
      assert.equal(Object.keys(results).length, written.length);
      const twice = Object.entries(runs).filter(([, count]) => Number(count) > 1).map(([id]) => id);
      for (const id of twice) {
        assert.ok(inFlight.has(id), `${id} ran twice but was not in flight on the killed consumer`);
      }
      console.log(
        `redis kill test (${runtime}): ${inFlight.size} entries in flight on the killed consumer, ` +
          `${twice.length} of them run twice by the idempotent save stage, 0 duplicates in out and dlq`,
      );
    });
  },
);
