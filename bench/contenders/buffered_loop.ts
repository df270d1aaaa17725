/**
 * A reference for the memory case (case 5), not a library: the `for await`
 * loop, reading ahead as many items as a sluice pipeline may hold under
 * backpressure with its `queueSize` (the default 1000, or the job's) — each
 * of the job's stages (queueSize + concurrency) and the sink's own stage
 * (queueSize + 1). It holds the same number of items for the same time, with
 * no bookkeeping at all: what holding them costs on this runtime, whoever
 * holds them.
 *
 * @module
 */

import {
  type Contender,
  ErrorPath,
  iteratorOf,
  type Job,
  type Outcome,
  sinkOf,
  SLUICE_DEFAULT_QUEUE_SIZE,
  steps,
} from "../lib/job.ts";

/** The items a sluice pipeline running `job` may hold: its bound under backpressure. */
export function itemsHeldBySluice(job: Job): number {
  const queueSize = job.queueSize ?? SLUICE_DEFAULT_QUEUE_SIZE;
  const sinkStage = job.sink.kind === "async" ? queueSize + 1 : 0;
  return job.fns.length * (queueSize + job.concurrency) + sinkStage;
}

export const bufferedLoop: Contender = {
  name: "buffered_loop",
  how: "for_await reading ahead as many items as sluice holds (4 × (1000 + 8) + 1001 in case 5), in a plain array",
  async run(job: Job): Promise<Outcome> {
    const errors = new ErrorPath();
    const fns = steps(job, errors);
    const sink = sinkOf(job);
    const isSync = job.sink.kind === "sync";
    const held = itemsHeldBySluice(job);
    const iterator = iteratorOf(job.source());
    const buffer: unknown[] = [];
    let head = 0;
    let done = false;
    const fill = async () => {
      while (!done && buffer.length - head < held) {
        const next = await iterator.next();
        if (next.done) done = true;
        else buffer.push(next.value);
      }
    };
    for (await fill(); head < buffer.length; await fill()) {
      let value = buffer[head];
      buffer[head++] = undefined;
      if (head >= 4096 && head * 2 >= buffer.length) {
        buffer.splice(0, head);
        head = 0;
      }
      for (const fn of fns) value = await fn(value);
      if (isSync) sink(value);
      else await sink(value);
    }
    return errors.outcome();
  },
};
