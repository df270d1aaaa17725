/**
 * Task concurrency limits: a counting semaphore per limited task, made
 * fresh for every run, so that at most N calls of a task run at once across
 * the workers and stages that share it.
 *
 * @module
 */

import { Fifo } from "./fifo.ts";

/** At most `limit` holders at once; the others wait in arrival order. @internal */
export class TaskSlots {
  #free: number;
  readonly #waiting = new Fifo<{ grant: () => void; settled: boolean }>();

  constructor(readonly limit: number) {
    this.#free = limit;
  }

  /** Slots held right now. */
  get used(): number {
    return this.limit - this.#free;
  }

  /**
   * Takes a slot: `undefined` when one was free (no promise, no microtask),
   * else a promise that resolves once one is, or rejects with the signal's
   * reason if it aborts first (the waiter then takes nothing).
   */
  acquire(signal: AbortSignal | undefined): Promise<void> | undefined {
    if (this.#free > 0) {
      this.#free--;
      return undefined;
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const waiter = {
        settled: false,
        grant: () => {
          waiter.settled = true;
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        if (waiter.settled) return;
        waiter.settled = true;
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  /** Gives a slot back: to the longest waiter still waiting, or to the pool. */
  release(): void {
    for (;;) {
      const waiter = this.#waiting.shift();
      if (!waiter) break;
      if (waiter.settled) continue; // it gave up (its attempt was aborted)
      waiter.grant();
      return;
    }
    this.#free++;
  }
}

/** The slot key of a task limited pipeline-wide. @internal */
export const pipelineSlotKey = (task: string): string => `pipeline\u0000${task}`;
/** The slot key of a task limited in one stage. @internal */
export const stageSlotKey = (stage: string, task: string): string => `stage\u0000${stage}\u0000${task}`;
