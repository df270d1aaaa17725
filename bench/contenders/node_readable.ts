/**
 * Node's `Readable.prototype.map` with the job's concurrency, one `.map()`
 * per stage, read with `for await`. It keeps input order always (there is no
 * unordered mode), and runs on Node, Deno and Bun through `node:stream`.
 *
 * @module
 */

import { Readable } from "node:stream";
import { type Contender, ErrorPath, type Job, type Outcome, sinkOf, steps } from "../lib/job.ts";

export const nodeReadable: Contender = {
  name: "node_readable",
  how: "Readable.from(source).map(fn, { concurrency })… read with for await",
  async run(job: Job): Promise<Outcome> {
    const errors = new ErrorPath();
    let stream: Readable = Readable.from(job.source());
    for (const fn of steps(job, errors)) {
      stream = stream.map((value: unknown) => fn(value), { concurrency: job.concurrency });
    }
    const sink = sinkOf(job);
    if (job.sink.kind === "async") { for await (const value of stream) await sink(value); }
    else for await (const value of stream) sink(value);
    return errors.outcome();
  },
};
