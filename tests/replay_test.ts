import { test } from "node:test";
import assert from "node:assert/strict";
import { type DeadLetter, DeadLetterSchema, Pipeline, stage } from "../mod.ts";
import { range } from "./_helpers.ts";

/** A three-stage pipeline whose `send` stage fails while `down` is true; counts every call per stage. */
function syncPipeline(state: { down: boolean; calls: Record<string, number> }) {
  const count = (name: string) => (state.calls[name] = (state.calls[name] ?? 0) + 1);
  return new Pipeline({
    name: "sync",
    id: (text: string) => `row-${text}`,
    stages: [
      stage("parse", (text: string) => {
        count("parse");
        return Number(text);
      }),
      stage("send", (n: number) => {
        count("send");
        if (state.down && n % 2 === 0) throw new Error(`service unavailable for ${n}`);
        return n * 10;
      }, { maxRetries: 1, backoff: { initialDelayMs: 0 } }),
      stage("store", (n: number) => {
        count("store");
        return n + 1;
      }),
    ],
  });
}

test("replay runs each dead letter again from the stage it failed in, keeping its id; earlier stages do not run", async () => {
  const state = { down: true, calls: {} as Record<string, number> };
  const pipeline = syncPipeline(state);
  const first = await pipeline.run(range(6).map(String));
  assert.equal(first.totalFailed, 3);
  const failed = [...pipeline.deadLetters];
  assert.deepEqual(failed.map((letter) => letter.itemId), ["row-0", "row-2", "row-4"]);
  assert.deepEqual(failed.map((letter) => letter.attempts), [2, 2, 2]);
  state.down = false;
  state.calls = {};
  const metrics = await pipeline.replay(failed);
  assert.equal(metrics.totalIngested, 3);
  assert.equal(metrics.totalCompleted, 3);
  assert.equal(metrics.totalFailed, 0);
  assert.equal(metrics.itemsInFlight, 0);
  assert.equal(state.calls.parse, undefined, "the stage before the one that failed is not run again");
  assert.equal(state.calls.send, 3);
  assert.equal(state.calls.store, 3);
  assert.equal(metrics.stageMetrics.parse.processed, 0);
  assert.equal(metrics.stageMetrics.send.succeeded, 3);
  assert.deepEqual(pipeline.deadLetters, []);
});

test("a replayed entry that fails again is dead-lettered again, once, with its id and the replay's attempt count", async () => {
  const state = { down: true, calls: {} as Record<string, number> };
  const pipeline = syncPipeline(state);
  await pipeline.run(["2", "3"]);
  const failed = [...pipeline.deadLetters];
  assert.equal(failed.length, 1);
  const metrics = await pipeline.replay(failed);
  assert.equal(metrics.totalIngested, 1);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(metrics.deadLetterCount, 1);
  assert.equal(pipeline.deadLetters.length, 1);
  const again = pipeline.deadLetters[0];
  assert.equal(again.itemId, "row-2");
  assert.equal(again.stage, "send");
  assert.equal(again.attempts, 2);
  assert.equal(again.item, 2, "the value as it entered the stage");
  assert.ok(again.failedAt >= failed[0].failedAt);
});

test("entries read back with DeadLetterSchema.parse (from JSON) replay like the originals", async () => {
  const state = { down: true, calls: {} as Record<string, number> };
  const pipeline = syncPipeline(state);
  await pipeline.run(range(4).map(String));
  const stored = JSON.stringify(pipeline.deadLetters);
  const readBack: DeadLetter[] = (JSON.parse(stored) as unknown[]).map((entry) => DeadLetterSchema.parse(entry));
  state.down = false;
  state.calls = {};
  const metrics = await pipeline.replay(readBack);
  assert.deepEqual(readBack.map((letter) => letter.itemId), ["row-0", "row-2"]);
  assert.equal(metrics.totalCompleted, 2);
  assert.equal(metrics.stageMetrics.store.succeeded, 2);
  assert.equal(state.calls.parse, undefined);
  assert.equal(state.calls.send, 2);
});

test("entries failed at different stages each start at their own stage, in one replay", async () => {
  const seen: string[] = [];
  let broken = true;
  const pipeline = new Pipeline({
    name: "mixed",
    stages: [
      stage("a", (n: number) => {
        seen.push(`a${n}`);
        if (broken && n === 1) throw new Error("a broke");
        return n;
      }, { maxRetries: 0 }),
      stage("b", (n: number) => {
        seen.push(`b${n}`);
        if (broken && n === 2) throw new Error("b broke");
        return n;
      }, { maxRetries: 0 }),
      stage("c", (n: number) => {
        seen.push(`c${n}`);
        if (broken && n === 3) throw new Error("c broke");
        return n;
      }, { maxRetries: 0 }),
    ],
  });
  await pipeline.run([0, 1, 2, 3]);
  const failed = [...pipeline.deadLetters];
  assert.deepEqual(failed.map((letter) => [letter.itemId, letter.stage]), [[1, "a"], [2, "b"], [3, "c"]]);
  broken = false;
  seen.length = 0;
  const metrics = await pipeline.replay(failed);
  assert.equal(metrics.totalCompleted, 3);
  assert.deepEqual(seen.filter((s) => s.endsWith("1")), ["a1", "b1", "c1"]);
  assert.deepEqual(seen.filter((s) => s.endsWith("2")), ["b2", "c2"]);
  assert.deepEqual(seen.filter((s) => s.endsWith("3")), ["c3"]);
  assert.equal(metrics.stageMetrics.a.processed, 1);
  assert.equal(metrics.stageMetrics.b.processed, 2);
  assert.equal(metrics.stageMetrics.c.processed, 3);
});

test("replay checks its entries before anything runs: a missing id or an unknown stage is a TypeError naming the entry", async () => {
  let calls = 0;
  const pipeline = new Pipeline({ name: "checked", stages: [stage("s", (n: number) => (calls++, n))] });
  await assert.rejects(
    pipeline.replay([{ itemId: 1, stage: "s", item: 1 }, { stage: "s", item: 2 } as never]),
    (error: Error) => error instanceof TypeError && /deadLetters\[1\] has no itemId/.test(error.message),
  );
  await assert.rejects(
    pipeline.replay([{ itemId: 1, stage: "gone", item: 1 }]),
    (error: Error) => error instanceof TypeError && /stage "gone".*its stages are "s"/.test(error.message),
  );
  await assert.rejects(pipeline.replay(42 as never), TypeError);
  assert.equal(calls, 0);
});
