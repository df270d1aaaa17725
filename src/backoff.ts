/**
 * Exponential backoff with optional jitter, as a pure function.
 *
 * @module
 */

/** How long to wait between attempts. */
export interface BackoffOptions {
  /**
   * The delay before the first retry, in milliseconds. 0 retries at once.
   * @default {100}
   */
  readonly initialDelayMs?: number;
  /**
   * No delay is longer than this, in milliseconds.
   * @default {30000}
   */
  readonly maxDelayMs?: number;
  /**
   * Each retry waits this many times longer than the one before.
   * @default {2}
   */
  readonly multiplier?: number;
  /**
   * Spread delays at random between half and all of the computed delay, so
   * that items failing together do not retry together. `false` gives exact
   * delays.
   * @default {true}
   */
  readonly jitter?: boolean;
}

/** {@linkcode BackoffOptions} with every default filled in. */
export type ResolvedBackoff = Required<BackoffOptions>;

/** The defaults of {@linkcode BackoffOptions}. */
export const DEFAULT_BACKOFF: ResolvedBackoff = Object.freeze({
  initialDelayMs: 100,
  maxDelayMs: 30_000,
  multiplier: 2,
  jitter: true,
});

/**
 * The delay before retry number `retry` (1 for the first retry).
 *
 * @example Exact delays without jitter
 * ```ts
 * import { backoffDelay } from "./backoff.ts";
 *
 * const policy = { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2, jitter: false };
 * console.assert(backoffDelay(policy, 1) === 100);
 * console.assert(backoffDelay(policy, 3) === 400);
 * console.assert(backoffDelay(policy, 10) === 1000);
 * ```
 *
 * @param policy The backoff settings.
 * @param retry 1 for the first retry, 2 for the second, …
 * @param random A source of numbers in [0, 1), for tests.
 */
export function backoffDelay(
  policy: ResolvedBackoff,
  retry: number,
  random: () => number = Math.random,
): number {
  if (policy.initialDelayMs === 0) return 0; // 0 × Infinity would be NaN after ~1024 retries
  const exact = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.multiplier ** (retry - 1));
  return policy.jitter ? exact / 2 + (random() * exact) / 2 : exact;
}
