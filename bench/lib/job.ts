/**
 * What every contender runs: a source, a chain of async functions, a
 * concurrency, an ordering, an error policy and a sink. A contender turns a
 * {@linkcode Job} into its own library's idiom and reports what it dead-lettered.
 *
 * @module
 */

import { loadSluice } from "./sluice_module.ts";

/**
 * sluice's `PermanentError`, from the one copy of sluice this process loads
 * (`loadSluice`: the bundle on Node and Bun, the source on Deno). Importing
 * `mod.ts` here as well would load a second copy of the library into every
 * process, sluice's contender's included: a heap none of its users has,
 * which case 5 would count against it (the collectors' thresholds grow with
 * the live heap).
 */
export const { PermanentError } = await loadSluice();

/** sluice's default `queueSize` per stage (`DEFAULT_QUEUE_SIZE` in src/pipeline.ts; documented in the README). */
export const SLUICE_DEFAULT_QUEUE_SIZE = 1000;

/** One stage's work: the value in, and which attempt this is (1 for the first). */
export type StageFn = (value: unknown, attempt: number) => Promise<unknown>;

/** Where outputs go. A `sync` sink is cheap and never awaited; an `async` one is slow and must be awaited. */
export type Sink =
  | { readonly kind: "sync"; write(value: unknown): void }
  | { readonly kind: "async"; write(value: unknown): Promise<void> };

/** One run of one contender. Made fresh for every run (the sink holds the run's tally). */
export interface Job {
  /** A fresh source: a (sync) iterable or an async iterable. */
  readonly source: () => Iterable<unknown> | AsyncIterable<unknown>;
  /** The stages, in order. */
  readonly fns: readonly StageFn[];
  /** Per stage. */
  readonly concurrency: number;
  /** Whether outputs must leave in input order. */
  readonly ordered: boolean;
  /**
   * `undefined`: the functions never throw, so no error handling is added.
   * A number: failed attempts are retried at once (no backoff) up to this many
   * times, except a {@linkcode PermanentError}; items that still fail are
   * dead-lettered and never reach the sink.
   */
  readonly maxRetries: number | undefined;
  /**
   * True when outputs must reach the sink as they are made (latency, memory),
   * not collected at the end (p-map's `pMap` collects; `pMapIterable` streams).
   */
  readonly streaming: boolean;
  readonly sink: Sink;
  /**
   * sluice's `queueSize` per stage, when not its default (`--queue-size`, for
   * exploring); `buffered_loop` holds as many items as that lets sluice hold.
   * The other contenders have no such setting and ignore it.
   */
  readonly queueSize?: number;
}

/** What a contender reports about one run, for checking. */
export interface Outcome {
  /** Items that failed for good. */
  readonly deadLettered: number;
  /** Retried attempts. */
  readonly retries: number;
  /** Items read from the source, when the contender counts them. */
  readonly ingested?: number;
}

/** A library (or no library) that runs jobs. */
export interface Contender {
  readonly name: string;
  /** One line on how the job is expressed with it. */
  readonly how: string;
  run(job: Job): Promise<Outcome>;
}

/** `contender`, running every job with sluice's `queueSize` set to `queueSize`. */
export function withQueueSize(contender: Contender, queueSize: number): Contender {
  return { ...contender, run: (job) => contender.run({ ...job, queueSize }) };
}

/** Marks an item that failed for good in contenders that pass failures on in place (like sluice does). */
export const DROPPED: unique symbol = Symbol("dropped");

/** A dead letter recorded by a hand-written error path. */
export interface DeadLetterRecord {
  readonly stage: number;
  readonly item: unknown;
  readonly error: unknown;
}

/** A hand-written error path's bookkeeping. */
export class ErrorPath {
  readonly deadLetters: DeadLetterRecord[] = [];
  retries = 0;

  outcome(): Outcome {
    for (const letter of this.deadLetters) {
      if (!(letter.error instanceof PermanentError)) {
        throw new Error(`a dead letter failed with something other than a PermanentError: ${String(letter.error)}`);
      }
    }
    return { deadLettered: this.deadLetters.length, retries: this.retries };
  }
}

/**
 * The job's stage functions as `value => Promise<value>`, with the error path
 * written by hand when the job has one: retry at once up to `maxRetries`
 * times (never a `PermanentError`), then record a dead letter and pass
 * {@linkcode DROPPED} on, which later stages and the sink skip.
 */
export function steps(job: Job, errors: ErrorPath): ((value: unknown) => Promise<unknown>)[] {
  const maxRetries = job.maxRetries;
  if (maxRetries === undefined) return job.fns.map((fn) => (value: unknown) => fn(value, 1));
  return job.fns.map((fn, stage) => async (value: unknown) => {
    if (value === DROPPED) return DROPPED;
    for (let attempt = 1;; attempt++) {
      try {
        return await fn(value, attempt);
      } catch (error) {
        if (attempt > maxRetries || error instanceof PermanentError) {
          errors.deadLetters.push({ stage, item: value, error });
          return DROPPED;
        }
        errors.retries++;
      }
    }
  });
}

/** Writes to the job's sink unless the item was dropped; awaits only an async sink. */
export function sinkOf(job: Job): (value: unknown) => void | Promise<void> {
  const sink = job.sink;
  return (value) => {
    if (value !== DROPPED) return sink.write(value);
  };
}

/** True for an async iterable (else the source is a sync iterable). */
export function isAsync(source: Iterable<unknown> | AsyncIterable<unknown>): source is AsyncIterable<unknown> {
  return typeof (source as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function";
}

/** An iterator over a sync or async source, for contenders that pull values themselves. */
export function iteratorOf(
  source: Iterable<unknown> | AsyncIterable<unknown>,
): AsyncIterator<unknown> | Iterator<unknown> {
  return isAsync(source) ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
}

/** Resolves after `ms` milliseconds (a macrotask, as I/O would be). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
