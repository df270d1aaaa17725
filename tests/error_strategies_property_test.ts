/**
 * Randomised error strategies (issue 13): fast-check generates pipelines of
 * 1–3 stages (item or batch, concurrency 1–4, retries 0–2) with random
 * `onError` rules (skip, retry then skip, graceful and forced halts, dead
 * letter), circuit breakers with tiny cooldowns, rate limits, run limits
 * (`maxSkips`, `maxDeadLetters`) and a per item × stage × attempt fault
 * script, and sometimes a graceful or forced abort part-way. After each run
 * it checks that `run` settled (no hang), that it resolved or rejected with a
 * HaltError only when a halt was possible, and that every item read ended
 * exactly once, as completed, dead-lettered, skipped or filtered: in the
 * metrics (conservation, nothing in flight), in `onItemEnd`, and in the dead
 * letters, which a HaltError carries too (a halted run reports every item).
 *
 * SLUICE_PROPERTY_RUNS sets the number of cases (default 150) and
 * SLUICE_PROPERTY_SEED replays a seed.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import fc from "fast-check";
import {
  type AnyStage,
  batchStage,
  HaltError,
  type ItemEndInfo,
  type OnError,
  Pipeline,
  type PipelineMetrics,
  stage,
} from "../mod.ts";
import { propertyParameters } from "./_property_helpers.ts";

class Transient extends Error {
  override name = "Transient";
}
class Skippable extends Error {
  override name = "Skippable";
}
class HaltMe extends Error {
  override name = "HaltMe";
}
class HaltNow extends Error {
  override name = "HaltNow";
}

type Fault = "ok" | "async" | "transient" | "skippable" | "halt" | "force" | "plain";
const FAULTS: Record<Exclude<Fault, "ok" | "async">, () => Error> = {
  transient: () => new Transient("t"),
  skippable: () => new Skippable("s"),
  halt: () => new HaltMe("h"),
  force: () => new HaltNow("f"),
  plain: () => new Error("p"),
};

type Rule = "skip" | "retryThenSkip" | "halt" | "force" | "deadLetter";
const RULES: Record<Rule, OnError> = {
  skip: [[Skippable, "skip"]],
  retryThenSkip: [[Transient, "retry"], [Transient, "skip"]],
  halt: [[HaltMe, "halt"]],
  force: [["HaltNow", { halt: "force" }]],
  deadLetter: [[(error) => error instanceof Error, "deadLetter"]],
};

interface StageCase {
  readonly batch: boolean;
  readonly batchSize: number;
  readonly concurrency: number;
  readonly maxRetries: number;
  readonly rules: readonly Rule[];
  readonly breaker: { failureThreshold: number; cooldownMs: number; drainTimeoutMs: number } | undefined;
  readonly rateLimit: { limit: number; intervalMs: number } | undefined;
}

interface Case {
  readonly stages: readonly StageCase[];
  readonly pipelineRules: readonly Rule[];
  /** scripts[item][stage]: attempt a does script[min(a, length) - 1]. */
  readonly scripts: readonly (readonly (readonly Fault[])[])[];
  readonly maxSkips: number | undefined;
  readonly maxDeadLetters: number | undefined;
  readonly abort: { kind: "none" | "graceful" | "force"; after: number };
  readonly asyncSource: boolean;
  readonly queueSize: number;
}

const ruleArb = fc.subarray<Rule>(["skip", "retryThenSkip", "halt", "force", "deadLetter"]);

const stageArb: fc.Arbitrary<StageCase> = fc.record({
  batch: fc.boolean(),
  batchSize: fc.integer({ min: 1, max: 3 }),
  concurrency: fc.integer({ min: 1, max: 4 }),
  maxRetries: fc.integer({ min: 0, max: 2 }),
  rules: ruleArb,
  breaker: fc.option(
    fc.record({
      failureThreshold: fc.integer({ min: 1, max: 3 }),
      cooldownMs: fc.integer({ min: 1, max: 3 }),
      drainTimeoutMs: fc.integer({ min: 0, max: 5 }),
    }),
    { nil: undefined },
  ),
  rateLimit: fc.option(
    fc.record({ limit: fc.integer({ min: 5, max: 50 }), intervalMs: fc.integer({ min: 1, max: 3 }) }),
    { nil: undefined, freq: 4 },
  ),
});

const faultArb = fc.constantFrom<Fault>(
  "ok",
  "ok",
  "ok",
  "ok",
  "ok",
  "ok",
  "ok",
  "ok",
  "async",
  "async",
  "async",
  "transient",
  "transient",
  "skippable",
  "plain",
  "halt",
  "force",
);

const caseArb: fc.Arbitrary<Case> = fc.array(stageArb, { minLength: 1, maxLength: 3 }).chain((stages) =>
  fc.record({
    stages: fc.constant(stages),
    pipelineRules: ruleArb,
    scripts: fc.array(
      fc.array(fc.array(faultArb, { minLength: 1, maxLength: 3 }), {
        minLength: stages.length,
        maxLength: stages.length,
      }),
      { minLength: 0, maxLength: 30 },
    ),
    maxSkips: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined, freq: 3 }),
    maxDeadLetters: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined, freq: 3 }),
    abort: fc.record({
      kind: fc.constantFrom<"none" | "graceful" | "force">("none", "none", "graceful", "force"),
      after: fc.integer({ min: 0, max: 20 }),
    }),
    asyncSource: fc.boolean(),
    queueSize: fc.integer({ min: 1, max: 8 }),
  })
);

function rulesOf(rules: readonly Rule[]): OnError | undefined {
  return rules.length === 0 ? undefined : rules.flatMap((rule) => RULES[rule]);
}

/** Runs one attempt of item `index` at stage `s` as its script says. */
function act(c: Case, index: number, s: number, attempt: number, value: number): number | Promise<number> {
  const script = c.scripts[index][s];
  const fault = script[Math.min(attempt, script.length) - 1];
  if (fault === "ok") return value;
  if (fault === "async") return Promise.resolve(value);
  throw FAULTS[fault]();
}

function build(c: Case, ends: ItemEndInfo[], started: (string | number)[]) {
  const stages: AnyStage[] = c.stages.map((st, s) => {
    const common = {
      concurrency: st.concurrency,
      maxRetries: st.maxRetries,
      backoff: { initialDelayMs: 0 },
      onError: rulesOf(st.rules),
      circuitBreaker: st.breaker,
      rateLimit: st.rateLimit,
    };
    if (!st.batch) {
      return stage(`s${s}`, (n: number, ctx) => act(c, n, s, ctx.attempt, n), common) as AnyStage;
    }
    return batchStage(`s${s}`, (rows: readonly number[], ctx) => {
      for (const n of rows) act(c, n, s, ctx.attempt, n); // the batch fails as its first failing item says
      return rows;
    }, { ...common, batchSize: st.batchSize, flushIntervalMs: 1 }) as AnyStage;
  });
  return new Pipeline({
    name: "strategies",
    stages: stages as unknown as readonly [AnyStage],
    queueSize: c.queueSize,
    onError: rulesOf(c.pipelineRules),
    maxSkips: c.maxSkips,
    maxDeadLetters: c.maxDeadLetters,
    hooks: {
      onItemStart: ({ itemId }) => void started.push(itemId),
      onItemEnd: (info) => void ends.push(info),
    },
  });
}

function canHalt(c: Case): boolean {
  return c.maxSkips !== undefined || c.maxDeadLetters !== undefined ||
    c.stages.some((st) =>
      [...(st.rules.length ? st.rules : c.pipelineRules)].some((r) => r === "halt" || r === "force")
    );
}

/** What the cases exercised, so that the test can tell it covered the strategies. */
const seen = { halted: 0, forcedHalts: 0, skipped: 0, deadLettered: 0, completed: 0, circuitOpenErrors: 0 };

async function runCase(c: Case): Promise<string[]> {
  const problems: string[] = [];
  const ends: ItemEndInfo[] = [];
  const started: (string | number)[] = [];
  const pipeline = build(c, ends, started);
  const count = c.scripts.length;
  const stop = new AbortController();
  const force = new AbortController();
  let completedSeen = 0;
  const onEnd = (info: ItemEndInfo) => {
    if (info.fate === "completed" && ++completedSeen === c.abort.after) {
      (c.abort.kind === "graceful" ? stop : force).abort(new Error("property abort"));
    }
  };
  const values = Array.from({ length: count }, (_, i) => i);
  async function* slowly() {
    for (const value of values) {
      await Promise.resolve();
      yield value;
    }
  }
  const source = c.asyncSource ? slowly() : values;
  const tracking = ends.push.bind(ends);
  ends.push = (...infos: ItemEndInfo[]) => {
    for (const info of infos) if (c.abort.kind !== "none") onEnd(info);
    return tracking(...infos);
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), 20_000)));
  const outcome = await Promise.race([
    pipeline.run(source as never, { signal: stop.signal, forceSignal: force.signal }).then(
      (metrics) => ({ metrics, error: undefined as unknown }),
      (error: unknown) => ({ metrics: undefined as PipelineMetrics | undefined, error }),
    ),
    hang,
  ]);
  clearTimeout(timer);
  if (outcome === "hung") return ["run did not settle within 20 s"];
  let metrics = outcome.metrics;
  if (outcome.error !== undefined) {
    if (!(outcome.error instanceof HaltError)) return [`run rejected with ${String(outcome.error)}`];
    if (!canHalt(c)) problems.push("a HaltError without any halt rule or limit");
    metrics = outcome.error.metrics;
    if (!metrics) return ["the HaltError has no metrics"];
    if (outcome.error.deadLetters.length !== metrics.totalFailed) {
      problems.push(`HaltError.deadLetters ${outcome.error.deadLetters.length}, totalFailed ${metrics.totalFailed}`);
    }
  }
  const m = metrics!;
  if (outcome.error instanceof HaltError) {
    seen.halted++;
    if (outcome.error.mode === "force") seen.forcedHalts++;
  }
  seen.skipped += m.totalSkipped;
  seen.deadLettered += m.totalFailed;
  seen.completed += m.totalCompleted;
  seen.circuitOpenErrors += pipeline.deadLetters.filter((l) => l.error.name === "CircuitOpenError").length;
  const sum = m.totalCompleted + m.totalFailed + m.totalFiltered + m.totalSkipped;
  if (m.totalIngested !== sum) problems.push(`conservation: ingested ${m.totalIngested}, ended ${sum}`);
  if (m.itemsInFlight !== 0) problems.push(`itemsInFlight ${m.itemsInFlight}`);
  if (m.totalIngested !== started.length) problems.push(`ingested ${m.totalIngested}, onItemStart ${started.length}`);
  if (c.abort.kind === "none" && outcome.error === undefined && m.totalIngested !== count) {
    problems.push(`ingested ${m.totalIngested} of ${count} without an abort or halt`);
  }
  const endsById = new Map<string | number, ItemEndInfo[]>();
  for (const info of ends) endsById.set(info.itemId, [...(endsById.get(info.itemId) ?? []), info]);
  for (const id of started) {
    const fates = endsById.get(id) ?? [];
    if (fates.length !== 1) problems.push(`item ${id} ended ${fates.length} times (${fates.map((f) => f.fate)})`);
  }
  if (ends.length !== started.length) problems.push(`onItemEnd ${ends.length} for ${started.length} items`);
  const byFate = (fate: ItemEndInfo["fate"]) => ends.filter((info) => info.fate === fate).length;
  if (byFate("completed") !== m.totalCompleted) {
    problems.push(`completed ${byFate("completed")} vs ${m.totalCompleted}`);
  }
  if (byFate("skipped") !== m.totalSkipped) problems.push(`skipped ${byFate("skipped")} vs ${m.totalSkipped}`);
  if (byFate("deadLettered") !== m.totalFailed) problems.push(`dead ${byFate("deadLettered")} vs ${m.totalFailed}`);
  const lettered = pipeline.deadLetters.map((letter) => letter.itemId).sort();
  const expected = ends.filter((info) => info.fate === "deadLettered").map((info) => info.itemId).sort();
  if (JSON.stringify(lettered) !== JSON.stringify(expected)) problems.push("dead letters differ from onItemEnd");
  if (pipeline.deadLetters.some((letter) => letter.attempts < 1)) problems.push("a dead letter with attempts < 1");
  return problems;
}

test(
  "randomised error strategies: every item read ends exactly once (completed, dead-lettered, skipped, filtered), run never hangs, a halted run reports every item",
  {
    timeout: 600_000,
  },
  async () => {
    const parameters = propertyParameters(process.env, 150);
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        assert.deepEqual(await runCase(c), []);
      }),
      parameters,
    );
    if (parameters.numRuns >= 100) {
      for (const [what, count] of Object.entries(seen)) {
        if (what !== "circuitOpenErrors") assert.ok(count > 0, `no case exercised ${what}: ${JSON.stringify(seen)}`);
      }
    }
    if (process.env.SLUICE_PROPERTY_STATS) console.log(seen);
  },
);
