import { test } from "node:test";
import assert from "node:assert/strict";
import { graph, source, stage } from "../mod.ts";
import { Counter, deferred, range, recordingLogger } from "./_helpers.ts";

test("tap: a stuck tap never holds items back; once its buffer is full it drops (whenFull: drop)", async () => {
  const stuck = deferred();
  const seen: number[] = [];
  const allSeen = deferred();
  const g = graph({ sources: { n: source<number>() } }, (b, { n }) => {
    const doubled = b.add(stage("double", (x: number) => x * 2), n);
    b.tap(doubled, async (value) => {
      seen.push(value);
      if (seen.length === 6) allSeen.resolve();
      await stuck.promise;
    }, { name: "audit", bufferSize: 5 });
    return { doubled };
  });
  const metrics = await g.run(range(100)); // finishes while the tap is still stuck on its first value
  assert.equal(metrics.outputs.doubled, 100);
  assert.deepEqual(seen, [0]);
  assert.deepEqual(metrics.taps.audit, { seen: 0, missed: 100 - 1 - 5, errors: 0, pending: 5 });
  stuck.resolve();
  await allSeen.promise;
  // It goes on with what it kept: the values right after the one it was stuck on.
  assert.deepEqual(seen, [0, 2, 4, 6, 8, 10]);
});

test("tap: whenFull: sample keeps a uniform sample of what came while it was behind", async () => {
  const stuck = deferred();
  const seen: number[] = [];
  const allSeen = deferred();
  const g = graph({ sources: { n: source<number>() } }, (b, { n }) => {
    b.tap(n, async (value) => {
      seen.push(value);
      if (seen.length === 21) allSeen.resolve();
      await stuck.promise;
    }, { name: "sampler", bufferSize: 20, whenFull: "sample" });
    return { n };
  });
  const metrics = await g.run(range(2000));
  assert.equal(metrics.taps.sampler.missed, 2000 - 1 - 20);
  stuck.resolve();
  await allSeen.promise;
  const kept = seen.slice(1);
  assert.equal(new Set(kept).size, 20);
  // Drop would keep 1..20; a uniform sample of 1..1999 keeps that prefix with a probability below 1e-40.
  assert.ok(kept.some((value) => value > 20), `the sample ${kept} is only the start of the burst`);
});

test("tap: a tap that throws is logged and counted; the items move on unchanged", async () => {
  const { logger, records } = recordingLogger();
  const calls = new Counter();
  const g = graph({ sources: { n: source<number>() }, logger }, (b, { n }) => {
    const out = b.add(stage("id", (x: { v: number }) => x), b.add(stage("wrap", (v: number) => ({ v })), n));
    b.tap(out, (value) => {
      calls.increment();
      if (value.v % 2 === 0) throw new Error("tap bug");
    }, { name: "flaky" });
    return { out };
  });
  const { outputs, metrics } = await g.collect(range(10));
  assert.deepEqual(outputs.out.map((x) => x.v), range(10));
  await calls.reaches(10); // the tap runs after the items moved on
  const taps = g.getMetrics().taps.flaky;
  assert.equal(taps.errors, 5);
  assert.equal(metrics.totalCompleted, 10);
  const warnings = records.filter((record) => record.level === "warn").map((record) => record.message);
  assert.ok(warnings.includes("tap threw; the items move on unchanged"));
});

test("tap: on a node it sees every edge out (a copy per branch), on an edge only that edge", async () => {
  const onNode: string[] = [];
  const onEdge: string[] = [];
  const g = graph({ sources: { n: source<number>() } }, (b, { n }) => {
    const fan = b.broadcast("fan", n);
    const a = b.add(stage("a", (x: number) => x), fan);
    const c = b.add(stage("c", (x: number) => x), fan);
    b.tap(fan, (value, info) => void onNode.push(`${info.node}>${info.to}:${value}`));
    b.tap({ from: "fan", to: "c" }, (value, info) => void onEdge.push(`${info.itemId}>${info.to}:${value}`));
    return { a, c };
  });
  await g.run([5, 6]); // synchronous taps have run by the time the run is over
  assert.deepEqual(onNode.sort(), ["fan>a:5", "fan>a:6", "fan>c:5", "fan>c:6"]);
  assert.deepEqual(onEdge.sort(), ["0>c:5", "1>c:6"]);
});

test("tap: shape() draws each tap as a node fed by what it observes, with what it saw", async () => {
  const g = graph({ name: "t", sources: { n: source<number>() } }, (b, { n }) => {
    const fan = b.broadcast("fan", n);
    const a = b.add(stage("a", (x: number) => x), fan);
    const c = b.add(stage("c", (x: number) => x), fan);
    b.tap({ from: "fan", to: "c" }, () => {}, { name: "audit" });
    return { a, c };
  });
  await g.run([1, 2]);
  const shape = g.shape({ counts: true });
  assert.deepEqual(shape.nodes.at(-1), {
    name: "audit",
    kind: "tap",
    counts: { ingested: 2, completed: 2, failed: 0, inFlight: 0 },
  });
  assert.deepEqual(shape.edges.at(-1), { from: "fan", to: "audit", label: "→ c", items: 2 });
  assert.match(g.toMermaid(), /n1 -\.->\|"→ c"\| n6/);
  assert.throws(
    () =>
      graph({ sources: { n: source<number>() } }, (b, { n }) => {
        b.tap(n, () => {}, { name: "n" });
        return { n };
      }),
    { name: "ConfigError", message: /tap "n" has the name of another node or tap/ },
  );
});
