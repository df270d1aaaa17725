/**
 * The clock the rate limiter and the circuit breaker read time from and set
 * timers on: the real one by default, a fake one in tests.
 *
 * @module
 */

/**
 * Time and timers. Pass your own to a {@linkcode RateLimiter} to drive it by
 * hand (tests, simulations).
 *
 * @example A clock that only moves when told to
 * ```ts
 * import type { Clock } from "./clock.ts";
 *
 * let now = 0;
 * const timers: { at: number; fn: () => void }[] = [];
 * const clock: Clock = {
 *   now: () => now,
 *   setTimeout: (fn, ms) => timers.push({ at: now + ms, fn }),
 *   clearTimeout: () => {},
 * };
 * clock.setTimeout(() => {}, 10);
 * now += 10;
 * console.assert(timers[0].at === now);
 * ```
 */
export interface Clock {
  /** Milliseconds, from any fixed origin. */
  now(): number;
  /** Calls `fn` after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer `setTimeout` returned. */
  clearTimeout(handle: unknown): void;
}

/** `performance.now()` and the global timers. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};
