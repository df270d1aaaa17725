import { test } from "node:test";
import assert from "node:assert/strict";
import { batchStage, Pipeline, type PipelineEvent, skip, stage } from "../mod.ts";

test("a stage returning skip filters the item: counted as filtered, not dead-lettered, never seen by later stages", async () => {
  const seen: number[] = [];
  const events: PipelineEvent[] = [];
  const pipeline = new Pipeline({
    stages: [
      stage("odd", async (n: number) => n % 2 === 1 ? n : skip, { concurrency: 3 }),
      stage("record", (n: number) => {
        seen.push(n);
        return n;
      }),
    ],
    onEvent: (event) => void events.push(event),
  });
  const metrics = await pipeline.run([1, 2, 3, 4, 5]);
  assert.deepEqual(seen, [1, 3, 5]);
  assert.equal(metrics.totalFiltered, 2);
  assert.equal(metrics.stageMetrics.odd.filtered, 2);
  assert.equal(metrics.stageMetrics.odd.succeeded, 3);
  assert.equal(metrics.stageMetrics.record.processed, 3);
  assert.equal(metrics.totalFailed, 0);
  assert.equal(pipeline.deadLetters.length, 0);
  assert.equal(metrics.totalIngested, metrics.totalCompleted + metrics.totalFailed + metrics.totalFiltered);
  const filtered = events.filter((e) => e.type === "filtered").map((e) => [e.itemId, e.stage]);
  assert.deepEqual(filtered.sort(), [[1, "odd"], [3, "odd"]]);
  assert.ok(!events.some((e) => e.type === "completed" && e.stage === "odd" && (e.itemId === 1 || e.itemId === 3)));
});

test("skip in a task array ends the sequence: the later tasks do not run", async () => {
  let second = 0;
  for (const retryScope of ["task", "stage"] as const) {
    const pipeline = new Pipeline({
      stages: [stage("two", [(n: number) => n > 1 ? n : skip, (n: number) => {
        second++;
        return n;
      }], { retryScope })],
    });
    const { outputs, metrics } = await pipeline.collect([1, 2]);
    assert.deepEqual(outputs, [2]);
    assert.equal(metrics.totalFiltered, 1);
  }
  assert.equal(second, 2);
});

test("a batch stage may filter some items of a batch with skip", async () => {
  const pipeline = new Pipeline({
    stages: [batchStage("evens", (rows: readonly number[]) => rows.map((n) => n % 2 ? skip : n), { batchSize: 3 })],
  });
  const { outputs, metrics } = await pipeline.collect([1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(outputs, [2, 4, 6]);
  assert.equal(metrics.totalFiltered, 4);
  assert.equal(metrics.stageMetrics.evens.filtered, 4);
  assert.equal(metrics.stageMetrics.evens.succeeded, 3);
});

test("filtered items keep their place out of the way in an ordered pipeline", async () => {
  const pipeline = new Pipeline({
    stages: [stage("slow-odd", async (n: number) => {
      await new Promise((resolve) => setTimeout(resolve, (10 - n) % 3));
      return n % 3 === 0 ? skip : n;
    }, { concurrency: 4 })],
  });
  const { outputs } = await pipeline.collect([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(outputs, [1, 2, 4, 5, 7, 8]);
});
