/**
 * One run's error strategies and flow control: error routing and run limits
 * (skip, dead-letter, halt), circuit breakers, rate limits, breakpoints and
 * the `onStageError` hook. For each stage that uses any of them the run
 * derives a stage spec whose retry policy routes errors and whose attempts
 * pass a gate; a stage that uses none keeps its own spec and runs exactly as
 * without this module.
 *
 * @module
 */

import type { StageContext } from "./attempt.ts";
import { CircuitBreaker } from "./circuit_breaker.ts";
import { type Decision, ErrorRouter, type OnError } from "./error_router.ts";
import { actionName } from "./error_router.ts";
import { CircuitOpenError, HaltError, ShutdownError } from "./errors.ts";
import { callHook, type PipelineHooks } from "./hooks.ts";
import { RateLimiter, type RateLimitOptions } from "./rate_limiter.ts";
import { type AttemptGate, type RetryPolicy, type Unit, withRetries } from "./retry.ts";
import type { RunContext } from "./run_context.ts";
import type { StageSpec } from "./stage.ts";

/** Pauses the run before an item's first attempt at a stage when it returns true. */
export type Breakpoint = (item: unknown, stage: string) => boolean;

/** The pipeline-level strategy options, resolved. @internal */
export interface PipelineStrategies {
  readonly onError?: OnError;
  readonly maxSkips?: number;
  readonly maxDeadLetters?: number;
  readonly hooks?: PipelineHooks;
  readonly breakpoint?: Breakpoint;
}

/** A halt asked for by a rule or a limit. @internal */
export interface HaltRequest {
  readonly error: HaltError;
  force: boolean;
}

/** @internal */
export class FlowControl {
  #halt: HaltRequest | undefined;
  #skips = 0;
  #deadLetters = 0;
  readonly #breakers: CircuitBreaker[] = [];
  #stopped = false;

  constructor(
    readonly run: RunContext,
    readonly options: PipelineStrategies,
    /** Stops reading (and with `force`, interrupts): set by the pipeline for each run. */
    readonly onHalt: (request: HaltRequest) => void,
  ) {}

  /** The halt asked for, if any. */
  get halted(): HaltRequest | undefined {
    return this.#halt;
  }

  /** The spec this run uses for `spec`: `spec` itself when no strategy applies to it. */
  derive(spec: StageSpec): StageSpec {
    const own = spec.strategies;
    const { maxSkips, maxDeadLetters, hooks, breakpoint } = this.options;
    const rules = own?.onError ?? this.options.onError;
    const routes = rules !== undefined || maxSkips !== undefined || maxDeadLetters !== undefined ||
      hooks?.onStageError !== undefined;
    const breaker = own?.circuitBreaker
      ? new CircuitBreaker(own.circuitBreaker, spec.name, this.run, this.run.metrics.stage(spec.name))
      : undefined;
    if (breaker) this.#breakers.push(breaker);
    const limiter = own?.rateLimit ? limiterFor(own.rateLimit) : undefined;
    if (!routes && !breaker && !limiter && !breakpoint) return spec;

    let policy: RetryPolicy = spec.policy;
    let settleFailure: StageSpec["settleFailure"];
    if (routes) {
      const routing = this.#routing(spec.name, rules ?? [], () => policy);
      policy = { ...policy, route: routing.route };
      settleFailure = routing.settle;
    }
    if (breaker || limiter) policy = { ...policy, gate: this.#gate(spec.name, breaker, limiter) };
    const gated = breaker !== undefined || limiter !== undefined || breakpoint !== undefined;
    const original = spec.runTaskByTask;
    const attempt = spec.attempt;
    const unitPolicy = policy;
    let runTaskByTask = original
      ? (input: unknown, unit: Unit) => original(input, unit, unitPolicy)
      : gated
      ? (input: unknown, unit: Unit) => withRetries(unit, unitPolicy, (ctx: StageContext) => attempt(input, ctx))
      : undefined;
    if (breakpoint && runTaskByTask) {
      const runUnit = runTaskByTask;
      runTaskByTask = async (input, unit) => {
        await this.#breakpoint(breakpoint, spec, input, unit);
        return runUnit(input, unit);
      };
    }
    return { ...spec, policy, settleFailure, runTaskByTask };
  }

  /** A graceful shutdown (or halt) began. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const breaker of this.#breakers) breaker.stop();
  }

  /** The run ended. */
  dispose(): void {
    for (const breaker of this.#breakers) breaker.dispose();
  }

  #routing(stage: string, rules: OnError, policy: () => RetryPolicy) {
    const run = this.run;
    const router = new ErrorRouter(rules, stage, (message, properties) => run.log("warn", message, properties));
    const onStageError = this.options.hooks?.onStageError;
    const decided = new WeakMap<Unit, { error: unknown; decision: Decision }>();
    const decide = (unit: Unit, error: unknown, attempt: number): Decision => {
      const decision = router.decide(unit, policy(), error, attempt);
      if (onStageError && !(error instanceof ShutdownError) && !(error instanceof CircuitOpenError)) {
        callHook(run, "onStageError", onStageError, {
          stage,
          itemId: unit.itemIds[0],
          itemIds: unit.itemIds,
          attempt,
          error,
          action: actionName(decision),
        });
      }
      return decision;
    };
    const route = (unit: Unit, error: unknown, attempt: number): "retry" | "other" => {
      const decision = decide(unit, error, attempt);
      decided.set(unit, { error, decision });
      return decision === "retry" ? "retry" : "other";
    };
    const settle = (unit: Unit, error: unknown, attempts: number): "skip" | "deadLetter" => {
      const memo = decided.get(unit);
      decided.delete(unit);
      const decision = memo && memo.error === error ? memo.decision : decide(unit, error, attempts);
      return this.#settle(stage, unit, error, decision);
    };
    return { route, settle };
  }

  /** What becomes of a unit that failed for good, counting it against the run's limits. */
  #settle(stage: string, unit: Unit, error: unknown, decision: Decision): "skip" | "deadLetter" {
    const { maxSkips, maxDeadLetters } = this.options;
    const itemId = unit.itemIds[0];
    if (decision === "skip") {
      this.#skips += unit.itemIds.length;
      if (maxSkips !== undefined && this.#skips > maxSkips) {
        this.#requestHalt(stage, itemId, error, false, `more than maxSkips (${maxSkips}) items were skipped`);
      }
      return "skip";
    }
    if (typeof decision === "object") {
      this.#requestHalt(stage, itemId, error, decision.halt === "force", undefined);
      return "deadLetter";
    }
    if (error instanceof ShutdownError || error instanceof CircuitOpenError) return "deadLetter";
    this.#deadLetters += unit.itemIds.length;
    if (maxDeadLetters !== undefined && this.#deadLetters > maxDeadLetters) {
      this.#requestHalt(
        stage,
        itemId,
        error,
        false,
        `more than maxDeadLetters (${maxDeadLetters}) items were dead-lettered`,
      );
    }
    return "deadLetter";
  }

  #requestHalt(stage: string, itemId: string | number, cause: unknown, force: boolean, reason: string | undefined) {
    const current = this.#halt;
    if (current) {
      if (force && !current.force) {
        current.force = true; // a later rule asked for more: interrupt what the graceful halt let finish
        this.onHalt(current);
      }
      return;
    }
    const error = new HaltError(stage, itemId, force ? "force" : "graceful", { cause, reason });
    this.#halt = { error, force };
    this.run.log("error", "halting the pipeline", { stage, itemId, force, reason: error.message });
    this.onHalt(this.#halt);
  }

  #gate(stage: string, breaker: CircuitBreaker | undefined, limiter: RateLimiter | undefined): AttemptGate {
    const run = this.run;
    const acquire = (): Promise<void> | undefined => {
      if (!limiter || limiter.tryAcquire()) return undefined;
      if (run.forced) return Promise.reject(new ShutdownError(stage, { cause: run.forced.reason }));
      const controller = new AbortController();
      const deregister = run.onForce((reason) => controller.abort(new ShutdownError(stage, { cause: reason })));
      return limiter.acquire(controller.signal).finally(deregister);
    };
    return {
      admit() {
        const ticket = breaker ? breaker.admit() : 0;
        if (typeof ticket === "number") {
          const waited = acquire();
          return waited ? waited.then(() => ticket) : ticket;
        }
        return ticket.then((admitted) => {
          const waited = acquire();
          return waited ? waited.then(() => admitted) : admitted;
        });
      },
      settled(ticket, failed, error) {
        breaker?.settled(ticket, failed, error);
      },
    };
  }

  /** Pauses the run when the breakpoint says so for an item of the unit, until `resume()`. */
  async #breakpoint(breakpoint: Breakpoint, spec: StageSpec, input: unknown, unit: Unit): Promise<void> {
    const run = this.run;
    const values = spec.kind === "batch" ? (input as readonly unknown[]) : [input];
    let hit = false;
    for (let i = 0; i < values.length; i++) {
      let stop = false;
      try {
        stop = breakpoint(values[i], spec.name) === true;
      } catch (error) {
        run.log("warn", "breakpoint threw; not pausing", { stage: spec.name, itemId: unit.itemIds[i], error });
      }
      if (!stop) continue;
      hit = true;
      run.log("info", "breakpoint: pausing before the attempt", { stage: spec.name, itemId: unit.itemIds[i] });
      run.emit({ type: "paused", itemId: unit.itemIds[i], stage: spec.name, item: values[i], timestamp: Date.now() });
    }
    if (!hit || run.forced) return;
    run.pause();
    await run.whenResumed();
  }
}

function limiterFor(option: RateLimitOptions | RateLimiter): RateLimiter {
  return option instanceof RateLimiter ? option : new RateLimiter(option);
}

/** The pipeline options for error strategies and flow control (part of `PipelineOptions`). */
export interface PipelineStrategyOptions {
  /**
   * Error routing for every stage without an `onError` of its own (see
   * {@linkcode OnError}).
   * @default {undefined} retryIf and maxRetries, then the dead letter queue
   */
  readonly onError?: OnError;
  /**
   * Halt (gracefully) once more than this many items were skipped in a run.
   * @default {undefined} no limit
   */
  readonly maxSkips?: number;
  /**
   * Halt (gracefully) once more than this many items failed for good in the
   * stages in a run (items interrupted by a shutdown are not counted).
   * @default {undefined} no limit
   */
  readonly maxDeadLetters?: number;
  /** Lifecycle hooks (see {@linkcode PipelineHooks}). */
  readonly hooks?: PipelineHooks;
  /**
   * Called before each item's first attempt at each stage; returning true
   * pauses the run there (a `paused` event carries the item) until
   * `pipeline.resume()`.
   * @default {undefined}
   */
  readonly breakpoint?: Breakpoint;
}
