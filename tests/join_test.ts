import { test } from "node:test";
import assert from "node:assert/strict";
import { graph, type ItemId, JoinError, source, stage } from "../mod.ts";
import { deferred, Gate } from "./_helpers.ts";

test("join: a branch that does not deliver within timeoutMs makes the join partial, dead-lettered naming it", async () => {
  const gate = new Gate<number>();
  const deadLettered = deferred<ItemId>();
  const g = graph({
    sources: { n: source<number>() },
    onEvent: (event) => {
      if (event.type === "dead-lettered" && event.stage === "pair") deadLettered.resolve(event.itemId);
    },
  }, (b, { n }) => {
    const fan = b.broadcast("fan", n);
    const quick = b.add(stage("quick", (x: number) => x), fan);
    const slow = b.add(
      stage("slow", async (x: number) => {
        await gate.enter(x);
        return -x;
      }),
      fan,
    );
    return { pairs: b.join("pair", { quick, slow }, { timeoutMs: 20 }) };
  });
  const running = g.collect([7]);
  const held = await gate.next();
  assert.equal(await deadLettered.promise, 0); // the timeout fired while "slow" still held the item
  held.release(); // the late copy arrives after its join was given up: it cannot pair, and is accounted for
  const { outputs, metrics } = await running;
  assert.deepEqual(outputs.pairs, []);
  const [timedOut, late] = g.deadLetters;
  assert.match(timedOut.reason, /^Join "pair": missing branch "slow" \(timed out after 20 ms\)/);
  assert.deepEqual(timedOut.item, { quick: 7 });
  assert.equal(timedOut.error.name, "JoinError");
  assert.match(late.reason, /missing branch "quick" \(the join's inputs ended without "quick"\)/);
  assert.deepEqual(late.item, { slow: -7 });
  assert.equal(metrics.totalFailed, 2);
  assert.equal(metrics.totalJoined, 0);
  assert.equal(metrics.totalIngested + metrics.totalCopies, metrics.totalFailed + metrics.totalJoined);
  assert.equal(metrics.itemsInFlight, 0);
});

test("join: without timeoutMs, a partial join is dead-lettered when the inputs end", async () => {
  const g = graph({
    sources: { a: source<{ id: string }>(), b: source<{ id: string }>() },
    id: (value) => (value as { id: string }).id,
  }, (b, { a, b: second }) => ({ both: b.join("byId", { left: a, right: second }) }));
  const { outputs, metrics } = await g.collect({ a: [{ id: "x" }, { id: "y" }], b: [{ id: "y" }, { id: "z" }] });
  assert.deepEqual(outputs.both, [{ left: { id: "y" }, right: { id: "y" } }]);
  const reasons = g.deadLetters.map((d) => `${d.itemId}: ${d.reason.split(";")[0]}`).sort();
  assert.deepEqual(reasons, [
    `x: Join "byId": missing branch "right" (the join's inputs ended without "right")`,
    `z: Join "byId": missing branch "left" (the join's inputs ended without "left")`,
  ]);
  assert.equal(metrics.totalJoined, 1);
  assert.equal(metrics.itemsInFlight, 0);
});

test("join: an id that comes twice on one branch: one copy pairs, the other is dead-lettered on its own", async () => {
  const g = graph({
    sources: { a: source<string>(), b: source<string>() },
    id: (value) => value as string,
  }, (b, { a, b: second }) => ({ both: b.join("j", { a, b: second }) }));
  const { outputs, metrics } = await g.collect({ a: ["k", "k"], b: ["k"] });
  assert.deepEqual(outputs.both, [{ a: "k", b: "k" }]);
  assert.equal(g.deadLetters.length, 1);
  // Whether the second "k" of branch a came before or after b's "k" is up to the sources' timing.
  assert.match(
    g.deadLetters[0].reason,
    /its id came twice on this branch; ids must be unique|missing branch "b" \(the join's inputs ended without "b"\)/,
  );
  assert.deepEqual(g.deadLetters[0].item, { a: "k" });
  assert.equal(metrics.itemsInFlight, 0);
});

test("JoinError names the join and the missing branches", () => {
  const error = new JoinError("enrich", ["geo", "credit"], "timed out after 5 ms");
  assert.equal(error.name, "JoinError");
  assert.deepEqual(error.missing, ["geo", "credit"]);
  assert.match(error.message, /^Join "enrich": missing branches "geo", "credit" \(timed out after 5 ms\)/);
});

test("join: a slow node after the join holds the branches back, nothing piles up in the join", async () => {
  const gate = new Gate<number>();
  const total = 300;
  let maxPending = 0;
  const g = graph({ queueSize: 4, sources: { n: source<number>() } }, (b, { n }) => {
    const fan = b.broadcast("fan", n);
    const left = b.add(stage("left", (x: number) => x), fan);
    const right = b.add(stage("right", (x: number) => x), fan);
    const joined = b.join("j", { left, right });
    return {
      out: b.add(
        stage("slow", async (pair: { left: number }) => {
          maxPending = Math.max(maxPending, g.getMetrics().nodes.j.queueDepth);
          await gate.enter(pair.left);
          return pair.left;
        }),
        joined,
      ),
    };
  });
  const running = g.collect(Array.from({ length: total }, (_, i) => i));
  for (let i = 0; i < total; i++) (await gate.next()).release();
  const { outputs, metrics } = await running;
  assert.equal(outputs.out.length, total);
  assert.equal(metrics.totalJoined, total);
  assert.ok(maxPending <= 4 * 2, `the join held ${maxPending} copies waiting`);
});
