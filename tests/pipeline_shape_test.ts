import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, flatMapStage, Pipeline, skip, stage } from "../mod.ts";

test("pipeline.shape() is source → stages → output, named so that no stage name clashes", () => {
  const pipeline = new Pipeline({
    name: "p",
    stages: [stage("source", (n: number) => n), stage("output", (n: number) => n)],
  });
  const shape = pipeline.shape();
  assert.deepEqual(shape.nodes.map((node) => `${node.name}:${node.kind}`), [
    "source 2:source",
    "source:stage",
    "output:stage",
    "output 2:output",
  ]);
  assert.deepEqual(shape.edges, [
    { from: "source 2", to: "source" },
    { from: "source", to: "output" },
    { from: "output", to: "output 2" },
  ]);
  assert.ok(shape.nodes.every((node) => node.counts === undefined), "no counts unless asked");
});

test("pipeline.shape({ counts: true }) conserves items: each node's in = done + failed + filtered + in flight", async () => {
  const pipeline = new Pipeline({
    name: "p",
    stages: [
      stage("parse", (line: string) => JSON.parse(line) as number),
      flatMapStage("repeat", (n: number) => Array.from({ length: n }, () => n)),
      stage("odd", (n: number) => n % 2 === 1 ? n : skip),
    ],
  });
  await pipeline.run(["1", "x", "2", "3"]);
  const shape = pipeline.shape({ counts: true });
  const counts = Object.fromEntries(shape.nodes.map((node) => [node.name, node.counts]));
  assert.deepEqual(counts.source, { ingested: 4, completed: 4, failed: 0, inFlight: 0 });
  assert.deepEqual(counts.parse, { ingested: 4, completed: 3, failed: 1, inFlight: 0, filtered: 0 });
  assert.deepEqual(counts.repeat, { ingested: 3, completed: 3, failed: 0, inFlight: 0, filtered: 0 });
  assert.deepEqual(counts.odd, { ingested: 6, completed: 4, failed: 0, inFlight: 0, filtered: 2 });
  assert.deepEqual(counts.output, { ingested: 4, completed: 4, failed: 0, inFlight: 0 });
  // The edges carry what crossed them: a flatMap stage passes on its outputs, not its parents.
  assert.deepEqual(shape.edges.map((edge) => edge.items), [4, 3, 6, 4]);
  for (const node of shape.nodes.slice(1, -1)) {
    const c = node.counts!;
    assert.equal(c.ingested, c.completed + c.failed + (c.filtered ?? 0) + c.inFlight, node.name);
  }
});

test("pipeline.shape({ counts: true }) is live while a run is in progress", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  let started!: () => void;
  const running = new Promise<void>((resolve) => started = resolve);
  const pipeline = new Pipeline({
    name: "p",
    stages: [stage("wait", async (n: number) => {
      started();
      await gate;
      return n;
    })],
  });
  const done = pipeline.run([1]);
  await running;
  const during = pipeline.shape({ counts: true }).nodes[1].counts!;
  assert.equal(during.inFlight, 1);
  assert.equal(during.completed, 0);
  release();
  await done;
  assert.deepEqual(pipeline.shape({ counts: true }).nodes[1].counts, {
    ingested: 1,
    completed: 1,
    failed: 0,
    inFlight: 0,
    filtered: 0,
  });
});

test("pipeline.shape() rejects bad options with a ConfigError", () => {
  const pipeline = new Pipeline({ name: "p", stages: [stage("s", (n: number) => n)] });
  assert.throws(
    () => pipeline.shape({ count: true } as never),
    (error: unknown) =>
      error instanceof ConfigError && /unknown option "count".*did you mean "counts"\?/.test(error.message),
  );
  assert.throws(
    () => pipeline.toOutline({ counts: 1 as unknown as boolean }),
    (error: unknown) => error instanceof ConfigError && error.field === "counts",
  );
});
