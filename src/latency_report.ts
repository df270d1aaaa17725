/**
 * `pipeline.latencySummary()`: per-stage and end-to-end latency from the
 * run's histograms and sums, in constant memory.
 *
 * @module
 */

import type { MetricsRecorder } from "./metrics.ts";

/** One stage's latency: successful (and filtered) items, first attempt's start to success, in milliseconds. */
export interface StageLatency {
  /** Items measured. */
  readonly count: number;
  /** The mean. */
  readonly avgMs: number;
  /** The sum over the items. */
  readonly totalMs: number;
  /** The median. */
  readonly p50: number;
  /** The 95th percentile. */
  readonly p95: number;
  /** The 99th percentile. */
  readonly p99: number;
}

/** What `pipeline.latencySummary()` gives. */
export interface LatencyReport {
  /** Per stage, by name, in pipeline order. */
  readonly stages: Readonly<Record<string, StageLatency>>;
  /** Items measured end to end: those that left the last stage. */
  readonly completed: number;
  /** End to end, from the first stage's receipt of an item (its read) to its leaving the last stage: the mean. */
  readonly avgTotalMs: number;
  /** End to end: the median. */
  readonly p50TotalMs: number;
  /** End to end: the 99th percentile. */
  readonly p99TotalMs: number;
  /** Of the end-to-end time of completed items, the total spent in attempts (and backoff). */
  readonly inAttemptMs: number;
  /** Of the end-to-end time of completed items, the total spent waiting: in queues, for a worker, for its turn. */
  readonly queueWaitMs: number;
  /** `queueWaitMs` over the whole end-to-end time, from 0 to 1 (0 when nothing completed). */
  readonly queueWaitShare: number;
}

/** @internal */
export function latencyReport(metrics: MetricsRecorder): LatencyReport {
  const stages: Record<string, StageLatency> = {};
  for (const [name, counters] of metrics.stages) {
    const { p50, p95, p99 } = counters.latency.summary();
    const { count, sum } = counters.latency;
    stages[name] = {
      count,
      avgMs: count > 0 ? sum / count : 0,
      totalMs: sum,
      p50,
      p95,
      p99,
    };
  }
  const completed = metrics.endToEnd.count;
  const total = metrics.endToEnd.sum;
  const queueWaitMs = Math.max(0, total - metrics.inAttemptTotalMs);
  return {
    stages,
    completed,
    avgTotalMs: completed > 0 ? total / completed : 0,
    p50TotalMs: metrics.endToEnd.quantile(0.5),
    p99TotalMs: metrics.endToEnd.quantile(0.99),
    inAttemptMs: metrics.inAttemptTotalMs,
    queueWaitMs,
    queueWaitShare: total > 0 ? queueWaitMs / total : 0,
  };
}
