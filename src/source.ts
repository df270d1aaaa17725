/**
 * Reading a source — a `ReadableStream`, an async iterable or an iterable —
 * only as fast as the first stage has room, and stopping when asked.
 *
 * @module
 */

import type { Capacity } from "./capacity.ts";
import { show } from "./config.ts";
import type { Chunk, Envelope } from "./envelope.ts";
import type { ItemId } from "./events.ts";

/** What `pipeline.run()` reads from. */
export type Source<T> = ReadableStream<T> | AsyncIterable<T> | Iterable<T>;

/**
 * How an item left the pipeline, for good: the fates every item ends in
 * exactly once. `expanded` is a flatMap stage's input, whose outputs go on as
 * items of their own (with ids derived from it).
 */
export type Fate = "completed" | "dead-lettered" | "filtered" | "skipped" | "expanded";

/** An item whose fate became final, as told to an {@linkcode AcknowledgingSource}. */
export interface SettledItem {
  /** The item's id, as the source's `itemId()` gave it. */
  readonly id: ItemId;
  /** Its fate. `dead-lettered` is told once the dead letter queue took the entry (a stream's `write()` resolved). */
  readonly fate: Fate;
}

/**
 * A source that hears each item's final fate: how a message queue (Redis
 * Streams, SQS, a Kafka consumer, …) acknowledges a message only once its
 * item has finished, so that a crash loses nothing. `pipeline.run()` treats
 * any async iterable with these three methods this way; a pipeline that reads
 * another source pays nothing for it.
 *
 * - The source names each value's id (`itemId`): the message id becomes the
 *   item's id, in events, logs and dead letters (`DeadLetter.itemId`). The
 *   pipeline's `id` option must not be given with such a source.
 * - `settle` is called, synchronously and in batches, as fates become final:
 *   `completed` when the item left the last stage, `filtered` / `skipped` when
 *   a stage dropped it, `dead-lettered` when the dead letter queue took it
 *   (kept in memory, or written to the `WritableStream`; an entry the stream
 *   refused is never told, so its message stays unacknowledged and comes
 *   back), `expanded` when a flatMap stage replaced it by its outputs. An
 *   item a flatMap stage expanded is told (`expanded`, or `dead-lettered`
 *   when its iterable broke) only once every output made from it, at any
 *   depth, has ended too; the outputs themselves are not told. Each item
 *   read is settled at most once per run.
 * - `close` is awaited once the run has nothing left in flight, after the
 *   dead letter queue was closed: flush pending acknowledgements there. A
 *   rejection makes `run()` reject.
 * - `rejection` (optional) dead-letters a value at the first stage instead of
 *   running it, with the error it returns (a message delivered too often).
 *
 * @typeParam T What the source gives the first stage.
 *
 * @example A source that acknowledges by id
 * ```ts
 * import { type AcknowledgingSource, Pipeline, type SettledItem, stage } from "../mod.ts";
 *
 * const messages = [{ id: "m1", body: 1 }, { id: "m2", body: -1 }];
 * const acked: SettledItem[] = [];
 * const queue: AcknowledgingSource<{ id: string; body: number }> = {
 *   async *[Symbol.asyncIterator]() {
 *     yield* messages;
 *   },
 *   itemId: (message) => message.id,
 *   settle: (items) => void acked.push(...items),
 *   close: async () => {},
 * };
 * const pipeline = new Pipeline({
 *   name: "queue",
 *   stages: [stage("check", (m: { id: string; body: number }) => {
 *     if (m.body < 0) throw new Error("negative");
 *     return m.body;
 *   })],
 * });
 * await pipeline.run(queue);
 * console.assert(acked.length === 2 && pipeline.deadLetters[0].itemId === "m2");
 * ```
 */
export interface AcknowledgingSource<T> extends AsyncIterable<T> {
  /** The id of a value read (its message id): the item's id. */
  itemId(value: T): ItemId;
  /** Told which items' fates became final; must not throw, and should return quickly. */
  settle(items: readonly SettledItem[]): void;
  /** Awaited at the end of the run, once every item read has been settled. */
  close(): Promise<void>;
  /** An error to dead-letter `value` with at the first stage instead of running it, or `undefined` to run it. */
  rejection?(value: T): unknown;
}

/**
 * The source as an {@linkcode AcknowledgingSource}, or undefined when it is
 * an ordinary one.
 * @internal
 */
export function acknowledgingOf(source: unknown): AcknowledgingSource<unknown> | undefined {
  const candidate = source as Partial<AcknowledgingSource<unknown>> | null;
  return typeof candidate?.itemId === "function" && typeof candidate.settle === "function" &&
      typeof candidate.close === "function"
    ? candidate as AcknowledgingSource<unknown>
    : undefined;
}

/** Reads up to `max` values; `null` at the end. */
interface ValueReader {
  /** True when reads are synchronous, so taking many at once costs nothing. */
  readonly sync: boolean;
  read(max: number): unknown[] | null | Promise<unknown[] | null>;
  /** Stops the source early (abort or cancel): `return()` or `cancel()`. */
  stop(): void;
}

/**
 * Throws a TypeError saying what was given, unless `source` can be read.
 * @internal
 */
export function checkSource(source: unknown): void {
  if (source === null || source === undefined) {
    throw new TypeError(`A pipeline source must be a ReadableStream, an async iterable or an iterable; got ${source}`);
  }
  if (typeof source === "string") {
    throw new TypeError(
      `A pipeline source must not be a string (it would be read character by character); wrap it in an array: [text]`,
    );
  }
  if (isReadableStream(source)) {
    if (source.locked) {
      throw new TypeError(
        `The source ReadableStream is locked (already being read); pass a stream nobody else reads, or tee() it`,
      );
    }
    return;
  }
  const candidate = source as { [Symbol.asyncIterator]?: unknown; [Symbol.iterator]?: unknown };
  if (typeof candidate[Symbol.asyncIterator] === "function" || typeof candidate[Symbol.iterator] === "function") return;
  throw new TypeError(
    `A pipeline source must be a ReadableStream, an async iterable or an iterable; got ${show(source)}`,
  );
}

function isReadableStream(value: unknown): value is ReadableStream<unknown> {
  return typeof ReadableStream !== "undefined" && value instanceof ReadableStream;
}

function readerFor(source: Source<unknown>, watch: AbortWatch): ValueReader {
  if (isReadableStream(source)) {
    const reader = source.getReader();
    return {
      sync: false,
      read: async () => {
        const { done, value } = await reader.read();
        return done ? null : [value];
      },
      stop: () => void reader.cancel().catch(() => {}),
    };
  }
  if (typeof (source as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function") {
    const iterator = (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    return {
      sync: false,
      read: async () => {
        const result = await iterator.next();
        return result.done ? null : [result.value];
      },
      stop: () => void Promise.resolve(iterator.return?.()).catch(() => {}),
    };
  }
  const iterator = (source as Iterable<unknown>)[Symbol.iterator]();
  let failed: { error: unknown } | undefined;
  return {
    sync: true,
    read: (max) => {
      if (failed) throw failed.error;
      const values: unknown[] = [];
      while (values.length < max && !watch.aborted) { // an abort from inside next() stops the reading at once
        let result: IteratorResult<unknown>;
        try {
          result = iterator.next();
        } catch (error) {
          if (values.length === 0) throw error;
          failed = { error }; // ingest what was read; the error comes with the next read
          return values;
        }
        if (result.done) return values.length > 0 ? values : null;
        values.push(result.value);
      }
      return values;
    },
    stop: () => {
      try {
        iterator.return?.();
      } catch {
        // The source failed while being stopped; nothing was lost by it.
      }
    },
  };
}

const aborted = Symbol("aborted");

/**
 * Watches the run's signal for the whole read with one listener and a plain
 * flag. On Node, adding and removing a listener per await and reading
 * `signal.aborted` per value cost more than reading a synchronous source.
 */
class AbortWatch {
  /** Set as the signal aborts (its event is dispatched synchronously), so an abort from inside `next()` shows at once. */
  aborted: boolean;
  readonly #signal: AbortSignal | undefined;
  /** What the pending `settledOrGivenUp` does on an abort (one is pending at a time). */
  #giveUp: (() => void) | undefined;
  readonly #onAbort = () => {
    this.aborted = true;
    this.#giveUp?.();
  };

  constructor(signal: AbortSignal | undefined) {
    this.#signal = signal;
    this.aborted = signal?.aborted ?? false;
    if (signal && !this.aborted) signal.addEventListener("abort", this.#onAbort, { once: true });
  }

  /**
   * Resolves with the promise's value, or with `aborted` one macrotask after
   * the signal aborts. The extra turn lets a value the source has already
   * handed out (its promise resolved, our callback not yet run) be ingested,
   * not dropped; an idle source is given up on a moment later.
   */
  settledOrGivenUp<T>(read: Promise<T>): Promise<T | typeof aborted> {
    if (!this.#signal) return read;
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const giveUpSoon = () => {
        timer = setTimeout(() => resolve(aborted), 0);
      };
      const done = () => {
        this.#giveUp = undefined;
        if (timer !== undefined) clearTimeout(timer);
      };
      if (this.aborted) giveUpSoon();
      else this.#giveUp = giveUpSoon;
      read.then((value) => {
        done();
        resolve(value);
      }, (error) => {
        done();
        reject(error);
      });
    });
  }

  dispose(): void {
    this.#signal?.removeEventListener("abort", this.#onAbort);
  }
}

/**
 * A synchronous source through synchronous stages runs entirely in
 * microtasks and would starve timers, I/O and signal handlers (and so the
 * abort that should stop it). The reader lets the event loop turn once per
 * this many milliseconds of continuous reading: about 2% of the time.
 */
const TURN_EVERY_MS = 50;

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * A stream of chunks read from `source`, taking the first stage's capacity
 * before each read. It closes (never errors) at the end, on abort, or when
 * the source fails — in which case `onError` gets the error.
 * @internal
 */
export function sourceStream(
  source: Source<unknown>,
  room: Capacity,
  ingest: (value: unknown) => Envelope,
  signal: AbortSignal | undefined,
  onError: (error: unknown) => void,
  onEnd?: () => void,
): ReadableStream<Chunk> {
  let reader: ValueReader;
  let finished = false;
  let lastTurn = performance.now();
  const watch = new AbortWatch(signal);
  const finish = (controller: ReadableStreamDefaultController<Chunk>, stop: boolean) => {
    if (finished) return;
    finished = true;
    watch.dispose();
    if (stop) reader?.stop();
    controller.close();
    onEnd?.();
  };
  return new ReadableStream<Chunk>({
    start() {
      reader = readerFor(source, watch);
    },
    async pull(controller) {
      if (performance.now() - lastTurn > TURN_EVERY_MS) {
        await nextTurn();
        lastTurn = performance.now();
      }
      if (watch.aborted) return finish(controller, true);
      const wanted = reader.sync ? Math.ceil(room.limit / 8) : 1; // sync sources: read a good share at once
      await watch.settledOrGivenUp(room.whenFree(wanted));
      if (watch.aborted) return finish(controller, true); // also when it came while room was freed
      const taken = room.take(reader.sync ? Number.POSITIVE_INFINITY : 1);
      let values: unknown[] | null | typeof aborted;
      try {
        const read = reader.read(taken);
        values = read instanceof Promise ? await watch.settledOrGivenUp(read) : read;
      } catch (error) {
        room.release(taken);
        onError(error);
        return finish(controller, false);
      }
      if (values === aborted || values === null) {
        room.release(taken);
        return finish(controller, values === aborted);
      }
      room.release(taken - values.length);
      controller.enqueue(values.map(ingest));
    },
    cancel() {
      finished = true;
      watch.dispose();
      reader?.stop();
    },
  }, { highWaterMark: 0 });
}
