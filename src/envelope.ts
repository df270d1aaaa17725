/**
 * What travels between stages: items, and failures beside them as data, in
 * small arrays (chunks). A failure never errors a stream; the pipeline's
 * outlet splits failures off into the dead letter queue at the end.
 *
 * @module
 */

import type { ItemId } from "./events.ts";

/** An item on its way through the stages. `value` is replaced by each stage. @internal */
export class Item {
  constructor(readonly id: ItemId, public value: unknown) {}
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

/** @internal */
export type Envelope = Item | Failure;

/** The unit streams move: one or more envelopes, counted per envelope by the queuing strategies. @internal */
export type Chunk = Envelope[];

/** The queuing strategy size of a chunk: its item count. @internal */
export function chunkSize(chunk: Chunk): number {
  return chunk.length;
}
