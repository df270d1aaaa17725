import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, type GraphShape, Pipeline, stage, toOutline } from "../mod.ts";

const join: GraphShape = {
  name: "enrich",
  nodes: [
    { name: "users", kind: "source" },
    { name: "fan out", kind: "broadcast" },
    { name: "geo", kind: "stage" },
    { name: "crédit", kind: "stage" },
    { name: "together", kind: "join" },
    { name: "out", kind: "output" },
  ],
  edges: [
    { from: "users", to: "fan out" },
    { from: "fan out", to: "geo" },
    { from: "fan out", to: "crédit" },
    { from: "geo", to: "together", label: "geo" },
    { from: "crédit", to: "together", label: "crédit" },
    { from: "together", to: "out" },
  ],
};

test("toOutline() gives a line per node: name, kind and where its items go, in columns", () => {
  assert.equal(
    toOutline(join),
    [
      "enrich: 6 nodes, 6 edges",
      '  users      (source)     → "fan out"',
      '  "fan out"  (broadcast)  → geo, crédit',
      "  geo        (stage)      → together [geo]",
      "  crédit     (stage)      → together [crédit]",
      "  together   (join)       → out",
      "  out        (output)",
      "",
    ].join("\n"),
  );
});

test("toOutline() quotes names that are not one plain word, so quotes and line breaks read unambiguously", () => {
  const text = toOutline({
    name: "odd names",
    nodes: [{ name: 'say "hi"', kind: "source" }, { name: "two\nlines", kind: "output" }],
    edges: [{ from: 'say "hi"', to: "two\nlines", label: "x" }],
  });
  assert.equal(
    text,
    ['"odd names": 2 nodes, 1 edge', '  "say \\"hi\\""  (source)  → "two\\nlines" [x]', '  "two\\nlines"  (output)', ""]
      .join("\n"),
  );
});

test("toOutline() shows counts after the edges when the shape carries them", async () => {
  const pipeline = new Pipeline({
    name: "etl",
    stages: [stage("parse", (line: string) => JSON.parse(line) as number), stage("double", (n: number) => n * 2)],
  });
  await pipeline.run(["1", "{", "3"]);
  assert.equal(
    pipeline.toOutline({ counts: true }),
    [
      "etl: 4 nodes, 3 edges",
      "  source  (source)  → parse [3 items]   | 3 items",
      "  parse   (stage)   → double [2 items]  | in 3 · done 2 · failed 1",
      "  double  (stage)   → output [2 items]  | in 2 · done 2 · failed 0",
      "  output  (output)                      | 2 items",
      "",
    ].join("\n"),
  );
  assert.equal(pipeline.toOutline().split("\n")[2], "  parse   (stage)   → double");
});

test("toOutline() rejects an edge to a missing node with a ConfigError", () => {
  assert.throws(
    () => toOutline({ name: "g", nodes: [{ name: "a", kind: "source" }], edges: [{ from: "x", to: "a" }] }),
    (error: unknown) =>
      error instanceof ConfigError && error.field === "edges[0].from" &&
      error.message.startsWith('toOutline: edges[0].from is "x", which is not a node of "g"'),
  );
  assert.throws(
    () => toOutline(null as unknown as GraphShape),
    (error: unknown) =>
      error instanceof ConfigError && /must be an object with name, nodes and edges; got null/.test(error.message),
  );
});
