/**
 * The ceiling for I/O-bound work (case 3): `concurrency` plain async workers
 * sharing one iterator over the source, each running an item through every
 * stage and into the sink before taking the next. No ordering, no bounds
 * beyond the worker count, no bookkeeping.
 *
 * @module
 */

import { type Contender, ErrorPath, iteratorOf, type Job, type Outcome, sinkOf, steps } from "../lib/job.ts";

export const workerPool: Contender = {
  name: "worker_pool",
  how: "concurrency × async () => { for (;;) { const x = await it.next(); … sink(await fn(x)) } }, unordered",
  async run(job: Job): Promise<Outcome> {
    const errors = new ErrorPath();
    const fns = steps(job, errors);
    const sink = sinkOf(job);
    const isSync = job.sink.kind === "sync";
    const iterator = iteratorOf(job.source());
    const worker = async () => {
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        let value = next.value;
        for (const fn of fns) value = await fn(value);
        if (isSync) sink(value);
        else await sink(value);
      }
    };
    await Promise.all(Array.from({ length: job.concurrency }, worker));
    return errors.outcome();
  },
};
