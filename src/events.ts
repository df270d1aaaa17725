/**
 * Typed per-item events, delivered to the pipeline's `onEvent` option.
 *
 * @module
 */

import type { SerializedError } from "./dead_letter.ts";

/** An item's id: the pipeline's `id(input)` option, or a sequence number. */
export type ItemId = string | number;

/** What every event carries. */
export interface EventBase {
  /** The item the event is about. */
  readonly itemId: ItemId;
  /** The stage it happened in. */
  readonly stage: string;
  /** When it happened, in milliseconds since the Unix epoch. */
  readonly timestamp: number;
}

/** The item entered a stage's input queue. */
export interface QueuedEvent extends EventBase {
  readonly type: "queued";
}

/** An attempt started on worker `worker` (0-based index within the stage). */
export interface StartedEvent extends EventBase {
  readonly type: "started";
  readonly attempt: number;
  readonly worker: number;
}

/** An attempt failed and the item will be tried again after `delayMs`. */
export interface RetryEvent extends EventBase {
  readonly type: "retry";
  readonly attempt: number;
  readonly worker: number;
  readonly error: SerializedError;
  readonly delayMs: number;
  /** How long the failed attempt ran. */
  readonly durationMs: number;
}

/** The item left the stage successfully. */
export interface CompletedEvent extends EventBase {
  readonly type: "completed";
  readonly attempt: number;
  readonly worker: number;
  /** From the first attempt's start to success, backoff included. */
  readonly durationMs: number;
}

/** The item failed in the stage for good (out of retries, or permanent). */
export interface FailedEvent extends EventBase {
  readonly type: "failed";
  readonly attempt: number;
  readonly worker: number;
  readonly error: SerializedError;
  readonly durationMs: number;
}

/** The failed item was recorded in the dead letter queue (or counted, if it is off). */
export interface DeadLetteredEvent extends EventBase {
  readonly type: "dead-lettered";
  readonly attempt: number;
  readonly error: SerializedError;
}

/**
 * One of the events a pipeline reports through `onEvent`.
 *
 * @example Count retries per stage
 * ```ts
 * import type { PipelineEvent } from "./events.ts";
 *
 * const retries = new Map<string, number>();
 * const onEvent = (event: PipelineEvent) => {
 *   if (event.type === "retry") retries.set(event.stage, (retries.get(event.stage) ?? 0) + 1);
 * };
 * onEvent({ type: "queued", itemId: 1, stage: "parse", timestamp: Date.now() });
 * ```
 */
export type PipelineEvent =
  | QueuedEvent
  | StartedEvent
  | RetryEvent
  | CompletedEvent
  | FailedEvent
  | DeadLetteredEvent;

/** The listener type of the pipeline's `onEvent` option. */
export type EventListener = (event: PipelineEvent) => void | Promise<void>;
