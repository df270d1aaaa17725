import { test } from "node:test";
import assert from "node:assert/strict";
import { batchStage, DeadLetterSchema, Pipeline, stage, type StageContext } from "../mod.ts";

function sync(down: { value: boolean }, attempts: Map<string | number, number[]>) {
  return new Pipeline({
    name: "sync",
    id: (row: { key: string }) => row.key,
    stages: [
      stage("parse", (row: { key: string }) => ({ ...row, parsed: true })),
      stage("send", (row: { key: string; parsed: boolean }, ctx: StageContext) => {
        attempts.set(ctx.itemId, [...(attempts.get(ctx.itemId) ?? []), ctx.attempt]);
        if (down.value) throw new Error("service unavailable");
        return row;
      }, { maxRetries: 1, backoff: { initialDelayMs: 0 } }),
      stage("done", (row: { key: string; parsed: boolean }) => row.key),
    ],
  });
}

test("replay() runs dead letters again from the stage they failed in, keeping their ids, with attempts restarting", async () => {
  const down = { value: true };
  const attempts = new Map<string | number, number[]>();
  const pipeline = sync(down, attempts);
  await pipeline.run([{ key: "a" }, { key: "b" }]);
  const failed = [...pipeline.deadLetters];
  assert.deepEqual(failed.map((letter) => [letter.itemId, letter.stage, letter.attempts]), [
    ["a", "send", 2],
    ["b", "send", 2],
  ]);
  down.value = false;
  attempts.clear();
  const metrics = await pipeline.replay(failed);
  assert.equal(metrics.totalIngested, 2);
  assert.equal(metrics.totalCompleted, 2);
  assert.equal(metrics.stageMetrics.parse.processed, 0, "not from the start");
  assert.equal(metrics.stageMetrics.send.succeeded, 2);
  assert.deepEqual([...attempts.entries()], [["a", [1]], ["b", [1]]]);
  assert.deepEqual(pipeline.deadLetters, []);
});

test("a replayed entry that fails again is dead-lettered again, once, with the replay's attempt count", async () => {
  const down = { value: true };
  const pipeline = sync(down, new Map());
  await pipeline.run([{ key: "a" }]);
  const first = pipeline.deadLetters[0];
  const metrics = await pipeline.replay([first]);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(pipeline.deadLetters.length, 1);
  assert.equal(pipeline.deadLetters[0].itemId, "a");
  assert.equal(pipeline.deadLetters[0].stage, "send");
  assert.equal(pipeline.deadLetters[0].attempts, 2);
  assert.deepEqual(pipeline.deadLetters[0].item, first.item);
});

test("entries read back with DeadLetterSchema.parse replay too, into a batch stage and from the first stage", async () => {
  const seen: number[][] = [];
  const pipeline = new Pipeline({
    name: "mixed",
    stages: [
      stage("first", (n: number) => n + 1),
      batchStage("load", (rows: readonly number[]) => {
        seen.push([...rows]);
      }, { batchSize: 10 }),
    ],
  });
  const lines = [
    { itemId: 7, stage: "load", item: 70 },
    { itemId: 8, stage: "first", item: 79 },
  ].map((entry) =>
    JSON.stringify({
      ...entry,
      reason: "x",
      error: { name: "Error", message: "x" },
      attempts: 1,
      firstAttemptAt: "2026-11-23T10:00:00.000Z",
      failedAt: "2026-11-23T10:00:01.000Z",
    })
  );
  const metrics = await pipeline.replay(lines.map((line) => DeadLetterSchema.parse(line)));
  assert.equal(metrics.totalCompleted, 2);
  assert.equal(metrics.stageMetrics.first.processed, 1);
  assert.deepEqual(seen.flat().sort(), [70, 80]);
});

test("replay() rejects entries naming an unknown stage, or without an id, before anything runs", async () => {
  const pipeline = new Pipeline({ name: "p", stages: [stage("a", (n: number) => n), stage("b", (n: number) => n)] });
  await assert.rejects(
    pipeline.replay([{ itemId: 1, stage: "a", item: 1 }, { itemId: 2, stage: "gone", item: 2 }]),
    (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /deadLetters\[1\] \(item 2\) failed in stage "gone".*its stages are "a", "b"/);
      return true;
    },
  );
  assert.equal(pipeline.getMetrics().totalIngested, 0);
  await assert.rejects(pipeline.replay([{ stage: "a", item: 1 } as never]), /has no itemId/);
  await assert.rejects(pipeline.replay(42 as never), /takes an array of dead letters/);
});
