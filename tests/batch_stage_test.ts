import { test } from "node:test";
import assert from "node:assert/strict";
import { batchStage, Pipeline, stage, type StageContext } from "../mod.ts";
import { Counter, deferred, guard } from "./_helpers.ts";

const noDelay = { initialDelayMs: 0, maxDelayMs: 0, jitter: false } as const;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

test("batchStage() flushes a batch as soon as it is full, and the rest at the end of input", async () => {
  const batches: number[][] = [];
  const pipeline = new Pipeline({
    name: "full",
    stages: [
      batchStage("load", (rows: readonly number[]) => {
        batches.push([...rows]);
      }, { batchSize: 3 }),
    ],
  });
  const metrics = await pipeline.run(range(8));
  assert.deepEqual(batches, [[0, 1, 2], [3, 4, 5], [6, 7]]);
  assert.equal(metrics.totalCompleted, 8);
  assert.equal(metrics.stageMetrics.load.succeeded, 8, "metrics count items, not batches");
});

test("batchStage() flushes a full batch without waiting for the end of input", async () => {
  const release = deferred();
  const firstBatch = deferred<number[]>();
  let sourceReleased = false;
  async function* source() {
    yield* [0, 1, 2, 3];
    await release.promise; // the source pauses; only a full batch can flush now
    sourceReleased = true;
    yield 4;
  }
  const batches: number[][] = [];
  const pipeline = new Pipeline({
    name: "full-early",
    stages: [
      batchStage("load", (rows: readonly number[]) => {
        batches.push([...rows]);
        if (batches.length === 1) {
          assert.equal(sourceReleased, false, "the first batch flushed while the source was paused");
          firstBatch.resolve([...rows]);
          release.resolve();
        }
      }, { batchSize: 2 }),
    ],
  });
  const done = pipeline.run(source());
  try {
    assert.deepEqual(await guard(firstBatch.promise, "the first full batch"), [0, 1]);
  } finally {
    release.resolve();
  }
  await guard(done, "the run");
  assert.deepEqual(batches, [[0, 1], [2, 3], [4]]);
});

test("batchStage() flushes a partial batch flushIntervalMs after its first item while the source pauses", async () => {
  const releases = [deferred(), deferred()];
  const flushedWhilePaused: boolean[] = [];
  let paused = false;
  async function* source() {
    yield 0;
    yield 1;
    paused = true;
    await releases[0].promise; // only the interval can flush [0, 1] now
    paused = false;
    yield 2;
    paused = true;
    await releases[1].promise; // and a new interval [2]
    paused = false;
    yield 3;
    yield 4;
  }
  const batches: number[][] = [];
  const pipeline = new Pipeline({
    name: "interval",
    stages: [
      batchStage("load", (rows: readonly number[]) => {
        batches.push([...rows]);
        flushedWhilePaused.push(paused);
        releases[batches.length - 1]?.resolve();
      }, { batchSize: 100, flushIntervalMs: 5 }),
    ],
  });
  // Safety net: if the interval never fires, release the source so that the test fails instead of hanging.
  const safety = setTimeout(() => releases.forEach((release) => release.resolve()), 2000);
  try {
    await guard(pipeline.run(source()), "the run", 4000);
  } finally {
    clearTimeout(safety);
  }
  assert.deepEqual(batches, [[0, 1], [2], [3, 4]]);
  assert.deepEqual(flushedWhilePaused, [true, true, false], "the first two batches flushed on the interval");
});

test("batchStage() flushes a partial batch at the end of input", async () => {
  const batches: string[][] = [];
  const pipeline = new Pipeline({
    name: "end",
    stages: [
      batchStage("load", async (rows: readonly string[]) => {
        batches.push([...rows]);
      }, { batchSize: 10, flushIntervalMs: 60_000 }),
    ],
  });
  const metrics = await guard(pipeline.run(["a", "b", "c"]), "the run");
  assert.deepEqual(batches, [["a", "b", "c"]]);
  assert.equal(metrics.totalCompleted, 3);
});

test("batchStage() with fn returning nothing passes its inputs on unchanged", async () => {
  const after: number[] = [];
  const pipeline = new Pipeline({
    name: "void",
    stages: [
      // Inline, so that its output type (the input type) must flow into the next stage's input.
      batchStage("load", async (_rows: readonly number[]) => {}, { batchSize: 2 }),
      stage("after", (n: number) => {
        after.push(n);
        return n;
      }),
    ],
  });
  const metrics = await pipeline.run([10, 11, 12, 13, 14]);
  assert.deepEqual(after, [10, 11, 12, 13, 14]);
  assert.equal(metrics.totalCompleted, 5);
});

test("batchStage() with one result per input passes the results on one by one, in order", async () => {
  const after: unknown[] = [];
  const pipeline = new Pipeline({
    name: "results",
    stages: [
      batchStage("square", (rows: readonly number[]) => rows.map((n) => `sq${n * n}`), { batchSize: 3 }),
      stage("after", (s: string) => {
        after.push(s);
        return s;
      }),
    ],
  });
  const metrics = await pipeline.run([1, 2, 3, 4, 5]);
  assert.deepEqual(after, ["sq1", "sq4", "sq9", "sq16", "sq25"]);
  assert.equal(metrics.stageMetrics.after.succeeded, 5, "the next stage saw 5 items, not 2 arrays");
  assert.equal(metrics.totalCompleted, 5);
});

test("batchStage() keeps the results in input order when concurrent batches finish out of order", async () => {
  const gates = [deferred(), deferred(), deferred()];
  const started = new Counter();
  const after: number[] = [];
  const pipeline = new Pipeline({
    name: "results-order",
    stages: [
      batchStage("work", async (rows: readonly number[]) => {
        const index = rows[0] / 2;
        started.increment();
        await gates[index].promise;
        return rows.map((n) => n * 100);
      }, { batchSize: 2, concurrency: 3 }),
      stage("after", (n: number) => {
        after.push(n);
        return n;
      }),
    ],
  });
  const done = pipeline.run(range(6));
  await guard(started.reaches(3), "three batches started");
  gates[2].resolve();
  gates[1].resolve();
  gates[0].resolve();
  await guard(done, "the run");
  assert.deepEqual(after, [0, 100, 200, 300, 400, 500]);
});

test("batchStage() fails a batch permanently when fn returns the wrong number of results, without retrying", async () => {
  let calls = 0;
  const after: number[] = [];
  const pipeline = new Pipeline({
    name: "wrong-length",
    stages: [
      batchStage("load", (rows: readonly number[]) => {
        calls++;
        return rows[0] === 0 ? rows.slice(1) : [...rows];
      }, { batchSize: 3, maxRetries: 3, backoff: noDelay }),
      stage("after", (n: number) => {
        after.push(n);
        return n;
      }),
    ],
  });
  const metrics = await pipeline.run(range(6));
  assert.equal(calls, 2, "one call per batch: the wrong-length batch is not retried");
  assert.deepEqual(after, [3, 4, 5]);
  assert.equal(metrics.totalFailed, 3);
  assert.equal(metrics.stageMetrics.load.retries, 0);
  assert.deepEqual(pipeline.deadLetters.map((entry) => entry.item), [0, 1, 2], "every item of the batch");
  for (const entry of pipeline.deadLetters) {
    assert.equal(entry.stage, "load");
    assert.equal(entry.attempts, 1);
    assert.equal(entry.error.name, "PermanentError");
    assert.match(entry.reason, /returned 2 results for a batch of 3/);
  }
});

test("batchStage() fails a batch permanently when fn returns something that is not an array", async () => {
  let calls = 0;
  const pipeline = new Pipeline({
    name: "not-array",
    stages: [
      batchStage(
        "load",
        ((_rows: readonly number[]) => {
          calls++;
          return "done"; // not allowed by the types: a plain JavaScript caller could do it
        }) as unknown as (rows: readonly number[]) => void,
        { batchSize: 2, maxRetries: 2, backoff: noDelay },
      ),
    ],
  });
  const metrics = await pipeline.run([1, 2]);
  assert.equal(calls, 1);
  assert.equal(metrics.totalFailed, 2);
  assert.match(pipeline.deadLetters[0].reason, /returned string/);
});

test("batchStage() retries a failed batch and then passes it on", async () => {
  let calls = 0;
  const pipeline = new Pipeline({
    name: "batch-retry",
    stages: [
      batchStage("load", (rows: readonly number[], ctx: StageContext) => {
        calls++;
        if (ctx.attempt === 1) throw new Error("connection reset");
        return rows.map((n) => n + 1);
      }, { batchSize: 4, maxRetries: 2, backoff: noDelay }),
    ],
  });
  const metrics = await pipeline.run([1, 2, 3, 4]);
  assert.equal(calls, 2);
  assert.equal(metrics.totalCompleted, 4);
  assert.equal(metrics.totalFailed, 0);
});

test("batchStage() dead-letters each item of a batch that exhausts its retries, with the reason", async () => {
  let calls = 0;
  const after: number[] = [];
  const pipeline = new Pipeline({
    name: "batch-exhaust",
    stages: [
      stage("before", (n: number) => n * 10),
      batchStage("load", (rows: readonly number[]) => {
        calls++;
        if (rows.includes(30)) throw new Error(`database down (call ${calls})`);
      }, { batchSize: 2, maxRetries: 2, backoff: noDelay }),
      stage("after", (n: number) => {
        after.push(n);
        return n;
      }),
    ],
  });
  const metrics = await pipeline.run([0, 1, 2, 3, 4]);
  // batches: [0,10] ok, [20,30] fails 3 times, [40] ok
  assert.equal(calls, 1 + 3 + 1);
  assert.deepEqual(after, [0, 10, 40]);
  assert.equal(metrics.totalFailed, 2);
  assert.equal(metrics.totalCompleted, 3);
  assert.equal(metrics.stageMetrics.load.failed, 2);
  assert.equal(metrics.deadLetterCount, 2);
  assert.deepEqual(pipeline.deadLetters.map((entry) => [entry.itemId, entry.item]), [[2, 20], [3, 30]]);
  for (const entry of pipeline.deadLetters) {
    assert.equal(entry.stage, "load");
    assert.equal(entry.attempts, 3);
    assert.equal(entry.reason, "database down (call 4)");
    assert.equal(entry.error.message, "database down (call 4)");
  }
});

test("batchStage() gives ctx the ids of every item in the batch", async () => {
  const seen: { itemId: string | number; itemIds: readonly (string | number)[]; stage: string }[] = [];
  const pipeline = new Pipeline({
    name: "batch-ctx",
    id: (row: { key: string }) => row.key,
    stages: [
      batchStage("load", (_rows: readonly { key: string }[], ctx: StageContext) => {
        seen.push({ itemId: ctx.itemId, itemIds: [...ctx.itemIds], stage: ctx.stage });
      }, { batchSize: 2 }),
    ],
  });
  await pipeline.run([{ key: "a" }, { key: "b" }, { key: "c" }]);
  assert.deepEqual(seen, [
    { itemId: "a", itemIds: ["a", "b"], stage: "load" },
    { itemId: "c", itemIds: ["c"], stage: "load" },
  ]);
});

test("batchStage() concurrency counts batches: N batches run at once, never more", async () => {
  const N = 2;
  let active = 0;
  let maxActive = 0;
  let started = 0;
  const full = deferred();
  const gate = deferred();
  const sizes: number[] = [];
  const pipeline = new Pipeline({
    name: "batch-concurrency",
    stages: [
      batchStage("load", async (rows: readonly number[]) => {
        started++;
        active++;
        sizes.push(rows.length);
        maxActive = Math.max(maxActive, active);
        if (active === N) full.resolve();
        await gate.promise;
        await Promise.resolve();
        active--;
      }, { batchSize: 3, concurrency: N }),
    ],
  });
  const done = pipeline.run(range(12));
  try {
    await guard(full.promise, `${N} batches at once`);
  } finally {
    gate.resolve();
  }
  assert.equal(active, N);
  assert.equal(started, N, "a third batch waited for a free worker although 6 more items were queued");
  const metrics = await guard(done, "the run");
  assert.equal(maxActive, N);
  assert.deepEqual(sizes, [3, 3, 3, 3], "the workers took whole batches");
  assert.equal(metrics.totalCompleted, 12);
});

test("batchStage() with a timeout fails the attempt and retries the whole batch", async () => {
  const calls: number[][] = [];
  const pipeline = new Pipeline({
    name: "batch-timeout",
    stages: [
      batchStage("load", (rows: readonly number[], ctx: StageContext) => {
        calls.push([...rows]);
        if (ctx.attempt === 1) return new Promise<void>(() => {});
      }, { batchSize: 2, timeoutMs: 5, maxRetries: 1, backoff: noDelay }),
    ],
  });
  const metrics = await guard(pipeline.run([1, 2]), "the run");
  assert.deepEqual(calls, [[1, 2], [1, 2]]);
  assert.equal(metrics.totalCompleted, 2);
});
