import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { batchStage, type DeadLetter, PermanentError, Pipeline, ShutdownError, stage } from "../mod.ts";
import { countingSource, deferred, Gate, range, recordingSink, runtime, type SourceKind } from "./_helpers.ts";

for (const kind of ["iterable", "generator", "async generator", "ReadableStream"] as const satisfies SourceKind[]) {
  test(`run({ signal }) aborted mid-run stops reading the ${kind} source and finishes everything read`, async () => {
    const controller = new AbortController();
    const { source, probe } = countingSource(kind, Infinity);
    let pulledAtAbort = -1;
    const { sink, written, closed } = recordingSink<DeadLetter>();
    const batches: number[][] = [];
    const worked: number[] = [];
    const pipeline = new Pipeline({
      name: "graceful",
      queueSize: 4,
      deadLetterQueue: sink,
      stages: [
        stage("work", async (n: number) => {
          worked.push(n);
          if (worked.length === 5) {
            pulledAtAbort = probe.pulled;
            controller.abort();
          }
          if (n % 4 === 1) throw new PermanentError(`bad ${n}`);
          return n;
        }, { concurrency: 2 }),
        batchStage("load", async (ns: readonly number[]) => {
          batches.push([...ns]);
        }, { batchSize: 1000 }),
      ],
    });
    const metrics = await pipeline.run(source, { signal: controller.signal });

    assert.ok(pulledAtAbort >= 5);
    assert.equal(probe.pulled, pulledAtAbort, "nothing is read from the source after the abort");
    assert.equal(probe.stopped, true, "the source is stopped (return() / cancel())");
    assert.equal(metrics.totalIngested, probe.pulled, "everything read is ingested");
    assert.deepEqual(worked, range(probe.pulled), "everything read went through the stages, in order");
    assert.equal(metrics.totalIngested, metrics.totalCompleted + metrics.totalFailed);
    assert.equal(metrics.itemsInFlight, 0);
    const good = worked.filter((n) => n % 4 !== 1);
    assert.deepEqual(batches, [good], "the partial batch is flushed at shutdown");
    assert.equal(metrics.totalCompleted, good.length);
    assert.equal(closed(), true, "the dead letter sink is closed");
    assert.deepEqual(written.map((letter) => letter.item), worked.filter((n) => n % 4 === 1));
    assert.equal(metrics.deadLetterCount, written.length);
    assert.equal(metrics.totalFailed, written.length);
    assert.deepEqual(pipeline.deadLetters, [], "entries went to the sink, not to memory");
    assert.deepEqual(metrics, pipeline.getMetrics(), "run resolves with the final metrics");
  });
}

test("run({ signal }) already aborted reads nothing and resolves with zero counts", async () => {
  const { source, probe } = countingSource("generator", Infinity);
  let calls = 0;
  const { sink, closed } = recordingSink<DeadLetter>();
  const pipeline = new Pipeline({
    name: "aborted",
    deadLetterQueue: sink,
    stages: [stage("s", (n: number) => (calls++, n))],
  });
  const metrics = await pipeline.run(source, { signal: AbortSignal.abort() });
  assert.equal(probe.pulled, 0);
  assert.equal(calls, 0);
  assert.deepEqual([metrics.totalIngested, metrics.totalCompleted, metrics.totalFailed, metrics.itemsInFlight], [
    0,
    0,
    0,
    0,
  ]);
  assert.equal(closed(), true);
});

test("run({ signal }) aborted while a stage is blocked waits for that stage, then resolves", async () => {
  const controller = new AbortController();
  const gate = new Gate<number>();
  const pipeline = new Pipeline({
    name: "drain",
    stages: [stage("slow", async (n: number) => {
      await gate.enter(n);
      return n;
    }, { concurrency: 2 })],
  });
  let resolved = false;
  const running = pipeline.run(range(10), { signal: controller.signal }).then((metrics) => {
    resolved = true;
    return metrics;
  });
  const first = await gate.next();
  controller.abort();
  first.release();
  // Everything already read (the array is read in one go) still goes through the blocked stage.
  for (let i = 1; i < 10; i++) {
    const held = await gate.next();
    assert.equal(resolved, false, "run waits for items still in the pipeline");
    held.release();
  }
  const metrics = await running;
  assert.equal(metrics.totalIngested, 10);
  assert.equal(metrics.totalCompleted, 10);
  assert.equal(metrics.itemsInFlight, 0);
});

test("run({ forceSignal }) aborts in-flight attempts through ctx.signal; their items are dead-lettered with ShutdownError, not retried", async () => {
  const force = new AbortController();
  const graceful = new AbortController();
  const signals: AbortSignal[] = [];
  const inFlight = deferred();
  let calls = 0;
  const pipeline = new Pipeline({
    name: "forced",
    stages: [
      stage("hang", (_n: number, ctx) => {
        calls++;
        signals.push(ctx.signal);
        if (signals.length === 2) inFlight.resolve();
        return new Promise<number>(() => {}); // ignores its signal: the forced shutdown must not wait for it
      }, { concurrency: 2, maxRetries: 5, backoff: { initialDelayMs: 0 } }),
      stage("after", (n: number) => n),
    ],
  });
  const running = pipeline.run(range(6), { signal: graceful.signal, forceSignal: force.signal });
  await inFlight.promise;
  assert.ok(signals.every((signal) => !signal.aborted));
  graceful.abort();
  force.abort(new Error("operator said stop"));
  const metrics = await running;

  assert.ok(signals.every((signal) => signal.aborted), "ctx.signal of every in-flight attempt is aborted");
  assert.ok(signals.every((signal) => signal.reason instanceof ShutdownError));
  assert.equal(calls, 2, "no attempt starts after the forced shutdown and nothing is retried");
  assert.equal(metrics.stageMetrics.hang.retries, 0);
  assert.equal(metrics.totalIngested, 6);
  assert.equal(metrics.totalFailed, 6);
  assert.equal(metrics.totalCompleted, 0);
  assert.equal(metrics.itemsInFlight, 0);
  const letters = pipeline.deadLetters;
  assert.equal(letters.length, 6);
  for (const letter of letters) {
    assert.equal(letter.stage, "hang");
    assert.equal(letter.error.name, "ShutdownError");
    assert.match(letter.reason, /forced shutdown/);
    assert.equal(letter.attempts, 1);
  }
  assert.deepEqual(letters.slice(0, 2).map((letter) => letter.item), [0, 1]);
  for (const letter of letters.slice(0, 2)) {
    assert.equal(
      (letter.error.cause as { message?: string }).message,
      "operator said stop",
      "the force reason is the cause",
    );
  }
});

test("run({ forceSignal }) alone also stops reading the source", async () => {
  const force = new AbortController();
  const { source, probe } = countingSource("async generator", Infinity);
  let pulledAtAbort = -1;
  const pipeline = new Pipeline({
    name: "forced-source",
    queueSize: 2,
    stages: [stage("s", async (n: number, ctx) => {
      if (n === 3) {
        pulledAtAbort = probe.pulled;
        force.abort();
        if (ctx.signal.aborted) throw ctx.signal.reason;
      }
      return n;
    })],
  });
  const metrics = await pipeline.run(source, { forceSignal: force.signal });
  assert.ok(pulledAtAbort > 0);
  assert.equal(probe.pulled, pulledAtAbort);
  assert.equal(metrics.totalIngested, metrics.totalCompleted + metrics.totalFailed);
  assert.equal(metrics.itemsInFlight, 0);
  assert.ok(pipeline.deadLetters.every((letter) => letter.error.name === "ShutdownError"));
});

// ---------------------------------------------------------------------------
// Process signals.

const listenerCounts = () => ({ sigint: process.listenerCount("SIGINT"), sigterm: process.listenerCount("SIGTERM") });

test("run({ handleSignals: true }) adds SIGINT/SIGTERM handlers for the run and removes them when it ends", async () => {
  // Deno's handlers go through Deno.addSignalListener, which has no listener count: only the run is checked there.
  const counted = runtime() !== "deno";
  const before = listenerCounts();
  let during: ReturnType<typeof listenerCounts> | undefined;
  const pipeline = new Pipeline({
    name: "handlers",
    stages: [stage("s", (n: number) => {
      during ??= listenerCounts();
      return n;
    })],
  });
  const metrics = await pipeline.run([1, 2, 3], { handleSignals: true });
  assert.equal(metrics.totalCompleted, 3);
  if (counted) {
    assert.deepEqual(during, { sigint: before.sigint + 1, sigterm: before.sigterm + 1 });
    assert.deepEqual(listenerCounts(), before);
  }

  // Also when the run rejects because its source failed.
  const failing = (function* () {
    yield 1;
    throw new Error("source broke");
  })();
  await assert.rejects(pipeline.run(failing, { handleSignals: true }), /source broke/);
  if (counted) assert.deepEqual(listenerCounts(), before);

  // And without handleSignals, none are added.
  during = undefined;
  await pipeline.run([1]);
  if (counted) assert.deepEqual(during, before);
});

const FIXTURE = fileURLToPath(new URL("./fixtures/sigint_child.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The fixture's command line for the runtime running the tests. */
function childCommand(mode: string): [string, string[]] {
  switch (runtime()) {
    case "deno":
      return [process.execPath, ["run", "-A", FIXTURE, mode]];
    case "bun":
      return [process.execPath, [FIXTURE, mode]];
    case "node":
      return [process.execPath, ["--import", "tsx", FIXTURE, mode]];
  }
}

interface ChildResult {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string[];
  readonly stderr: string;
}

/** The fixture as a child process: lines from stdout as they come, and how it ended. */
function startChild(mode: "graceful" | "force") {
  const [command, args] = childCommand(mode);
  const child = spawn(command, args, {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" },
  });
  const stdout: string[] = [];
  let partial = "";
  let stderr = "";
  const waiting: { pattern: RegExp; found: ReturnType<typeof deferred<string>> }[] = [];
  const ended = deferred<ChildResult>();
  // process.kill rather than child.kill: under Deno, child.kill works only once and makes the
  // exit look like death by that signal even when the child exits with 0.
  const kill = (name: "SIGINT" | "SIGKILL") => {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, name);
  };
  // A guard against a child that never ends: not a synchronisation, the test fails if it fires.
  const guard = setTimeout(() => kill("SIGKILL"), 20_000);
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (data: string) => {
    partial += data;
    const lines = partial.split("\n");
    partial = lines.pop()!;
    for (const line of lines) {
      stdout.push(line);
      for (const wait of waiting.filter((w) => w.pattern.test(line))) {
        waiting.splice(waiting.indexOf(wait), 1);
        wait.found.resolve(line);
      }
    }
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (data: string) => void (stderr += data));
  child.on("close", (code, signal) => {
    clearTimeout(guard);
    if (partial) stdout.push(partial);
    const result = { code, signal, stdout, stderr };
    for (const wait of waiting) {
      wait.found.reject(new Error(`the child ended before printing ${wait.pattern}: ${JSON.stringify(result)}`));
    }
    ended.resolve(result);
  });
  return {
    /** Resolves with the first stdout line matching `pattern` (rejects if the child ends first). */
    line(pattern: RegExp): Promise<string> {
      const seen = stdout.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      const found = deferred<string>();
      waiting.push({ pattern, found });
      return found.promise;
    },
    signal: (name: "SIGINT") => kill(name),
    ended: ended.promise,
  };
}

function finalMetrics(result: ChildResult) {
  assert.equal(result.code, 0, `the child exits with 0: ${JSON.stringify(result)}`);
  const last = result.stdout.filter((line) => line.startsWith("{")).at(-1);
  assert.ok(last, `the child printed its metrics: ${JSON.stringify(result)}`);
  return JSON.parse(last);
}

test(`SIGINT to a child process (${runtime()}) running with handleSignals stops it gracefully with exit code 0`, async () => {
  const child = startChild("graceful");
  await child.line(/^READY$/);
  child.signal("SIGINT");
  const metrics = finalMetrics(await child.ended);
  assert.equal(metrics.mode, "graceful");
  assert.ok(metrics.totalIngested > 0);
  assert.equal(metrics.totalIngested, metrics.totalCompleted + metrics.totalFailed);
  assert.equal(metrics.itemsInFlight, 0);
  assert.ok(metrics.totalFailed > 0);
  assert.deepEqual(metrics.deadLetterErrors, ["PermanentError"]);
  assert.equal(metrics.loaded, metrics.totalCompleted, "the last partial batch was flushed");
  if (runtime() !== "deno") {
    const { before, during, after } = metrics.listeners;
    assert.deepEqual(during, { sigint: before.sigint + 1, sigterm: before.sigterm + 1 });
    assert.deepEqual(after, before, "the run removed its signal handlers");
  }
});

test(`a second SIGINT to a child process (${runtime()}) aborts in-flight attempts; their items are dead-lettered`, async () => {
  const child = startChild("force");
  await child.line(/^READY$/);
  child.signal("SIGINT");
  await child.line(/^SIGNAL 1$/);
  child.signal("SIGINT");
  const metrics = finalMetrics(await child.ended);
  assert.equal(metrics.mode, "force");
  assert.ok(metrics.totalIngested > 0);
  assert.equal(metrics.totalIngested, metrics.totalCompleted + metrics.totalFailed);
  assert.equal(metrics.itemsInFlight, 0);
  assert.equal(metrics.aborted, 3, "the three attempts in flight saw ctx.signal abort");
  assert.equal(metrics.retries, 0, "interrupted items are not retried");
  assert.deepEqual(metrics.deadLetterErrors, ["ShutdownError"]);
  assert.equal(metrics.deadLetterCount, metrics.totalFailed);
});
