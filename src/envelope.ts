/**
 * What travels between stages: items, and failures and dropped items beside
 * them as data, in small arrays (chunks). A failure never errors a stream;
 * the pipeline's outlet splits failures off into the dead letter queue at
 * the end, and counts dropped items by their fate.
 *
 * @module
 */

import type { ItemId } from "./events.ts";

/**
 * An item on its way through the stages. `value` is replaced by each stage.
 *
 * Every field is `declare`d and assigned in the constructor: a field
 * declaration (a parameter property is one, with ES2022 class fields) makes
 * the constructor call an initializer first, once per object.
 * @internal
 */
export class Item {
  declare readonly id: ItemId;
  declare value: unknown;
  /** performance.now() when the first stage received it, for end-to-end latency. */
  declare bornAt: number;
  /** Milliseconds spent in attempts (and backoff) so far, over all stages. */
  declare workMs: number;
  constructor(id: ItemId, value: unknown) {
    this.id = id;
    this.value = value;
    this.bornAt = 0;
    this.workMs = 0;
  }
}

/** An item that failed for good in `stage`. @internal */
export class Failure {
  constructor(
    readonly id: ItemId,
    readonly stage: string,
    /** The value as it entered the failing stage. */
    readonly item: unknown,
    readonly error: unknown,
    readonly attempts: number,
    /** Epoch milliseconds. */
    readonly firstAttemptAt: number,
    /** Epoch milliseconds. */
    readonly failedAt: number,
  ) {}
}

/**
 * How an item that did not complete and was not dead-lettered left the
 * pipeline: `filtered` (a stage returned `skip`), `skipped` (error routing
 * dropped it on purpose) or `expanded` (a flatMap stage replaced it by its
 * outputs).
 */
export type DropFate = "filtered" | "skipped" | "expanded";

/**
 * An item that left the pipeline early, on purpose, in `stage`. Like a
 * failure it travels on to the outlet, which counts it; it is not a dead
 * letter. `error` is the error that made error routing skip it, if any.
 * @internal
 */
export class Dropped {
  constructor(
    readonly id: ItemId,
    readonly stage: string,
    readonly fate: DropFate,
    readonly error?: unknown,
    /** For `expanded`: how many outputs replaced it. */
    readonly children?: number,
  ) {}
}

/**
 * A dead letter being replayed: it passes the stages before `stage` as it
 * is, and becomes an `Item` again just before `stage`. @internal
 */
export class Pending {
  constructor(readonly id: ItemId, readonly stage: string, readonly value: unknown) {}
}

/** @internal */
export type Envelope = Item | Failure | Dropped | Pending;

/** The unit streams move: one or more envelopes, counted per envelope by the queuing strategies. @internal */
export type Chunk = Envelope[];

/** The queuing strategy size of a chunk: its item count. @internal */
export function chunkSize(chunk: Chunk): number {
  return chunk.length;
}
