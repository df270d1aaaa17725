/**
 * The error classes sluice throws or records. Each has a stable `name`, a
 * message that says what to do, and keeps the underlying error as `cause`.
 *
 * @module
 */

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
