/**
 * The retry loop: attempts, backoff between them, and which errors are worth
 * retrying. Events, metrics and log records for each attempt come from here.
 *
 * @module
 */

import { backoffDelay, type ResolvedBackoff } from "./backoff.ts";
import { serializeError } from "./dead_letter.ts";
import { PermanentError, ShutdownError } from "./errors.ts";
import { runAttempt, type StageContext } from "./attempt.ts";
import type { StageCounters } from "./metrics.ts";
import { idFields } from "./logger.ts";
import type { RunContext } from "./run_context.ts";

/** Decides whether a failed attempt is retried; `attempt` is the one that failed. */
export type RetryPredicate = (error: unknown, attempt: number) => boolean;

/**
 * The default `retryIf`: retry everything except {@linkcode PermanentError}
 * and zod validation errors, from `zod` or `zod/mini` (a bad value stays bad).
 *
 * @example Extend the default
 * ```ts
 * import { isRetryable } from "./retry.ts";
 *
 * const retryIf = (error: unknown, attempt: number) =>
 *   isRetryable(error, attempt) && !(error instanceof RangeError);
 * console.assert(retryIf(new Error("reset"), 1) && !retryIf(new RangeError("bad"), 1));
 * ```
 */
export function isRetryable(error: unknown, _attempt?: number): boolean {
  if (error instanceof PermanentError) return false;
  const name = (error as { name?: unknown } | null)?.name;
  return name !== "ZodError" && name !== "$ZodError" && name !== "PermanentError";
}

/** The retry settings of one stage, with defaults filled in. @internal */
export interface RetryPolicy {
  readonly maxRetries: number;
  readonly backoff: ResolvedBackoff;
  readonly retryIf: RetryPredicate;
  readonly timeoutMs: number | undefined;
  /** Error routing (`onError`, run limits, `onStageError`): decides each failure instead of `retryIf`. */
  readonly route?: (unit: Unit, error: unknown, attempt: number) => "retry" | "other";
  /** Waits before each attempt (circuit breaker, rate limit) and hears how it went. */
  readonly gate?: AttemptGate;
}

/** What a stage with a circuit breaker or a rate limit puts in front of each attempt. @internal */
export interface AttemptGate {
  /**
   * Resolves with a ticket when the attempt may start; rejects
   * (ShutdownError, CircuitOpenError) when it never will.
   */
  admit(unit: Unit): Promise<number> | number;
  /** The attempt admitted with `ticket` ended: `failed` with `error`, or not. */
  settled(ticket: number, failed: boolean, error: unknown): void;
}

/** Who is being tried where. @internal */
export interface Unit {
  readonly run: RunContext;
  readonly stage: string;
  readonly itemIds: readonly (string | number)[];
  readonly worker: number;
  readonly counters: StageCounters;
}

/** @internal */
export type Outcome<T> =
  | { readonly ok: true; readonly value: T; readonly attempts: number }
  | { readonly ok: false; readonly error: unknown; readonly attempts: number };

/**
 * Calls `call` until it succeeds, is out of retries, or fails for good.
 * `firstFailure` continues after a first attempt the caller already made.
 * Events and logs number attempts from `attemptsBefore + 1` (the attempts
 * an item already made at the stage, for tasks retried one by one); `ctx`
 * and `retryIf` see this unit's own count.
 * @internal
 */
export async function withRetries<T>(
  unit: Unit,
  policy: RetryPolicy,
  call: (ctx: StageContext) => T | Promise<T>,
  firstFailure?: { readonly error: unknown; readonly durationMs: number },
  attemptsBefore = 0,
  onRetry?: (error: unknown, attempt: number, durationMs: number) => void,
): Promise<Outcome<T>> {
  let attempt = 1;
  let failure = firstFailure;
  for (;;) {
    if (failure) {
      const { error, durationMs } = failure;
      const retry = policy.route
        ? policy.route(unit, error, attempt) === "retry"
        : attempt <= policy.maxRetries && shouldRetry(unit, policy, error, attempt);
      if (!retry) {
        return { ok: false, error, attempts: attempt };
      }
      const delayMs = backoffDelay(policy.backoff, attempt);
      unit.counters.retries++;
      announceRetry(unit, attemptsBefore + attempt, error, delayMs, durationMs);
      onRetry?.(error, attempt, durationMs);
      try {
        await backoffSleep(unit, delayMs);
      } catch (shutdown) {
        return { ok: false, error: shutdown, attempts: attempt };
      }
      attempt++;
    }
    if (unit.run.paused) await unit.run.whenResumed();
    const gate = policy.gate;
    let ticket = 0;
    if (gate) {
      try {
        ticket = await gate.admit(unit);
      } catch (refused) {
        return { ok: false, error: refused, attempts: Math.max(1, attempt - 1) };
      }
    }
    const startedAt = performance.now();
    announceStart(unit, attemptsBefore + attempt);
    try {
      const value = await runAttempt(unit.run, unit.stage, unit, attempt, policy.timeoutMs, call);
      gate?.settled(ticket, false, undefined);
      return { ok: true, value, attempts: attempt };
    } catch (error) {
      gate?.settled(ticket, true, error);
      failure = { error, durationMs: performance.now() - startedAt };
    }
  }
}

function shouldRetry(unit: Unit, policy: RetryPolicy, error: unknown, attempt: number): boolean {
  if (error instanceof ShutdownError) return false;
  return retryIfSays(unit, policy, error, attempt);
}

/** What the stage's `retryIf` says of a failed attempt; one that throws says no, and is logged. @internal */
export function retryIfSays(unit: Unit, policy: RetryPolicy, error: unknown, attempt: number): boolean {
  try {
    return policy.retryIf(error, attempt) === true;
  } catch (predicateError) {
    unit.run.log("warn", "retryIf threw; not retrying", {
      stage: unit.stage,
      itemIds: unit.itemIds,
      error: predicateError,
    });
    return false;
  }
}

function announceStart(unit: Unit, attempt: number): void {
  if (unit.run.logsDebug) {
    unit.run.log("debug", "attempt started", {
      stage: unit.stage,
      ...idFields(unit.itemIds),
      attempt,
      worker: unit.worker,
    });
  }
  if (!unit.run.hasListener) return;
  const timestamp = Date.now();
  for (const itemId of unit.itemIds) {
    unit.run.emit({ type: "started", itemId, stage: unit.stage, attempt, worker: unit.worker, timestamp });
  }
}

function announceRetry(unit: Unit, attempt: number, error: unknown, delayMs: number, durationMs: number): void {
  unit.run.log("warn", "attempt failed; retrying", {
    stage: unit.stage,
    itemId: unit.itemIds.length === 1 ? unit.itemIds[0] : unit.itemIds,
    attempt,
    delayMs,
    error,
  });
  if (!unit.run.hasListener) return;
  const timestamp = Date.now();
  const serialized = serializeError(error);
  for (const itemId of unit.itemIds) {
    unit.run.emit({
      type: "retry",
      itemId,
      stage: unit.stage,
      attempt,
      worker: unit.worker,
      error: serialized,
      delayMs,
      durationMs,
      timestamp,
    });
  }
}

/** Waits out a backoff; a forced shutdown cuts it short with a ShutdownError. */
function backoffSleep(unit: Unit, ms: number): Promise<void> {
  const { run, stage } = unit;
  if (run.forced) return Promise.reject(new ShutdownError(stage, { cause: run.forced.reason }));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      deregister();
      resolve();
    }, ms);
    const deregister = run.onForce((reason) => {
      clearTimeout(timer);
      reject(new ShutdownError(stage, { cause: reason }));
    });
  });
}
