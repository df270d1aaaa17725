import { test } from "node:test";
import assert from "node:assert/strict";
import { Pipeline, type PipelineEvent, stage } from "../mod.ts";
import { deferred, range } from "./_helpers.ts";

test("pause(): no new attempt starts, queues fill and backpressure holds the source; resume() lets everything finish", async () => {
  let read = 0;
  let attempts = 0;
  const firstDone = deferred();
  function* source() {
    for (let i = 0; i < 1000; i++) {
      read++;
      yield i;
    }
  }
  const pipeline = new Pipeline({
    name: "paused",
    queueSize: 2,
    stages: [stage("s", async (n: number) => {
      attempts++;
      if (n === 0) firstDone.resolve();
      return n;
    })],
  });
  const running = pipeline.run(source());
  await firstDone.promise;
  pipeline.pause();
  assert.equal(pipeline.paused, true);
  const attemptsAtPause = attempts;
  // Let the pipeline do all it can while paused: the source's reads stop at the queues' bound.
  let before = -1;
  while (before !== read) {
    before = read;
    for (let i = 0; i < 20; i++) await Promise.resolve();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  assert.equal(attempts, attemptsAtPause, "no attempt starts while paused");
  assert.ok(read < 50, `the source is held back (read ${read})`);
  const metrics = pipeline.getMetrics();
  assert.ok(metrics.stageMetrics.s.queueDepth > 0, "items wait in the queue");
  pipeline.resume();
  assert.equal(pipeline.paused, false);
  const final = await running;
  assert.equal(final.totalCompleted, 1000);
  assert.equal(attempts, 1000);
});

test("a graceful stop while paused resumes the run so that it drains: run never hangs", async () => {
  const stop = new AbortController();
  const started = deferred();
  const pipeline = new Pipeline({
    name: "stop while paused",
    stages: [stage("s", async (n: number) => {
      started.resolve();
      return n;
    })],
  });
  const running = pipeline.run(range(100_000), { signal: stop.signal });
  await started.promise;
  pipeline.pause();
  stop.abort();
  const metrics = await running;
  assert.equal(pipeline.paused, false);
  assert.ok(metrics.totalIngested < 100_000);
  assert.equal(metrics.totalCompleted, metrics.totalIngested);
  assert.equal(metrics.itemsInFlight, 0);
});

test("pause() and resume() outside a run do nothing; paused is false", () => {
  const pipeline = new Pipeline({ name: "idle", stages: [stage("s", (n: number) => n)] });
  pipeline.pause();
  assert.equal(pipeline.paused, false);
  pipeline.resume();
  assert.equal(pipeline.paused, false);
});

test("breakpoint pauses before the attempt of the item it returns true for, with a paused event carrying the item", async () => {
  const events: PipelineEvent[] = [];
  const seen: string[] = [];
  const paused = deferred<PipelineEvent>();
  const pipeline = new Pipeline({
    name: "debug",
    stages: [
      stage("a", (n: number) => (seen.push(`a${n}`), n)),
      stage("b", (n: number) => (seen.push(`b${n}`), n * 10)),
    ],
    breakpoint: (item, stageName) => stageName === "b" && item === 2,
    onEvent: (event) => {
      events.push(event);
      if (event.type === "paused") paused.resolve(event);
    },
  });
  const running = pipeline.run(range(4));
  const event = await paused.promise;
  assert.equal(event.type, "paused");
  assert.equal(event.type === "paused" && event.item, 2);
  assert.equal(event.stage, "b");
  assert.equal("itemId" in event && event.itemId, 2);
  assert.equal(pipeline.paused, true);
  assert.ok(!seen.includes("b2"), "the attempt the breakpoint stopped before has not run");
  const seenAtPause = seen.length;
  await Promise.resolve();
  assert.equal(seen.length, seenAtPause);
  pipeline.resume();
  const metrics = await running;
  assert.equal(metrics.totalCompleted, 4);
  assert.ok(seen.includes("b2"));
  assert.equal(events.filter((e) => e.type === "paused").length, 1);
});

test("a breakpoint that throws is logged and does not pause; a breakpoint that is not a function is a ConfigError", async () => {
  const warnings: string[] = [];
  const pipeline = new Pipeline({
    name: "bad breakpoint",
    stages: [stage("s", (n: number) => n)],
    breakpoint: () => {
      throw new Error("bug");
    },
    logger: { debug() {}, info() {}, warn: (message) => void warnings.push(message), error() {} },
  });
  const metrics = await pipeline.run(range(3));
  assert.equal(metrics.totalCompleted, 3);
  assert.equal(warnings.filter((w) => /breakpoint threw/.test(w)).length, 3);
  assert.throws(
    () => new Pipeline({ name: "p", stages: [stage("s", (n: number) => n)], breakpoint: true as never }),
    (error: Error) => error.name === "ConfigError" && /breakpoint/.test(error.message),
  );
});
