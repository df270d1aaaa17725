/**
 * The latest failures of a run, for `pipeline.snapshot()`: a fixed ring
 * written only when an item is dead-lettered, so a run that fails nothing
 * (or keeps none) pays nothing.
 *
 * @module
 */

import type { ItemId } from "./events.ts";

/** One failure as the ring keeps it; serialized only when a snapshot is taken. @internal */
export interface RecentFailure {
  readonly itemId: ItemId;
  readonly stage: string;
  readonly reason: string;
  readonly error: unknown;
  readonly attempts: number;
  /** Epoch milliseconds. */
  readonly failedAt: number;
}

/** A ring of the last `size` failures. @internal */
export class RecentErrors {
  readonly #slots: (RecentFailure | undefined)[];
  #next = 0;
  #count = 0;

  constructor(readonly size: number) {
    this.#slots = new Array(size).fill(undefined);
  }

  push(failure: RecentFailure): void {
    this.#slots[this.#next] = failure;
    this.#next = (this.#next + 1) % this.size;
    if (this.#count < this.size) this.#count++;
  }

  /** Oldest first. */
  list(): RecentFailure[] {
    const out: RecentFailure[] = [];
    const start = (this.#next - this.#count + this.size) % this.size;
    for (let i = 0; i < this.#count; i++) out.push(this.#slots[(start + i) % this.size]!);
    return out;
  }
}
