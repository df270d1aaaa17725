/**
 * A circuit breaker in front of one stage's attempts. Closed, attempts run
 * and their failures are counted; after `failureThreshold` failures (among
 * the last `windowSize` attempts, or within the last `windowMs`) it opens:
 * no attempt starts and the stage's items wait (they are not failed, so the
 * stage's queue fills and backpressure reaches the source). After
 * `cooldownMs` it is half-open and lets `halfOpenProbes` attempts through:
 * a success closes it, a failure opens it again.
 *
 * @module
 */

import { type Clock, realClock } from "./clock.ts";
import { describeThrown, serializeError } from "./dead_letter.ts";
import { CircuitOpenError, ShutdownError } from "./errors.ts";
import { Fifo } from "./fifo.ts";
import type { StageCounters } from "./metrics.ts";
import type { RunContext } from "./run_context.ts";

/**
 * A stage's `circuitBreaker` option.
 *
 * @example Open after 5 failures in 10 seconds, try again after 30
 * ```ts
 * import { type CircuitBreakerOptions, stage } from "../mod.ts";
 *
 * const circuitBreaker: CircuitBreakerOptions = { failureThreshold: 5, windowMs: 10_000, cooldownMs: 30_000 };
 * const lookup = stage("lookup", async (id: number) => id, { circuitBreaker });
 * console.assert(lookup.name === "lookup");
 * ```
 */
export interface CircuitBreakerOptions {
  /** Failed attempts that open the circuit. */
  readonly failureThreshold: number;
  /**
   * Count failures within this many milliseconds (give this or `windowSize`).
   * @default {undefined}
   */
  readonly windowMs?: number;
  /**
   * Count failures among the last this many attempts (give this or `windowMs`).
   * @default {failureThreshold} (that many failures in a row)
   */
  readonly windowSize?: number;
  /** How long it stays open before letting probes through, in milliseconds. */
  readonly cooldownMs: number;
  /**
   * Attempts let through while half-open.
   * @default {1}
   */
  readonly halfOpenProbes?: number;
  /**
   * On a graceful shutdown while open, how long the waiting items wait for
   * the circuit to close before they are dead-lettered with a
   * `CircuitOpenError`, in milliseconds.
   * @default {10000}
   */
  readonly drainTimeoutMs?: number;
}

/** Where a circuit is: `closed` (attempts run), `open` (they wait), `halfOpen` (probes run). */
export type CircuitState = "closed" | "open" | "halfOpen";

/** The default `drainTimeoutMs`. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

interface Waiter {
  readonly resolve: (ticket: number) => void;
  readonly reject: (error: unknown) => void;
}

/** One stage's breaker for one run. @internal */
export class CircuitBreaker {
  #state: CircuitState = "closed";
  /** Bumped at every change of state: outcomes of attempts admitted before it are not counted. */
  #generation = 0;
  readonly #threshold: number;
  readonly #windowMs: number | undefined;
  readonly #windowSize: number;
  readonly #cooldownMs: number;
  readonly #probes: number;
  readonly #drainTimeoutMs: number;
  /** windowSize: the last outcomes (true = failed); windowMs: failure times. */
  #outcomes: boolean[] = [];
  #failureTimes: number[] = [];
  #probesLeft = 0;
  readonly #waiting = new Fifo<Waiter>();
  #cooldown: unknown;
  #drainTimer: unknown;
  #stopping = false;
  #drainExpired = false;
  #lastError: unknown;

  constructor(
    options: CircuitBreakerOptions,
    readonly stage: string,
    readonly run: RunContext,
    readonly counters: StageCounters,
    readonly clock: Clock = realClock,
  ) {
    this.#threshold = options.failureThreshold;
    this.#windowMs = options.windowMs;
    this.#windowSize = options.windowSize ?? options.failureThreshold;
    this.#cooldownMs = options.cooldownMs;
    this.#probes = options.halfOpenProbes ?? 1;
    this.#drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    counters.circuit = "closed";
    run.onForce((reason) => this.#refuseAll(new ShutdownError(stage, { cause: reason })));
  }

  /** The circuit's state. */
  get state(): CircuitState {
    return this.#state;
  }

  /** Attempts waiting for the circuit. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Resolves with a ticket when an attempt may start. */
  admit(): number | Promise<number> {
    if (this.#state === "closed") return this.#generation;
    if (this.#state === "halfOpen" && this.#probesLeft > 0) {
      this.#probesLeft--;
      return this.#generation;
    }
    if (this.run.forced) return Promise.reject(new ShutdownError(this.stage, { cause: this.run.forced.reason }));
    if (this.#drainExpired) return Promise.reject(this.#circuitOpenError());
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  /** The attempt admitted with `ticket` ended. */
  settled(ticket: number, failed: boolean, error: unknown): void {
    if (ticket !== this.#generation) return; // admitted in an earlier state
    if (failed && (error instanceof ShutdownError || error instanceof CircuitOpenError)) return;
    if (this.#state === "halfOpen") {
      if (failed) this.#open(error, 1);
      else this.#close();
      return;
    }
    if (this.#state !== "closed") return;
    const failures = this.#record(failed);
    if (failed) this.#lastError = error;
    if (failures >= this.#threshold) this.#open(error, failures);
  }

  /** Failures in the window after recording this outcome. */
  #record(failed: boolean): number {
    if (this.#windowMs !== undefined) {
      if (!failed) return 0;
      const now = this.clock.now();
      this.#failureTimes.push(now);
      const since = now - this.#windowMs;
      while (this.#failureTimes.length > 0 && this.#failureTimes[0] <= since) this.#failureTimes.shift();
      return this.#failureTimes.length;
    }
    this.#outcomes.push(failed);
    if (this.#outcomes.length > this.#windowSize) this.#outcomes.shift();
    let failures = 0;
    for (const outcome of this.#outcomes) if (outcome) failures++;
    return failures;
  }

  /** A graceful shutdown began: waiting items get `drainTimeoutMs` for the circuit to close. */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    if (this.#state !== "closed") this.#startDrainTimer();
  }

  /** The run ended: no timer may outlive it. */
  dispose(): void {
    if (this.#cooldown !== undefined) this.clock.clearTimeout(this.#cooldown);
    if (this.#drainTimer !== undefined) this.clock.clearTimeout(this.#drainTimer);
    this.#cooldown = this.#drainTimer = undefined;
  }

  #startDrainTimer(): void {
    if (this.#drainTimer !== undefined || this.#drainExpired) return;
    this.#drainTimer = this.clock.setTimeout(() => {
      this.#drainTimer = undefined;
      if (this.#state === "closed") return;
      this.#drainExpired = true;
      this.run.log("warn", "circuit still open after drainTimeoutMs; dead-lettering the waiting items", {
        stage: this.stage,
        waiting: this.#waiting.length,
        drainTimeoutMs: this.#drainTimeoutMs,
      });
      this.#refuseAll(this.#circuitOpenError());
    }, this.#drainTimeoutMs);
  }

  #circuitOpenError(): CircuitOpenError {
    return new CircuitOpenError(
      this.stage,
      this.#drainTimeoutMs,
      this.#lastError === undefined ? undefined : { cause: this.#lastError },
    );
  }

  #refuseAll(error: unknown): void {
    while (this.#waiting.length > 0) this.#waiting.shift()!.reject(error);
  }

  #open(error: unknown, failures: number): void {
    this.#lastError = error;
    this.#enter("open");
    this.#outcomes = [];
    this.#failureTimes = [];
    this.run.log("warn", "circuit opened: the stage's items wait", {
      stage: this.stage,
      failures,
      cooldownMs: this.#cooldownMs,
      reason: describeThrown(error),
    });
    if (this.run.hasListener) {
      this.run.emit({
        type: "circuitOpened",
        stage: this.stage,
        failures,
        cooldownMs: this.#cooldownMs,
        error: serializeError(error),
        timestamp: Date.now(),
      });
    }
    if (this.#cooldown !== undefined) this.clock.clearTimeout(this.#cooldown);
    this.#cooldown = this.clock.setTimeout(() => {
      this.#cooldown = undefined;
      this.#halfOpen();
    }, this.#cooldownMs);
    if (this.#stopping) this.#startDrainTimer();
  }

  #halfOpen(): void {
    this.#enter("halfOpen");
    this.#probesLeft = this.#probes;
    this.run.log("info", "circuit half-open: letting probes through", { stage: this.stage, probes: this.#probes });
    if (this.run.hasListener) {
      this.run.emit({ type: "circuitHalfOpen", stage: this.stage, probes: this.#probes, timestamp: Date.now() });
    }
    while (this.#probesLeft > 0 && this.#waiting.length > 0) {
      this.#probesLeft--;
      this.#waiting.shift()!.resolve(this.#generation);
    }
  }

  #close(): void {
    this.#enter("closed");
    this.#outcomes = [];
    this.#failureTimes = [];
    this.run.log("info", "circuit closed", { stage: this.stage });
    if (this.run.hasListener) this.run.emit({ type: "circuitClosed", stage: this.stage, timestamp: Date.now() });
    while (this.#waiting.length > 0) this.#waiting.shift()!.resolve(this.#generation);
  }

  #enter(state: CircuitState): void {
    this.#state = state;
    this.#generation++;
    this.counters.circuit = state;
  }
}
