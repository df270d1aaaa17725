import { test } from "node:test";
import assert from "node:assert/strict";
import { Pipeline, stage } from "../mod.ts";

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

test('name is optional and defaults to "pipeline"', async () => {
  const pipeline = new Pipeline({ stages: [stage("s", (n: number) => n)] });
  assert.equal(pipeline.name, "pipeline");
  assert.equal((await pipeline.run([1])).totalCompleted, 1);
});

test("collect resolves with the outputs in input order and the metrics", async () => {
  const pipeline = new Pipeline({
    stages: [stage("slow", async (n: number) => {
      await new Promise((resolve) => setTimeout(resolve, (5 - n) % 3));
      if (n === 3) throw new Error("three");
      return n * 10;
    }, { concurrency: 3 })],
  });
  const { outputs, metrics } = await pipeline.collect([1, 2, 3, 4, 5]);
  assert.deepEqual(outputs, [10, 20, 40, 50]);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(pipeline.deadLetters[0].reason, "three");
});

test("collect and results reject a bad source and bad options like run", async () => {
  const pipeline = new Pipeline({ stages: [stage("s", (n: number) => n)] });
  await assert.rejects(pipeline.collect(5 as never), TypeError);
  assert.throws(() => pipeline.results(null as never), TypeError);
  assert.throws(() => pipeline.results([1], { signal: 5 as never }), /must be an AbortSignal/);
});

test("results() has backpressure: the source is read only as far ahead as the queues allow", async () => {
  let read = 0;
  function* source() {
    for (let i = 0; i < 1000; i++) {
      read++;
      yield i;
    }
  }
  const pipeline = new Pipeline({ queueSize: 4, stages: [stage("s", (n: number) => n)] });
  const seen: number[] = [];
  for await (const n of pipeline.results(source())) {
    seen.push(n);
    if (seen.length === 10) {
      await tick();
      await tick();
      assert.ok(read < 100, `read ${read} items while the consumer had taken 10`);
    }
  }
  assert.equal(seen.length, 1000);
  assert.equal(pipeline.getMetrics().totalCompleted, 1000);
});

test("leaving a results() loop early stops the run, dead-letters what is in flight and keeps conservation", async () => {
  const pipeline = new Pipeline({ stages: [stage("s", async (n: number) => n, { concurrency: 4 })] });
  async function* endless() {
    for (let i = 0;; i++) yield i;
  }
  let count = 0;
  for await (const _ of pipeline.results(endless())) if (++count === 5) break;
  const m = pipeline.getMetrics();
  assert.equal(m.itemsInFlight, 0);
  assert.ok(m.totalCompleted >= 5);
  assert.equal(m.totalIngested, m.totalCompleted + m.totalFailed);
});

test("results() honours the run options: a graceful signal stops reading and finishes what was read", async () => {
  const stop = new AbortController();
  async function* endless() {
    for (let i = 0;; i++) {
      if (i === 20) stop.abort();
      await tick();
      yield i;
    }
  }
  const pipeline = new Pipeline({ stages: [stage("s", (n: number) => n)] });
  const seen: number[] = [];
  for await (const n of pipeline.results(endless(), { signal: stop.signal })) seen.push(n);
  const m = pipeline.getMetrics();
  assert.equal(seen.length, m.totalCompleted);
  assert.equal(m.totalIngested, m.totalCompleted);
  assert.ok(m.totalIngested >= 20);
});

test("close() stops a run in progress gracefully and waits for it; the pipeline can run again", async () => {
  const pipeline = new Pipeline({ stages: [stage("s", async (n: number) => n, { concurrency: 2 })] });
  let started = 0;
  async function* endless() {
    for (let i = 0;; i++) {
      started++;
      await tick();
      yield i;
    }
  }
  const running = pipeline.run(endless());
  while (started < 10) await tick();
  await pipeline.close();
  const metrics = pipeline.getMetrics();
  assert.equal(metrics.itemsInFlight, 0);
  assert.equal(metrics.totalIngested, metrics.totalCompleted);
  assert.equal((await running).totalCompleted, metrics.totalCompleted);
  assert.equal((await pipeline.run([1, 2])).totalCompleted, 2);
  await pipeline.close(); // nothing running: resolves at once
});

test("Symbol.asyncDispose closes the pipeline: await using stops its runs at the end of the scope", async () => {
  let running: Promise<unknown> | undefined;
  let outer: Pipeline<readonly [ReturnType<typeof stage<number, number>>]> | undefined;
  async function* endless() {
    for (let i = 0;; i++) {
      await tick();
      yield i;
    }
  }
  {
    await using pipeline = new Pipeline({ stages: [stage("s", async (n: number) => n)] });
    outer = pipeline;
    running = pipeline.run(endless());
    await tick();
  }
  const metrics = await running;
  assert.equal((metrics as { itemsInFlight: number }).itemsInFlight, 0);
  assert.equal(typeof outer?.[Symbol.asyncDispose], "function");
});

test("close() closes a stream()'s writable side; what was written still comes out", async () => {
  const pipeline = new Pipeline({ stages: [stage("s", (n: number) => n + 1)] });
  const { writable, readable, finished } = pipeline.stream();
  const writer = writable.getWriter();
  await writer.write(1);
  const closing = pipeline.close();
  await assert.rejects(writer.write(2), /pipeline.close\(\) closed/);
  const out: number[] = [];
  for await (const n of readable) out.push(n);
  await closing;
  assert.deepEqual(out, [2]);
  assert.equal((await finished).totalIngested, 1);
});

test("workerNames() and per-worker metrics show how the load is spread", async () => {
  const pipeline = new Pipeline({
    stages: [stage("transform", async (n: number) => {
      await tick();
      if (n === 0) throw new Error("zero");
      return n;
    }, { concurrency: 3 })],
  });
  assert.deepEqual(pipeline.workerNames(), { transform: ["transform-0", "transform-1", "transform-2"] });
  const metrics = await pipeline.run(Array.from({ length: 30 }, (_, i) => i));
  const workers = metrics.stageMetrics.transform.workers;
  assert.deepEqual(workers.map((w) => w.name), pipeline.workerNames().transform);
  assert.equal(workers.reduce((sum, w) => sum + w.processed, 0), 30);
  assert.equal(workers.reduce((sum, w) => sum + w.failed, 0), 1);
  assert.ok(workers.every((w) => w.processed > 0 && w.busyMs > 0));
});

test("latencySummary(): per stage and end to end, split into queue wait and attempts", async () => {
  const pipeline = new Pipeline({
    queueSize: 50,
    stages: [
      stage("fast", (n: number) => n),
      stage("slow", async (n: number) => {
        await new Promise((resolve) => setTimeout(resolve, 2));
        return n;
      }),
    ],
  });
  assert.equal(pipeline.latencySummary().completed, 0);
  await pipeline.run(Array.from({ length: 20 }, (_, i) => i));
  const latency = pipeline.latencySummary();
  assert.equal(latency.completed, 20);
  assert.equal(latency.stages.slow.count, 20);
  assert.ok(latency.stages.slow.avgMs >= 1.5);
  assert.ok(Math.abs(latency.stages.slow.totalMs - latency.stages.slow.avgMs * 20) < 1e-6);
  assert.ok(latency.stages.slow.p50 <= latency.stages.slow.p95 && latency.stages.slow.p95 <= latency.stages.slow.p99);
  // Items wait in the slow stage's queue behind each other: most of their time is queue time.
  assert.ok(latency.queueWaitMs > latency.inAttemptMs);
  assert.ok(latency.p99TotalMs >= latency.p50TotalMs && latency.avgTotalMs > latency.stages.slow.avgMs);
  assert.ok(Math.abs(latency.queueWaitMs + latency.inAttemptMs - latency.avgTotalMs * 20) < 1e-6);
  assert.ok(latency.queueWaitShare > 0.5 && latency.queueWaitShare < 1);
});
