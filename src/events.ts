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
  /** The event's kind. */
  readonly type: "queued";
}

/** An attempt started on worker `worker` (0-based index within the stage). */
export interface StartedEvent extends EventBase {
  /** The event's kind. */
  readonly type: "started";
  /** The attempt number, 1-based (for `failed` and `dead-lettered`: the attempts made). */
  readonly attempt: number;
  /** The worker's index within the stage, from 0 to concurrency − 1. */
  readonly worker: number;
}

/** An attempt failed and the item will be tried again after `delayMs`. */
export interface RetryEvent extends EventBase {
  /** The event's kind. */
  readonly type: "retry";
  /** The attempt number, 1-based (for `failed` and `dead-lettered`: the attempts made). */
  readonly attempt: number;
  /** The worker's index within the stage, from 0 to concurrency − 1. */
  readonly worker: number;
  /** The error, as plain data. */
  readonly error: SerializedError;
  /** The backoff before the next attempt, in milliseconds. */
  readonly delayMs: number;
  /** How long the failed attempt ran. */
  readonly durationMs: number;
}

/**
 * The item left the stage successfully. The outputs of a flatMap stage that
 * is the last stage leave the pipeline with a `completed` event of
 * `attempt: 0` (no attempt of their own).
 */
export interface CompletedEvent extends EventBase {
  /** The event's kind. */
  readonly type: "completed";
  /** The attempt number, 1-based (for `failed` and `dead-lettered`: the attempts made). */
  readonly attempt: number;
  /** The worker's index within the stage, from 0 to concurrency − 1. */
  readonly worker: number;
  /** From the first attempt's start to success, backoff included. */
  readonly durationMs: number;
}

/** The item failed in the stage for good (out of retries, or permanent). */
export interface FailedEvent extends EventBase {
  /** The event's kind. */
  readonly type: "failed";
  /** The attempt number, 1-based (for `failed` and `dead-lettered`: the attempts made). */
  readonly attempt: number;
  /** The worker's index within the stage, from 0 to concurrency − 1. */
  readonly worker: number;
  /** The error, as plain data. */
  readonly error: SerializedError;
  /** Milliseconds since the first attempt started. */
  readonly durationMs: number;
}

/** The failed item was recorded in the dead letter queue (or counted, if it is off). */
export interface DeadLetteredEvent extends EventBase {
  /** The event's kind. */
  readonly type: "dead-lettered";
  /** The attempt number, 1-based (for `failed` and `dead-lettered`: the attempts made). */
  readonly attempt: number;
  /** The error, as plain data. */
  readonly error: SerializedError;
}

/** The item left the pipeline on purpose: a stage returned `skip` for it. */
export interface FilteredEvent extends EventBase {
  /** The event's kind. */
  readonly type: "filtered";
}

/** The item's failure was turned into a skip by error routing: it left the pipeline, not as a dead letter. */
export interface SkippedEvent extends EventBase {
  /** The event's kind. */
  readonly type: "skipped";
  /** The error that was skipped, as plain data. */
  readonly error: SerializedError;
}

/** A flatMap stage replaced the item by `children` outputs (each a new item with an id derived from this one). */
export interface ExpandedEvent extends EventBase {
  /** The event's kind. */
  readonly type: "expanded";
  /** How many outputs it produced. */
  readonly children: number;
}

/** What every task-level event carries: stages with several tasks report each task's calls. */
export interface TaskEventBase extends EventBase {
  /** The task's name: its function's name, the `name` of a `{ name, fn }` task, or `"<stage>[<index>]"`. */
  readonly taskName: string;
  /** The task's index in the stage's task array. */
  readonly taskIndex: number;
  /** The worker's index within the stage, from 0 to concurrency − 1. */
  readonly worker: number;
  /**
   * 1-based: with `retryScope: "task"` the task's own attempt, with
   * `retryScope: "stage"` the attempt of the whole sequence.
   */
  readonly attempt: number;
}

/** A task of a multi-task stage was called for the item. */
export interface TaskStartedEvent extends TaskEventBase {
  /** The event's kind. */
  readonly type: "taskStarted";
}

/** A task returned (or resolved). */
export interface TaskCompletedEvent extends TaskEventBase {
  /** The event's kind. */
  readonly type: "taskCompleted";
  /** How long the call ran, waiting for a task slot included. */
  readonly durationMs: number;
}

/** A task threw and will be called again (`retryScope: "task"`). */
export interface TaskRetryEvent extends TaskEventBase {
  /** The event's kind. */
  readonly type: "taskRetry";
  /** How long the failed call ran. */
  readonly durationMs: number;
  /** The error, as plain data. */
  readonly error: SerializedError;
}

/**
 * A task threw and will not be called again for this attempt: out of
 * retries or not retryable (`retryScope: "task"`), or, with
 * `retryScope: "stage"`, the sequence's attempt failed at this task (the
 * stage's own `retry` or `failed` event says what happens next).
 */
export interface TaskFailedEvent extends TaskEventBase {
  /** The event's kind. */
  readonly type: "taskFailed";
  /** How long the failed call ran. */
  readonly durationMs: number;
  /** The error, as plain data. */
  readonly error: SerializedError;
}

/** What every stage-level event (not about one item) carries. */
export interface StageEventBase {
  /** The stage it happened in. */
  readonly stage: string;
  /** When it happened, in milliseconds since the Unix epoch. */
  readonly timestamp: number;
}

/** The stage's circuit breaker opened: no attempt starts there until `cooldownMs` has passed. */
export interface CircuitOpenedEvent extends StageEventBase {
  /** The event's kind. */
  readonly type: "circuitOpened";
  /** The failures in the window that opened it (1 when a half-open probe failed). */
  readonly failures: number;
  /** How long it stays open. */
  readonly cooldownMs: number;
  /** The failure that opened it, as plain data. */
  readonly error: SerializedError;
}

/** The stage's circuit breaker is half-open: `probes` attempts may run. */
export interface CircuitHalfOpenEvent extends StageEventBase {
  /** The event's kind. */
  readonly type: "circuitHalfOpen";
  /** Attempts let through. */
  readonly probes: number;
}

/** The stage's circuit breaker closed: a probe succeeded and the waiting items go on. */
export interface CircuitClosedEvent extends StageEventBase {
  /** The event's kind. */
  readonly type: "circuitClosed";
}

/** The pipeline's `breakpoint` returned true for the item: the run is paused before its attempt until `resume()`. */
export interface PausedEvent extends EventBase {
  /** The event's kind. */
  readonly type: "paused";
  /** The item's value as it enters the stage. */
  readonly item: unknown;
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
  | DeadLetteredEvent
  | FilteredEvent
  | SkippedEvent
  | ExpandedEvent
  | TaskStartedEvent
  | TaskCompletedEvent
  | TaskRetryEvent
  | TaskFailedEvent
  | CircuitOpenedEvent
  | CircuitHalfOpenEvent
  | CircuitClosedEvent
  | PausedEvent;

/** The listener type of the pipeline's `onEvent` option. */
export type EventListener = (event: PipelineEvent) => void | Promise<void>;
