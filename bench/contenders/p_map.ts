/**
 * p-map with the job's concurrency, the stage functions applied in turn to
 * each item by one mapper. `pMap` when the results may be collected and then
 * sunk (the fastest way to use it); `pMapIterable` when they must reach the
 * sink as they are made (bounded by `backpressure`, which defaults to the
 * concurrency). A failed item's mapper returns `pMapSkip`.
 *
 * Unordered jobs: `pMap` always runs items as soon as a slot is free and
 * returns results in input order, so `ordered` changes nothing for it;
 * `pMapIterable` gets `preserveOrder: false`.
 *
 * @module
 */

import pMap, { pMapIterable, pMapSkip } from "p-map";
import { type Contender, DROPPED, ErrorPath, type Job, type Outcome, steps } from "../lib/job.ts";

export const pMapContender: Contender = {
  name: "p_map",
  how: "pMap(source, x => f4(f3(f2(f1(x)))), { concurrency }) then sink the results; pMapIterable when streaming",
  async run(job: Job): Promise<Outcome> {
    const errors = new ErrorPath();
    const fns = steps(job, errors);
    const mapper = async (input: unknown) => {
      let value = input;
      for (const fn of fns) value = await fn(value);
      return value === DROPPED ? pMapSkip : value;
    };
    const sink = job.sink;
    if (job.streaming || sink.kind === "async") {
      const results = pMapIterable(job.source(), mapper, {
        concurrency: job.concurrency,
        preserveOrder: job.ordered,
      });
      if (sink.kind === "async") { for await (const value of results) await sink.write(value); }
      else for await (const value of results) sink.write(value);
    } else {
      const results = await pMap(job.source(), mapper, { concurrency: job.concurrency });
      for (const value of results) sink.write(value);
    }
    return errors.outcome();
  },
};
