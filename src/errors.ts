/**
 * The error classes sluice throws or records. Each has a stable `name`, a
 * message that says what to do, and keeps the underlying error as `cause`.
 *
 * @module
 */

import type { DeadLetter } from "./dead_letter.ts";
import type { PipelineMetrics } from "./metrics.ts";

/**
 * Thrown by a stage function to say that retrying cannot help: the item goes
 * straight to the dead letter queue.
 *
 * @example Refuse an item without retrying it
 * ```ts
 * import { PermanentError } from "./errors.ts";
 *
 * function validate(order: { total: number }) {
 *   if (order.total < 0) {
 *     throw new PermanentError(`total must not be negative: got ${order.total}`);
 *   }
 *   return order;
 * }
 * validate({ total: 3 });
 * ```
 */
export class PermanentError extends Error {
  /**
   * Makes a permanent error.
   * @param message Why the item cannot be processed.
   * @param options `cause`: the underlying error, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PermanentError";
  }
}

/**
 * The error an attempt fails with when it runs longer than the stage's
 * `timeoutMs`. The attempt's `ctx.signal` is aborted with it, and it is
 * retried like any other transient failure.
 *
 * @example Recognise a timed-out attempt in a dead letter
 * ```ts
 * import { TimeoutError } from "./errors.ts";
 *
 * const error = new TimeoutError("parse", 250);
 * console.assert(error.name === "TimeoutError" && error.timeoutMs === 250);
 * ```
 */
export class TimeoutError extends Error {
  /** The stage whose attempt timed out. */
  readonly stage: string;
  /** The limit that was exceeded, in milliseconds. */
  readonly timeoutMs: number;
  /**
   * Makes the error for an attempt of `stage` that exceeded `timeoutMs`.
   * @param stage The stage whose attempt timed out.
   * @param timeoutMs The stage's `timeoutMs`.
   */
  constructor(stage: string, timeoutMs: number) {
    super(
      `Stage "${stage}" attempt timed out after ${timeoutMs} ms: ` +
        `raise the stage's timeoutMs or make the attempt honour ctx.signal`,
    );
    this.name = "TimeoutError";
    this.stage = stage;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The reason an item is dead-lettered when a forced shutdown (a second
 * SIGINT/SIGTERM, or `forceSignal`) interrupts its attempt or its backoff.
 * Such items are not retried.
 *
 * @example
 * ```ts
 * import { ShutdownError } from "./errors.ts";
 *
 * const error = new ShutdownError("load");
 * console.assert(error.name === "ShutdownError");
 * ```
 */
export class ShutdownError extends Error {
  /**
   * Makes the error for an item of `stage` interrupted by a forced shutdown.
   * @param stage The stage that was interrupted.
   * @param options `cause`: the abort reason, if any.
   */
  constructor(stage: string, options?: ErrorOptions) {
    super(
      `Stage "${stage}" was interrupted by a forced shutdown; ` +
        `the item was dead-lettered without a retry and can be replayed from the dead letter queue`,
      options,
    );
    this.name = "ShutdownError";
  }
}

/**
 * Thrown when pipeline or stage options are invalid. The message names the
 * stage, the field, the value given and what is allowed.
 *
 * @example Catch a bad option
 * ```ts
 * import { ConfigError, stage } from "../mod.ts";
 *
 * try {
 *   stage("parse", (x: string) => x, { concurrency: 0 });
 * } catch (error) {
 *   console.assert(error instanceof ConfigError);
 *   console.assert((error as ConfigError).field === "concurrency");
 * }
 * ```
 */
export class ConfigError extends Error {
  /** The stage the bad option belongs to, if any. */
  readonly stage: string | undefined;
  /** The option path, such as `concurrency` or `backoff.multiplier`. */
  readonly field: string;
  /**
   * Makes a configuration error.
   * @param message What is wrong and what is allowed.
   * @param details The stage and field, for programs that handle the error.
   * @param options `cause`: the validation error, if any.
   */
  constructor(
    message: string,
    details: { stage?: string; field: string },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ConfigError";
    this.stage = details.stage;
    this.field = details.field;
  }
}

/**
 * Rejects `run` when the dead letter sink (a `WritableStream`) failed. The
 * pipeline still drained; entries the sink did not accept are kept in
 * `pipeline.deadLetters` so that nothing is lost.
 *
 * @example
 * ```ts
 * import { DeadLetterSinkError } from "./errors.ts";
 *
 * const error = new DeadLetterSinkError(2, { cause: new Error("disk full") });
 * console.assert(error.unwritten === 2);
 * ```
 */
export class DeadLetterSinkError extends Error {
  /** How many entries the sink did not accept (kept in `pipeline.deadLetters`). */
  readonly unwritten: number;
  /**
   * Makes the error for a failed dead letter sink.
   * @param unwritten The number of entries kept in memory instead.
   * @param options `cause`: the sink's error.
   */
  constructor(unwritten: number, options?: ErrorOptions) {
    super(
      `The dead letter sink failed; ${unwritten} entr${unwritten === 1 ? "y was" : "ies were"} ` +
        `kept in pipeline.deadLetters instead: fix the sink and write them again`,
      options,
    );
    this.name = "DeadLetterSinkError";
    this.unwritten = unwritten;
  }
}

/**
 * Rejects `run` (and `replay`) when error routing halted the pipeline: an
 * `onError` rule said `"halt"` or `{ halt: "force" }`, or a run limit
 * (`maxSkips`, `maxDeadLetters`) was passed. `cause` is the error that
 * halted it; `stage` and `itemId` say where. A halted run still accounts for
 * every item it read: `metrics` are the final metrics (conservation holds)
 * and `deadLetters` the run's dead letters, the halting item's among them.
 *
 * @example Tell a halt from other failures
 * ```ts
 * import { HaltError } from "./errors.ts";
 *
 * const error = new HaltError("load", 7, "graceful", { cause: new Error("disk full") });
 * console.assert(error.name === "HaltError" && error.stage === "load" && error.itemId === 7);
 * console.assert(error.metrics === undefined && error.deadLetters.length === 0);
 * ```
 */
export class HaltError extends Error {
  /** The stage whose failure halted the pipeline. */
  readonly stage: string;
  /** The item whose failure halted it (a batch: its first item). */
  readonly itemId: string | number;
  /** `graceful`: reading stopped and the items inside finished; `force`: they were interrupted and dead-lettered. */
  readonly mode: "graceful" | "force";
  /** Why it halted: an `onError` rule, or the limit that was passed. */
  readonly reason: string;
  /** The final metrics of the halted run (set when `run` rejects with it). */
  readonly metrics: PipelineMetrics | undefined;
  /** The halted run's dead letters, when they are kept in memory (as in `pipeline.deadLetters`). */
  readonly deadLetters: readonly DeadLetter[];
  /**
   * Makes the error for a pipeline halted by a failure of `itemId` in `stage`.
   * @param stage The stage.
   * @param itemId The item.
   * @param mode How it halted.
   * @param options `cause`: the error that halted it; `reason`: a sentence
   * saying why, when a limit rather than a rule halted it; `metrics` and
   * `deadLetters` of the run.
   */
  constructor(
    stage: string,
    itemId: string | number,
    mode: "graceful" | "force",
    options?: ErrorOptions & {
      reason?: string;
      metrics?: PipelineMetrics;
      deadLetters?: readonly DeadLetter[];
    },
  ) {
    const why = options?.reason ?? "an onError rule said halt";
    super(
      `Pipeline halted (${mode}) at stage "${stage}", item ${JSON.stringify(itemId)}: ${why}; ` +
        `error.cause is the error, error.metrics and error.deadLetters account for every item read ` +
        `(replay the dead letters with pipeline.replay() once the cause is fixed)`,
      options,
    );
    this.name = "HaltError";
    this.stage = stage;
    this.itemId = itemId;
    this.mode = mode;
    this.reason = why;
    this.metrics = options?.metrics;
    this.deadLetters = options?.deadLetters ?? [];
  }
}

/**
 * The reason an item is dead-lettered when a graceful shutdown finds it
 * waiting at a stage whose circuit breaker is open, and the circuit is still
 * not closed after the breaker's `drainTimeoutMs`. Not retried.
 *
 * @example
 * ```ts
 * import { CircuitOpenError } from "./errors.ts";
 *
 * const error = new CircuitOpenError("enrich", 5000);
 * console.assert(error.name === "CircuitOpenError" && error.stage === "enrich");
 * ```
 */
export class CircuitOpenError extends Error {
  /** The stage whose circuit was open. */
  readonly stage: string;
  /**
   * Makes the error for an item of `stage` still waiting at its open circuit
   * `drainTimeoutMs` after a graceful shutdown began.
   * @param stage The stage.
   * @param drainTimeoutMs The breaker's `drainTimeoutMs`.
   * @param options `cause`: the failure that opened the circuit, if known.
   */
  constructor(stage: string, drainTimeoutMs: number, options?: ErrorOptions) {
    super(
      `Stage "${stage}" circuit breaker was still open ${drainTimeoutMs} ms after shutdown began; ` +
        `the item was dead-lettered without an attempt: replay it once the service behind the stage is back`,
      options,
    );
    this.name = "CircuitOpenError";
    this.stage = stage;
  }
}
