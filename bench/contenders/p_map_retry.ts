/**
 * p-map with p-retry around each stage function: what a user who reaches for
 * the two sindresorhus packages writes for "fetch these with 64 at a time,
 * retry what fails". Retries happen at once (`minTimeout: 0`), as sluice's
 * (`backoff.initialDelayMs: 0`) and the worker pool's do here, never for a
 * `PermanentError`; an item that still fails is recorded as a dead letter and
 * skipped (`pMapSkip`).
 *
 * @module
 */

import pMap, { pMapSkip } from "p-map";
import pRetry from "p-retry";
import { type Contender, ErrorPath, type Job, type Outcome, PermanentError } from "../lib/job.ts";

export const pMapRetry: Contender = {
  name: "p_map_retry",
  how: "pMap(source, x => pRetry(attempt => fn(x, attempt), { retries, minTimeout: 0 }), { concurrency })",
  async run(job: Job): Promise<Outcome> {
    const errors = new ErrorPath();
    const retries = job.maxRetries ?? 0;
    const options = {
      retries,
      minTimeout: 0,
      maxTimeout: 0,
      randomize: false,
      shouldRetry: ({ error }: { error: unknown }) => !(error instanceof PermanentError),
    };
    const mapper = async (input: unknown) => {
      let value = input;
      for (const [stage, fn] of job.fns.entries()) {
        try {
          value = await pRetry((attempt) => {
            if (attempt > 1) errors.retries++;
            return fn(value, attempt);
          }, options);
        } catch (error) {
          errors.deadLetters.push({ stage, item: value, error });
          return pMapSkip;
        }
      }
      return value;
    };
    const results = await pMap(job.source(), mapper, { concurrency: job.concurrency });
    const sink = job.sink;
    if (sink.kind === "async") { for (const value of results) await sink.write(value); }
    else for (const value of results) sink.write(value);
    return errors.outcome();
  },
};
