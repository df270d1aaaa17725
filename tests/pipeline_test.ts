import { test } from "node:test";
import assert from "node:assert/strict";
import { Pipeline, stage } from "../mod.ts";

test("Pipeline.run() passes every item through every stage and counts it", async () => {
  const seen: number[] = [];
  const pipeline = new Pipeline({
    name: "happy",
    stages: [
      stage("double", async (n: number) => n * 2, { concurrency: 3 }),
      stage("record", (n: number) => {
        seen.push(n);
        return n;
      }),
    ],
  });
  const metrics = await pipeline.run([1, 2, 3, 4]);
  assert.deepEqual(seen, [2, 4, 6, 8]);
  assert.equal(metrics.totalIngested, 4);
  assert.equal(metrics.totalCompleted, 4);
  assert.equal(metrics.totalFailed, 0);
  assert.equal(metrics.itemsInFlight, 0);
  assert.equal(metrics.stageMetrics.double.succeeded, 4);
});

test("Pipeline.run() completes empty input cleanly with zero counts", async () => {
  const pipeline = new Pipeline({ name: "empty", stages: [stage("s", (n: number) => n)] });
  const metrics = await pipeline.run([]);
  assert.equal(metrics.totalIngested, 0);
  assert.equal(metrics.totalCompleted, 0);
  assert.equal(metrics.deadLetterCount, 0);
  assert.equal(metrics.stageMetrics.s.processed, 0);
});
