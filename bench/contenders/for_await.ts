/**
 * The floor: a plain `for await` loop over the source, awaiting each stage
 * function in turn, one item at a time (no concurrency).
 *
 * @module
 */

import { type Contender, ErrorPath, type Job, type Outcome, sinkOf, steps } from "../lib/job.ts";

export const forAwait: Contender = {
  name: "for_await",
  how: "for await (const x of source) sink(await f4(await f3(await f2(await f1(x))))); one item at a time",
  async run(job: Job): Promise<Outcome> {
    const errors = new ErrorPath();
    const fns = steps(job, errors);
    const sink = sinkOf(job);
    const isSync = job.sink.kind === "sync";
    for await (const input of job.source()) {
      let value = input;
      for (const fn of fns) value = await fn(value);
      if (isSync) sink(value);
      else await sink(value);
    }
    return errors.outcome();
  },
};
