/**
 * Random graphs: one or two sources, up to ~12 nodes of stages (map,
 * filter, permanent and transient faults, sync or async, any concurrency,
 * ordered or not), routes, broadcasts, merges and broadcast-then-join
 * diamonds, run with `run`, `collect` or `start` (every output read), with
 * random graceful and forced stops. After every run: the graph's
 * conservation rule holds (`ingested + copies = completed + failed +
 * filtered + skipped + expanded + joined`), nothing is in flight, and no
 * run hangs. For runs nobody stopped, each output's values, each dead
 * letter's item and stage, and the filtered count are exactly what a plain
 * model of the graph predicts: every copy of every item (one per branch of
 * each broadcast) met exactly one fate. Stopped runs give no more than the
 * model does. Taps that throw or are slow (with tiny buffers) change none of
 * that. Graph-wide error strategies: faults are dead-lettered or (an
 * `onError` skip rule) skipped, and a random `maxDeadLetters` may halt the
 * run (a `HaltError` whose metrics conserve, like a graceful stop). Every
 * run's `onItemEnd` hook hears each copy that left exactly once, and its
 * status tracker ends with no item queued or in progress.
 *
 * SLUICE_PROPERTY_RUNS sets the number of cases (default 150).
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import fc from "fast-check";
import {
  graph,
  type GraphBuilder,
  type GraphMetrics,
  HaltError,
  type Handle,
  PermanentError,
  skip,
  source,
  stage,
  StatusTracker,
} from "../mod.ts";
import { guard } from "./_helpers.ts";

interface StageCase {
  readonly kind: "map" | "fail" | "filter" | "transient";
  readonly async: boolean;
  readonly concurrency: number;
  readonly ordered: boolean;
  readonly salt: number;
  readonly mod: number;
}

type Op =
  | { readonly op: "stage"; readonly pick: number; readonly stage: StageCase }
  | { readonly op: "route"; readonly pick: number; readonly mod: number }
  | { readonly op: "broadcast"; readonly pick: number; readonly ways: number }
  | { readonly op: "merge"; readonly pick: number; readonly other: number }
  | { readonly op: "diamond"; readonly pick: number; readonly left: StageCase; readonly right: StageCase };

interface Case {
  readonly sources: number;
  readonly items: readonly number[];
  readonly ops: readonly Op[];
  readonly mode: "run" | "collect" | "start";
  readonly stop: "none" | "graceful" | "force";
  readonly stopAfter: number;
  readonly queueSize: number;
  /** Hang a tap on every stage's output: one that throws on odd values, and awaits a timer on the others. */
  readonly taps: boolean;
  /** What the graph's `onError` does with a permanent fault. */
  readonly faults: "deadLetter" | "skip";
  /** The graph's `maxDeadLetters`, if any. */
  readonly maxDeadLetters: number | undefined;
}

const stageArb: fc.Arbitrary<StageCase> = fc.record({
  kind: fc.constantFrom("map", "fail", "filter", "transient"),
  async: fc.boolean(),
  concurrency: fc.integer({ min: 1, max: 3 }),
  ordered: fc.boolean(),
  salt: fc.integer({ min: 0, max: 5 }),
  mod: fc.integer({ min: 2, max: 6 }),
});

const pick = fc.nat({ max: 20 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("stage" as const), pick, stage: stageArb }),
  fc.record({ op: fc.constant("route" as const), pick, mod: fc.integer({ min: 2, max: 4 }) }),
  fc.record({ op: fc.constant("broadcast" as const), pick, ways: fc.integer({ min: 2, max: 3 }) }),
  fc.record({ op: fc.constant("merge" as const), pick, other: pick }),
  fc.record({ op: fc.constant("diamond" as const), pick, left: stageArb, right: stageArb }),
);

const caseArb: fc.Arbitrary<Case> = fc.record({
  sources: fc.integer({ min: 1, max: 2 }),
  items: fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 25 }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 6 }),
  mode: fc.constantFrom("run", "collect", "start"),
  stop: fc.constantFrom("none", "none", "graceful", "force"),
  stopAfter: fc.integer({ min: 1, max: 60 }),
  queueSize: fc.integer({ min: 1, max: 6 }),
  taps: fc.boolean(),
  faults: fc.constantFrom("deadLetter", "skip"),
  maxDeadLetters: fc.option(fc.nat({ max: 4 }), { nil: undefined, freq: 3 }),
});

/** A value on its way: the item's id (to check fates per item) and a number. */
interface V {
  readonly id: number;
  readonly v: number;
}

const hit = (s: StageCase, v: number) => (v + s.salt) % s.mod === 0;
const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** What a stage does to one value in the model: a new value, a failure or a filter. */
function modelStage(s: StageCase, v: number): { v: number } | "failed" | "filtered" {
  if (s.kind === "fail" && hit(s, v)) return "failed";
  if (s.kind === "filter" && hit(s, v)) return "filtered";
  return { v: v + 1 };
}

/** The stage itself: transient faults fail the first attempt of values divisible by 3, then succeed on retry. */
function makeStage(name: string, s: StageCase) {
  const maxRetries = s.kind === "transient" ? 1 : 0;
  return stage(name, async (x: V, ctx) => {
    if (s.async) await tick();
    if (s.kind === "fail" && hit(s, x.v)) throw new PermanentError(`bad ${x.v}`);
    if (s.kind === "filter" && hit(s, x.v)) return skip;
    if (s.kind === "transient" && x.v % 3 === 0 && ctx.attempt === 1) throw new Error("transient");
    return { id: x.id, v: x.v + 1 };
  }, { concurrency: s.concurrency, ordered: s.ordered, maxRetries, backoff: { initialDelayMs: 0 } });
}

/** A model copy: an item's id and value on one branch. */
type Copy = V;

interface Model {
  outputs: Record<string, number[]>;
  deadLetters: string[];
  filtered: number;
  skipped: number;
}

/** One open end of the graph being built: the handle, and the model's copies that flow out of it. */
interface End {
  readonly handle: Handle<V>;
  readonly copies: Copy[];
  /** True when an id comes more than once out of this end (a merge of two ends that share items). */
  readonly repeats: boolean;
}

/**
 * Builds the graph from the case's ops and, beside it, the model: each op
 * takes one open end (by `pick`) and leaves new ones; every end left open
 * at the end becomes an output.
 */
function build(c: Case, b: GraphBuilder, sources: Handle<V>[], model: Model): Record<string, Handle<V>> {
  const values = c.items.map((v, i) => ({ id: i, v }));
  const ends: End[] = sources.map((handle, s) => ({
    handle,
    copies: values.filter((_, i) => i % c.sources === s),
    repeats: false,
  }));
  let nodes = sources.length;
  let n = 0;
  const take = (at: number) => ends.splice(at % ends.length, 1)[0];
  const stageEnd = (end: End, s: StageCase, name: string): End => {
    const copies: Copy[] = [];
    for (const copy of end.copies) {
      const out = modelStage(s, copy.v);
      if (out === "failed" && c.faults === "skip") model.skipped++;
      else if (out === "failed") model.deadLetters.push(`${copy.id}@${name}`);
      else if (out === "filtered") model.filtered++;
      else copies.push({ id: copy.id, v: out.v });
    }
    const handle = b.add(makeStage(name, s), end.handle);
    if (c.taps) {
      b.tap(handle, async (x) => {
        if (x.v % 2 === 1) throw new Error("a tap that throws");
        await tick();
      }, { bufferSize: 2, whenFull: samples(name) ? "sample" : "drop" });
    }
    return { handle, copies, repeats: end.repeats };
  };
  for (const op of c.ops) {
    if (nodes >= 12 || ends.length === 0) break;
    const name = `n${n++}`;
    if (op.op === "stage") {
      ends.push(stageEnd(take(op.pick), op.stage, name));
      nodes++;
    } else if (op.op === "route") {
      const end = take(op.pick);
      const branches = Array.from({ length: op.mod }, (_, i) => `r${i}`);
      const handles = b.route(name, end.handle, { key: (x) => `r${x.v % op.mod}`, branches });
      for (const branch of branches) {
        const copies = end.copies.filter((copy) => `r${copy.v % op.mod}` === branch);
        ends.push({ handle: handles[branch], copies, repeats: end.repeats });
      }
      nodes++;
    } else if (op.op === "broadcast") {
      const end = take(op.pick);
      const fan = b.broadcast(name, end.handle);
      for (let i = 0; i < op.ways; i++) {
        ends.push(
          stageEnd({ handle: fan, copies: end.copies, repeats: end.repeats }, { ...passStage }, `${name}b${i}`),
        );
      }
      nodes += 1 + op.ways;
    } else if (op.op === "merge") {
      if (ends.length < 2) continue;
      const first = take(op.pick);
      const second = take(op.other);
      const ids = new Set(first.copies.map((copy) => copy.id));
      const repeats = first.repeats || second.repeats || second.copies.some((copy) => ids.has(copy.id));
      ends.push({
        handle: b.merge(name, [first.handle, second.handle]),
        copies: [...first.copies, ...second.copies],
        repeats,
      });
      nodes++;
    } else {
      const end = take(op.pick);
      if (end.repeats) {
        ends.push(end); // a join pairs copies by id: only where each id comes once
        continue;
      }
      const fan = b.broadcast(`${name}f`, end.handle);
      const left = stageEnd({ handle: fan, copies: end.copies, repeats: false }, op.left, `${name}l`);
      const right = stageEnd({ handle: fan, copies: end.copies, repeats: false }, op.right, `${name}r`);
      const joined = b.join(`${name}j`, { l: left.handle, r: right.handle });
      const sum = b.add(stage(`${name}s`, (p: { l: V; r: V }) => ({ id: p.l.id, v: p.l.v + p.r.v })), joined);
      const rightById = new Map(right.copies.map((copy) => [copy.id, copy]));
      const leftIds = new Set(left.copies.map((copy) => copy.id));
      const copies: Copy[] = [];
      for (const l of left.copies) {
        const r = rightById.get(l.id);
        if (r) copies.push({ id: l.id, v: l.v + r.v });
        else model.deadLetters.push(`${l.id}@${name}j`);
      }
      for (const r of right.copies) if (!leftIds.has(r.id)) model.deadLetters.push(`${r.id}@${name}j`);
      ends.push({ handle: sum, copies, repeats: false });
      nodes += 5;
    }
  }
  const outputs: Record<string, Handle<V>> = {};
  ends.forEach((end, i) => {
    outputs[`out${i}`] = end.handle;
    model.outputs[`out${i}`] = end.copies.map((copy) => copy.v);
  });
  return outputs;
}

/** Alternates the taps' `whenFull` by node. */
const samples = (name: string) => name.length % 2 === 0;

const passStage: StageCase = { kind: "map", async: false, concurrency: 1, ordered: true, salt: 0, mod: 2 };

function sorted(values: readonly number[]): number[] {
  return [...values].sort((x, y) => x - y);
}

/** `sub` ⊆ `all` as multisets. */
function within(sub: readonly (number | string)[], all: readonly (number | string)[]): boolean {
  const left = new Map<number | string, number>();
  for (const value of all) left.set(value, (left.get(value) ?? 0) + 1);
  for (const value of sub) {
    const count = left.get(value) ?? 0;
    if (count === 0) return false;
    left.set(value, count - 1);
  }
  return true;
}

async function runCase(c: Case): Promise<string[]> {
  const model: Model = { outputs: {}, deadLetters: [], filtered: 0, skipped: 0 };
  const names = Array.from({ length: c.sources }, (_, s) => `s${s}`);
  const declared = Object.fromEntries(names.map((name) => [name, source<V>()]));
  let events = 0;
  const graceful = new AbortController();
  const force = new AbortController();
  let ends = 0;
  const tracker = new StatusTracker();
  const g = graph({
    onError: c.faults === "skip" ? [[PermanentError, "skip"]] : undefined,
    maxDeadLetters: c.maxDeadLetters,
    hooks: { onItemEnd: () => void ends++ },
    statusTracker: tracker,
    queueSize: c.queueSize,
    sources: declared,
    id: (value) => (value as V).id,
    onEvent: () => {
      if (++events !== c.stopAfter) return;
      if (c.stop === "graceful") graceful.abort();
      if (c.stop === "force") force.abort(new Error("forced by the property"));
    },
  }, (b, handles) => build(c, b, names.map((name) => handles[name] as Handle<V>), model));
  const inputs = Object.fromEntries(
    names.map((name, s) => [name, c.items.map((v, id) => ({ id, v })).filter((_, i) => i % c.sources === s)]),
  );
  const options = { signal: graceful.signal, forceSignal: force.signal };
  let outputs: Record<string, V[]> | undefined;
  let metrics: GraphMetrics;
  let halted = false;
  try {
    if (c.mode === "run") {
      metrics = await g.run(inputs, options);
    } else if (c.mode === "collect") {
      const result = await g.collect(inputs, options);
      outputs = result.outputs as Record<string, V[]>;
      metrics = result.metrics;
    } else {
      const run = g.start(inputs, options);
      const read = async (stream: ReadableStream<unknown>) => {
        const seen: V[] = [];
        for await (const value of stream) seen.push(value as V);
        return seen;
      };
      const entries = Object.entries(run.outputs as Record<string, ReadableStream<unknown>>);
      const values = await Promise.all(entries.map(([, stream]) => read(stream)));
      outputs = Object.fromEntries(entries.map(([name], i) => [name, values[i]]));
      metrics = await run.finished;
    }
  } catch (error) {
    if (!(error instanceof HaltError) || c.maxDeadLetters === undefined) throw error;
    halted = true;
    metrics = error.metrics as GraphMetrics;
  }
  const problems: string[] = [];
  const m = metrics;
  const fates = m.totalCompleted + m.totalFailed + m.totalFiltered + m.totalSkipped + m.totalExpanded + m.totalJoined;
  if (m.totalIngested + m.totalCopies !== fates) {
    problems.push(`ingested ${m.totalIngested} + copies ${m.totalCopies} != fates ${fates}`);
  }
  if (m.itemsInFlight !== 0) problems.push(`in flight ${m.itemsInFlight}`);
  if (ends !== fates - m.totalJoined) problems.push(`onItemEnd heard ${ends} ends of ${fates - m.totalJoined}`);
  const unsettled = tracker.getByStatus("queued").length + tracker.getByStatus("in_progress").length;
  if (unsettled !== 0) problems.push(`${unsettled} items end queued or in progress in the status tracker`);
  if (m.totalFailed !== g.deadLetters.length) problems.push(`failed ${m.totalFailed} != dead letters`);
  const completed = Object.values(m.outputs).reduce((sum, count) => sum + count, 0);
  if (completed !== m.totalCompleted) problems.push(`outputs count ${completed} != completed ${m.totalCompleted}`);
  const letters = g.deadLetters.map((d) => `${d.itemId}@${d.stage}`);
  const stopped = halted || (c.stop !== "none" && c.stopAfter <= events);
  for (const [name, want] of Object.entries(model.outputs)) {
    const got = outputs?.[name]?.map((x) => x.v);
    if (!got) continue;
    if (!stopped && JSON.stringify(sorted(got)) !== JSON.stringify(sorted(want))) {
      problems.push(`output ${name}: ${sorted(got)}, model ${sorted(want)}`);
    }
    if (stopped && !within(got, want)) problems.push(`output ${name}: ${sorted(got)} not within model ${sorted(want)}`);
  }
  if (!stopped) {
    if (JSON.stringify(letters.sort()) !== JSON.stringify([...model.deadLetters].sort())) {
      problems.push(`dead letters ${letters.sort()}, model ${[...model.deadLetters].sort()}`);
    }
    if (m.totalFiltered !== model.filtered) problems.push(`filtered ${m.totalFiltered}, model ${model.filtered}`);
    if (m.totalSkipped !== model.skipped) problems.push(`skipped ${m.totalSkipped}, model ${model.skipped}`);
    const limit = c.maxDeadLetters ?? Infinity;
    const counted = g.deadLetters.filter((d) => d.error.name !== "JoinError").length;
    if (counted > limit) problems.push(`${counted} stage dead letters and no halt at maxDeadLetters ${limit}`);
    if (m.totalIngested !== c.items.length) problems.push(`ingested ${m.totalIngested} of ${c.items.length}`);
  } else if (c.stop === "graceful" || (halted && c.stop === "none")) {
    const shutdown = g.deadLetters.filter((d) => d.error.name === "ShutdownError");
    if (shutdown.length > 0) problems.push(`a graceful stop dead-lettered ${shutdown.length} with ShutdownError`);
  }
  return problems;
}

const RUNS = 150;

test(
  `random graphs with routes, broadcasts, merges, joins, faults and stops keep every copy's fate (${RUNS} cases by default)`,
  { timeout: 300_000 },
  async () => {
    const numRuns = Number(process.env.SLUICE_PROPERTY_RUNS ?? RUNS);
    const seed = process.env.SLUICE_PROPERTY_SEED ? Number(process.env.SLUICE_PROPERTY_SEED) : undefined;
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        assert.deepEqual(await guard(runCase(c), "a graph run", 10_000), []);
      }),
      { numRuns, seed },
    );
  },
);
