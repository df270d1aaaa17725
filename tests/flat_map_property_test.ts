/**
 * Randomised pipelines of map, filter (`skip`) and flatMap stages, with
 * random permanent and transient faults, random sources, `run`, `collect`
 * and `results` (sometimes left early), and random graceful and forced
 * shutdowns. After every run: conservation with the new fates,
 * `ingested = completed + failed + filtered + skipped + expanded`, nothing
 * in flight, the status tracker's counts equal to the metrics, and, for
 * runs nobody stopped, exactly the outputs, failures, filtered items and
 * expansions a plain model of the stages predicts. Run through an
 * acknowledging source ("acked"), each message is told once, and only after
 * every item made from it (at any depth of flatMap stages) has ended.
 *
 * SLUICE_PROPERTY_RUNS sets the number of cases (default 200).
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import fc from "fast-check";
import {
  type AcknowledgingSource,
  flatMapStage,
  PermanentError,
  Pipeline,
  type PipelineMetrics,
  skip,
  stage,
  StatusTracker,
} from "../mod.ts";

interface StageCase {
  readonly kind: "map" | "filter" | "flatMap" | "asyncFlatMap" | "tasks";
  readonly concurrency: number;
  readonly ordered: boolean;
  readonly maxRetries: number;
  readonly async: boolean;
  /** Values where `(v + salt) % mod === 0` fail for good (map), are filtered (filter), or break the iterable (flatMap). */
  readonly salt: number;
  readonly mod: number;
}

interface Case {
  readonly stages: readonly StageCase[];
  readonly items: readonly number[];
  readonly mode: "run" | "collect" | "results" | "results-break" | "acked";
  readonly stop: "none" | "graceful" | "force";
  readonly stopAfter: number;
  readonly queueSize: number;
}

const stageArb: fc.Arbitrary<StageCase> = fc.record({
  kind: fc.constantFrom("map", "filter", "flatMap", "asyncFlatMap", "tasks"),
  concurrency: fc.integer({ min: 1, max: 4 }),
  ordered: fc.boolean(),
  maxRetries: fc.integer({ min: 0, max: 2 }),
  async: fc.boolean(),
  salt: fc.integer({ min: 0, max: 6 }),
  mod: fc.integer({ min: 2, max: 7 }),
});

const caseArb: fc.Arbitrary<Case> = fc.record({
  stages: fc.array(stageArb, { minLength: 1, maxLength: 4 }),
  items: fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 30 }),
  mode: fc.constantFrom("run", "collect", "results", "results-break", "acked"),
  stop: fc.constantFrom("none", "none", "graceful", "force"),
  stopAfter: fc.integer({ min: 0, max: 40 }),
  queueSize: fc.integer({ min: 1, max: 8 }),
});

const hit = (st: StageCase, v: number) => (v + st.salt) % st.mod === 0;
const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** Transient failures: the first attempt of every value divisible by 3 fails (retried if the stage retries). */
function makeStages(c: Case) {
  const tried = new Set<string>();
  const transient = (s: number, v: number, ctx: { itemId: string | number }) => {
    const key = `${s}:${ctx.itemId}`;
    if (v % 3 === 0 && !tried.has(key)) {
      tried.add(key);
      throw new Error(`transient ${key}`);
    }
  };
  return c.stages.map((st, s) => {
    const options = { concurrency: st.concurrency, ordered: st.ordered, maxRetries: st.maxRetries };
    const name = `s${s}`;
    switch (st.kind) {
      case "map":
        return stage(name, async (v: number, ctx) => {
          if (st.async) await tick();
          if (hit(st, v)) throw new PermanentError(`bad ${v}`);
          transient(s, v, ctx);
          return v + 1;
        }, options);
      case "filter":
        return stage(name, async (v: number) => {
          if (st.async) await tick();
          return hit(st, v) ? skip : v;
        }, options);
      case "tasks":
        return stage(name, [(v: number) => v * 2, async (v: number) => {
          if (st.async) await tick();
          return hit(st, v) ? skip : v;
        }], options);
      case "flatMap":
        return flatMapStage(name, (v: number) => {
          if (hit(st, v)) {
            return (function* () {
              yield v;
              throw new Error(`broke at ${v}`);
            })();
          }
          return Array.from({ length: v % 3 }, (_, i) => v + i);
        }, options);
      case "asyncFlatMap":
        return flatMapStage(name, async (v: number) => {
          if (st.async) await tick();
          return (async function* () {
            for (let i = 0; i < v % 3; i++) {
              await tick();
              yield v + i;
            }
            if (hit(st, v)) throw new Error(`broke at ${v}`);
          })();
        }, options);
    }
  });
}

interface Expected {
  outputs: number[];
  ingested: number;
  failed: number;
  filtered: number;
  expanded: number;
}

/** What the stages do to the items when nothing stops the run. */
function model(c: Case): Expected {
  const e: Expected = { outputs: [], ingested: c.items.length, failed: 0, filtered: 0, expanded: 0 };
  let values: number[] = [...c.items];
  c.stages.forEach((st) => {
    const next: number[] = [];
    for (const v of values) {
      if (st.kind === "map") {
        if (hit(st, v) || (v % 3 === 0 && st.maxRetries === 0)) e.failed++;
        else next.push(v + 1);
      } else if (st.kind === "filter") {
        if (hit(st, v)) e.filtered++;
        else next.push(v);
      } else if (st.kind === "tasks") {
        if (hit(st, v * 2)) e.filtered++;
        else next.push(v * 2);
      } else if (st.kind === "flatMap") {
        if (hit(st, v)) {
          next.push(v);
          e.ingested++;
          e.failed++;
        } else {
          const children = Array.from({ length: v % 3 }, (_, i) => v + i);
          next.push(...children);
          e.ingested += children.length;
          e.expanded++;
        }
      } else {
        const children = Array.from({ length: v % 3 }, (_, i) => v + i);
        next.push(...children);
        e.ingested += children.length;
        if (hit(st, v)) e.failed++;
        else e.expanded++;
      }
    }
    values = next;
  });
  e.outputs = values;
  return e;
}

/**
 * The items as an acknowledging source's messages `m0`, `m1`, … and, on one
 * clock, when each item ended (`onItemEnd`) and each message was told.
 */
function acknowledging(items: readonly number[]) {
  let clock = 0;
  let read = 0;
  const ended = new Map<string, number>();
  const told: { id: string; fate: string; at: number }[] = [];
  const source: AcknowledgingSource<number> = {
    async *[Symbol.asyncIterator]() {
      yield* items;
    },
    itemId: () => `m${read++}`,
    settle: (settled) => {
      for (const { id, fate } of settled) told.push({ id: String(id), fate, at: ++clock });
    },
    close: async () => {},
  };
  const onItemEnd = ({ itemId }: { itemId: string | number }) => void ended.set(String(itemId), ++clock);
  /** Each message read told once, after all of its descendants (`m3.0`, `m3.0.1`, …) ended. */
  function check(stopped: boolean): string[] {
    const problems: string[] = [];
    const once = new Set(told.map((t) => t.id));
    if (once.size !== told.length) problems.push(`a message told twice: ${told.map((t) => t.id)}`);
    for (const { id } of told) if (!/^m\d+$/.test(id)) problems.push(`told ${id}, which the source did not hand out`);
    if (!stopped && told.length !== items.length) problems.push(`told ${told.length} of ${items.length} messages`);
    if (told.length !== read) problems.push(`told ${told.length} of the ${read} messages read`);
    for (const { id, at } of told) {
      for (const [descendant, end] of ended) {
        if (descendant.startsWith(`${id}.`) && end > at) problems.push(`${id} told before ${descendant} ended`);
      }
    }
    return problems;
  }
  return { source, onItemEnd, check };
}

async function runCase(c: Case): Promise<string[]> {
  const acked = c.mode === "acked" ? acknowledging(c.items) : undefined;
  const tracker = new StatusTracker({ maxItems: 5 });
  let events = 0;
  const graceful = new AbortController();
  const force = new AbortController();
  const pipeline = new Pipeline({
    queueSize: c.queueSize,
    stages: makeStages(c) as never,
    statusTracker: tracker,
    ...(acked ? { hooks: { onItemEnd: acked.onItemEnd } } : {}),
    onEvent: () => {
      if (++events !== c.stopAfter) return;
      if (c.stop === "graceful") graceful.abort();
      if (c.stop === "force") force.abort(new Error("forced by the property"));
    },
  }) as unknown as Pipeline<readonly never[]>;
  const options = { signal: graceful.signal, forceSignal: force.signal };
  const source = c.items as never;
  let outputs: unknown[] | undefined;
  let metrics: PipelineMetrics;
  if (c.mode === "run") {
    metrics = await pipeline.run(source, options);
  } else if (acked) {
    metrics = await pipeline.run(acked.source as never, options);
  } else if (c.mode === "collect") {
    const result = await pipeline.collect(source, options);
    outputs = result.outputs;
    metrics = result.metrics;
  } else {
    const seen: unknown[] = [];
    for await (const value of pipeline.results(source, options)) {
      seen.push(value);
      if (c.mode === "results-break" && seen.length === 2) break;
    }
    if (c.mode === "results") outputs = seen;
    metrics = pipeline.getMetrics();
  }
  const problems: string[] = [];
  const m = metrics;
  const fates = m.totalCompleted + m.totalFailed + m.totalFiltered + m.totalSkipped + m.totalExpanded;
  if (m.totalIngested !== fates) problems.push(`ingested ${m.totalIngested} != fates ${fates}`);
  if (m.itemsInFlight !== 0) problems.push(`in flight ${m.itemsInFlight}`);
  if (m.totalFailed !== pipeline.deadLetters.length) problems.push(`failed ${m.totalFailed} != dead letters`);
  if (outputs && outputs.length !== m.totalCompleted) problems.push(`outputs ${outputs.length} != completed`);
  const stats = tracker.getStats();
  const pairs = [
    ["completed", m.totalCompleted],
    ["failed", m.totalFailed],
    ["filtered", m.totalFiltered],
    ["expanded", m.totalExpanded],
    ["queued", 0],
    ["in_progress", 0],
  ] as const;
  for (const [status, count] of pairs) {
    if (stats[status] !== count) problems.push(`tracker ${status} ${stats[status]} != ${count}`);
  }
  if (stats.total !== m.totalIngested) problems.push(`tracker total ${stats.total} != ingested ${m.totalIngested}`);
  if (stats.kept > 5) problems.push(`tracker kept ${stats.kept} > maxItems`);
  const stopped = c.mode === "results-break" || (c.stop !== "none" && c.stopAfter <= events);
  if (acked) problems.push(...acked.check(stopped));
  if (!stopped) {
    const e = model(c);
    const got = {
      ingested: m.totalIngested,
      failed: m.totalFailed,
      filtered: m.totalFiltered,
      expanded: m.totalExpanded,
    };
    const want = { ingested: e.ingested, failed: e.failed, filtered: e.filtered, expanded: e.expanded };
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      problems.push(`counts ${JSON.stringify(got)}, model ${JSON.stringify(want)}`);
    }
    if (outputs) {
      const ordered = c.stages.every((st) => st.ordered);
      const sort = (values: readonly unknown[]) => [...values].map(Number).sort((a, b) => a - b);
      const [a, b] = ordered ? [outputs.map(Number), e.outputs] : [sort(outputs), sort(e.outputs)];
      if (JSON.stringify(a) !== JSON.stringify(b)) problems.push(`outputs ${a}, model ${b}`);
    }
  }
  return problems;
}

const RUNS = 200;

test(
  `random map/filter/flatMap pipelines with faults and shutdowns keep every item's fate (${RUNS} cases by default)`,
  {
    timeout: 300_000,
  },
  async () => {
    const numRuns = Number(process.env.SLUICE_PROPERTY_RUNS ?? RUNS);
    const seed = process.env.SLUICE_PROPERTY_SEED ? Number(process.env.SLUICE_PROPERTY_SEED) : undefined;
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        assert.deepEqual(await runCase(c), []);
      }),
      { numRuns, seed },
    );
  },
);
