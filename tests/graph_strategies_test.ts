import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ConfigError,
  fromConfig,
  graph,
  type GraphConfig,
  type GraphMetrics,
  HaltError,
  type ItemEndInfo,
  PermanentError,
  processor,
  skip,
  source,
  stage,
  type StageErrorInfo,
  StatusTracker,
} from "../mod.ts";
import { assertGraphConserved, countingSource, deferred, range, recordingLogger } from "./_helpers.ts";

class Flaky extends Error {
  override name = "Flaky";
}
class Fatal extends Error {
  override name = "Fatal";
}

/** n → route by parity → "even" (throws TypeError on multiples of 4) | "odd" (throws RangeError on 1 and 5). */
function parityGraph(options: Omit<Parameters<typeof graph>[0], "sources">) {
  return graph({ ...options, sources: { n: source<number>() } }, (b, { n }) => {
    const { even, odd } = b.route("parity", n, { when: { even: (x) => x % 2 === 0 }, default: "odd" });
    return {
      evens: b.add(
        stage("even", (x: number) => {
          if (x % 4 === 0) throw new TypeError(`even ${x}`);
          return x;
        }),
        even,
      ),
      odds: b.add(
        stage("odd", (x: number) => {
          if (x === 1 || x === 5) throw new RangeError(`odd ${x}`);
          return x;
        }),
        odd,
      ),
    };
  });
}

test("graph onError rules apply to every stage without its own: skip and deadLetter, counted and conserved", async () => {
  const g = parityGraph({ onError: [[TypeError, "skip"], [RangeError, "deadLetter"]] });
  const { outputs, metrics } = await g.collect(range(8));
  assert.deepEqual(outputs.evens, [2, 6]);
  assert.deepEqual(outputs.odds, [3, 7]);
  assert.equal(metrics.totalSkipped, 2); // 0 and 4
  assert.equal(metrics.stageMetrics.even.skipped, 2);
  assert.deepEqual(g.deadLetters.map((letter) => [letter.itemId, letter.stage]), [[1, "odd"], [5, "odd"]]);
  assertGraphConserved(metrics);
});

test("a stage's own onError overrides the graph's; a rule may retry", async () => {
  let tries = 0;
  const g = graph({ sources: { n: source<number>() }, onError: [[Flaky, "skip"]] }, (b, { n }) => {
    const both = b.broadcast("both", n);
    const own = b.add(
      stage("own", (x: number) => {
        if (x === 1 && tries++ < 2) throw new Flaky("once more");
        return x;
      }, { onError: [[Flaky, "retry"]], maxRetries: 3 }),
      both,
    );
    const shared = b.add(
      stage("shared", (x: number) => {
        if (x === 1) throw new Flaky("drop it");
        return x;
      }),
      both,
    );
    return { own, shared };
  });
  const { outputs, metrics } = await g.collect([0, 1, 2]);
  assert.deepEqual(outputs.own, [0, 1, 2]);
  assert.deepEqual(outputs.shared, [0, 2]);
  assert.equal(tries, 3);
  assert.equal(metrics.stageMetrics.shared.skipped, 1);
  assert.equal(metrics.totalCopies, 3);
  assertGraphConserved(metrics);
});

test("a halt rule stops reading every source, lets what was read finish, and rejects with a HaltError carrying the graph's account", async () => {
  const g = graph({ sources: { a: source<number>(), b: source<number>() }, onError: [[Fatal, "halt"]] }, (b, s) => {
    const both = b.merge("both", [s.a, s.b]);
    return {
      out: b.add(
        stage("check", async (x: number) => {
          if (x === 3) throw new Fatal("stop the line");
          return x;
        }),
        both,
      ),
    };
  });
  const a = countingSource("async generator", 10_000);
  const other = countingSource("async generator", 10_000);
  const error = await g.run({ a: a.source, b: other.source }).then(
    () => assert.fail("the run should halt"),
    (thrown: unknown) => thrown,
  );
  assert.ok(error instanceof HaltError, `a HaltError, not ${error}`);
  assert.equal(error.name, "HaltError");
  assert.equal(error.stage, "check");
  assert.equal(error.mode, "graceful");
  assert.ok(error.cause instanceof Fatal);
  assert.ok(a.probe.pulled < 10_000 && other.probe.pulled < 10_000, "both sources stopped being read");
  const metrics = error.metrics as GraphMetrics;
  assert.ok(metrics.nodes.check, "the metrics are the graph's");
  assert.ok(error.deadLetters.some((letter) => letter.stage === "check" && letter.reason === "stop the line"));
  assert.equal(error.deadLetters.length, metrics.totalFailed);
  assertGraphConserved(metrics);
});

test('a { halt: "force" } rule interrupts the attempts in flight on every branch (ShutdownError dead letters)', async () => {
  const started = deferred();
  const g = graph({ sources: { n: source<number>() }, onError: [[Fatal, { halt: "force" }]] }, (b, { n }) => {
    const both = b.broadcast("both", n);
    const slow = b.add(
      stage("slow", (x: number, ctx) =>
        new Promise<number>((resolve, reject) => {
          started.resolve();
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
          if (x < 0) resolve(x);
        })),
      both,
    );
    const fatal = b.add(
      stage("fatal", async (x: number) => {
        await started.promise;
        throw new Fatal(`fatal ${x}`);
      }),
      both,
    );
    return { slow, fatal };
  });
  const error = await g.run([1]).then(() => assert.fail("the run should halt"), (thrown: unknown) => thrown);
  assert.ok(error instanceof HaltError);
  assert.equal(error.mode, "force");
  assert.deepEqual(error.deadLetters.map((letter) => [letter.stage, letter.error.name]).sort(), [
    ["fatal", "Fatal"],
    ["slow", "ShutdownError"],
  ]);
  assertGraphConserved(error.metrics as GraphMetrics);
});

test("maxDeadLetters halts the graph once more than that many items failed in its stages", async () => {
  const g = graph({ name: "limited", sources: { n: source<number>() }, maxDeadLetters: 3 }, (b, { n }) => {
    const both = b.broadcast("both", n);
    return {
      fine: b.add(stage("fine", (x: number) => x), both),
      broken: b.add(
        stage("broken", async (x: number) => {
          throw new PermanentError(`no ${x}`);
        }),
        both,
      ),
    };
  });
  const { source: numbers, probe } = countingSource("async generator", 100_000);
  const error = await g.run(numbers).then(() => assert.fail("the run should halt"), (thrown: unknown) => thrown);
  assert.ok(error instanceof HaltError);
  assert.match(error.message, /maxDeadLetters \(3\)/);
  assert.ok(probe.pulled < 100_000, "the source stopped being read");
  const metrics = error.metrics as GraphMetrics;
  assert.ok(metrics.totalFailed > 3);
  assert.equal(g.deadLetters.length, metrics.totalFailed);
  assertGraphConserved(metrics);
});

test("maxSkips halts the graph once more than that many items were skipped", async () => {
  const g = parityGraph({ onError: [[TypeError, "skip"]], maxSkips: 1 });
  const error = await g.run(range(1000)).then(() => assert.fail("the run should halt"), (thrown: unknown) => thrown);
  assert.ok(error instanceof HaltError);
  assert.match(error.message, /maxSkips \(1\)/);
  assertGraphConserved(error.metrics as GraphMetrics);
});

test("hooks are called for a graph: onStart first, onItemStart per item, onItemEnd per copy with its fate, onStageError, onDrain, onEnd last", async () => {
  const calls: string[] = [];
  const ends: ItemEndInfo[] = [];
  const errors: StageErrorInfo[] = [];
  const finished = deferred<GraphMetrics>();
  const g = graph({
    name: "hooked",
    sources: { n: source<number>() },
    onError: [[RangeError, "skip"]],
    hooks: {
      onStart: async ({ pipeline }) => void calls.push(`start ${pipeline}`),
      onItemStart: ({ itemId, item }) => void calls.push(`item ${itemId}=${item}`),
      onItemEnd: (info) => void ends.push(info),
      onStageError: (info) => void errors.push(info),
      onDrain: () => void calls.push("drain"),
      onEnd: ({ metrics, error }) => {
        calls.push(`end ${error === undefined}`);
        finished.resolve(metrics as GraphMetrics);
      },
    },
  }, (b, { n }) => {
    const both = b.broadcast("both", n);
    const kept = b.add(stage("keep", (x: number) => (x === 2 ? skip : x)), both);
    const checked = b.add(
      stage("check", (x: number) => {
        if (x === 1) throw new RangeError("one");
        if (x === 3) throw new PermanentError("three");
        return x;
      }),
      both,
    );
    return { kept, checked };
  });
  const metrics = await g.run([0, 1, 2, 3]);
  assert.deepEqual(calls, ["start hooked", "item 0=0", "item 1=1", "item 2=2", "item 3=3", "drain", "end true"]);
  assert.deepEqual(await finished.promise, metrics);
  const fates = ends.map(({ itemId, fate, stage }) => `${itemId}:${fate}@${stage}`).sort();
  assert.deepEqual(fates, [
    "0:completed@checked",
    "0:completed@kept",
    "1:completed@kept",
    "1:skipped@check",
    "2:completed@checked",
    "2:filtered@keep",
    "3:completed@kept",
    "3:deadLettered@check",
  ]);
  assert.equal(ends.length, metrics.totalIngested + metrics.totalCopies, "one end per copy");
  assert.deepEqual(errors.map(({ stage, itemId, action }) => `${stage} ${itemId} ${action}`), [
    "check 1 skip",
    "check 3 deadLetter",
  ]);
  assertGraphConserved(metrics);
});

test("onEnd is told the HaltError a halted graph rejects with", async () => {
  const told = deferred<unknown>();
  const g = parityGraph({ onError: [[TypeError, "halt"]], hooks: { onEnd: ({ error }) => told.resolve(error) } });
  const error = await g.run(range(100)).then(() => assert.fail("the run should halt"), (thrown: unknown) => thrown);
  assert.ok(error instanceof HaltError);
  assert.equal(await told.promise, error);
});

test("statusTracker sees each item's final status in a graph: completed at its output, failed, filtered, skipped, joined", async () => {
  const tracker = new StatusTracker();
  const g = graph({ sources: { n: source<number>() }, statusTracker: tracker, onError: [[RangeError, "skip"]] }, (
    b,
    { n },
  ) => {
    const { small, big } = b.route("size", n, { when: { small: (x) => x < 10 }, default: "big" });
    const both = b.broadcast("both", big);
    const half = b.add(stage("half", (x: number) => x / 2), both);
    const twice = b.add(
      stage("twice", (x: number) => {
        if (x === 13) throw new PermanentError("unlucky");
        if (x === 14) throw new RangeError("too big");
        return x === 15 ? skip : x * 2;
      }),
      both,
    );
    return { small, pair: b.join("pair", { half, twice }) };
  });
  const { outputs, metrics } = await g.collect([1, 12, 13, 14, 15]);
  assert.deepEqual(outputs.small, [1]);
  assert.deepEqual(outputs.pair, [{ half: 6, twice: 24 }]);
  const final = (id: number) => {
    const change = tracker.getStatus(id);
    return `${change?.status}@${change?.stage}`;
  };
  assert.equal(final(0), "completed@small");
  assert.equal(final(1), "completed@pair");
  // 13's twice copy failed; the partial join that holds its half copy is dead-lettered at the join, last.
  assert.equal(final(2), "failed@pair");
  assert.ok(tracker.getHistory(2).some((change) => change.status === "failed" && change.stage === "twice"));
  assert.ok(tracker.getHistory(3).some((change) => change.status === "skipped" && change.stage === "twice"));
  assert.ok(tracker.getHistory(4).some((change) => change.status === "filtered" && change.stage === "twice"));
  assert.equal(tracker.getByStatus("queued").length + tracker.getByStatus("in_progress").length, 0);
  assertGraphConserved(metrics);
});

test("a statusTracker that throws is logged and loses nothing", async () => {
  const { logger, records } = recordingLogger();
  const g = graph({
    sources: { n: source<number>() },
    logger,
    statusTracker: {
      record() {
        throw new Error("tracker down");
      },
    },
  }, (b, { n }) => ({ out: b.add(stage("s", (x: number) => x), n) }));
  const { outputs } = await g.collect([1, 2]);
  assert.deepEqual(outputs.out, [1, 2]);
  const warnings = records.filter((record) => record.level === "warn").map((record) => record.message);
  assert.ok(warnings.includes("statusTracker threw; the run goes on"));
});

test("graph.pause() holds every stage and the sources back; resume() finishes the run", async () => {
  const calls: number[] = [];
  const third = deferred();
  const g = graph({ sources: { n: source<number>() }, queueSize: 4 }, (b, { n }) => {
    const { even, odd } = b.route("parity", n, { when: { even: (x) => x % 2 === 0 }, default: "odd" });
    const work = (name: string) =>
      stage(name, async (x: number) => {
        calls.push(x);
        if (calls.length === 3) third.resolve();
        return x;
      });
    return { evens: b.add(work("evens"), even), odds: b.add(work("odds"), odd) };
  });
  const { source: numbers, probe } = countingSource("generator", 1000);
  const running = g.run(numbers);
  await third.promise;
  g.pause();
  assert.equal(g.paused, true);
  const before = calls.length;
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 0));
  assert.ok(calls.length <= before + 2, `attempts started while paused: ${calls.length - before}`);
  assert.ok(probe.pulled < 1000, "the source was held back");
  g.resume();
  assert.equal(g.paused, false);
  const metrics = await running;
  assert.equal(metrics.totalCompleted, 1000);
  assert.deepEqual(calls.sort((x, y) => x - y), range(1000));
});

test("a graceful stop resumes a paused graph so that it drains", async () => {
  const stop = new AbortController();
  const first = deferred();
  const g = graph({ sources: { n: source<number>() } }, (b, { n }) => ({
    out: b.add(
      stage("s", (x: number) => {
        first.resolve();
        return x;
      }),
      n,
    ),
  }));
  const running = g.run(countingSource("async generator", 100).source, { signal: stop.signal });
  await first.promise;
  g.pause();
  stop.abort();
  const metrics = await running;
  assert.equal(metrics.totalCompleted, metrics.totalIngested);
  assert.equal(g.paused, false);
});

test("a breakpoint pauses a graph before an item's attempt at a node", async () => {
  const hit = deferred();
  const g = graph({
    sources: { n: source<number>() },
    breakpoint: (item, at) => at === "s" && item === 2,
    onEvent: (event) => {
      if (event.type === "paused") hit.resolve();
    },
  }, (b, { n }) => ({ out: b.add(stage("s", (x: number) => x), n) }));
  const running = g.run([1, 2, 3]);
  await hit.promise;
  assert.equal(g.paused, true);
  g.resume();
  assert.equal((await running).totalCompleted, 3);
});

test("Pipeline options a graph cannot take are ConfigErrors that say why; bad strategy options are ConfigErrors with the field", () => {
  const build = (options: object) => () =>
    graph({ name: "g", sources: { n: source<number>() }, ...options }, (b, { n }) => ({
      out: b.add(stage("s", (x: number) => x), n),
    }));
  for (
    const [option, value, hint] of [
      ["taskConcurrency", { fetch: 2 }, /give each stage its own taskConcurrency/],
      ["recentErrors", 5, /no snapshot\(\)/],
      ["stages", [], /the nodes its build function adds/],
    ] as const
  ) {
    assert.throws(build({ [option]: value }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.field, option);
      assert.match(error.message, new RegExp(`Graph "g": option "${option}" \\(got .+\\) is a Pipeline option`));
      assert.match(error.message, hint);
      return true;
    });
  }
  assert.throws(
    build({ maxSkips: -1 }),
    (error: unknown) => error instanceof ConfigError && error.field === "maxSkips",
  );
  assert.throws(
    build({ hooks: { onBegin: () => {} } }),
    (error: unknown) => error instanceof ConfigError && /onStart/.test(error.message),
  );
  assert.throws(
    build({ statusTracker: {} }),
    (error: unknown) => error instanceof ConfigError && error.field === "statusTracker",
  );
});

test("fromConfig graphs take the error strategy: onError rules by error name, maxDeadLetters", async () => {
  const registry = {
    parse: processor({ create: () => (line: string) => JSON.parse(line) as unknown }),
    refuse: processor({
      create: () => (value: unknown) => {
        if (value === 0) throw new PermanentError("zero");
        return value;
      },
    }),
  };
  const config = (options: object): GraphConfig => ({
    name: "configured",
    sources: ["lines"],
    processors: [{ name: "parse", type: "parse" }, { name: "refuse", type: "refuse" }],
    connections: [{ from: "lines", to: "parse" }, { from: "parse", to: "refuse" }],
    outputs: { out: "refuse" },
    options,
  });
  const skipping = fromConfig(config({ onError: [["SyntaxError", "skip"]] }), registry);
  const { outputs, metrics } = await skipping.collect(["1", "{", "0", "2"]);
  assert.deepEqual(outputs.out, [1, 2]);
  assert.equal(metrics.totalSkipped, 1);
  assert.equal(skipping.deadLetters[0].stage, "refuse");
  const halting = fromConfig(config({ maxDeadLetters: 0 }), registry);
  await assert.rejects(halting.run(["0", "1"]), (error: unknown) => error instanceof HaltError);
  assert.throws(
    () => fromConfig(config({ maxSkips: -1 }), registry),
    (error: unknown) => error instanceof ConfigError && error.field === "options.maxSkips",
  );
});
