import { test } from "node:test";
import assert from "node:assert/strict";
import { Pipeline, type PipelineEvent, stage } from "../mod.ts";
import { countingSource, deferred, range } from "./_helpers.ts";

test("pause() stops new attempts while the run goes on filling its queues (backpressure holds the source); resume() finishes it", async () => {
  const calls: number[] = [];
  const third = deferred();
  const pipeline = new Pipeline({
    name: "paused",
    queueSize: 4,
    stages: [stage("a", async (n: number) => {
      calls.push(n);
      if (n === 2) third.resolve();
      return n;
    })],
  });
  const { source, probe } = countingSource("generator", 1000);
  const running = pipeline.run(source);
  await third.promise;
  pipeline.pause();
  assert.equal(pipeline.paused, true);
  const before = calls.length;
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 0));
  assert.ok(calls.length <= before + 1, `attempts started while paused: ${calls.length - before}`);
  assert.ok(probe.pulled < 1000, "the source was held back");
  const depth = pipeline.getMetrics().stageMetrics.a.queueDepth;
  assert.ok(depth > 0, "items wait in the queue");
  pipeline.resume();
  const metrics = await running;
  assert.equal(metrics.totalCompleted, 1000);
  assert.deepEqual(calls, range(1000));
});

test("a graceful stop resumes a paused run so that it drains", async () => {
  const stop = new AbortController();
  const first = deferred();
  const pipeline = new Pipeline({
    name: "stop-paused",
    stages: [stage("a", (n: number) => {
      first.resolve();
      return n;
    })],
  });
  const running = pipeline.run(countingSource("async generator", 100).source, { signal: stop.signal });
  await first.promise;
  pipeline.pause();
  stop.abort();
  const metrics = await running;
  assert.equal(metrics.totalCompleted, metrics.totalIngested);
  assert.equal(pipeline.paused, false);
});

test("breakpoint pauses before an item's attempt and emits a paused event with the item; resume() steps on", async () => {
  const events: PipelineEvent[] = [];
  const calls: string[] = [];
  const hit = deferred();
  const pipeline = new Pipeline({
    name: "debug",
    breakpoint: (item, stageName) => stageName === "b" && item === 20,
    onEvent: (event) => {
      events.push(event);
      if (event.type === "paused") hit.resolve();
    },
    stages: [
      stage("a", (n: number) => (calls.push(`a${n}`), n * 10)),
      stage("b", (n: number) => (calls.push(`b${n}`), n)),
    ],
  });
  const running = pipeline.run([1, 2, 3]);
  await hit.promise;
  assert.equal(pipeline.paused, true);
  const paused = events.find((event) => event.type === "paused");
  assert.ok(paused && paused.type === "paused");
  assert.equal(paused.item, 20);
  assert.equal(paused.itemId, 1);
  assert.equal(paused.stage, "b");
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
  assert.ok(!calls.includes("b20"), "the attempt waits for resume()");
  pipeline.resume();
  const metrics = await running;
  assert.equal(metrics.totalCompleted, 3);
  assert.ok(calls.includes("b20"));
});
