/**
 * An item-count budget shared by a stage and whoever feeds it.
 *
 * Web streams move whole chunks: `pipeTo` takes a chunk out of one queue
 * before the next queue has counted it, so a queue bounded in items can
 * overshoot by a chunk at every link. sluice moves small arrays of items
 * between stages (one promise per array, not per item), so it keeps the bound
 * exact with this counter: a producer takes capacity before it enqueues items
 * for a stage, and sizes its array to what it got; the stage gives capacity
 * back when its outputs move on, which wakes a producer that is waiting.
 *
 * @module
 */

/** @internal */
export class Capacity {
  #free: number;
  #waiting: { readonly wanted: number; readonly wake: () => void }[] = [];

  constructor(readonly limit: number) {
    this.#free = limit;
  }

  /** Items admitted and not yet released. */
  get used(): number {
    return this.limit - this.#free;
  }

  /** Takes up to `wanted` items of capacity now; returns how many it got. */
  take(wanted: number): number {
    const got = Math.min(wanted, this.#free);
    this.#free -= got;
    return got;
  }

  /**
   * Resolves once at least `wanted` items of capacity are free (at most the
   * limit; at once if they are). Waiting for a useful amount instead of the
   * first free item keeps chunks large when a queue is full.
   */
  whenFree(wanted = 1): Promise<void> {
    const needed = Math.max(1, Math.min(wanted, this.limit));
    if (this.#free >= needed) return Promise.resolve();
    return new Promise((wake) => this.#waiting.push({ wanted: needed, wake }));
  }

  /** Gives back `count` items of capacity and wakes the producers waiting. */
  release(count: number): void {
    this.#free += count;
    if (this.#free > this.limit) {
      throw new Error(`Capacity released more than it lent (limit ${this.limit}): this is a sluice bug`);
    }
    if (!this.#wakesAnyone()) return;
    const stillWaiting = [];
    for (const waiter of this.#waiting) {
      if (this.#free >= waiter.wanted) waiter.wake();
      else stillWaiting.push(waiter);
    }
    this.#waiting = stillWaiting;
  }

  /** Most releases wake nobody (a waiter wants a good share freed): checked before the list is rebuilt. */
  #wakesAnyone(): boolean {
    for (const waiter of this.#waiting) if (this.#free >= waiter.wanted) return true;
    return false;
  }
}
