/**
 * What a user writes with no library: one per-item `TransformStream` per
 * stage, `pipeThrough` chained, `pipeTo` a `WritableStream` sink. Each
 * transform awaits its function, so a stage works on one item at a time
 * whatever the job's concurrency (there is no concurrency to configure).
 *
 * @module
 */

import { type Contender, ErrorPath, type Job, type Outcome, sinkOf, steps } from "../lib/job.ts";

/** `ReadableStream.from` (Node ≥ 20.6, Deno, Bun), which TypeScript's DOM lib does not declare yet. */
interface WithFrom {
  from<T>(source: Iterable<T> | AsyncIterable<T>): ReadableStream<T>;
}

export const naiveStreams: Contender = {
  name: "naive_streams",
  how:
    "ReadableStream.from(source).pipeThrough(new TransformStream({ async transform(x, c) { c.enqueue(await fn(x)) } }))… .pipeTo(sink); concurrency 1 per stage",
  async run(job: Job): Promise<Outcome> {
    const errors = new ErrorPath();
    let stream = (ReadableStream as unknown as WithFrom).from(job.source());
    for (const step of steps(job, errors)) {
      stream = stream.pipeThrough(
        new TransformStream<unknown, unknown>({
          async transform(value, controller) {
            controller.enqueue(await step(value));
          },
        }),
      );
    }
    const sink = sinkOf(job);
    await stream.pipeTo(new WritableStream({ write: (value) => sink(value) }));
    return errors.outcome();
  },
};
