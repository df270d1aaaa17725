import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, graph, type GraphBuilder, type Handle, source, stage } from "../mod.ts";

const id = (name: string) => stage(name, (x: number) => x);

/** Builds a one-source graph with `build`, expecting a ConfigError whose message matches `message`. */
function rejects(
  build: (b: GraphBuilder, n: Handle<number>) => Record<string, Handle<unknown> | string>,
  message: RegExp,
  node?: string,
) {
  assert.throws(
    () => graph({ name: "g", sources: { n: source<number>() } }, (b, { n }) => build(b, n)),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
      assert.match(error.message, message);
      assert.match(error.message, /^Graph "g": /);
      if (node !== undefined) assert.equal(error.stage, node);
      return true;
    },
  );
}

test("graph() validation: a cycle is a ConfigError with the cycle printed", () => {
  rejects((b, n) => {
    const entry = b.merge<number>("entry", [n, "c"]);
    b.add(id("a"), entry);
    b.add(id("b"), "a");
    const fan = b.broadcast<number>("fan", "b");
    b.add(id("c"), fan);
    return { out: fan };
  }, /it has a cycle: a → b → fan → c → entry → a; a graph must be acyclic/);
});

test("graph() validation: a self-loop is a cycle too", () => {
  rejects(
    (b, n) => {
      const m = b.merge("m", [n, "m"]);
      return { out: m };
    },
    /has a cycle: m → m/,
    "m",
  );
});

test("graph() validation: duplicate names", () => {
  rejects(
    (b, n) => ({ out: b.add(id("x"), b.add(id("x"), n)) }),
    /two nodes are named "x" \(a stage and a stage\)/,
    "x",
  );
  rejects((b, n) => ({ out: b.broadcast("n", n) }), /two nodes are named "n" \(a source and a broadcast\)/, "n");
});

test("graph() validation: an edge to or from a node that does not exist names it and lists the nodes", () => {
  rejects(
    (b) => ({ out: b.add(id("a"), "nowhere") }),
    /the edge "nowhere" → "a" names a node "nowhere" that does not exist; the nodes are "n", "a"/,
  );
});

test("graph() validation: unconnected inputs", () => {
  rejects(
    (b, n) => {
      b.add(id("orphan"));
      return { out: n };
    },
    /stage "orphan" has no input/,
    "orphan",
  );
});

test("graph() validation: unconnected outputs, and a route branch that goes nowhere", () => {
  rejects(
    (b, n) => {
      const fan = b.broadcast("fan", n);
      b.add(id("loose"), fan);
      return { out: fan };
    },
    /the output of stage "loose" goes nowhere: connect it to a node, or return it as an output/,
    "loose",
  );
  rejects(
    (b, n) => {
      const { yes } = b.route("r", n, { when: { yes: (x) => x > 0 }, default: "no" });
      return { yes };
    },
    /branch "no" of route "r" goes nowhere/,
    "r",
  );
});

test("graph() validation: a node output used twice needs a broadcast; two inputs need a merge", () => {
  rejects(
    (b, n) => {
      const a = b.add(id("a"), n);
      return { x: b.add(id("b"), a), y: b.add(id("c"), a) };
    },
    /stage "a" feeds 2 nodes \("b", "c"\); a node feeds one: broadcast\(name, handle\)/,
    "a",
  );
  rejects(
    (b, n) => {
      const fan = b.broadcast("fan", n);
      const a = b.add(id("a"), fan);
      const c = b.add(id("c"), fan);
      b.connect(c, "a");
      return { out: a };
    },
    /stage "a" has 2 inputs \("fan", "c"\); a node takes one input: merge them first/,
    "a",
  );
});

test("graph() validation: nodes no source reaches", () => {
  rejects(
    (b, n) => {
      b.add(id("island"), "alsoIsland");
      b.add(id("alsoIsland"), "island");
      return { out: n };
    },
    /no source reaches "island", "alsoIsland": they are fed only by each other/,
    "island",
  );
});

test("graph() validation: a join whose branches do not all reach it", () => {
  rejects(
    (b, n) => {
      const fan = b.broadcast("fan", n);
      const left = b.add(id("left"), fan);
      b.add(id("right"), fan);
      return { out: b.join("j", { left, right: "nothing" }) };
    },
    /branch "right" of join "j" names a node "nothing" that does not exist/,
    "j",
  );
  rejects(
    (b, n) => {
      const fan = b.broadcast("fan", n);
      const left = b.add(id("left"), fan);
      const { big, small } = b.route("size", fan, { when: { big: (x) => x > 10 }, default: "small" });
      const right = b.add(id("right"), big);
      return { out: b.join("j", { left, right }), small };
    },
    /branch "right" of join "j" does not reach it with every item: route "size" sends only its "big" items this way/,
    "j",
  );
  rejects((b, n) => {
    const fan = b.broadcast("fan", n);
    const left = b.add(id("left"), fan);
    const right = b.add(id("right"), fan);
    b.connect(right, "j");
    return { out: b.join("j", { left }) };
  }, /join\("j"\) takes at least two branches/);
  rejects(
    (b, n) => {
      const fan = b.broadcast("fan", n);
      const left = b.add(id("left"), fan);
      const right = b.add(id("right"), fan);
      const third = b.add(id("third"), fan);
      const j = b.join("j", { left, right });
      b.connect(third, "j");
      return { out: j };
    },
    /"third" is connected to join "j" outside its branches \("left", "right"\)/,
    "j",
  );
});

test("graph() validation: route branches are named and wired by their branch", () => {
  rejects(
    (b, n) => {
      b.route("r", n, { when: { a: () => true } });
      return { out: "r" };
    },
    /route "r" has branches \("a"\); connect one of them to "out"/,
    "r",
  );
  rejects(
    (b, n) => {
      b.route("r", n, { when: { a: () => true } });
      return { out: { node: "r", port: "b" } };
    },
    /route "r" has no branch "b"/,
    "r",
  );
  rejects((b, n) => {
    const { a } = b.route("r", n, { when: { a: () => true }, default: "a" });
    return { a };
  }, /route\("r"\) has two branches named "a"/);
  rejects((b, n) => ({ out: b.route("r", n, { nope: true } as never).a }), /route\("r"\) takes \{ when/);
});

test("graph() validation: bad options are ConfigErrors with the field", () => {
  assert.throws(() => graph({ name: "g", sources: {} }, () => ({})), {
    name: "ConfigError",
    message: /at least one source/,
  });
  assert.throws(
    () => graph({ name: "g", sources: { n: source() }, queueSize: 0 }, (_b, { n }) => ({ n })),
    { name: "ConfigError", message: /option "queueSize" must be a positive integer; got 0/ },
  );
  assert.throws(
    () => graph({ name: "g", sources: { n: source() }, bogus: 1 } as never, (_b, { n }) => ({ n })),
    { name: "ConfigError", message: /unknown option "bogus"/ },
  );
  rejects((b, n) => ({ out: b.add(((x: number) => x) as never, n) }), /add\(\) takes a stage made by stage\(\)/);
  rejects((b, n) => ({ out: b.join("j", { only: n }) }), /join\("j"\) takes at least two branches/);
  rejects((b, n) => {
    const fan = b.broadcast("fan", n);
    return { out: b.join("j", { a: b.add(id("a"), fan), c: b.add(id("c"), fan) }, { timeoutMs: -1 }) };
  }, /join\("j"\): option "timeoutMs" must be a finite number of milliseconds above 0; got -1/);
  rejects((b, n) => {
    const fan = b.broadcast("fan", n);
    return { out: b.join("j", { a: b.add(id("a"), fan), c: b.add(id("c"), fan) }, { timeout: 5 } as never) };
  }, /join\("j"\): unknown option "timeout" \(got 5\); did you mean "timeoutMs"\?/);
  rejects((b, n) => {
    b.tap(n, () => {}, { whenFull: "block" } as never);
    return { n };
  }, /tap\(\): option "whenFull" must be "drop" or "sample"; got "block"/);
  rejects((b, n) => {
    b.tap(n, "no" as never);
    return { n };
  }, /tap\(\) takes a function/);
  rejects((b, n) => {
    b.tap({ from: "n", to: "x" }, () => {});
    return { n };
  }, /tap "n->x:tap0" observes an edge "n" → "x" that does not exist/);
});
