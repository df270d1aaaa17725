/**
 * A token bucket: at most `limit` attempts per `intervalMs`, in bursts of up
 * to `limit`. A stage's `rateLimit` option makes one per run; pass one
 * `RateLimiter` instance to several stages (or pipelines) to share a limit.
 *
 * @module
 */

import { type Clock, realClock } from "./clock.ts";
import { rateLimitSchema, validate } from "./config.ts";
import { Fifo } from "./fifo.ts";

/** Options of {@linkcode RateLimiter} (and a stage's `rateLimit`). */
export interface RateLimitOptions {
  /** Attempts allowed per `intervalMs`; also the largest burst. */
  readonly limit: number;
  /** The interval `limit` is counted over, in milliseconds. */
  readonly intervalMs: number;
}

/** Rounding slack: a bucket this close to a whole token has it. */
const EPSILON = 1e-9;

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  done: boolean;
}

/**
 * A token bucket that starts full: `limit` tokens, refilled continuously at
 * `limit` per `intervalMs`. Each attempt takes one token; attempts that find
 * none wait in line (first come, first served).
 *
 * @example Share one limit between two stages
 * ```ts
 * import { Pipeline, RateLimiter, stage } from "../mod.ts";
 *
 * const api = new RateLimiter({ limit: 100, intervalMs: 1000 });
 * const pipeline = new Pipeline({
 *   name: "calls",
 *   stages: [
 *     stage("lookup", (id: number) => id, { rateLimit: api }),
 *     stage("update", (id: number) => id, { rateLimit: api }),
 *   ],
 * });
 * const metrics = await pipeline.run([1, 2, 3]);
 * console.assert(metrics.totalCompleted === 3);
 * ```
 *
 * @example Drive it with a fake clock
 * ```ts
 * import { RateLimiter } from "./rate_limiter.ts";
 *
 * let now = 0;
 * const clock = { now: () => now, setTimeout: () => 0, clearTimeout: () => {} };
 * const limiter = new RateLimiter({ limit: 2, intervalMs: 1000 }, clock);
 * console.assert(limiter.tryAcquire() && limiter.tryAcquire() && !limiter.tryAcquire());
 * now = 500; // half the interval: one token back
 * console.assert(limiter.tryAcquire() && !limiter.tryAcquire());
 * ```
 */
export class RateLimiter {
  /** Attempts per `intervalMs`, and the largest burst. */
  readonly limit: number;
  /** The interval, in milliseconds. */
  readonly intervalMs: number;
  readonly #clock: Clock;
  #tokens: number;
  #updatedAt: number;
  readonly #waiting = new Fifo<Waiter>();
  #timerSet = false;

  /**
   * Makes a full bucket.
   * @param options `limit` and `intervalMs`.
   * @param clock Where time comes from (a fake one in tests).
   * @throws {ConfigError} when an option is invalid.
   */
  constructor(options: RateLimitOptions, clock: Clock = realClock) {
    const resolved = validate(rateLimitSchema, options, { owner: "RateLimiter", root: "options" });
    this.limit = resolved.limit;
    this.intervalMs = resolved.intervalMs;
    this.#clock = clock;
    this.#tokens = this.limit;
    this.#updatedAt = clock.now();
  }

  /** Whole tokens available now. */
  get available(): number {
    this.#refill();
    return Math.floor(this.#tokens + EPSILON);
  }

  /** How many wait for a token. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Takes a token if one is free and nobody waits in line; never waits. */
  tryAcquire(): boolean {
    if (this.#waiting.length > 0) return false;
    this.#refill();
    if (this.#tokens + EPSILON < 1) return false;
    this.#tokens = Math.max(0, this.#tokens - 1);
    return true;
  }

  /**
   * Resolves once a token is taken. An aborted `signal` takes the caller out
   * of line and rejects with its reason.
   */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, done: false };
      if (signal) {
        const onAbort = () => {
          if (waiter.done) return;
          waiter.done = true; // left in the queue, skipped when its turn comes
          reject(signal.reason);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        const settle = waiter.resolve;
        (waiter as { resolve: () => void }).resolve = () => {
          signal.removeEventListener("abort", onAbort);
          settle();
        };
      }
      this.#waiting.push(waiter);
      this.#schedule();
    });
  }

  #refill(): void {
    const now = this.#clock.now();
    const elapsed = now - this.#updatedAt;
    this.#updatedAt = now;
    if (elapsed > 0) this.#tokens = Math.min(this.limit, this.#tokens + (elapsed * this.limit) / this.intervalMs);
  }

  /** Hands out the tokens there are, in line order, and sets a timer for the next one. */
  #serve(): void {
    this.#refill();
    while (this.#waiting.length > 0 && this.#tokens + EPSILON >= 1) {
      const next = this.#waiting.shift()!;
      if (next.done) continue; // its caller gave up
      this.#tokens = Math.max(0, this.#tokens - 1);
      next.done = true;
      next.resolve();
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timerSet || this.#waiting.length === 0) return;
    const missing = Math.max(0, 1 - this.#tokens);
    const ms = Math.max(1, Math.ceil((missing * this.intervalMs) / this.limit));
    this.#timerSet = true;
    this.#clock.setTimeout(() => {
      this.#timerSet = false;
      this.#serve();
    }, ms);
  }
}
