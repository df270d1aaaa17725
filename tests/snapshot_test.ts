import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ConfigError,
  PermanentError,
  Pipeline,
  type PipelineEvent,
  type PipelineSnapshot,
  PipelineSnapshotSchema,
  stage,
} from "../mod.ts";
import { Gate, guard, range, recordingSink } from "./_helpers.ts";

function failing(options: Record<string, unknown> = {}) {
  return new Pipeline({
    name: "snap",
    stages: [
      stage("check", (n: number) => {
        if (n % 2 === 1) throw new PermanentError(`odd: ${n}`);
        return n;
      }),
      stage("pass", (n: number) => n, { concurrency: 3 }),
    ],
    ...options,
  });
}

test("snapshot() survives JSON and the schema: metrics, idle workers per stage, the latest errors", async () => {
  const pipeline = failing();
  await pipeline.run(range(30));
  const snapshot = pipeline.snapshot();
  const back: PipelineSnapshot = PipelineSnapshotSchema.parse(JSON.stringify(snapshot));
  assert.deepEqual(back, JSON.parse(JSON.stringify(snapshot)));
  assert.equal(back.version, 1);
  assert.equal(back.pipeline, "snap");
  assert.equal(back.metrics.totalIngested, 30);
  assert.equal(back.metrics.totalFailed, 15);
  assert.deepEqual(back.stages, {
    check: { concurrency: 1, queueSize: 1000, workers: ["idle"] },
    pass: { concurrency: 3, queueSize: 1000, workers: ["idle", "idle", "idle"] },
  });
  assert.equal(back.recentErrors.length, 10, "the last 10 of the in-memory dead letters by default");
  assert.deepEqual(back.recentErrors.map((e) => e.itemId), [9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29].slice(1));
  assert.equal(back.recentErrors[0].reason, "odd: 11");
  assert.equal(back.recentErrors[0].error.name, "PermanentError");
  assert.equal(back.recentErrors[0].stage, "check");
});

test("snapshot() shows which workers are busy while a run goes on", async () => {
  const gate = new Gate<number>();
  const pipeline = new Pipeline({
    name: "busy",
    stages: [stage("hold", async (n: number) => {
      await gate.enter(n);
      return n;
    }, { concurrency: 3 })],
  });
  const done = pipeline.run(range(2));
  const first = await guard(gate.next(), "first held");
  const second = await guard(gate.next(), "second held");
  const live = pipeline.snapshot();
  assert.deepEqual([...live.stages.hold.workers].sort(), ["busy", "busy", "idle"]);
  assert.equal(live.metrics.stageMetrics.hold.inFlight, 2);
  first.release();
  second.release();
  await done;
  assert.deepEqual(pipeline.snapshot().stages.hold.workers, ["idle", "idle", "idle"]);
});

test("recentErrors: with a sink, a ring of that size keeps the latest failures; without the option, none", async () => {
  const ring = failing({ deadLetterQueue: () => recordingSink().sink, recentErrors: 3 });
  await ring.run(range(20));
  assert.deepEqual(ring.snapshot().recentErrors.map((e) => e.itemId), [15, 17, 19]);
  assert.equal(
    ring.snapshot().recentErrors[2].failedAt,
    new Date(ring.snapshot().recentErrors[2].failedAt).toISOString(),
  );

  const none = failing({ deadLetterQueue: false });
  await none.run(range(20));
  assert.deepEqual(none.snapshot().recentErrors, [], "nothing kept unless asked for");

  const fewer = failing({ recentErrors: 2 });
  await fewer.run(range(10));
  assert.deepEqual(fewer.snapshot().recentErrors.map((e) => e.itemId), [7, 9]);

  const off = failing({ recentErrors: 0 });
  await off.run(range(10));
  assert.deepEqual(off.snapshot().recentErrors, []);

  assert.throws(() => failing({ recentErrors: -1 }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.field, "recentErrors");
    return true;
  });
});

test("a snapshot of a pipeline that never ran has zero metrics and idle workers", () => {
  const snapshot = failing().snapshot();
  assert.equal(snapshot.metrics.totalIngested, 0);
  assert.deepEqual(snapshot.stages.pass.workers, ["idle", "idle", "idle"]);
  assert.deepEqual(snapshot.recentErrors, []);
  PipelineSnapshotSchema.parse(snapshot);
});

test("PipelineSnapshotSchema refuses a bad snapshot, naming the field, and gives a JSON Schema", async () => {
  const pipeline = failing();
  await pipeline.run(range(4));
  const good = JSON.parse(JSON.stringify(pipeline.snapshot()));
  assert.throws(
    () =>
      PipelineSnapshotSchema.parse({
        ...good,
        stages: { check: { concurrency: 1, queueSize: 1, workers: ["asleep"] } },
      }),
    /field "stages\.check\.workers\.0"/,
  );
  assert.throws(() => PipelineSnapshotSchema.parse("{"), /not JSON/);
  assert.throws(
    () => PipelineSnapshotSchema.parse({ ...good, metrics: { ...good.metrics, totalIngested: -1 } }),
    /field "metrics\.totalIngested"/,
  );
  const schema = PipelineSnapshotSchema.jsonSchema();
  assert.equal(schema.type, "object");
  assert.ok((schema.required as string[]).includes("recentErrors"));
});

test("subscribe() adds a listener beside onEvent: both hear the same events; unsubscribing stops it", async () => {
  const mine: PipelineEvent[] = [];
  const theirs: PipelineEvent[] = [];
  const pipeline = failing({ onEvent: (event: PipelineEvent) => void mine.push(event) });
  const unsubscribe = pipeline.subscribe((event) => void theirs.push(event));
  await pipeline.run(range(6));
  assert.ok(mine.length > 0);
  assert.deepEqual(theirs, mine);
  unsubscribe();
  const heardBefore = theirs.length;
  await pipeline.run(range(2));
  assert.equal(theirs.length, heardBefore, "the removed subscriber heard nothing of the second run");
  assert.ok(mine.length > heardBefore, "onEvent heard the second run");
});

test("subscribe(): a throwing subscriber is logged, the others still hear every event, the run goes on", async () => {
  const warnings: string[] = [];
  const heard: string[] = [];
  const logger = {
    debug() {},
    info() {},
    warn: (message: string) => void warnings.push(message),
    error() {},
  };
  const pipeline = failing({ logger });
  pipeline.subscribe(() => {
    throw new Error("broken integration");
  });
  pipeline.subscribe(async (event) => {
    heard.push(event.type);
    if (event.type === "completed") throw new Error("async broken");
  });
  const metrics = await pipeline.run(range(4));
  assert.equal(metrics.totalCompleted + metrics.totalFailed, 4);
  assert.ok(heard.includes("dead-lettered") && heard.includes("completed"));
  assert.ok(warnings.some((message) => message.includes("onEvent listener threw")));
  assert.throws(() => pipeline.subscribe(42 as never), /subscribe\(\) takes a function/);
});

test("a subscriber alone turns events on (no onEvent given)", async () => {
  const types = new Set<string>();
  const pipeline = failing();
  pipeline.subscribe((event) => void types.add(event.type));
  await pipeline.run(range(4));
  assert.deepEqual([...types].sort(), ["completed", "dead-lettered", "failed", "queued", "started"]);
});
