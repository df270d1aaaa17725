/**
 * `pipeline.snapshot()`: one JSON-serialisable object for dashboards — the
 * metrics, each stage's workers, circuit states where a stage has a circuit,
 * and the latest errors — with a zod schema to read it back.
 *
 * @module
 */

import type { CircuitState } from "./circuit_breaker.ts";
import { z } from "zod";
import { type DeadLetter, type SerializedError, serializeError } from "./dead_letter.ts";
import type { ItemId } from "./events.ts";
import type { PipelineMetrics } from "./metrics.ts";
import type { RecentFailure } from "./recent_errors.ts";

/** What one worker of a stage is doing. */
export type WorkerState = "busy" | "idle";

/** One stage in a {@linkcode PipelineSnapshot}. */
export interface StageSnapshot {
  /** The stage's concurrency: how many workers it has. */
  readonly concurrency: number;
  /** How many items may wait in front of it (its `queueSize`): `queueDepth` is out of this. */
  readonly queueSize: number;
  /** Per worker, by index (the events' `worker`): in an attempt or backoff (`busy`), or free (`idle`). */
  readonly workers: readonly WorkerState[];
  /** The circuit breaker's state; absent when the stage has none. */
  readonly circuit?: CircuitState;
}

/** One of the latest failures in a {@linkcode PipelineSnapshot}. */
export interface RecentError {
  /** The item's id. */
  readonly itemId: ItemId;
  /** The stage it failed in. */
  readonly stage: string;
  /** The error's message. */
  readonly reason: string;
  /** The error, as plain data. */
  readonly error: SerializedError;
  /** Attempts made. */
  readonly attempts: number;
  /** When it was given up on (ISO 8601). */
  readonly failedAt: string;
}

/** What {@linkcode Pipeline.prototype.snapshot} returns; {@linkcode PipelineSnapshotSchema} reads it back. */
export interface PipelineSnapshot {
  /** The schema's version: 1. */
  readonly version: 1;
  /** The pipeline's name. */
  readonly pipeline: string;
  /** When the snapshot was taken (ISO 8601). */
  readonly takenAt: string;
  /** The latest run's metrics, as `getMetrics()` gives them. */
  readonly metrics: PipelineMetrics;
  /** Per stage, by name, in pipeline order. */
  readonly stages: Readonly<Record<string, StageSnapshot>>;
  /** The latest failures, oldest first: see the pipeline's `recentErrors` option. */
  readonly recentErrors: readonly RecentError[];
}

const count = z.number().int().min(0);
const finite = z.number().min(0);
const isoDate = z.iso.datetime({ offset: true });

const latency = z.object({
  p50: finite,
  p95: finite,
  p99: finite,
  max: finite,
  count,
  sum: finite,
});

const stageMetrics = z.object({
  processed: count,
  succeeded: count,
  failed: count,
  filtered: count,
  skipped: count,
  expanded: count,
  spawned: count,
  workers: z.array(z.object({ name: z.string(), processed: count, failed: count, busyMs: finite })),
  retries: count,
  inFlight: count,
  queueDepth: count,
  latency,
  throughputPerSecond: finite,
}).loose();

const metrics = z.object({
  totalIngested: count,
  totalCompleted: count,
  totalFailed: count,
  totalFiltered: count,
  totalSkipped: count,
  totalExpanded: count,
  itemsInFlight: count,
  throughputPerSecond: finite,
  stageMetrics: z.record(z.string(), stageMetrics),
  deadLetterCount: count,
  durationSeconds: finite,
}).loose();

const snapshotSchema = z.object({
  version: z.literal(1),
  pipeline: z.string().min(1),
  takenAt: isoDate,
  metrics,
  stages: z.record(
    z.string(),
    z.object({
      concurrency: z.number().int().min(1),
      queueSize: z.number().int().min(1),
      workers: z.array(z.enum(["busy", "idle"])),
      circuit: z.enum(["closed", "open", "halfOpen"]).optional(),
    }),
  ),
  recentErrors: z.array(z.object({
    itemId: z.union([z.string(), z.number()]),
    stage: z.string(),
    reason: z.string(),
    error: z.object({
      name: z.string(),
      message: z.string(),
      stack: z.string().optional(),
      cause: z.unknown().optional(),
    }),
    attempts: z.number().int().min(1),
    failedAt: isoDate,
  })),
});

/**
 * The schema of {@linkcode PipelineSnapshot}: reads one back from JSON,
 * checking every field, and gives it as a JSON Schema for dashboards and
 * other languages. Metrics objects may carry more fields than listed (newer
 * versions add counters); they are kept.
 *
 * @example Send a snapshot as JSON and read it back
 * ```ts
 * import { Pipeline, PipelineSnapshotSchema, stage } from "../mod.ts";
 *
 * const pipeline = new Pipeline({ name: "p", stages: [stage("s", (n: number) => n, { concurrency: 2 })] });
 * await pipeline.run([1, 2, 3]);
 * const json = JSON.stringify(pipeline.snapshot());
 * const snapshot = PipelineSnapshotSchema.parse(json);
 * console.assert(snapshot.metrics.totalCompleted === 3);
 * console.assert(snapshot.stages.s.workers.join() === "idle,idle");
 * console.assert(typeof PipelineSnapshotSchema.jsonSchema() === "object");
 * ```
 */
export const PipelineSnapshotSchema: {
  /**
   * Parses a JSON string or an already parsed value into a {@linkcode PipelineSnapshot}.
   * @throws {TypeError} naming the first bad field, with the zod error as `cause`.
   */
  parse(json: unknown): PipelineSnapshot;
  /** The schema as a JSON Schema (draft 2020-12) object. */
  jsonSchema(): Record<string, unknown>;
} = {
  parse(json) {
    let value = json;
    if (typeof json === "string") {
      try {
        value = JSON.parse(json);
      } catch (error) {
        throw new TypeError(`Invalid pipeline snapshot: not JSON (${(error as Error).message})`, { cause: error });
      }
    }
    const result = snapshotSchema.safeParse(value);
    if (result.success) return result.data as PipelineSnapshot;
    const issue = result.error.issues[0];
    const field = issue.path.length ? issue.path.join(".") : "(the snapshot)";
    throw new TypeError(`Invalid pipeline snapshot: field "${field}" ${issue.message}`, { cause: result.error });
  },
  jsonSchema() {
    return z.toJSONSchema(snapshotSchema) as Record<string, unknown>;
  },
};

/** What a pipeline hands over to build its snapshot. @internal */
export interface SnapshotParts {
  readonly pipeline: string;
  readonly metrics: PipelineMetrics;
  readonly stages: readonly {
    name: string;
    concurrency: number;
    queueSize: number;
    busy: readonly boolean[];
    circuit: CircuitState | undefined;
  }[];
  /** The ring's failures, or the dead letters kept in memory (their tail is taken). */
  readonly failures: readonly RecentFailure[] | readonly DeadLetter[];
  readonly limit: number;
}

/** Builds the snapshot. @internal */
export function takeSnapshot(parts: SnapshotParts): PipelineSnapshot {
  const stages: Record<string, StageSnapshot> = {};
  for (const { name, concurrency, queueSize, busy, circuit } of parts.stages) {
    const workers = busy.length === concurrency ? busy : new Array<boolean>(concurrency).fill(false);
    stages[name] = { concurrency, queueSize, workers: workers.map((b) => (b ? "busy" : "idle")) };
    if (circuit) stages[name] = { ...stages[name], circuit };
  }
  const tail = parts.limit > 0 ? parts.failures.slice(-parts.limit) : [];
  return {
    version: 1,
    pipeline: parts.pipeline,
    takenAt: new Date().toISOString(),
    metrics: parts.metrics,
    stages,
    recentErrors: tail.map(toRecentError),
  };
}

function toRecentError(failure: RecentFailure | DeadLetter): RecentError {
  if ("firstAttemptAt" in failure) {
    const { itemId, stage, reason, error, attempts, failedAt } = failure;
    return { itemId, stage, reason, error, attempts, failedAt };
  }
  return {
    itemId: failure.itemId,
    stage: failure.stage,
    reason: failure.reason,
    error: serializeError(failure.error),
    attempts: failure.attempts,
    failedAt: new Date(failure.failedAt).toISOString(),
  };
}
