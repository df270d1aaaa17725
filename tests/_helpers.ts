/**
 * Test helpers shared by the suite: promises resolved by hand, gates that
 * hold stage functions until the test lets them go, counting sources and a
 * logger that records what it is given, a seeded PRNG, and a guard that turns
 * a hang into a failure. Nothing here is used to wait on a clock.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { GraphMetrics, Logger, LogLevel, LogProperties } from "../mod.ts";

/** A promise with its `resolve` and `reject` exposed. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
  readonly settled: boolean;
}

/** Makes a {@linkcode Deferred}. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  let settled = false;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return {
    promise,
    resolve(value) {
      settled = true;
      resolve(value);
    },
    reject(reason) {
      settled = true;
      reject(reason);
    },
    get settled() {
      return settled;
    },
  };
}

/** A counter whose `reaches(n)` resolves once it has been incremented `n` times. */
export class Counter {
  #count = 0;
  #waiters: { n: number; done: Deferred<void> }[] = [];

  get count(): number {
    return this.#count;
  }

  increment(by = 1): void {
    this.#count += by;
    this.#waiters = this.#waiters.filter(({ n, done }) => {
      if (this.#count < n) return true;
      done.resolve();
      return false;
    });
  }

  reaches(n: number): Promise<void> {
    if (this.#count >= n) return Promise.resolve();
    const done = deferred();
    this.#waiters.push({ n, done });
    return done.promise;
  }
}

/** One call held at a {@linkcode Gate}. */
export interface Held<T> {
  readonly value: T;
  release(): void;
  fail(error: unknown): void;
}

/**
 * Holds stage calls until the test releases them: a stage function does
 * `await gate.enter(value)`, the test does `(await gate.next()).release()`.
 */
export class Gate<T = unknown> {
  #held: Held<T>[] = [];
  #takers: Deferred<Held<T>>[] = [];
  /** Calls that entered the gate so far. */
  entered = 0;

  enter(value: T): Promise<void> {
    this.entered++;
    const done = deferred();
    const held: Held<T> = { value, release: () => done.resolve(), fail: (error) => done.reject(error) };
    const taker = this.#takers.shift();
    if (taker) taker.resolve(held);
    else this.#held.push(held);
    return done.promise;
  }

  /** The next held call, in the order they entered (waits for one if none is held). */
  next(): Promise<Held<T>> {
    const held = this.#held.shift();
    if (held) return Promise.resolve(held);
    const taker = deferred<Held<T>>();
    this.#takers.push(taker);
    return taker.promise;
  }

  /** Calls held right now and not yet taken with `next()`. */
  get waiting(): number {
    return this.#held.length;
  }
}

/** Which runtime runs the tests. */
export function runtime(): "deno" | "bun" | "node" {
  if ((globalThis as { Deno?: unknown }).Deno !== undefined) return "deno";
  if ((globalThis as { process?: { versions?: { bun?: string } } }).process?.versions?.bun) return "bun";
  return "node";
}

/** `[0, 1, …, n - 1]`. */
export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** What a counting source reports. */
export interface SourceProbe {
  /** Values handed out so far. */
  pulled: number;
  /** True once the source said it had no more. */
  exhausted: boolean;
  /** True once the reader stopped it early (`return()` or `cancel()`). */
  stopped: boolean;
}

/** The kinds of source `run()` takes. */
export type SourceKind = "iterable" | "generator" | "async generator" | "ReadableStream";

/**
 * A source of `0 … count - 1` (endless when `count` is `Infinity`) that
 * counts what was pulled from it and calls `onPull(probe)` after every value
 * it hands out.
 */
export function countingSource(
  kind: SourceKind,
  count: number,
  onPull: (probe: SourceProbe) => void = () => {},
): { source: Iterable<number> | AsyncIterable<number> | ReadableStream<number>; probe: SourceProbe } {
  const probe: SourceProbe = { pulled: 0, exhausted: false, stopped: false };
  const nextValue = (): IteratorResult<number> => {
    if (probe.pulled >= count) {
      probe.exhausted = true;
      return { done: true, value: undefined };
    }
    const value = probe.pulled++;
    onPull(probe);
    return { done: false, value };
  };
  switch (kind) {
    case "iterable": {
      const source: Iterable<number> = {
        [Symbol.iterator]: () => ({
          next: nextValue,
          return: () => {
            probe.stopped = true;
            return { done: true, value: undefined };
          },
        }),
      };
      return { source, probe };
    }
    case "generator": {
      const generate = function* (): Generator<number> {
        try {
          for (let next = nextValue(); !next.done; next = nextValue()) yield next.value;
        } finally {
          if (!probe.exhausted) probe.stopped = true;
        }
      };
      return { source: generate(), probe };
    }
    case "async generator": {
      const generate = async function* (): AsyncGenerator<number> {
        try {
          for (let next = nextValue(); !next.done; next = nextValue()) yield next.value;
        } finally {
          if (!probe.exhausted) probe.stopped = true;
        }
      };
      return { source: generate(), probe };
    }
    case "ReadableStream": {
      const source = new ReadableStream<number>({
        pull(controller) {
          const next = nextValue();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        },
        cancel() {
          probe.stopped = true;
        },
      }, { highWaterMark: 0 });
      return { source, probe };
    }
  }
}

/** A ReadableStream over `values` (ReadableStream.from is missing from Node's type libs). */
export function readableOf<T>(values: readonly T[]): ReadableStream<T> {
  let index = 0;
  return new ReadableStream<T>({
    pull(controller) {
      if (index < values.length) controller.enqueue(values[index++]);
      else controller.close();
    },
  });
}

/** Reads a stream to its end. */
export async function collect<T>(readable: ReadableStream<T>): Promise<T[]> {
  const out: T[] = [];
  const reader = readable.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return out;
    out.push(value);
  }
}

/** One record a {@linkcode recordingLogger} received. */
export interface LogRecord {
  readonly level: LogLevel;
  readonly message: string;
  readonly properties: LogProperties;
}

/** A logger that keeps every record; `onRecord` sees each as it arrives. */
export function recordingLogger(
  onRecord: (record: LogRecord) => void = () => {},
): { logger: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const at = (level: LogLevel) => (message: string, properties: LogProperties = {}) => {
    const record = { level, message, properties };
    records.push(record);
    onRecord(record);
  };
  return { logger: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") }, records };
}

/** A `WritableStream` that keeps what is written and notes when it is closed. */
export function recordingSink<T>(): { sink: WritableStream<T>; written: T[]; closed: () => boolean } {
  const written: T[] = [];
  let closed = false;
  const sink = new WritableStream<T>({
    write(entry) {
      written.push(entry);
    },
    close() {
      closed = true;
    },
  });
  return { sink, written, closed: () => closed };
}

/**
 * Rejects if `promise` has not settled within `ms`: a safety net so that a
 * broken library makes a test fail instead of hang. Never used to wait.
 */
export function guard<T>(promise: Promise<T>, what: string, ms = 3000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** mulberry32: a tiny seeded PRNG giving numbers in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded Fisher–Yates shuffle (returns a new array). */
export function shuffle<T>(values: readonly T[], random: () => number): T[] {
  const out = [...values];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** A real timer, only for features that are themselves time-based. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Spins for `ms` milliseconds of `performance.now()` time: work that no timer or promise can hide. */
export function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* spin */ }
}

/** Conservation over a whole graph at the end of a run, as documented on `GraphMetrics`; nothing in flight. */
export function assertGraphConserved(m: GraphMetrics): void {
  assert.equal(
    m.totalIngested + m.totalCopies,
    m.totalCompleted + m.totalFailed + m.totalFiltered + m.totalSkipped + m.totalExpanded + m.totalJoined,
    JSON.stringify(m),
  );
  assert.equal(m.itemsInFlight, 0);
}

/** `true` when `A` and `B` are the same type (for the compile-time type tests). */
export type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;

/** Compiles only when `T` is `true`: `expectType<Equals<A, B>>()`. */
export function expectType<T extends true>(_proof?: T): void {}
