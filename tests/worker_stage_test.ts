import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ConfigError,
  graph,
  PermanentError,
  Pipeline,
  type PipelineEvent,
  ShutdownError,
  source,
  stage,
  TimeoutError,
  WorkerCrashedError,
  workerStage,
} from "../mod.ts";
import { guard, mulberry32, range, recordingLogger, runtime } from "./_helpers.ts";
import { commandFor, nodeOnly, root, run, skipBecause } from "./fixtures/runtimes.ts";

const functions = new URL("./fixtures/worker_functions.ts", import.meta.url);
const noDelay = { initialDelayMs: 0, maxDelayMs: 0, jitter: false } as const;

/** A dead letter's serialized cause. */
function causeOf(letter: { error: { cause?: unknown } }): { name?: string; message?: string } {
  return (letter.error.cause ?? {}) as { name?: string; message?: string };
}

test("workerStage() runs the module's default export on worker threads, outputs in input order", async () => {
  const pipeline = new Pipeline({
    name: "squares",
    stages: [workerStage<number, number>("square", functions, { threads: 2 })],
  });
  const { outputs, metrics } = await pipeline.collect(range(200));
  assert.deepEqual(outputs, range(200).map((n) => n * n));
  assert.equal(metrics.totalCompleted, 200);
  assert.equal(metrics.stageMetrics.square.succeeded, 200);
});

test("workerStage() keeps input order with async functions finishing out of order, and gives completion order when unordered", async () => {
  const random = mulberry32(14);
  const delays = range(40).map(() => Math.floor(random() * 15));
  const options = { threads: 2, concurrency: 4, export: "sleep" } as const;
  const ordered = new Pipeline({ name: "ordered", stages: [workerStage<number, number>("sleep", functions, options)] });
  assert.deepEqual((await ordered.collect(delays)).outputs, delays);
  const unordered = new Pipeline({
    name: "unordered",
    stages: [workerStage<number, number>("sleep", functions, { ...options, ordered: false })],
  });
  const { outputs } = await unordered.collect(delays);
  assert.deepEqual([...outputs].sort((a, b) => a - b), [...delays].sort((a, b) => a - b));
});

test("workerStage() gives the function a structured clone of the input and the item's id, stage and attempt", async () => {
  const input = { when: new Date(0), tags: new Set(["a"]), nested: { n: 1 } };
  const pipeline = new Pipeline({
    name: "clone",
    id: () => "item-1",
    stages: [workerStage<typeof input, { value: typeof input; stage: string; itemId: unknown; attempt: number }>(
      "describe",
      functions,
      { threads: 1, export: "describe" },
    )],
  });
  const { outputs } = await pipeline.collect([input]);
  assert.equal(outputs.length, 1);
  const [out] = outputs;
  assert.deepEqual(out.value, input);
  assert.notEqual(out.value, input);
  assert.ok(out.value.when instanceof Date && out.value.tags instanceof Set);
  assert.deepEqual({ stage: out.stage, itemId: out.itemId, attempt: out.attempt }, {
    stage: "describe",
    itemId: "item-1",
    attempt: 1,
  });
});

test("workerStage() brings errors back with name, message, stack, cause and fields; PermanentError stays permanent", async () => {
  const pipeline = new Pipeline({
    name: "errors",
    id: (kind: string) => kind,
    stages: [workerStage<string, never>("fail", functions, {
      threads: 1,
      export: "fail",
      maxRetries: 2,
      backoff: noDelay,
    })],
  });
  const metrics = await pipeline.run(["permanent", "type", "quota", "string"]);
  assert.equal(metrics.totalFailed, 4);
  const byId = new Map(pipeline.deadLetters.map((letter) => [letter.itemId, letter]));
  const permanent = byId.get("permanent")!;
  assert.equal(permanent.attempts, 1, "a PermanentError thrown in a worker is not retried");
  assert.equal(permanent.error.name, "PermanentError");
  assert.equal(permanent.error.message, "bad input");
  assert.match(permanent.error.stack ?? "", /worker_functions\.ts/, "the stack is the worker's");
  assert.deepEqual(
    { name: causeOf(permanent).name, message: causeOf(permanent).message },
    { name: "RangeError", message: "n out of range" },
  );
  assert.equal(byId.get("type")!.attempts, 3, "other errors are retried per the policy");
  assert.equal(byId.get("type")!.error.name, "TypeError");
  const quota = byId.get("quota")!;
  assert.equal(quota.error.name, "QuotaError");
  assert.equal(causeOf(quota).message, "429 from upstream");
  assert.equal(byId.get("string")!.error.message, "a string was thrown");
});

test("workerStage() rebuilds the error's class: instanceof works for PermanentError and built-in errors", async () => {
  const seen: unknown[] = [];
  const pipeline = new Pipeline({
    name: "classes",
    stages: [workerStage<string, never>("fail", functions, {
      threads: 1,
      export: "fail",
      maxRetries: 1,
      backoff: noDelay,
      retryIf: (error) => {
        seen.push(error);
        return !(error instanceof PermanentError);
      },
    })],
  });
  await pipeline.run(["permanent", "type", "quota"]);
  const [permanent, type, quota] = ["permanent", "type", "quota"].map((kind) =>
    seen.find((error) =>
      (error as Error).message === { permanent: "bad input", type: "not a number", quota: "quota exceeded" }[kind]
    )
  ) as Error[];
  assert.ok(permanent instanceof PermanentError);
  assert.ok(type instanceof TypeError);
  assert.equal((quota as Error & { code?: string }).code, "E_QUOTA", "own fields come back");
});

test("workerStage(): a worker that exits or throws an uncaught error fails only its items, which are retried on a new worker", async () => {
  const events: PipelineEvent[] = [];
  const pipeline = new Pipeline({
    name: "crash",
    onEvent: (event) => void events.push(event),
    stages: [workerStage<string, string>("crash", functions, {
      threads: 1,
      export: "crashOnce",
      maxRetries: 1,
      backoff: noDelay,
    })],
  });
  const { outputs, metrics } = await pipeline.collect(["exit", "uncaught"]);
  assert.deepEqual(outputs, ["exit survived on attempt 2", "uncaught survived on attempt 2"]);
  assert.equal(metrics.totalCompleted, 2);
  const retries = events.filter((event) => event.type === "retry");
  assert.equal(retries.length, 2);
  for (const retry of retries) assert.equal(retry.type === "retry" && retry.error.name, "WorkerCrashedError");
});

test("workerStage(): a crash with no retries left dead-letters the item with WorkerCrashedError and its cause", async () => {
  const pipeline = new Pipeline({
    name: "crash",
    stages: [workerStage<string, string>("crash", functions, { threads: 1, export: "crashOnce" })],
  });
  const metrics = await pipeline.run(["uncaught"]);
  assert.equal(metrics.totalFailed, 1);
  const [letter] = pipeline.deadLetters;
  assert.equal(letter.error.name, "WorkerCrashedError");
  assert.match(letter.error.message, /Worker stage "crash": its worker crashed/);
  assert.match(causeOf(letter).message ?? "", /uncaught in the worker/);
});

test("workerStage(): a timed-out attempt terminates its worker (a CPU loop never yields); a new worker runs the rest", async () => {
  const pipeline = new Pipeline({
    name: "timeout",
    stages: [workerStage<number, number>("spin", functions, { threads: 1, export: "spin", timeoutMs: 300 })],
  });
  const { outputs, metrics } = await guard(pipeline.collect([1, -1, 2, 3]), "the run", 20_000);
  assert.deepEqual(outputs, [1, 2, 3]);
  assert.equal(metrics.totalFailed, 1);
  const [letter] = pipeline.deadLetters;
  assert.equal(letter.item, -1);
  assert.equal(letter.error.name, "TimeoutError");
});

test("workerStage(): a timed-out attempt is retried per the policy", async () => {
  const retried: unknown[] = [];
  const pipeline = new Pipeline({
    name: "timeout",
    onEvent: (event) => {
      if (event.type === "retry") retried.push(event.error.name);
    },
    stages: [workerStage<number, number>("spin", functions, {
      threads: 1,
      export: "spin",
      timeoutMs: 200,
      maxRetries: 1,
      backoff: noDelay,
    })],
  });
  await guard(pipeline.run([-1]), "the run", 20_000);
  assert.deepEqual(retried, ["TimeoutError"]);
  assert.equal(pipeline.deadLetters[0].attempts, 2);
  assert.ok(new TimeoutError("spin", 200) instanceof Error);
});

test("workerStage() moves transferred buffers instead of copying them, both ways", async () => {
  const input = new Uint8Array([1, 2, 3]).buffer;
  const pipeline = new Pipeline({
    name: "transfer",
    stages: [workerStage<ArrayBuffer, ArrayBuffer>("double", functions, {
      threads: 1,
      export: "doubleBytes",
      transfer: (buffer) => [buffer],
    })],
  });
  const { outputs } = await pipeline.collect([input]);
  assert.equal(input.byteLength, 0, "the input buffer moved to the worker");
  assert.deepEqual([...new Uint8Array(outputs[0])], [2, 4, 6]);
});

test("workerStage(): without transfer, the input is copied and stays usable", async () => {
  const input = new Uint8Array([1, 2, 3]).buffer;
  const pipeline = new Pipeline({
    name: "copy",
    stages: [workerStage<ArrayBuffer, ArrayBuffer>("double", functions, { threads: 1, export: "doubleBytes" })],
  });
  const { outputs } = await pipeline.collect([input]);
  assert.deepEqual([...new Uint8Array(input)], [1, 2, 3]);
  assert.deepEqual([...new Uint8Array(outputs[0])], [2, 4, 6]);
});

test("workerStage(): an output that will not clone dead-letters its item permanently, with a message that says why", async () => {
  const pipeline = new Pipeline({
    name: "uncloneable",
    stages: [workerStage<number, never>("uncloneable", functions, {
      threads: 1,
      export: "uncloneable",
      maxRetries: 3,
    })],
  });
  const metrics = await pipeline.run([1]);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(pipeline.deadLetters[0].attempts, 1);
  assert.match(pipeline.deadLetters[0].error.message, /structured-cloneable/);
});

test("workerStage(): a missing export fails every item at once, permanently, naming the exports there are", async () => {
  const pipeline = new Pipeline({
    name: "missing",
    stages: [workerStage<number, number>("missing", functions, { threads: 2, export: "nope", maxRetries: 3 })],
  });
  const metrics = await pipeline.run([1, 2, 3]);
  assert.equal(metrics.totalFailed, 3);
  for (const letter of pipeline.deadLetters) {
    assert.equal(letter.attempts, 1);
    assert.equal(letter.error.name, "PermanentError");
    assert.match(letter.error.message, /no function export "nope".*"describe"/);
  }
});

test("workerStage(): a forced shutdown with busy workers terminates them and the run ends", async () => {
  const force = new AbortController();
  let started = 0;
  const pipeline = new Pipeline({
    name: "busy",
    onEvent: (event) => {
      if (event.type === "started" && ++started === 2) force.abort(new Error("stop now"));
    },
    stages: [workerStage<number, number>("spin", functions, { threads: 2, export: "spin", maxBatch: 1 })],
  });
  const metrics = await guard(pipeline.run([-1, -1, -1, -1], { forceSignal: force.signal }), "the run", 20_000);
  assert.equal(metrics.totalIngested, metrics.totalCompleted + metrics.totalFailed);
  assert.equal(metrics.totalCompleted, 0);
  assert.ok(pipeline.deadLetters.every((letter) => letter.error.name === "ShutdownError"));
  assert.ok(new ShutdownError("spin") instanceof Error);
});

test("workerStage() is a normal stage: it chains with other stages, types flow and metrics count its items", async () => {
  const pipeline = new Pipeline({
    name: "chain",
    stages: [
      stage("parse", (text: string) => Number(text)),
      workerStage<number, number>("square", functions, { threads: 2, maxBatch: 4 }),
      stage("format", (n: number) => `=${n}`),
    ],
  });
  const { outputs, metrics } = await pipeline.collect(range(50).map(String));
  assert.deepEqual(outputs, range(50).map((n) => `=${n * n}`));
  assert.equal(metrics.stageMetrics.square.succeeded, 50);
});

test("workerStage() runs again after a run ended: each run starts and ends its own workers", async () => {
  const pipeline = new Pipeline({
    name: "again",
    stages: [workerStage<number, number>("square", functions, { threads: 1 })],
  });
  assert.deepEqual((await pipeline.collect([2])).outputs, [4]);
  assert.deepEqual((await pipeline.collect([3])).outputs, [9]);
});

test("workerStage() refuses bad input with a ConfigError that names the field", () => {
  assert.throws(() => workerStage("w", "./relative.ts"), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.match(
      error.message,
      /moduleUrl must be a URL.*new URL\("\.\/hash\.ts", import\.meta\.url\).*"\.\/relative\.ts"/,
    );
    return true;
  });
  assert.throws(() => workerStage("w", functions, { threads: 0 }), /threads.*positive integer/);
  assert.throws(() => workerStage("w", functions, { maxBatch: 1.5 }), /maxBatch/);
  assert.throws(() => workerStage("w", functions, { thread: 2 } as never), /thread/);
  assert.throws(() => workerStage("", functions), ConfigError);
});

test("workerStage() on a runtime with workers logs no fallback warning", async () => {
  const { logger, records } = recordingLogger();
  const pipeline = new Pipeline({
    name: "w",
    logger,
    stages: [workerStage<number, number>("square", functions, { threads: 1 })],
  });
  await pipeline.run([1]);
  assert.equal(records.filter((record) => record.level === "warn").length, 0);
});

test("workerStage() defaults threads to the cores minus one, at least one", () => {
  const stage = workerStage("w", functions);
  const cores = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency;
  // Each worker holds 2 × maxBatch (8) items, and the stage twice what its workers hold.
  if (cores !== undefined) assert.equal(stage.concurrency, Math.max(1, cores - 1) * 32);
  assert.ok(stage.concurrency >= 32);
});

test("workerStage(): a function in a worker filters items out by returning skip", async () => {
  const pipeline = new Pipeline({
    name: "evens",
    stages: [workerStage<number, number>("evens", functions, { threads: 2, export: "evens" })],
  });
  const { outputs, metrics } = await pipeline.collect(range(10));
  assert.deepEqual(outputs, [0, 2, 4, 6, 8]);
  assert.equal(metrics.totalFiltered, 5);
  assert.equal(metrics.totalIngested, metrics.totalCompleted + metrics.totalFiltered);
});

for (const [name, command] of Object.entries(commandFor)) {
  test(`workerStage() on ${name}: a worker's uncaught error and unhandled rejection are handled quietly`, {
    skip: skipBecause("tests/worker_stage_test.ts", nodeOnly),
  }, async () => {
    const [executable, args] = command("tests/fixtures/worker_crash.ts");
    const result = await run(executable, args, { cwd: root, env: { NO_COLOR: "1" } });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "null"), [
      "uncaught survived on attempt 2",
      "rejected survived on attempt 2",
    ]);
    // Deno printed each as "error: Uncaught (in worker …)" although the stage had handled it.
    assert.doesNotMatch(result.stderr, /uncaught|unhandled/i, result.stderr);
  });
}

test("workerStage() on Node under --import tsx: the worker loads TypeScript without starting tsx a second time", {
  skip: runtime() !== "node"
    ? "Node only: its workers take the parent's execArgv"
    : Number(process.versions.node.split(".")[0]) >= 22 &&
      "Node 22+ keeps --import tsx: there it is what loads TypeScript",
}, async () => {
  const parent = process.execArgv;
  const tsx = parent.findIndex((arg, i) => arg === "--import" && parent[i + 1] === "tsx");
  assert.notEqual(tsx, -1, `the suite runs under node --import tsx (execArgv: ${parent.join(" ")})`);
  const pipeline = new Pipeline({
    name: "flags",
    stages: [workerStage<number, string[]>("flags", functions, { threads: 1, export: "flags" })],
  });
  const { outputs } = await pipeline.collect([0]);
  // The worker registers tsx itself (a .ts module loaded, this one); the inherited flag would load it again.
  assert.deepEqual(outputs[0], parent.filter((_, i) => i !== tsx && i !== tsx + 1));
});

test("workerStage() on Node: a worker out of memory fails only its items, and the others complete on a new worker", {
  skip: runtime() !== "node" && "Node only: it starts a child Node with a small heap, which its workers inherit",
}, async () => {
  const { spawn } = await import("node:child_process");
  const child = spawn(process.execPath, [
    "--max-old-space-size=64",
    "--import",
    "tsx",
    new URL("./fixtures/worker_oom.ts", import.meta.url).pathname,
  ], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const code = await guard(new Promise((resolve) => child.on("close", resolve)), "the child", 60_000);
  assert.equal(code, 0, stderr);
  const result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "null") as {
    outputs: number[];
    deadLetters: { item: number; name: string; message: string }[];
  };
  assert.deepEqual(result.outputs, [0, 2]);
  assert.equal(result.deadLetters.length, 1);
  assert.equal(result.deadLetters[0].item, 1);
  assert.equal(result.deadLetters[0].name, "WorkerCrashedError");
  assert.match(result.deadLetters[0].message, /memory/);
});

test("WorkerCrashedError is an Error with its name and stage", () => {
  const error = new WorkerCrashedError("s", "its worker exited with code 1");
  assert.equal(error.name, "WorkerCrashedError");
  assert.equal(error.stage, "s");
});

test("workerStage() as a graph node: a broadcast to a worker stage and an inline stage, joined; workers start per run", async () => {
  const g = graph({ name: "both", sources: { n: source<number>() } }, (b, { n }) => {
    const copies = b.broadcast("copies", n);
    const square = b.add(workerStage<number, number>("square", functions, { threads: 2 }), copies);
    const same = b.add(stage("same", (x: number) => x), copies);
    return { pairs: b.join("pair", { square, same }) };
  });
  for (const items of [range(30), range(5)]) {
    const { outputs, metrics } = await g.collect(items);
    assert.deepEqual(
      outputs.pairs.sort((x, y) => x.same - y.same),
      items.map((x) => ({ square: x * x, same: x })),
    );
    assert.equal(metrics.stageMetrics.square.succeeded, items.length);
    assert.equal(metrics.itemsInFlight, 0);
  }
});
