/**
 * The measuring loop: one warm-up run per contender, then rounds in which
 * every contender runs once, interleaved (A B C, B C A, C A B, …: the order
 * rotates so that no contender always follows the same one), a forced
 * young-generation collection before each run where the runtime allows it
 * (`collectBeforeRun` says why not a full one), and a check of every run's
 * result. Throughput is the median of the rounds' items/s.
 *
 * @module
 */

import type { BenchCase, CaseRun, Size } from "../cases.ts";
import type { Contender, Outcome } from "./job.ts";
import { collectBeforeRun } from "./runtime.ts";

export interface ThroughputResult {
  readonly contender: string;
  /** Items per measured run: the case's N, or fewer when a run would not fit the time budget. */
  readonly n: number;
  /** Median over the rounds. */
  readonly itemsPerSecond: number;
  /** Items/s of each round, in round order. */
  readonly samples: readonly number[];
}

export interface LatencyResult {
  readonly contender: string;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Items/s of each round (bounded by the trickle). */
  readonly samples: readonly number[];
}

export type Log = (line: string) => void;

/** Runs one contender once over `n` items, checks the result, and returns the run and its seconds. */
async function runOnce(
  benchCase: BenchCase,
  contender: Contender,
  n: number,
  stages?: number,
): Promise<{ run: CaseRun; seconds: number; outcome: Outcome }> {
  const run = benchCase.make(n, stages);
  await collectBeforeRun();
  const started = performance.now();
  let outcome: Outcome;
  try {
    outcome = await contender.run(run.job);
  } catch (error) {
    throw new Error(`case ${benchCase.id}, ${contender.name}: the run failed: ${describe(error)}`, { cause: error });
  }
  const seconds = (performance.now() - started) / 1000;
  try {
    run.verify(outcome);
  } catch (error) {
    throw new Error(`case ${benchCase.id}, ${contender.name}: ${describe(error)}`, { cause: error });
  }
  return { run, seconds, outcome };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function rotated<T>(items: readonly T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The value below which a fraction `q` of `sorted` falls (nearest rank). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** One warm-up run per contender; returns each one's warm-up items/s. */
async function warmUp(
  benchCase: BenchCase,
  contenders: readonly Contender[],
  size: Size,
  log: Log,
): Promise<Map<string, number>> {
  const rates = new Map<string, number>();
  if (size.warmup <= 0) return rates;
  for (const contender of contenders) {
    const { seconds } = await runOnce(benchCase, contender, size.warmup);
    rates.set(contender.name, size.warmup / seconds);
    log(`  warm-up ${contender.name}: ${format(size.warmup / seconds)} items/s`);
  }
  return rates;
}

/**
 * Items per measured run for a contender: the case's N, unless its warm-up
 * rate says one run would take longer than `budgetSeconds`; then what fits
 * in the budget (3 significant digits, never below the warm-up size).
 */
function itemsFor(n: number, warmupRate: number | undefined, size: Size, budgetSeconds: number): number {
  if (budgetSeconds <= 0 || warmupRate === undefined || n / warmupRate <= budgetSeconds) return n;
  const fits = warmupRate * budgetSeconds;
  const step = 10 ** Math.max(0, Math.floor(Math.log10(fits)) - 2);
  return Math.min(n, Math.max(size.warmup, Math.floor(fits / step) * step));
}

export async function measureThroughput(
  benchCase: BenchCase,
  contenders: readonly Contender[],
  size: Size,
  budgetSeconds: number,
  log: Log,
): Promise<ThroughputResult[]> {
  const warmupRates = await warmUp(benchCase, contenders, size, log);
  const items = new Map(
    contenders.map((c) => [c.name, itemsFor(size.n, warmupRates.get(c.name), size, budgetSeconds)]),
  );
  if (benchCase.sameN) {
    const fewest = Math.min(...items.values());
    for (const name of items.keys()) items.set(name, fewest);
  }
  for (const [name, n] of items) {
    if (n < size.n) log(`  ${name}: ${n.toLocaleString("en-US")} items per run (N would take over ${budgetSeconds} s)`);
  }
  const samples = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let round = 0; round < size.rounds; round++) {
    for (const contender of rotated(contenders, round)) {
      const n = items.get(contender.name)!;
      const { seconds } = await runOnce(benchCase, contender, n);
      const rate = n / seconds;
      samples.get(contender.name)!.push(rate);
      log(`  round ${round + 1}/${size.rounds} ${contender.name}: ${format(rate)} items/s (${seconds.toFixed(2)} s)`);
    }
  }
  return contenders.map((contender) => {
    const rates = samples.get(contender.name)!;
    return { contender: contender.name, n: items.get(contender.name)!, itemsPerSecond: median(rates), samples: rates };
  });
}

/**
 * The latency case: every contender over `benchCase.stages` stages, and
 * `baseline` over zero stages, interleaved; quantiles over every measured item.
 */
export async function measureLatency(
  benchCase: BenchCase,
  contenders: readonly Contender[],
  baseline: Contender,
  size: Size,
  log: Log,
): Promise<{ baseline: LatencyResult; results: LatencyResult[] }> {
  const entries = [
    { name: "baseline", contender: baseline, stages: 0 },
    ...contenders.map((contender) => ({ name: contender.name, contender, stages: benchCase.stages })),
  ];
  if (size.warmup > 0) {
    for (const entry of entries) await runOnce(benchCase, entry.contender, size.warmup, entry.stages);
    log(`  warmed up`);
  }
  const pooled = new Map<string, { latencies: number[]; rates: number[] }>(
    entries.map((e) => [e.name, { latencies: [], rates: [] }]),
  );
  for (let round = 0; round < size.rounds; round++) {
    for (const entry of rotated(entries, round)) {
      const { run, seconds } = await runOnce(benchCase, entry.contender, size.n, entry.stages);
      const into = pooled.get(entry.name)!;
      for (const ms of run.latencies ?? []) into.latencies.push(ms);
      into.rates.push(size.n / seconds);
      const sorted = [...(run.latencies ?? [])].sort((a, b) => a - b);
      log(
        `  round ${round + 1}/${size.rounds} ${entry.name}: p50 ${quantile(sorted, 0.5).toFixed(3)} ms, ` +
          `p99 ${quantile(sorted, 0.99).toFixed(3)} ms`,
      );
    }
  }
  const summarise = (name: string): LatencyResult => {
    const { latencies, rates } = pooled.get(name)!;
    const sorted = latencies.sort((a, b) => a - b);
    return {
      contender: name,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      maxMs: sorted[sorted.length - 1],
      samples: rates,
    };
  };
  return { baseline: summarise("baseline"), results: contenders.map((c) => summarise(c.name)) };
}

export function format(rate: number): string {
  if (!Number.isFinite(rate)) return String(rate);
  if (rate >= 1e6) return `${(rate / 1e6).toFixed(2)}M`;
  if (rate >= 1e3) return `${(rate / 1e3).toFixed(1)}k`;
  return rate.toFixed(0);
}
