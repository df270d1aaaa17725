import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, flatMapStage, Pipeline, type PipelineEvent, stage } from "../mod.ts";

test("flatMapStage: each output is an item with an id derived from its parent; the parent is expanded once", async () => {
  const events: PipelineEvent[] = [];
  const pipeline = new Pipeline({
    stages: [
      flatMapStage("split", (s: string) => s.split(""), { concurrency: 2 }),
      stage("upper", (c: string) => c.toUpperCase()),
    ],
    onEvent: (event) => void events.push(event),
  });
  const { outputs, metrics } = await pipeline.collect(["ab", "", "c"]);
  assert.deepEqual(outputs, ["A", "B", "C"]);
  assert.equal(metrics.totalIngested, 6);
  assert.equal(metrics.totalExpanded, 3);
  assert.equal(metrics.totalCompleted, 3);
  assert.equal(metrics.stageMetrics.split.spawned, 3);
  assert.equal(metrics.stageMetrics.split.expanded, 3);
  assert.equal(metrics.itemsInFlight, 0);
  const queuedAtUpper = events.flatMap((e) => e.type === "queued" && e.stage === "upper" ? [e.itemId] : []);
  assert.deepEqual(queuedAtUpper, ["0.0", "0.1", "2.0"]);
  const expanded = events.filter((e) => e.type === "expanded").map((e) =>
    e.type === "expanded" && [e.itemId, e.children]
  );
  assert.deepEqual(expanded, [[0, 2], [1, 0], [2, 1]]);
});

test("flatMapStage: a user id function names the outputs", async () => {
  const ids: (string | number)[] = [];
  const pipeline = new Pipeline({
    stages: [flatMapStage("pairs", (n: number) => [n, -n], { id: (out, parent) => `${parent.id}/${out}` })],
    onEvent: (e) => {
      if (e.type === "expanded") return;
    },
    statusTracker: { record: (change) => void (change.status === "completed" && ids.push(change.itemId)) },
  });
  await pipeline.run([1, 2]);
  assert.deepEqual(ids.sort(), ["0/-1", "0/1", "1/-2", "1/2"].sort());
});

test("flatMapStage: an async iterable is pulled only as the next stage has room (never read ahead)", async () => {
  let produced = 0;
  let consumed = 0;
  let maxAhead = 0;
  async function* many() {
    for (let i = 0; i < 2000; i++) {
      produced++;
      maxAhead = Math.max(maxAhead, produced - consumed);
      yield i;
    }
  }
  const pipeline = new Pipeline({
    queueSize: 4,
    stages: [
      flatMapStage("many", (_: number) => many()),
      stage("slow", async (n: number) => {
        await new Promise((resolve) => setTimeout(resolve, 0));
        consumed++;
        return n;
      }, { queueSize: 4 }),
    ],
  });
  const metrics = await pipeline.run([1]);
  assert.equal(metrics.totalCompleted, 2000);
  assert.equal(metrics.totalIngested, 2001);
  assert.equal(metrics.totalExpanded, 1);
  // The slow stage holds at most queueSize + concurrency; the expander one more, the outlet none (run mode).
  assert.ok(maxAhead <= 4 + 1 + 2, `read ahead by ${maxAhead}`);
});

test("flatMapStage: an iterable that throws part way keeps the outputs made and dead-letters the parent", async () => {
  function* brittle(n: number) {
    yield n;
    throw new Error(`broke after ${n}`);
  }
  const pipeline = new Pipeline({ stages: [flatMapStage("brittle", brittle), stage("id", (n: number) => n)] });
  const { outputs, metrics } = await pipeline.collect([7]);
  assert.deepEqual(outputs, [7]);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(metrics.totalExpanded, 0);
  assert.equal(pipeline.deadLetters[0].itemId, 0);
  assert.equal(pipeline.deadLetters[0].item, 7);
  assert.equal(pipeline.deadLetters[0].reason, "broke after 7");
  assert.equal(metrics.stageMetrics.brittle.failed, 1);
  assert.equal(metrics.stageMetrics.brittle.succeeded, 0);
  assert.equal(metrics.totalIngested, metrics.totalCompleted + metrics.totalFailed + metrics.totalExpanded);
});

test("flatMapStage: a result that is not iterable is a permanent failure of the parent", async () => {
  const pipeline = new Pipeline({
    stages: [flatMapStage("bad", (n: number) => n as unknown as number[], { maxRetries: 3 })],
  });
  const metrics = await pipeline.run([1]);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(metrics.stageMetrics.bad.retries, 0);
  assert.match(pipeline.deadLetters[0].reason, /return an array, an iterable or an async iterable/);
});

test("flatMapStage: a forced shutdown interrupts an endless async iterable", async () => {
  const force = new AbortController();
  async function* endless() {
    for (let i = 0;; i++) {
      if (i === 50) force.abort();
      await new Promise((resolve) => setTimeout(resolve, 0));
      yield i;
    }
  }
  const pipeline = new Pipeline({ stages: [flatMapStage("endless", (_: number) => endless())] });
  const metrics = await pipeline.run([1], { forceSignal: force.signal });
  assert.equal(metrics.itemsInFlight, 0);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(
    metrics.totalIngested,
    metrics.totalCompleted + metrics.totalFailed + metrics.totalFiltered + metrics.totalExpanded,
  );
});

test("flatMapStage: bad options are ConfigErrors", () => {
  assert.throws(() => flatMapStage("x", 5 as never), ConfigError);
  assert.throws(() => flatMapStage("x", (n: number) => [n], { id: "key" as never }), /option "id" must be a function/);
  assert.throws(
    () => flatMapStage("x", (n: number) => [n], { concurrency: 0 }),
    /"concurrency" must be a positive integer/,
  );
  assert.throws(() => flatMapStage("x", (n: number) => [n], 4 as never), /options must be an object/);
});
