/**
 * The clock a run reads when a stage sees an attempt's promise settle.
 *
 * A stage reads `performance.now()` for every item it finishes, for the
 * latency histogram: about 30 ns on Node and Bun, 75 ns on Deno, where the
 * reads took a third of a CPU-trivial pipeline's time. Most of those reads
 * can be shared without ever reporting a time earlier than the real one:
 *
 * - a promise's reactions are queued when it settles, and the microtask
 *   queue runs them first in, first out;
 * - so every reaction that runs before a microtask queued just after a
 *   reading belongs to a promise that had settled before the reading.
 *
 * {@linkcode SettleClock.settled} reads the clock, queues such a microtask,
 * and gives the same reading to every reaction until that microtask has run.
 * The reading is at or after the moment each of those promises settled, as
 * a fresh reading would be, and no later than one. A worker freed in such a
 * reaction starts its next item with the same reading, so that item's time
 * may include microtasks that ran before it started. A fresh reading had
 * the same slack at the other end (the microtasks that ran before the
 * reaction); either way a duration is never shorter than the real one.
 *
 * Only for code that runs as a promise reaction: a result seen synchronously
 * (a stage function that returns a value) needs a fresh reading,
 * {@linkcode SettleClock.now}. Fresh readings are shared too, so the times a
 * run hands out never go back: an item never starts before it was queued.
 *
 * @module
 */

/** `performance`, looked up once: on Node the global is a getter. */
const clock = performance;

/**
 * Schedules microtasks: `then` on a settled promise costs one small promise,
 * where Node's `queueMicrotask` also makes an async resource per call.
 * @internal
 */
export const settled: Promise<void> = Promise.resolve();

/** @internal */
export class SettleClock {
  /** The latest reading, fresh or shared: what `settled()` hands out never goes back in time. */
  #reading = clock.now();
  #shared = false;
  readonly #expire = (): void => {
    this.#shared = false;
  };

  /** A fresh `performance.now()` reading. */
  now(): number {
    return this.#reading = clock.now();
  }

  /** A `performance.now()` reading at or after the settling of the promise whose reaction is running. */
  settled(): number {
    if (this.#shared) return this.#reading;
    this.#shared = true;
    settled.then(this.#expire);
    return this.now();
  }
}
