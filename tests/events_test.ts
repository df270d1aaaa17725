import { test } from "node:test";
import assert from "node:assert/strict";
import { batchStage, PermanentError, Pipeline, type PipelineEvent, stage } from "../mod.ts";
import { Gate, range, recordingLogger } from "./_helpers.ts";

/** Each item's events, in the order they arrived, as `type@stage#attempt`. */
function timelines(events: readonly PipelineEvent[]): Map<string | number, string[]> {
  const byItem = new Map<string | number, string[]>();
  for (const event of events) {
    if (!("itemId" in event)) continue;
    const attempt = "attempt" in event ? `#${event.attempt}` : "";
    const line = byItem.get(event.itemId) ?? [];
    line.push(`${event.type}@${event.stage}${attempt}`);
    byItem.set(event.itemId, line);
  }
  return byItem;
}

test("onEvent receives queued, started, retry, completed, failed and dead-lettered events in order per item", async () => {
  const events: PipelineEvent[] = [];
  const before = Date.now();
  const pipeline = new Pipeline({
    name: "events",
    onEvent: (event) => {
      events.push(event);
    },
    stages: [
      stage("fetch", async (n: number, ctx) => {
        if (n === 2 && ctx.attempt === 1) throw new Error("connection reset");
        return n;
      }, { concurrency: 3, maxRetries: 2, backoff: { initialDelayMs: 0, jitter: false } }),
      stage("check", (n: number) => {
        if (n === 4) throw new PermanentError("4 is refused");
        return n;
      }, { concurrency: 2 }),
    ],
  });
  const metrics = await pipeline.run(range(6));
  const after = Date.now();
  assert.equal(metrics.totalCompleted, 5);

  const ok = ["queued@fetch", "started@fetch#1", "completed@fetch#1", "queued@check", "started@check#1"];
  const lines = timelines(events);
  assert.deepEqual([...lines.keys()].sort(), [0, 1, 2, 3, 4, 5]);
  for (const id of [0, 1, 3, 5]) assert.deepEqual(lines.get(id), [...ok, "completed@check#1"], `item ${id}`);
  assert.deepEqual(lines.get(2), [
    "queued@fetch",
    "started@fetch#1",
    "retry@fetch#1",
    "started@fetch#2",
    "completed@fetch#2",
    "queued@check",
    "started@check#1",
    "completed@check#1",
  ]);
  assert.deepEqual(lines.get(4), [...ok, "failed@check#1", "dead-lettered@check#1"]);

  for (const event of events) {
    assert.equal(typeof event.timestamp, "number");
    assert.ok(event.timestamp >= before && event.timestamp <= after, `timestamp of ${event.type}`);
    assert.ok(event.stage === "fetch" || event.stage === "check");
    const concurrency = event.stage === "fetch" ? 3 : 2;
    switch (event.type) {
      case "queued":
        assert.deepEqual(Object.keys(event).sort(), ["itemId", "stage", "timestamp", "type"]);
        break;
      case "started":
        assert.ok(Number.isInteger(event.worker) && event.worker >= 0 && event.worker < concurrency);
        break;
      case "retry":
        assert.ok(event.worker >= 0 && event.worker < concurrency);
        assert.equal(event.error.name, "Error");
        assert.equal(event.error.message, "connection reset");
        assert.equal(event.delayMs, 0);
        assert.ok(Number.isFinite(event.durationMs) && event.durationMs >= 0);
        break;
      case "completed":
        assert.ok(event.worker >= 0 && event.worker < concurrency);
        assert.ok(Number.isFinite(event.durationMs) && event.durationMs >= 0);
        assert.equal("error" in event, false);
        break;
      case "failed":
        assert.ok(event.worker >= 0 && event.worker < concurrency);
        assert.ok(Number.isFinite(event.durationMs) && event.durationMs >= 0);
        assert.equal(event.error.name, "PermanentError");
        assert.equal(event.error.message, "4 is refused");
        break;
      case "dead-lettered":
        assert.equal(event.error.name, "PermanentError");
        assert.equal(event.error.message, "4 is refused");
        break;
    }
  }
  // A retried item stays on its worker: the retry and the attempts after it report the same one.
  const ofItem2 = events.filter((event) =>
    "itemId" in event && event.itemId === 2 && event.stage === "fetch" && "worker" in event
  );
  assert.equal(new Set(ofItem2.map((event) => "worker" in event && event.worker)).size, 1);
});

test("onEvent workers are distinct while busy, below the concurrency, and freed workers are reused", async () => {
  const gate = new Gate<number>();
  const started: PipelineEvent[] = [];
  const pipeline = new Pipeline({
    name: "workers",
    onEvent: (event) => {
      if (event.type === "started") started.push(event);
    },
    stages: [stage("slow", async (n: number) => {
      await gate.enter(n);
      return n;
    }, { concurrency: 3, ordered: false })],
  });
  const running = pipeline.run(range(5));
  const held = [await gate.next(), await gate.next(), await gate.next()];
  assert.deepEqual(held.map((h) => h.value), [0, 1, 2]);
  const workerOf = (id: number) => {
    const event = started.find((e) => "itemId" in e && e.itemId === id);
    assert.ok(event && event.type === "started");
    return event.worker;
  };
  assert.deepEqual([0, 1, 2].map(workerOf).sort(), [0, 1, 2]);
  assert.equal(pipeline.getMetrics().stageMetrics.slow.inFlight, 3);

  held[1].release(); // item 1 leaves; item 3 takes its worker
  const fourth = await gate.next();
  assert.equal(fourth.value, 3);
  assert.equal(workerOf(3), workerOf(1));
  fourth.release();
  const fifth = await gate.next();
  assert.equal(workerOf(4), workerOf(3));
  held[0].release();
  held[2].release();
  fifth.release();
  const metrics = await running;
  assert.equal(metrics.totalCompleted, 5);
  assert.equal(started.length, 5);
});

test("onEvent reports every item of a batch with the batch's worker and attempt", async () => {
  const events: PipelineEvent[] = [];
  const pipeline = new Pipeline({
    name: "batches",
    onEvent: (event) => {
      events.push(event);
    },
    stages: [batchStage("load", async (rows: readonly number[], ctx) => {
      if (ctx.attempt === 1) throw new Error("busy");
      return rows.map((n) => n * 2);
    }, { batchSize: 2, maxRetries: 1, backoff: { initialDelayMs: 0 } })],
  });
  await pipeline.run([1, 2, 3]);
  const lines = timelines(events);
  for (const id of [0, 1, 2]) {
    assert.deepEqual(lines.get(id), [
      "queued@load",
      "started@load#1",
      "retry@load#1",
      "started@load#2",
      "completed@load#2",
    ]);
  }
  for (const event of events) {
    if ("worker" in event) assert.equal(event.worker, 0);
  }
});

test("an onEvent listener that throws is reported through the logger's warn and never breaks the run", async () => {
  const { logger, records } = recordingLogger();
  let calls = 0;
  const pipeline = new Pipeline({
    name: "throwing-listener",
    logger,
    onEvent: () => {
      calls++;
      throw new Error("listener bug");
    },
    stages: [
      stage("a", (n: number) => n + 1, { concurrency: 2 }),
      stage("b", (n: number) => {
        if (n === 3) throw new PermanentError("three");
        return n;
      }),
    ],
  });
  const metrics = await pipeline.run(range(4));
  assert.deepEqual([metrics.totalIngested, metrics.totalCompleted, metrics.totalFailed], [4, 3, 1]);
  assert.equal(metrics.itemsInFlight, 0);
  assert.equal(pipeline.deadLetters.length, 1);
  // 4 items × 6 events in two stages, minus the failed item's completed@b, plus its failed and dead-lettered.
  assert.equal(calls, 4 * 6 + 1);
  const warnings = records.filter((record) => record.level === "warn");
  assert.equal(warnings.length, calls, "one warning per failed listener call");
  for (const warning of warnings) {
    assert.equal(warning.properties.pipeline, "throwing-listener");
    assert.ok(warning.properties.stage === "a" || warning.properties.stage === "b");
    assert.ok(typeof warning.properties.itemId === "number");
    assert.ok(warning.properties.error instanceof Error);
    assert.equal((warning.properties.error as Error).message, "listener bug");
  }
});

test("an onEvent listener that returns a rejected promise is reported through warn and never breaks the run", async () => {
  const { logger, records } = recordingLogger();
  let calls = 0;
  const pipeline = new Pipeline({
    name: "rejecting-listener",
    logger,
    onEvent: async (event) => {
      calls++;
      throw new Error(`listener rejected ${event.type}`);
    },
    stages: [stage("a", (n: number) => n), stage("b", (n: number) => n, { concurrency: 2 })],
  });
  const metrics = await pipeline.run(range(3));
  assert.deepEqual([metrics.totalIngested, metrics.totalCompleted, metrics.totalFailed], [3, 3, 0]);
  assert.equal(calls, 3 * 6);
  const warnings = records.filter((record) => record.level === "warn");
  assert.equal(warnings.length, calls);
  assert.ok(warnings.every((w) => (w.properties.error as Error).message.startsWith("listener rejected")));
  assert.ok(warnings.some((w) => (w.properties.error as Error).message === "listener rejected completed"));
});
