import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type AcknowledgingSource,
  type DeadLetter,
  graph,
  PermanentError,
  type PipelineEvent,
  RouteError,
  skip,
  source,
  stage,
} from "../mod.ts";
import { assertGraphConserved, Counter, countingSource, deferred, Gate, guard, range } from "./_helpers.ts";

test("graph() route sends each item to exactly one branch, the default taking the rest", async () => {
  const g = graph({ name: "split", sources: { n: source<number>() } }, (b, { n }) => {
    const { small, big, other } = b.route("size", n, {
      when: { small: (x) => x < 10, big: (x) => x >= 100 },
      default: "other",
    });
    return { small, big, other: b.add(stage("negate", (x: number) => -x), other) };
  });
  const { outputs, metrics } = await g.collect([1, 50, 200, 3, 99, 100]);
  assert.deepEqual(outputs.small, [1, 3]);
  assert.deepEqual(outputs.big, [200, 100]);
  assert.deepEqual(outputs.other, [-50, -99]);
  assert.deepEqual(metrics.outputs, { small: 2, big: 2, other: 2 });
  assert.equal(metrics.stageMetrics.size.succeeded, 6);
  assertGraphConserved(metrics);
});

test("graph() route by key; a key with no branch and no default is dead-lettered with a RouteError", async () => {
  const g = graph({ sources: { events: source<{ kind: string; n: number }>() } }, (b, { events }) => {
    const { order, payment } = b.route("byKind", events, { key: (e) => e.kind, branches: ["order", "payment"] });
    return { order, payment };
  });
  const { outputs, metrics } = await g.collect([
    { kind: "order", n: 1 },
    { kind: "refund", n: 2 },
    { kind: "payment", n: 3 },
  ]);
  assert.deepEqual(outputs.order.map((e) => e.n), [1]);
  assert.deepEqual(outputs.payment.map((e) => e.n), [3]);
  assert.equal(metrics.totalFailed, 1);
  const [letter] = g.deadLetters;
  assert.equal(letter.stage, "byKind");
  assert.match(letter.reason, /key "refund" names no branch; its branches are "order", "payment"/);
  assert.equal(letter.error.name, "RouteError");
  assertGraphConserved(metrics);
});

test("graph() route: a predicate that throws dead-letters the item, as any stage would", async () => {
  const g = graph({ sources: { n: source<number>() } }, (b, { n }) => {
    const { ok } = b.route("check", n, {
      when: {
        ok: (x) => {
          if (x === 2) throw new Error("cannot decide");
          return true;
        },
      },
    });
    return { ok };
  });
  const { outputs, metrics } = await g.collect([1, 2, 3]);
  assert.deepEqual(outputs.ok, [1, 3]);
  assert.equal(g.deadLetters[0].reason, "cannot decide");
  assertGraphConserved(metrics);
});

test("graph() broadcast sends every item to every branch, each copy with its own fate", async () => {
  const audit: number[] = [];
  const g = graph({ sources: { n: source<number>() } }, (b, { n }) => {
    const all = b.broadcast("all", n);
    const warehouse = b.add(
      stage("warehouse", (x: number) => {
        if (x === 2) throw new PermanentError("warehouse down for 2");
        return x * 10;
      }),
      all,
    );
    const logged = b.add(stage("audit", (x: number) => void audit.push(x)), all);
    return { warehouse, logged };
  });
  const { outputs, metrics } = await g.collect([1, 2, 3]);
  assert.deepEqual(outputs.warehouse, [10, 30]);
  assert.equal(outputs.logged.length, 3);
  assert.deepEqual(audit, [1, 2, 3]);
  assert.equal(metrics.totalIngested, 3);
  assert.equal(metrics.totalCopies, 3); // one extra copy per item for the second branch
  assert.equal(metrics.totalCompleted, 5);
  assert.equal(metrics.totalFailed, 1);
  assertGraphConserved(metrics);
});

test("graph() broadcast: a slow branch holds the source back, within the bound of what the graph holds", async () => {
  const queueSize = 4;
  // The slow branch's stage (queue + worker) and the broadcast's own buffer, plus what the source reads at once.
  const bound = (queueSize + 1) + queueSize + 8;
  const total = 10 * bound;
  const gate = new Gate<number>();
  let finished = 0;
  let worst = 0;
  const { source: numbers, probe } = countingSource("generator", total, (p) => {
    worst = Math.max(worst, p.pulled - finished);
  });
  const g = graph({ queueSize, sources: { n: source<number>() } }, (b, { n }) => {
    const all = b.broadcast("all", n);
    const fast = b.add(stage("fast", (x: number) => x), all);
    const slow = b.add(
      stage("slow", async (x: number) => {
        await gate.enter(x);
        finished++;
        return x;
      }),
      all,
    );
    return { fast, slow };
  });
  const running = g.run(numbers as Iterable<number>);
  for (let i = 0; i < total; i++) {
    const held = await gate.next();
    assert.equal(held.value, i);
    held.release();
  }
  const metrics = await running;
  assert.ok(worst <= bound, `read-but-unfinished items peaked at ${worst}, above the bound ${bound}`);
  assert.equal(probe.pulled, total);
  assert.equal(metrics.outputs.fast, total);
  assert.equal(metrics.outputs.slow, total);
  assertGraphConserved(metrics);
});

test("graph() join collects the branches' outputs for the same item into one object", async () => {
  const g = graph({ sources: { users: source<{ id: string }>() } }, (b, { users }) => {
    const both = b.broadcast("both", users);
    const geo = b.add(
      stage("geo", async (u: { id: string }) => ({ city: `city-${u.id}` }), { concurrency: 3, ordered: false }),
      both,
    );
    const credit = b.add(stage("credit", (u: { id: string }) => u.id.length * 100), both);
    return { enriched: b.join("enrich", { geo, credit }) };
  });
  const { outputs, metrics } = await g.collect([{ id: "a" }, { id: "bb" }, { id: "ccc" }]);
  assert.deepEqual(
    outputs.enriched.sort((x, y) => x.credit - y.credit),
    [
      { geo: { city: "city-a" }, credit: 100 },
      { geo: { city: "city-bb" }, credit: 200 },
      { geo: { city: "city-ccc" }, credit: 300 },
    ],
  );
  assert.equal(metrics.totalJoined, 3);
  assert.equal(metrics.totalCompleted, 3);
  assertGraphConserved(metrics);
});

test("graph() join: a branch that fails or filters makes the join partial, dead-lettered naming the branch", async () => {
  const g = graph({ sources: { n: source<number>() } }, (b, { n }) => {
    const both = b.broadcast("both", n);
    const left = b.add(stage("left", (x: number) => (x === 2 ? skip : x)), both);
    const right = b.add(
      stage("right", (x: number) => {
        if (x === 3) throw new PermanentError("no right for 3");
        return -x;
      }),
      both,
    );
    return { pairs: b.join("pair", { left, right }) };
  });
  const { outputs, metrics } = await g.collect([1, 2, 3]);
  assert.deepEqual(outputs.pairs, [{ left: 1, right: -1 }]);
  const byStage = (stageName: string) => g.deadLetters.filter((d) => d.stage === stageName);
  assert.equal(byStage("right").length, 1);
  const partial = byStage("pair").sort((x, y) => Number(x.itemId) - Number(y.itemId));
  assert.equal(partial.length, 2);
  assert.match(partial[0].reason, /missing branch "left" \("left" was filtered in "left"\)/);
  assert.deepEqual(partial[0].item, { right: -2 });
  assert.match(partial[1].reason, /missing branch "right" \("right" failed in "right"\)/);
  assert.equal(partial[1].error.name, "JoinError");
  assert.equal(metrics.totalFiltered, 1);
  assertGraphConserved(metrics);
});

test("graph() merge feeds several branches into one node", async () => {
  const g = graph({ sources: { n: source<number>() } }, (b, { n }) => {
    const { even, odd } = b.route("parity", n, { when: { even: (x) => x % 2 === 0 }, default: "odd" });
    const halved = b.add(stage("half", (x: number) => x / 2), even);
    const tripled = b.add(stage("triple", (x: number) => x * 3), odd);
    const all = b.merge("all", [halved, tripled]);
    return { out: b.add(stage("label", (x: number) => `#${x}`), all) };
  });
  const { outputs, metrics } = await g.collect(range(6));
  assert.deepEqual(outputs.out.sort(), ["#0", "#1", "#15", "#2", "#3", "#9"]);
  assertGraphConserved(metrics);
});

test("graph() with several named sources and outputs as ReadableStreams", async () => {
  const g = graph({ sources: { orders: source<number>(), refunds: source<number>() } }, (b, { orders, refunds }) => {
    const negated = b.add(stage("negate", (x: number) => -x), refunds);
    const ledger = b.merge("ledger", [orders, negated]);
    const all = b.broadcast("fan", ledger);
    return {
      totals: b.add(stage("cents", (x: number) => x * 100), all),
      audit: b.add(stage("describe", (x: number) => `${x}`), all),
    };
  });
  async function* slowly(values: number[]) {
    for (const v of values) {
      await Promise.resolve();
      yield v;
    }
  }
  const { outputs, finished } = g.start({ orders: [1, 2, 3], refunds: slowly([4, 5]) });
  const read = async <T>(stream: ReadableStream<T>) => {
    const seen: T[] = [];
    for await (const value of stream) seen.push(value);
    return seen;
  };
  const [totals, audit] = await Promise.all([read(outputs.totals), read(outputs.audit)]);
  assert.deepEqual(totals.sort((x, y) => x - y), [-500, -400, 100, 200, 300]);
  assert.deepEqual(audit.sort(), ["-4", "-5", "1", "2", "3"]);
  const metrics = await finished;
  assert.equal(metrics.totalIngested, 5);
  assertGraphConserved(metrics);
});

test("graph() run takes one source alone when the graph has one, and names the sources when it has several", async () => {
  const one = graph({ sources: { n: source<number>() } }, (_b, { n }) => ({ n }));
  assert.equal((await one.run([1, 2])).outputs.n, 2);
  assert.equal((await one.run({ n: [1] })).outputs.n, 1);
  const two = graph({ sources: { a: source<number>(), b: source<number>() } }, (b, { a, b: second }) => ({
    all: b.merge("all", [a, second]),
  }));
  assert.throws(() => two.run([1] as never), { name: "TypeError", message: /has 2 sources \("a", "b"\)/ });
  assert.throws(() => two.run({ a: [1] } as never), { name: "TypeError", message: /source "b" is missing/ });
  assert.throws(() => two.run({ a: [], b: [], c: [] } as never), { message: /"c" is not one of its sources/ });
});

test("graph() refuses an AcknowledgingSource, whose messages it would never acknowledge, before reading it", () => {
  let read = false;
  const queue: AcknowledgingSource<number> = {
    async *[Symbol.asyncIterator]() {
      read = true;
      yield 1;
    },
    itemId: (n) => n,
    settle: () => {},
    close: async () => {},
  };
  const g = graph({ sources: { n: source<number>() } }, (_b, { n }) => ({ n }));
  const refused = { name: "TypeError", message: /source "n" is an AcknowledgingSource .*read it with a Pipeline/ };
  assert.throws(() => g.run(queue), refused);
  assert.throws(() => g.run({ n: queue }), refused);
  assert.throws(() => g.start({ n: queue }), refused);
  assert.equal(read, false);
});

test("graph() stream(): one writable per source, outputs as ReadableStreams", async () => {
  const g = graph({ sources: { n: source<number>() } }, (b, { n }) => ({
    doubled: b.add(stage("double", (x: number) => x * 2), n),
  }));
  const { writables, outputs, finished } = g.stream();
  const writer = writables.n.getWriter();
  const reading = (async () => {
    const seen: number[] = [];
    for await (const value of outputs.doubled) seen.push(value);
    return seen;
  })();
  for (const value of [1, 2, 3]) await writer.write(value);
  await writer.close();
  assert.deepEqual(await reading, [2, 4, 6]);
  assertGraphConserved(await finished);
});

test("graph() events carry the node's name; metrics per node and per edge", async () => {
  const events: PipelineEvent[] = [];
  const g = graph({
    sources: { n: source<number>() },
    onEvent: (event) => void events.push(event),
  }, (b, { n }) => {
    const { low, high } = b.route("split", n, { when: { low: (x) => x < 2 }, default: "high" });
    return { low: b.add(stage("lowWork", (x: number) => x), low), high };
  });
  const metrics = await g.run([0, 1, 2]);
  const completedAt = (stageName: string) =>
    events.filter((e) => e.type === "completed" && e.stage === stageName).length;
  assert.equal(completedAt("split"), 3);
  assert.equal(completedAt("lowWork"), 2);
  assert.deepEqual(
    metrics.edges.map((e) => [e.from, e.to, e.label, e.items]),
    [
      ["n", "split", undefined, 3],
      ["split", "lowWork", "low", 2],
      ["lowWork", "low", undefined, 2],
      ["split", "high", "high", 1],
    ],
  );
  assert.deepEqual(metrics.nodes.split, { kind: "route", items: 3, queueDepth: 0 });
  assert.equal(metrics.nodes.lowWork.items, 2);
});

test("graph() graceful and forced shutdown: every item still has its fate", async () => {
  for (const force of [false, true]) {
    const stop = new AbortController();
    const started = deferred();
    const forever = function* () {
      for (let i = 0;; i++) yield i;
    };
    const g = graph({ queueSize: 2, sources: { n: source<number>() } }, (b, { n }) => {
      const all = b.broadcast("all", n);
      const left = b.add(
        stage("left", async (x: number, ctx) => {
          started.resolve();
          await new Promise((resolve) => setTimeout(resolve, 0));
          if (ctx.signal.aborted) throw ctx.signal.reason;
          return x;
        }),
        all,
      );
      const right = b.add(stage("right", (x: number) => x), all);
      return { both: b.join("both", { left, right }) };
    });
    const running = g.run(forever(), force ? { forceSignal: stop.signal } : { signal: stop.signal });
    await started.promise;
    stop.abort(new Error("stop"));
    const metrics = await running;
    assert.ok(metrics.totalIngested > 0);
    assertGraphConserved(metrics);
    if (!force) assert.equal(metrics.totalFailed, 0, "a graceful stop lets everything read finish");
    for (const letter of g.deadLetters) assert.match(letter.error.name, /ShutdownError|JoinError/);
  }
});

test("graph() dead letters go to a WritableStream sink when given one", async () => {
  const letters: DeadLetter[] = [];
  const g = graph({
    sources: { n: source<number>() },
    deadLetterQueue: () => new WritableStream({ write: (letter) => void letters.push(letter) }),
  }, (b, { n }) => ({ ok: b.route("r", n, { key: String, branches: ["1"] })["1"] }));
  const metrics = await g.run([1, 2]);
  assert.equal(metrics.deadLetterCount, 1);
  assert.equal(letters[0].stage, "r");
  assert.ok(letters[0].error.name === RouteError.name);
});

test("graph() a source that fails: what was read finishes, then run rejects with the source's error", async () => {
  async function* broken() {
    yield 1;
    yield 2;
    throw new Error("source broke");
  }
  const g = graph(
    { sources: { n: source<number>() } },
    (b, { n }) => ({ out: b.add(stage("s", (x: number) => x), n) }),
  );
  await assert.rejects(g.run(broken()), /source broke/);
  assert.equal(g.getMetrics().totalCompleted, 2);
  assertGraphConserved(g.getMetrics());
});

test("graph() shape() gives nodes and edges in declaration order, with live counts when asked", async () => {
  const g = graph({ name: "etl", sources: { lines: source<string>() } }, (b, { lines }) => {
    const { ok, bad } = b.route("check", lines, { when: { ok: (s) => s.length > 0 }, default: "bad" });
    return { saved: b.add(stage("save", (s: string) => s), ok), bad };
  });
  assert.deepEqual(g.shape(), {
    name: "etl",
    nodes: [
      { name: "lines", kind: "source" },
      { name: "check", kind: "route" },
      { name: "save", kind: "stage" },
      { name: "saved", kind: "output" },
      { name: "bad", kind: "output" },
    ],
    edges: [
      { from: "lines", to: "check" },
      { from: "check", to: "save", label: "ok" },
      { from: "save", to: "saved" },
      { from: "check", to: "bad", label: "bad" },
    ],
  });
  await g.run(["a", "", "b"]);
  const shape = g.shape({ counts: true });
  assert.equal(shape.edges[1].items, 2);
  assert.equal(shape.edges[3].items, 1);
  assert.deepEqual(shape.nodes[2].counts, { ingested: 2, completed: 2, failed: 0, inFlight: 0, filtered: 0 });
});

test("graph() flatMap and batch stages work as nodes", async () => {
  const { flatMapStage, batchStage } = await import("../mod.ts");
  const g = graph({ sources: { n: source<number>() } }, (b, { n }) => {
    const many = b.add(flatMapStage("repeat", (x: number) => Array.from({ length: x }, () => x)), n);
    return { sums: b.add(batchStage("sum", (xs: readonly number[]) => xs.map((x) => x * 2), { batchSize: 2 }), many) };
  });
  const { outputs, metrics } = await g.collect([1, 2, 3]);
  assert.deepEqual(outputs.sums.sort(), [2, 4, 4, 6, 6, 6]);
  assert.equal(metrics.totalExpanded, 3);
  assertGraphConserved(metrics);
});

test("graph() toMermaid() and toOutline() draw the graph's shape, with live counts when asked", async () => {
  const g = graph({ name: "diamond", sources: { n: source<number>() } }, (b, { n }) => {
    const fan = b.broadcast("fan", n);
    const a = b.add(stage("a", (x: number) => x), fan);
    const c = b.add(stage("c", (x: number) => x), fan);
    return { both: b.join("j", { a, c }) };
  });
  const text = g.toMermaid({ title: false });
  assert.match(text, /^flowchart LR\n/);
  assert.match(text, /n1\{\{"fan"\}\}/);
  assert.match(text, /n2 -->\|"a"\| n4/);
  await g.run([1, 2]);
  assert.match(g.toMermaid({ counts: true }), /n1 -->\|"2"\| n2/);
  const outline = g.toOutline({ counts: true });
  assert.match(outline, /^diamond: 6 nodes, 6 edges\n/);
  assert.match(outline, /fan +\(broadcast\) +→ a \[2 items\], c \[2 items\]/);
  assert.throws(() => g.toMermaid({ direction: "up" } as never), { name: "ConfigError" });
});

test("graph() a stage's own error strategies work as nodes: onError skip, and halt rejects the run", async () => {
  const g = graph({ sources: { n: source<number>() } }, (b, { n }) => {
    const { small, big } = b.route("size", n, { when: { small: (x) => x < 10 }, default: "big" });
    const checked = b.add(
      stage("check", (x: number) => {
        if (x === 3) throw new SyntaxError("bad row");
        return x;
      }, { onError: [[SyntaxError, "skip"]] }),
      small,
    );
    return { checked, big };
  });
  const metrics = await g.run([1, 3, 20]);
  assert.equal(metrics.totalSkipped, 1);
  assert.equal(metrics.stageMetrics.check.skipped, 1);
  assert.equal(g.deadLetters.length, 0);
  assertGraphConserved(metrics);

  const halting = graph({ sources: { n: source<number>() } }, (b, { n }) => ({
    out: b.add(
      stage("load", (x: number) => {
        if (x === 2) throw new Error("ConnectionLost");
        return x;
      }, { onError: [[(error) => (error as Error).message === "ConnectionLost", "halt"]] }),
      n,
    ),
  }));
  await assert.rejects(halting.run([1, 2, 3]), { name: "HaltError" });
  assertGraphConserved(halting.getMetrics());
});

test("graph() cancelling an output stream stops the sources and forces the run; every item still has its fate", async () => {
  const forever = function* () {
    for (let i = 0;; i++) yield i;
  };
  const g = graph({ queueSize: 4, sources: { n: source<number>() } }, (b, { n }) => {
    const { even, odd } = b.route("parity", n, { when: { even: (x) => x % 2 === 0 }, default: "odd" });
    return { even: b.add(stage("slowEven", async (x: number) => x), even), odd };
  });
  const { outputs, finished } = g.start(forever());
  const oddReader = outputs.odd.getReader();
  const reading = (async () => {
    for (;;) if ((await oddReader.read()).done) return;
  })();
  const evenReader = outputs.even.getReader();
  assert.equal((await evenReader.read()).value, 0);
  await evenReader.cancel(new Error("enough"));
  await reading;
  const metrics = await finished;
  assertGraphConserved(metrics);
  assert.ok(metrics.totalIngested < 10_000, `the source was read on after the cancel (${metrics.totalIngested})`);
});

test("graph() close() stops every run in progress gracefully and waits for it", async () => {
  const started = deferred();
  const forever = async function* () {
    for (let i = 0;; i++) {
      if (i === 5) started.resolve();
      yield i;
    }
  };
  const g = graph({ sources: { n: source<number>() } }, (b, { n }) => {
    const all = b.broadcast("all", n);
    const a = b.add(stage("a", async (x: number) => x), all);
    const c = b.add(stage("c", (x: number) => x), all);
    return { both: b.join("both", { a, c }) };
  });
  const running = g.run(forever());
  await started.promise;
  await g.close();
  const metrics = await running;
  assertGraphConserved(metrics);
  assert.equal(metrics.totalFailed, 0);
  assert.equal(metrics.totalJoined, metrics.totalIngested);
});

test("graph() a source wired straight to an output is read a bounded share at a time", async () => {
  const stop = new AbortController();
  const queueSize = 16;
  let pulled = 0;
  const forever = function* () {
    for (;;) {
      if (++pulled === 1000) stop.abort();
      yield pulled;
    }
  };
  const g = graph({ queueSize, sources: { n: source<number>() } }, (_b, { n }) => ({ n }));
  const metrics = await guard(g.run(forever(), { signal: stop.signal }), "the run");
  assert.ok(pulled <= 1000 + queueSize, `${pulled} values were read for a stop after 1000`);
  assert.equal(metrics.outputs.n, metrics.totalIngested);
  assertGraphConserved(metrics);
});

test("graph() metrics show an edge's queue while the node after it is busy", async () => {
  const gate = new Gate<number>();
  const queued = new Counter();
  const g = graph({
    sources: { n: source<number>() },
    onEvent: (event) => {
      if (event.type === "queued" && event.stage === "slow") queued.increment();
    },
  }, (b, { n }) => {
    const fan = b.broadcast("fan", n);
    const slow = b.add(
      stage("slow", async (x: number) => {
        await gate.enter(x);
        return x;
      }),
      fan,
    );
    return { slow, fast: b.add(stage("fast", (x: number) => x), fan) };
  });
  const running = g.run(range(5));
  const first = await gate.next();
  await queued.reaches(5);
  const live = g.getMetrics();
  const into = live.edges.find((edge) => edge.from === "fan" && edge.to === "slow")!;
  assert.equal(into.items, 5);
  assert.equal(into.queueDepth, 4); // one in its attempt, four waiting
  assert.equal(live.nodes.slow.queueDepth, 4);
  assert.ok(live.itemsInFlight >= 5, "the five copies held by slow are in flight");
  first.release();
  for (let i = 1; i < 5; i++) (await gate.next()).release();
  assertGraphConserved(await running);
});
