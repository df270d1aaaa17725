import { test } from "node:test";
import assert from "node:assert/strict";
import { PermanentError, Pipeline, type PipelineMetrics, stage, type StageContext } from "../mod.ts";
import { busy, Counter, type Deferred, deferred, delay, guard, mulberry32 } from "./_helpers.ts";

const noDelay = { initialDelayMs: 0, maxDelayMs: 0, jitter: false } as const;

type Decision = "ok" | "transient" | "permanent";

/**
 * Whether attempt `attempt` of `item` in stage `stageIndex` fails: a pure
 * function of the seed, so concurrency and scheduling cannot change it.
 */
function decide(seed: number, stageIndex: number, item: number, attempt: number): Decision {
  const mixed = Math.imul(seed, 0x9e3779b1) ^ Math.imul(stageIndex + 1, 0x85ebca6b) ^
    Math.imul(item + 1, 0xc2b2ae35) ^ Math.imul(attempt, 0x27d4eb2f);
  const r = mulberry32(mixed)();
  if (r < 0.3) return "transient";
  if (r < 0.36) return "permanent";
  return "ok";
}

/** What the test injected into one stage, counted as it happened. */
interface Injected {
  entered: Set<number>;
  calls: number;
  retriesMade: number;
  succeeded: number;
  failed: number;
  attemptsOfFailed: Map<number, number>;
}

const injected = (): Injected => ({
  entered: new Set(),
  calls: 0,
  retriesMade: 0,
  succeeded: 0,
  failed: 0,
  attemptsOfFailed: new Map(),
});

interface Spec {
  readonly name: string;
  readonly maxRetries: number;
  readonly concurrency: number;
  readonly ordered: boolean;
}

const specs: readonly Spec[] = [
  { name: "parse", maxRetries: 2, concurrency: 3, ordered: true },
  { name: "enrich", maxRetries: 1, concurrency: 5, ordered: false },
  { name: "load", maxRetries: 3, concurrency: 2, ordered: true },
];

/** A stage that fails as `decide` says, counting what it injected. */
function flakyStage(seed: number, index: number, spec: Spec, counts: Injected) {
  return stage(spec.name, async (item: number, ctx: StageContext) => {
    counts.entered.add(item);
    counts.calls++;
    if (ctx.attempt > 1) assert.ok(counts.entered.has(item));
    await Promise.resolve(); // let attempts interleave
    const decision = decide(seed, index, item, ctx.attempt);
    const last = ctx.attempt === spec.maxRetries + 1;
    if (decision === "ok") {
      counts.succeeded++;
      return item;
    }
    if (decision === "permanent" || last) {
      counts.failed++;
      counts.attemptsOfFailed.set(item, ctx.attempt);
    } else {
      counts.retriesMade++;
    }
    if (decision === "permanent") throw new PermanentError(`permanent ${spec.name} ${item}`);
    throw new Error(`transient ${spec.name} ${item} attempt ${ctx.attempt}`);
  }, { maxRetries: spec.maxRetries, concurrency: spec.concurrency, ordered: spec.ordered, backoff: noDelay });
}

async function runSeeded(seed: number, items: number, deadLetterQueue: boolean) {
  const counts = specs.map(() => injected());
  const [a, b, c] = specs.map((spec, i) => flakyStage(seed, i, spec, counts[i]));
  const pipeline = new Pipeline({ name: `seeded-${seed}`, deadLetterQueue, queueSize: 16, stages: [a, b, c] });
  const metrics = await guard(pipeline.run(Array.from({ length: items }, (_, i) => i)), "the run");
  return { pipeline, metrics, counts };
}

function assertMatches(metrics: PipelineMetrics, counts: Injected[], items: number) {
  const totalFailed = counts.reduce((sum, c) => sum + c.failed, 0);
  assert.ok(totalFailed > 0 && counts.some((c) => c.retriesMade > 0), "the seed injected failures and retries");
  assert.equal(metrics.totalIngested, items);
  assert.equal(metrics.totalIngested, metrics.totalCompleted + metrics.totalFailed);
  assert.equal(metrics.totalFailed, totalFailed);
  assert.equal(metrics.totalCompleted, counts[counts.length - 1].succeeded);
  assert.equal(metrics.itemsInFlight, 0);
  assert.equal(metrics.deadLetterCount, totalFailed);
  specs.forEach((spec, i) => {
    const stageMetrics = metrics.stageMetrics[spec.name];
    const c = counts[i];
    assert.equal(stageMetrics.succeeded, c.succeeded, `${spec.name}.succeeded`);
    assert.equal(stageMetrics.failed, c.failed, `${spec.name}.failed`);
    assert.equal(stageMetrics.retries, c.retriesMade, `${spec.name}.retries`);
    assert.equal(stageMetrics.retries, c.calls - c.entered.size, `${spec.name}: retries are attempts after the first`);
    assert.equal(stageMetrics.processed, stageMetrics.succeeded + stageMetrics.failed, `${spec.name}.processed`);
    assert.equal(stageMetrics.processed, c.entered.size, `${spec.name}: every item that entered left`);
    assert.equal(stageMetrics.inFlight, 0, `${spec.name}.inFlight`);
    assert.equal(stageMetrics.queueDepth, 0, `${spec.name}.queueDepth`);
    if (i > 0) assert.equal(c.entered.size, counts[i - 1].succeeded, `only ${specs[i - 1].name}'s successes reach it`);
  });
}

for (const seed of [1, 42, 2026]) {
  test(`metrics match the injected outcomes under seeded random failures (seed ${seed})`, async () => {
    const items = 150;
    const { pipeline, metrics, counts } = await runSeeded(seed, items, true);
    assertMatches(metrics, counts, items);
    assert.equal(pipeline.deadLetters.length, metrics.deadLetterCount);
    specs.forEach((spec, i) => {
      const entries = pipeline.deadLetters.filter((entry) => entry.stage === spec.name);
      assert.equal(entries.length, counts[i].failed, `${spec.name} dead letters`);
      for (const entry of entries) {
        assert.equal(entry.attempts, counts[i].attemptsOfFailed.get(entry.item as number), `attempts of ${entry.item}`);
      }
    });
    // getMetrics() after the run agrees with what run() returned.
    const after = pipeline.getMetrics();
    assert.equal(after.totalCompleted, metrics.totalCompleted);
    assert.equal(after.totalFailed, metrics.totalFailed);
    assert.deepEqual(
      Object.fromEntries(
        Object.entries(after.stageMetrics).map(([name, m]) => [name, [m.succeeded, m.failed, m.retries]]),
      ),
      Object.fromEntries(
        Object.entries(metrics.stageMetrics).map(([name, m]) => [name, [m.succeeded, m.failed, m.retries]]),
      ),
    );
  });
}

test("metrics match the injected outcomes with deadLetterQueue: false", async () => {
  const items = 120;
  const { pipeline, metrics, counts } = await runSeeded(7, items, false);
  assertMatches(metrics, counts, items);
  assert.equal(pipeline.deadLetters.length, 0);
});

test("getMetrics() before any run is all zero", () => {
  const pipeline = new Pipeline({ name: "idle", stages: [stage("s", (n: number) => n)] });
  const metrics = pipeline.getMetrics();
  assert.equal(metrics.totalIngested, 0);
  assert.equal(metrics.totalCompleted, 0);
  assert.equal(metrics.totalFailed, 0);
  assert.equal(metrics.itemsInFlight, 0);
  assert.equal(metrics.deadLetterCount, 0);
  assert.equal(metrics.throughputPerSecond, 0);
  assert.deepEqual(Object.keys(metrics.stageMetrics), ["s"]);
  assert.equal(metrics.stageMetrics.s.processed, 0);
});

test("getMetrics() during a run shows items in flight, the queue depth and the items ingested", async () => {
  const gates: Deferred<void>[] = Array.from({ length: 10 }, () => deferred());
  const started = new Counter();
  const recorded = new Counter();
  const pipeline = new Pipeline({
    name: "live",
    stages: [
      stage("slow", async (n: number) => {
        started.increment();
        await gates[n].promise;
        return n;
      }, { concurrency: 2 }),
      stage("record", (n: number) => {
        recorded.increment();
        return n;
      }),
    ],
  });
  const done = pipeline.run(Array.from({ length: 10 }, (_, i) => i));
  try {
    await guard(started.reaches(2), "two items started");
    let live = pipeline.getMetrics();
    assert.equal(live.totalIngested, 10);
    assert.equal(live.totalCompleted, 0);
    assert.equal(live.totalFailed, 0);
    assert.equal(live.itemsInFlight, 10, "ingested and not yet finished");
    assert.equal(live.stageMetrics.slow.inFlight, 2);
    assert.equal(live.stageMetrics.slow.queueDepth, 8);
    assert.equal(live.stageMetrics.slow.processed, 0);
    assert.equal(live.stageMetrics.record.inFlight, 0);
    assert.equal(live.stageMetrics.record.queueDepth, 0);
    assert.equal(live.deadLetterCount, 0);

    gates[0].resolve();
    await guard(recorded.reaches(1), "item 0 reaching the next stage");
    await guard(started.reaches(3), "item 2 starting");
    live = pipeline.getMetrics();
    assert.equal(live.stageMetrics.slow.succeeded, 1);
    assert.equal(live.stageMetrics.slow.inFlight, 2);
    assert.equal(live.stageMetrics.slow.queueDepth, 7);
    assert.ok(live.durationSeconds > 0);
  } finally {
    gates.forEach((gate) => gate.resolve());
  }
  const metrics = await guard(done, "the run");
  assert.equal(metrics.totalCompleted, 10);
  assert.equal(metrics.itemsInFlight, 0);
  assert.equal(metrics.stageMetrics.slow.inFlight, 0);
  assert.equal(metrics.stageMetrics.slow.queueDepth, 0);
});

test("getMetrics() during a run counts an item in backoff as in flight and its retries so far", async () => {
  const retried = deferred();
  const hold = deferred();
  const pipeline = new Pipeline({
    name: "live-retry",
    stages: [
      stage("s", async (n: number, ctx: StageContext) => {
        if (ctx.attempt === 1) throw new Error("first attempt fails");
        retried.resolve();
        await hold.promise;
        return n;
      }, { maxRetries: 1, backoff: noDelay }),
    ],
  });
  const done = pipeline.run([1]);
  try {
    await guard(retried.promise, "the retry");
    const live = pipeline.getMetrics();
    assert.equal(live.stageMetrics.s.retries, 1);
    assert.equal(live.stageMetrics.s.inFlight, 1);
    assert.equal(live.stageMetrics.s.failed, 0);
    assert.equal(live.itemsInFlight, 1);
  } finally {
    hold.resolve();
  }
  const metrics = await guard(done, "the run");
  assert.equal(metrics.stageMetrics.s.succeeded, 1);
});

test("latency quantiles are ordered p50 <= p95 <= p99 <= max and above 0 for a stage that awaits", async () => {
  const random = mulberry32(99);
  const waits = Array.from({ length: 30 }, () => 1 + Math.floor(random() * 4));
  const pipeline = new Pipeline({
    name: "latency",
    stages: [
      stage("wait", async (n: number) => {
        await delay(waits[n]);
        return n;
      }, { concurrency: 10 }),
      stage("fail", (n: number) => {
        throw new PermanentError(`no ${n}`);
      }),
    ],
  });
  const metrics = await pipeline.run(waits.map((_, i) => i));
  const { p50, p95, p99, max } = metrics.stageMetrics.wait.latency;
  assert.ok(p50 > 0, `p50 ${p50}`);
  assert.ok(p50 <= p95, `p50 ${p50} <= p95 ${p95}`);
  assert.ok(p95 <= p99, `p95 ${p95} <= p99 ${p99}`);
  assert.ok(p99 <= max, `p99 ${p99} <= max ${max}`);
  assert.ok(Number.isFinite(max));
  assert.deepEqual(
    metrics.stageMetrics.fail.latency,
    { p50: 0, p95: 0, p99: 0, max: 0, count: 0, sum: 0 },
    "latency covers successful items only",
  );
});

test("an item's recorded duration covers all of its attempt, however the stage function returns", async () => {
  // Each attempt returns, at random: a value, a thenable that calls back at
  // once, a promise that busy-waits after an await, or one that busy-waits
  // before it. The reading that ends an attempt must come after its work,
  // even where the reactions of other items share one.
  const random = mulberry32(7);
  const kinds = Array.from({ length: 400 }, () => Math.floor(random() * 4));
  const took = new Map<string, number>();
  const fnFor = (name: string) => (n: number): number | Promise<number> => {
    const kind = kinds[n];
    const started = performance.now();
    const done = () => took.set(`${name}/${n}`, performance.now() - started);
    if (kind === 0) return (busy(0.3), done(), n);
    if (kind === 1) {
      // A thenable, as plain JavaScript may return: not a Promise to the type checker.
      const thenable = { then: (resolve: (value: number) => void) => (busy(0.3), done(), resolve(n)) };
      return thenable as unknown as Promise<number>;
    }
    return (async () => {
      if (kind === 3) busy(0.3);
      await null;
      if (kind === 2) busy(0.3);
      done();
      return n;
    })();
  };
  const recorded = new Map<string, number>();
  const pipeline = new Pipeline({
    name: "durations",
    stages: [
      stage("ordered", fnFor("ordered"), { concurrency: 8 }),
      stage("unordered", fnFor("unordered"), { concurrency: 8, ordered: false }),
    ],
    onEvent: (event) => {
      if (event.type === "completed") recorded.set(`${event.stage}/${event.itemId}`, event.durationMs);
    },
  });
  const metrics = await pipeline.run(Array.from({ length: kinds.length }, (_, i) => i));
  assert.equal(metrics.totalCompleted, kinds.length);
  assert.equal(took.size, 2 * kinds.length);
  const short: string[] = [];
  for (const [key, ms] of took) {
    const durationMs = recorded.get(key)!;
    const n = Number(key.split("/")[1]);
    if (durationMs < ms) short.push(`${key} (kind ${kinds[n]}): recorded ${durationMs} ms, took ${ms} ms`);
  }
  assert.deepEqual(short, []);
});

test("latency includes the backoff between attempts", async () => {
  const pipeline = new Pipeline({
    name: "latency-backoff",
    stages: [
      stage("s", (n: number, ctx: StageContext) => {
        if (ctx.attempt === 1) throw new Error("retry me");
        return n;
      }, { maxRetries: 1, backoff: { initialDelayMs: 25, jitter: false } }),
    ],
  });
  const metrics = await pipeline.run([1]);
  // A lower bound only: a timer never fires much before its delay, however slow the machine.
  assert.ok(metrics.stageMetrics.s.latency.max >= 20, `max ${metrics.stageMetrics.s.latency.max}`);
});

test("throughputPerSecond is above 0 after a non-empty run and consistent with the counts", async () => {
  const pipeline = new Pipeline({
    name: "throughput",
    stages: [
      stage("s", async (n: number) => {
        await delay(1);
        return n;
      }, { concurrency: 4 }),
    ],
  });
  const metrics = await pipeline.run(Array.from({ length: 12 }, (_, i) => i));
  assert.ok(metrics.durationSeconds > 0);
  assert.ok(metrics.throughputPerSecond > 0);
  assert.ok(metrics.stageMetrics.s.throughputPerSecond > 0);
  const expected = metrics.totalCompleted / metrics.durationSeconds;
  assert.ok(Math.abs(metrics.throughputPerSecond - expected) <= expected * 1e-9, "completed items per second");
  const later = pipeline.getMetrics();
  assert.equal(later.durationSeconds, metrics.durationSeconds, "the clock stops when the run ends");
  assert.equal(later.throughputPerSecond, metrics.throughputPerSecond);
});

test("throughputPerSecond counts completed items only", async () => {
  const pipeline = new Pipeline({
    name: "throughput-failed",
    stages: [stage("s", async (_n: number) => {
      await delay(1);
      throw new PermanentError("all fail");
    })],
  });
  const metrics = await pipeline.run([1, 2, 3]);
  assert.equal(metrics.totalFailed, 3);
  assert.equal(metrics.throughputPerSecond, 0);
  assert.equal(metrics.stageMetrics.s.throughputPerSecond, 0);
});
