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
  #waiting: (() => void)[] = [];

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

  /** Resolves once some capacity is free (at once if some is). */
  whenFree(): Promise<void> {
    if (this.#free > 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Gives back `count` items of capacity and wakes the producers waiting. */
  release(count: number): void {
    this.#free += count;
    if (this.#free > this.limit) {
      throw new Error(`Capacity released more than it lent (limit ${this.limit}): this is a sluice bug`);
    }
    const waiting = this.#waiting;
    if (waiting.length === 0) return;
    this.#waiting = [];
    for (const wake of waiting) wake();
  }
}
