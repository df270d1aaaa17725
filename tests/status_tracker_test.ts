import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, Pipeline, skip, stage, type StatusChange, StatusTracker } from "../mod.ts";

test("StatusTracker follows each item through the stages and ends with the metrics' counts", async () => {
  const tracker = new StatusTracker();
  const pipeline = new Pipeline({
    stages: [
      stage("a", (n: number) => n % 4 === 0 ? skip : n, { concurrency: 2 }),
      stage("b", (n: number) => {
        if (n % 3 === 0) throw new Error(`no ${n}`);
        return n;
      }, { maxRetries: 1, backoff: { initialDelayMs: 0 } }),
    ],
    statusTracker: tracker,
  });
  const metrics = await pipeline.run([1, 2, 3, 4, 5, 6, 7, 8]);
  const stats = tracker.getStats();
  assert.equal(stats.completed, metrics.totalCompleted);
  assert.equal(stats.failed, metrics.totalFailed);
  assert.equal(stats.filtered, metrics.totalFiltered);
  assert.equal(stats.queued + stats.in_progress, 0);
  assert.equal(stats.total, 8);
  const failed = tracker.getStatus(2)!; // the value 3
  assert.equal(failed.status, "failed");
  assert.equal(failed.stage, "b");
  assert.equal(failed.attempt, 2);
  assert.equal(failed.error?.message, "no 3");
  assert.deepEqual(tracker.getByStatus("filtered").map((c) => c.itemId).sort(), [3, 7]);
  const history = tracker.getHistory(2).map((c) => `${c.status}@${c.stage}`);
  assert.deepEqual(history, [
    "queued@a",
    "in_progress@a",
    "in_progress@a",
    "queued@b",
    "in_progress@b",
    "in_progress@b",
    "in_progress@b",
    "failed@b",
    "failed@b",
  ]);
  assert.equal(tracker.getStatus(99), undefined);
  assert.deepEqual(tracker.getHistory(99), []);
});

test("StatusTracker memory is bounded: maxItems forgets the least recently changed finished items, historyLimit the oldest changes", async () => {
  const tracker = new StatusTracker({ maxItems: 10, historyLimit: 2 });
  const pipeline = new Pipeline({ stages: [stage("s", (n: number) => n)], statusTracker: tracker });
  await pipeline.run(Array.from({ length: 100 }, (_, i) => i));
  const stats = tracker.getStats();
  assert.equal(stats.completed, 100);
  assert.equal(stats.total, 100);
  assert.equal(stats.kept, 10);
  assert.equal(tracker.getStatus(0), undefined);
  assert.equal(tracker.getStatus(99)?.status, "completed");
  assert.equal(tracker.getHistory(99).length, 2);
});

test("onStatusChange is called for every change; one that throws or rejects is logged and loses nothing", async () => {
  const changes: StatusChange[] = [];
  const warnings: string[] = [];
  let calls = 0;
  const tracker = new StatusTracker({
    onStatusChange: (change) => {
      changes.push(change);
      if (++calls % 3 === 0) throw new Error("sync boom");
      if (calls % 3 === 1) return Promise.reject(new Error("async boom"));
    },
  });
  const pipeline = new Pipeline({
    stages: [stage("s", async (n: number) => n)],
    statusTracker: tracker,
    logger: { debug() {}, info() {}, warn: (message) => void warnings.push(message), error() {} },
  });
  const metrics = await pipeline.run([1, 2, 3, 4]);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(metrics.totalCompleted, 4);
  assert.equal(changes.length, 4 * 3);
  assert.equal(tracker.getStats().completed, 4);
  assert.ok(warnings.filter((w) => w.includes("statusTracker threw")).length >= 6);
});

test("any object with a record method is a status recorder; bad options are ConfigErrors", async () => {
  const seen: string[] = [];
  const pipeline = new Pipeline({
    stages: [stage("s", (n: number) => n)],
    statusTracker: { record: (change) => void seen.push(change.status) },
  });
  await pipeline.run([1]);
  assert.deepEqual(seen, ["queued", "in_progress", "completed"]);
  assert.throws(() => new StatusTracker({ maxItems: 0 }), ConfigError);
  assert.throws(() => new StatusTracker({ historyLimit: 1.5 }), /option "historyLimit" must be a positive integer/);
  assert.throws(() => new StatusTracker({ onStatusChange: 5 as never }), /must be a function/);
  assert.throws(
    () => new Pipeline({ stages: [stage("s", (n: number) => n)], statusTracker: {} as never }),
    /option "statusTracker" must be a StatusTracker/,
  );
});
