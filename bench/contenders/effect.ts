/**
 * Effect (v4) `Stream`: one `Stream.mapEffect(fn, { concurrency, unordered })`
 * per stage over `Stream.fromIterable` (or `fromAsyncIterable`), drained with
 * `Stream.runForEach` into the sink. The same async functions are lifted with
 * `Effect.promise`; with an error path, `Effect.tryPromise` +
 * `Effect.retry({ times, while })` + `Effect.catch` to the dead letter list.
 *
 * @module
 */

import { Effect, Stream } from "effect";
import { type Contender, DROPPED, ErrorPath, isAsync, type Job, type Outcome, PermanentError } from "../lib/job.ts";

export const effect: Contender = {
  name: "effect",
  how:
    "Stream.fromIterable(source).pipe(Stream.mapEffect(x => Effect.promise(() => fn(x)), { concurrency, unordered })…, Stream.runForEach(sink))",
  async run(job: Job): Promise<Outcome> {
    const errors = new ErrorPath();
    const source = job.source();
    let stream: Stream.Stream<unknown, unknown> = isAsync(source)
      ? Stream.fromAsyncIterable(source, (error) => error)
      : Stream.fromIterable(source);
    const options = { concurrency: job.concurrency, unordered: !job.ordered };
    job.fns.forEach((fn, stage) => {
      stream = stream.pipe(Stream.mapEffect(stepOf(job, fn, stage, errors), options));
    });
    const sink = job.sink;
    const drain = sink.kind === "sync"
      ? Stream.runForEach(stream, (value) =>
        Effect.sync(() => {
          if (value !== DROPPED) sink.write(value);
        }))
      : Stream.runForEach(stream, (value) => value === DROPPED ? Effect.void : Effect.promise(() => sink.write(value)));
    await Effect.runPromise(drain);
    return errors.outcome();
  },
};

function stepOf(
  job: Job,
  fn: Job["fns"][number],
  stage: number,
  errors: ErrorPath,
): (value: unknown) => Effect.Effect<unknown> {
  const maxRetries = job.maxRetries;
  if (maxRetries === undefined) return (value) => Effect.promise(() => fn(value, 1));
  return (value) => {
    if (value === DROPPED) return Effect.succeed(DROPPED);
    let attempt = 0;
    return Effect.tryPromise({ try: () => fn(value, ++attempt), catch: (error) => error }).pipe(
      Effect.retry({ times: maxRetries, while: (error) => !(error instanceof PermanentError) }),
      Effect.tap(() => Effect.sync(() => (errors.retries += attempt - 1))),
      Effect.catch((error) =>
        Effect.sync(() => {
          errors.retries += attempt - 1;
          errors.deadLetters.push({ stage, item: value, error });
          return DROPPED;
        })
      ),
    );
  };
}
