/**
 * A stage's error strategies and flow control as given in its options:
 * `onError`, `circuitBreaker` and `rateLimit`. A run turns them into the
 * machinery around the stage (see `flow_control.ts`); a stage without them
 * runs exactly as before.
 *
 * @module
 */

import type { CircuitBreakerOptions } from "./circuit_breaker.ts";
import type { OnError } from "./error_router.ts";
import type { RateLimiter, RateLimitOptions } from "./rate_limiter.ts";

/** The error-strategy options every stage takes (part of `CommonStageOptions`). */
export interface StageStrategyOptions {
  /**
   * Error routing for this stage: `[matcher, action]` rules tried in order
   * (see {@linkcode OnError}); overrides the pipeline's `onError`.
   * @default {the pipeline's onError, else retryIf and maxRetries, then the dead letter queue}
   */
  readonly onError?: OnError;
  /**
   * Stop starting attempts after repeated failures, and let the stage's
   * items wait until a probe succeeds.
   * @default {undefined} no breaker
   */
  readonly circuitBreaker?: CircuitBreakerOptions;
  /**
   * At most `limit` attempts per `intervalMs` (a token bucket, bursts up to
   * `limit`); pass one `RateLimiter` to several stages to share it. Options
   * make a new bucket for each run.
   * @default {undefined} no limit
   */
  readonly rateLimit?: RateLimitOptions | RateLimiter;
}

/** What a stage spec keeps of them. @internal */
export interface StageStrategies {
  readonly onError: OnError | undefined;
  readonly circuitBreaker: CircuitBreakerOptions | undefined;
  readonly rateLimit: RateLimitOptions | RateLimiter | undefined;
}

/** The strategies in resolved stage options, or undefined when there are none. @internal */
export function strategiesOf(options: {
  onError?: unknown;
  circuitBreaker?: unknown;
  rateLimit?: unknown;
}): StageStrategies | undefined {
  const { onError, circuitBreaker, rateLimit } = options;
  if (onError === undefined && circuitBreaker === undefined && rateLimit === undefined) return undefined;
  return {
    onError: onError as OnError | undefined,
    circuitBreaker: circuitBreaker as CircuitBreakerOptions | undefined,
    rateLimit: rateLimit as RateLimitOptions | RateLimiter | undefined,
  };
}
