/**
 * Live metrics: counters per pipeline and per stage, and latency quantiles
 * from a fixed-size histogram, so memory stays constant in the item count.
 *
 * @module
 */

import { Item } from "./envelope.ts";

/** Latency quantiles of successful items in a stage, in milliseconds. */
export interface LatencySummary {
  /** The median. */
  readonly p50: number;
  /** The 95th percentile. */
  readonly p95: number;
  /** The 99th percentile. */
  readonly p99: number;
  /** The slowest. */
  readonly max: number;
  /** How many items were recorded (the stage's successful items). */
  readonly count: number;
  /** The sum of their latencies (for a mean, or a Prometheus summary's `_sum`). */
  readonly sum: number;
}

/** One worker's counters, in `stageMetrics[stage].workers`: to see how evenly a stage's load is spread. */
export interface WorkerMetrics {
  /** The worker's name, as `pipeline.workerNames()` gives it: `"<stage>-<index>"`. */
  readonly name: string;
  /** Items the worker finished, whatever their outcome (succeeded, filtered or failed). */
  readonly processed: number;
  /** Of those, items that failed for good. */
  readonly failed: number;
  /** Milliseconds the worker spent in attempts and backoff. */
  readonly busyMs: number;
}

/** One stage's counters. */
export interface StageMetrics {
  /** Items that left the stage: `succeeded + failed + filtered + skipped` (a flatMap stage's `succeeded` are its expanded parents). */
  readonly processed: number;
  /** Items the stage finished successfully. */
  readonly succeeded: number;
  /** Items that failed in the stage for good. */
  readonly failed: number;
  /** Items the stage dropped on purpose by returning `skip`. */
  readonly filtered: number;
  /** Items whose failure error routing turned into a skip in this stage. */
  readonly skipped: number;
  /** flatMap stages: parents replaced by their outputs (also counted in `succeeded`). */
  readonly expanded: number;
  /** flatMap stages: outputs produced, each a new item (counted in `totalIngested`). */
  readonly spawned: number;
  /** Per worker, in index order. */
  readonly workers: readonly WorkerMetrics[];
  /** Retry attempts made (attempts after the first). */
  readonly retries: number;
  /** Items in an attempt or in backoff right now. */
  readonly inFlight: number;
  /** Items waiting in the stage's input queue right now. */
  readonly queueDepth: number;
  /** Per successful item, attempts and backoff included. */
  readonly latency: LatencySummary;
  /** Successful items per second since the run started. */
  readonly throughputPerSecond: number;
  /** The stage's circuit breaker state; only on stages with a `circuitBreaker`. */
  readonly circuit?: "closed" | "open" | "halfOpen";
}

/**
 * A snapshot of a pipeline's metrics, from `pipeline.getMetrics()` or `run`.
 * At the end of every run every item has exactly one fate,
 * `totalIngested === totalCompleted + totalFailed + totalFiltered + totalSkipped`,
 * and `itemsInFlight === 0`.
 */
export interface PipelineMetrics {
  /** Items read from the source, plus the outputs of flatMap stages (each a new item). */
  readonly totalIngested: number;
  /** Items that left the last stage. */
  readonly totalCompleted: number;
  /** Items that failed for good in some stage. */
  readonly totalFailed: number;
  /** Items a stage dropped on purpose by returning `skip` (not dead letters). */
  readonly totalFiltered: number;
  /** Items whose failure error routing turned into a skip (not dead letters). */
  readonly totalSkipped: number;
  /**
   * Items a flatMap stage replaced by its outputs. The outputs are new items,
   * counted in `totalIngested`, so that
   * `totalIngested === totalCompleted + totalFailed + totalFiltered + totalSkipped + totalExpanded` at the end of a run.
   */
  readonly totalExpanded: number;
  /** Items ingested and not yet completed, failed, filtered, skipped or expanded. */
  readonly itemsInFlight: number;
  /** Completed items per second since the run started. */
  readonly throughputPerSecond: number;
  /** Per stage, by name, in pipeline order. */
  readonly stageMetrics: Readonly<Record<string, StageMetrics>>;
  /** Items dead-lettered (counted even when `deadLetterQueue` is false). */
  readonly deadLetterCount: number;
  /** Seconds since the run started (until it ended, once it has). */
  readonly durationSeconds: number;
}

/** Sub-buckets per power of two, as a power of two: 2^5 = 32. */
const SUB_BITS = 5;
const SUB = 1 << SUB_BITS;
/** Durations of 2^31 µs (~36 minutes) and more share the last bucket; `max` stays exact. */
const BUCKETS = SUB + (31 - SUB_BITS + 1) * SUB;

/**
 * A log-linear latency histogram over whole microseconds: exact below 32 µs,
 * then 32 buckets per power of two (at most ~3% relative error), fixed
 * memory. Bucketing is a few integer operations (no logarithm per item), in
 * module functions: on JavaScriptCore (Bun) a call to a `#private` method,
 * static or not, costs a few nanoseconds more than a plain function.
 * @internal
 */
export class LatencyHistogram {
  readonly #counts = new Uint32Array(BUCKETS);
  #total = 0;
  #max = 0;
  #sum = 0;

  record(ms: number): void {
    const value = ms > 0 ? ms : 0;
    this.#counts[bucketOf(value)]++;
    this.#total++;
    this.#sum += value;
    if (value > this.#max) this.#max = value;
  }

  /** How many durations were recorded. */
  get count(): number {
    return this.#total;
  }

  /** The sum of the durations recorded. */
  get sum(): number {
    return this.#sum;
  }

  summary(): LatencySummary {
    return {
      p50: this.quantile(0.5),
      p95: this.quantile(0.95),
      p99: this.quantile(0.99),
      max: this.#max,
      count: this.#total,
      sum: this.#sum,
    };
  }

  /** The value below which a fraction `q` of recordings fall (0 when empty). */
  quantile(q: number): number {
    if (this.#total === 0) return 0;
    const rank = Math.ceil(q * this.#total);
    let seen = 0;
    for (let bucket = 0; bucket < this.#counts.length; bucket++) {
      seen += this.#counts[bucket];
      if (seen >= rank) return Math.min(upperBoundMs(bucket), this.#max);
    }
    return this.#max;
  }
}

function bucketOf(ms: number): number {
  const us = ms * 1000;
  if (us >= 2 ** 31) return BUCKETS - 1;
  const whole = us | 0;
  if (whole < SUB) return whole;
  const exponent = 31 - Math.clz32(whole); // ≥ SUB_BITS
  const shift = exponent - SUB_BITS;
  return SUB + shift * SUB + ((whole >>> shift) & (SUB - 1));
}

function upperBoundMs(bucket: number): number {
  if (bucket < SUB) return bucket / 1000;
  const shift = Math.floor((bucket - SUB) / SUB);
  const mantissa = SUB + ((bucket - SUB) % SUB);
  return (((mantissa + 1) * 2 ** shift) - 1) / 1000;
}

/** One stage's live counters. @internal */
export class StageCounters {
  succeeded = 0;
  failed = 0;
  filtered = 0;
  skipped = 0;
  expanded = 0;
  spawned = 0;
  retries = 0;
  inFlight = 0;
  /** Each unit's duration, once per item: its `count` and `sum` are the stage's latency totals. */
  readonly latency = new LatencyHistogram();
  /** Per worker: items finished, items failed, milliseconds busy (set by the engine). */
  workerNames: readonly string[] = [];
  workerProcessed: number[] = [];
  workerFailed: number[] = [];
  workerBusyMs: number[] = [];
  /** The circuit breaker's state, on stages with one. */
  circuit: "closed" | "open" | "halfOpen" | undefined = undefined;
  /** Reads the stage's queue depth from its engine. */
  queueDepth: () => number = () => 0;
  /** Reads which of the stage's workers are busy, from its engine (for `pipeline.snapshot()`). */
  busyWorkers: () => readonly boolean[] = () => [];

  /** Makes the per-worker counters of a stage with `concurrency` workers. */
  useWorkers(stage: string, concurrency: number): void {
    this.workerNames = workerNamesOf(stage, concurrency);
    this.workerProcessed = new Array<number>(concurrency).fill(0);
    this.workerFailed = new Array<number>(concurrency).fill(0);
    this.workerBusyMs = new Array<number>(concurrency).fill(0);
  }

  snapshot(seconds: number): StageMetrics {
    const metrics: StageMetrics = {
      processed: this.succeeded + this.failed + this.filtered + this.skipped,
      succeeded: this.succeeded,
      failed: this.failed,
      filtered: this.filtered,
      skipped: this.skipped,
      expanded: this.expanded,
      spawned: this.spawned,
      workers: this.workerNames.map((name, i) => ({
        name,
        processed: this.workerProcessed[i],
        failed: this.workerFailed[i],
        busyMs: this.workerBusyMs[i],
      })),
      retries: this.retries,
      inFlight: this.inFlight,
      queueDepth: this.queueDepth(),
      latency: this.latency.summary(),
      throughputPerSecond: rate(this.succeeded, seconds),
    };
    return this.circuit === undefined ? metrics : { ...metrics, circuit: this.circuit };
  }
}

/** The counters of one run. @internal */
export class MetricsRecorder {
  ingested = 0;
  completed = 0;
  failed = 0;
  filtered = 0;
  skipped = 0;
  expanded = 0;
  deadLettered = 0;
  /** End to end, per completed item: from its first stage's receipt to leaving the last stage. */
  readonly endToEnd = new LatencyHistogram();
  /** Of `endToEnd.sum`, the time completed items spent in attempts (and backoff). */
  inAttemptTotalMs = 0;
  readonly stages: ReadonlyMap<string, StageCounters>;
  #startedAt = performance.now();
  #endedAt: number | undefined;

  constructor(stageNames: readonly string[]) {
    this.stages = new Map(stageNames.map((name) => [name, new StageCounters()]));
  }

  stage(name: string): StageCounters {
    const counters = this.stages.get(name);
    if (!counters) throw new Error(`No metrics for stage "${name}": this is a sluice bug`);
    return counters;
  }

  /** Items leaving the last stage at `now` (failures and dropped ones among them are passed over). */
  recordLeft(envelopes: readonly unknown[], now: number): void {
    for (const envelope of envelopes) {
      if (envelope instanceof Item) this.recordLeftItem(envelope, now);
    }
  }

  /** One completed item leaving the last stage at `now`. */
  recordLeftItem(item: Item, now: number): void {
    const total = now - item.bornAt;
    this.endToEnd.record(total);
    this.inAttemptTotalMs += item.workMs < total ? item.workMs : total;
  }

  end(): void {
    this.#endedAt ??= performance.now();
  }

  snapshot(): PipelineMetrics {
    const seconds = ((this.#endedAt ?? performance.now()) - this.#startedAt) / 1000;
    const stageMetrics: Record<string, StageMetrics> = {};
    for (const [name, counters] of this.stages) stageMetrics[name] = counters.snapshot(seconds);
    return {
      totalIngested: this.ingested,
      totalCompleted: this.completed,
      totalFailed: this.failed,
      totalFiltered: this.filtered,
      totalSkipped: this.skipped,
      totalExpanded: this.expanded,
      itemsInFlight: this.ingested - this.completed - this.failed - this.filtered - this.skipped - this.expanded,
      throughputPerSecond: rate(this.completed, seconds),
      stageMetrics,
      deadLetterCount: this.deadLettered,
      durationSeconds: seconds,
    };
  }
}

/** A stage's worker names: `"<stage>-0"`, `"<stage>-1"`, … @internal */
export function workerNamesOf(stage: string, concurrency: number): string[] {
  return Array.from({ length: concurrency }, (_, i) => `${stage}-${i}`);
}

function rate(count: number, seconds: number): number {
  return seconds > 0 ? count / seconds : 0;
}

/** Per worker, whether it is busy: every worker not in the free list. @internal */
export function busyOf(concurrency: number, free: readonly number[]): boolean[] {
  const busy = new Array<boolean>(concurrency).fill(true);
  for (const worker of free) busy[worker] = false;
  return busy;
}
