/**
 * The worker module of examples/worker_stage.ts: a CPU-bound function (it
 * counts primes the slow way) that runs in the stage's worker threads. It
 * imports nothing from the pipeline; whatever it imports loads in each
 * worker.
 *
 * @module
 */
import { PermanentError } from "../mod.ts";

/** How many primes are below `limit`. */
export default function countPrimes(limit: number): { limit: number; primes: number } {
  if (!Number.isInteger(limit) || limit < 0) throw new PermanentError(`limit must be a whole number: got ${limit}`);
  let primes = 0;
  for (let n = 2; n < limit; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) primes++;
  }
  return { limit, primes };
}
