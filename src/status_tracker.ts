/**
 * `StatusTracker`: each item's latest status and its history, fed by the
 * pipeline's events, in bounded memory.
 *
 * @module
 */

import { z } from "zod";
import { validate } from "./config.ts";
import type { SerializedError } from "./dead_letter.ts";
import type { ItemId, PipelineEvent } from "./events.ts";

/**
 * Where an item is:
 * - `queued`: waiting in a stage's input queue;
 * - `in_progress`: in an attempt or its backoff, or done with a stage and on its way to the next;
 * - `completed`: left the last stage;
 * - `failed`: failed for good (then dead-lettered);
 * - `filtered`: a stage returned `skip`;
 * - `skipped`: error routing dropped it;
 * - `expanded`: a flatMap stage replaced it by its outputs (new items of their own).
 */
export type ItemStatus = "queued" | "in_progress" | "completed" | "failed" | "filtered" | "skipped" | "expanded";

/** Every status, in the order of {@linkcode ItemStatus}. */
export const ITEM_STATUSES: readonly ItemStatus[] = Object.freeze([
  "queued",
  "in_progress",
  "completed",
  "failed",
  "filtered",
  "skipped",
  "expanded",
]);

/** One change of an item's status. */
export interface StatusChange {
  /** The item. */
  readonly itemId: ItemId;
  /** Its new status. */
  readonly status: ItemStatus;
  /** The stage it is in (or left the pipeline from). */
  readonly stage: string;
  /** The worker's index within the stage, when a worker is involved. */
  readonly worker?: number;
  /** The attempt number (1-based), when an attempt is involved. */
  readonly attempt?: number;
  /** Milliseconds since the Unix epoch. */
  readonly timestamp: number;
  /** The error, for a retry, a failure or a skip. */
  readonly error?: SerializedError;
  /** The event it was made from. */
  readonly event: PipelineEvent["type"];
}

/**
 * What a pipeline's `statusTracker` option takes: a {@linkcode StatusTracker},
 * or any object with a `record` method. `record` may throw or return a
 * rejected promise: the pipeline logs it and goes on.
 */
export interface StatusRecorder {
  /** Receives every status change of every item, in order. */
  record(change: StatusChange): void | Promise<void>;
}

/** Options of {@linkcode StatusTracker}. */
export interface StatusTrackerOptions {
  /**
   * The most items kept; beyond it the least recently changed items that
   * have left the pipeline are forgotten (items still inside are always
   * kept). `getStats()` counts forgotten items too.
   * @default {10000}
   */
  readonly maxItems?: number;
  /**
   * The most changes kept per item (the oldest go first).
   * @default {50}
   */
  readonly historyLimit?: number;
  /**
   * Called after every change, sync or async. A callback that throws or
   * rejects is logged by the pipeline (a `warn` record) and never loses or
   * fails an item.
   */
  readonly onStatusChange?: (change: StatusChange) => void | Promise<void>;
}

const positiveInteger = z.int({ error: "must be a positive integer" })
  .min(1, { error: "must be a positive integer" });

const optionsSchema = z.strictObject({
  maxItems: positiveInteger.optional(),
  historyLimit: positiveInteger.optional(),
  onStatusChange: z.custom<(change: StatusChange) => void>((value) => typeof value === "function", {
    error: "must be a function",
  }).optional(),
}, { error: "must be an object" });

/** The default `maxItems`. */
export const DEFAULT_MAX_ITEMS = 10_000;
/** The default `historyLimit`. */
export const DEFAULT_HISTORY_LIMIT = 50;

interface Entry {
  latest: StatusChange;
  readonly history: StatusChange[];
}

/** A status that no later event of the same run changes. */
function isFinal(change: StatusChange): boolean {
  return change.status === "completed" || change.event === "dead-lettered" || change.status === "filtered" ||
    change.status === "skipped" || change.status === "expanded";
}

/**
 * Tracks each item's status, fed by the pipeline's events: pass it as the
 * pipeline's `statusTracker` option. A pipeline without one builds no
 * events for it (it costs nothing). Memory is bounded by `maxItems` and
 * `historyLimit`.
 *
 * @example Follow items through a pipeline
 * ```ts
 * import { Pipeline, stage, StatusTracker } from "../mod.ts";
 *
 * const tracker = new StatusTracker({ maxItems: 1000 });
 * const pipeline = new Pipeline({
 *   stages: [stage("double", (n: number) => n * 2), stage("check", (n: number) => {
 *     if (n > 4) throw new Error("too big");
 *     return n;
 *   })],
 *   statusTracker: tracker,
 * });
 * await pipeline.run([1, 2, 3]);
 * console.assert(tracker.getStatus(0)?.status === "completed");
 * console.assert(tracker.getStatus(2)?.status === "failed" && tracker.getStatus(2)?.stage === "check");
 * console.assert(tracker.getStats().completed === 2 && tracker.getStats().failed === 1);
 * console.assert(tracker.getHistory(0).map((c) => c.status).join() ===
 *   "queued,in_progress,in_progress,queued,in_progress,completed");
 * ```
 */
export class StatusTracker implements StatusRecorder {
  readonly #maxItems: number;
  readonly #historyLimit: number;
  readonly #onStatusChange: ((change: StatusChange) => void | Promise<void>) | undefined;
  /** Items still in the pipeline: never forgotten. */
  readonly #active = new Map<ItemId, Entry>();
  /** Items that left the pipeline, least recently changed first. */
  readonly #done = new Map<ItemId, Entry>();
  readonly #counts: Record<ItemStatus, number> = {
    queued: 0,
    in_progress: 0,
    completed: 0,
    failed: 0,
    filtered: 0,
    skipped: 0,
    expanded: 0,
  };

  /**
   * Makes a tracker, checking its options once.
   * @throws {ConfigError} when an option is invalid.
   */
  constructor(options: StatusTrackerOptions = {}) {
    const resolved = validate(optionsSchema, options, { owner: "StatusTracker", root: "options" });
    this.#maxItems = resolved.maxItems ?? DEFAULT_MAX_ITEMS;
    this.#historyLimit = resolved.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    this.#onStatusChange = resolved.onStatusChange as StatusTrackerOptions["onStatusChange"];
  }

  /** Records a change (the pipeline calls it); returns what `onStatusChange` returned. */
  record(change: StatusChange): void | Promise<void> {
    const id = change.itemId;
    const entry = this.#active.get(id) ?? this.#done.get(id);
    if (entry) {
      this.#counts[entry.latest.status]--;
      this.#active.delete(id);
      this.#done.delete(id);
      entry.latest = change;
      entry.history.push(change);
      if (entry.history.length > this.#historyLimit) entry.history.shift();
      this.#keep(id, entry);
    } else {
      this.#keep(id, { latest: change, history: [change] });
    }
    this.#counts[change.status]++;
    return this.#onStatusChange?.(change);
  }

  #keep(id: ItemId, entry: Entry): void {
    if (!isFinal(entry.latest)) {
      this.#active.set(id, entry);
      return;
    }
    this.#done.set(id, entry);
    while (this.#done.size > 0 && this.#active.size + this.#done.size > this.#maxItems) {
      this.#done.delete(this.#done.keys().next().value!);
    }
  }

  /**
   * The item's latest change, or undefined for an item never seen (or
   * forgotten).
   */
  getStatus(itemId: ItemId): StatusChange | undefined {
    return (this.#active.get(itemId) ?? this.#done.get(itemId))?.latest;
  }

  /** The latest change of every item kept whose status is `status`. */
  getByStatus(status: ItemStatus): StatusChange[] {
    const found: StatusChange[] = [];
    for (const map of [this.#active, this.#done]) {
      for (const entry of map.values()) if (entry.latest.status === status) found.push(entry.latest);
    }
    return found;
  }

  /** Every change of the item kept, oldest first (at most `historyLimit`). */
  getHistory(itemId: ItemId): StatusChange[] {
    return [...((this.#active.get(itemId) ?? this.#done.get(itemId))?.history ?? [])];
  }

  /**
   * How many items are in each status, forgotten ones included, and
   * `total`, every item seen. At the end of a run the counts match the
   * metrics: `completed === totalCompleted`, `failed === totalFailed`, ….
   */
  getStats(): Record<ItemStatus, number> & { readonly total: number; readonly kept: number } {
    const total = ITEM_STATUSES.reduce((sum, status) => sum + this.#counts[status], 0);
    return { ...this.#counts, total, kept: this.#active.size + this.#done.size };
  }
}

/**
 * The status change an event means, or undefined for events that change
 * no status (task events). `lastStage` tells a stage's completion from
 * the item's; at a last flatMap stage only the outputs' `completed`
 * events (attempt 0) end an item. @internal
 */
export function statusChangeOf(
  event: PipelineEvent,
  lastStage: string,
  lastIsFlatMap = false,
): StatusChange | undefined {
  if (!("itemId" in event)) return undefined; // stage-level events (a circuit's state) are about no item
  const { itemId, stage, timestamp, type } = event;
  switch (event.type) {
    case "queued":
      return { itemId, status: "queued", stage, timestamp, event: type };
    case "started":
      return {
        itemId,
        status: "in_progress",
        stage,
        worker: event.worker,
        attempt: event.attempt,
        timestamp,
        event: type,
      };
    case "retry":
      return {
        itemId,
        status: "in_progress",
        stage,
        worker: event.worker,
        attempt: event.attempt,
        timestamp,
        error: event.error,
        event: type,
      };
    case "completed":
      return {
        itemId,
        // At a last flatMap stage the parent's `completed` (the call of fn) is not the end; its outputs' (attempt 0) are.
        status: stage === lastStage && (!lastIsFlatMap || event.attempt === 0) ? "completed" : "in_progress",
        stage,
        worker: event.worker,
        attempt: event.attempt,
        timestamp,
        event: type,
      };
    case "failed":
      return {
        itemId,
        status: "failed",
        stage,
        worker: event.worker,
        attempt: event.attempt,
        timestamp,
        error: event.error,
        event: type,
      };
    case "dead-lettered":
      return { itemId, status: "failed", stage, attempt: event.attempt, timestamp, error: event.error, event: type };
    case "filtered":
      return { itemId, status: "filtered", stage, timestamp, event: type };
    case "skipped":
      return { itemId, status: "skipped", stage, timestamp, error: event.error, event: type };
    case "expanded":
      return { itemId, status: "expanded", stage, timestamp, event: type };
    default:
      return undefined;
  }
}
