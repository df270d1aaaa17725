/**
 * A tap: observes the items crossing an edge without touching them. The
 * edge hands the tap each item's id and value and moves on at once; the
 * tap's function runs later, one call at a time, from a bounded buffer. A
 * tap that is slow falls behind, and once its buffer is full it either
 * drops what comes (`"drop"`: it sees the start of each burst) or keeps a
 * uniform random sample of it (`"sample"`: reservoir sampling). A tap that
 * throws is logged and counted. Either way the items move on unchanged and
 * none is held back or lost.
 *
 * @module
 */

import { type Chunk, Item } from "./envelope.ts";
import type { ItemId } from "./events.ts";
import type { TapDecl } from "./graph_builder.ts";
import type { GraphTapMetrics } from "./graph_types.ts";
import type { RunContext } from "./run_context.ts";
import { isPromiseLike } from "./attempt.ts";

interface Seen {
  readonly value: unknown;
  readonly itemId: ItemId;
  readonly to: string;
}

/** One tap in one run. @internal */
export class TapRun {
  #seen = 0;
  #missed = 0;
  #errors = 0;
  #buffer: Seen[] = [];
  #head = 0;
  /** Items offered since the buffer filled up (reservoir sampling). */
  #behind = 0;
  #draining = false;

  constructor(readonly decl: TapDecl, readonly node: string, readonly run: RunContext) {}

  /** Called by the edge for every chunk that crosses it: never throws, never waits. */
  offer(chunk: Chunk, to: string): void {
    for (const envelope of chunk) {
      if (!(envelope instanceof Item)) continue;
      const seen = { value: envelope.value, itemId: envelope.id, to };
      if (!this.#draining) {
        // The tap is idle: it takes this value now (the buffer holds only values waiting for it).
        this.#draining = true;
        queueMicrotask(() => void this.#drain(seen));
        continue;
      }
      if (this.#buffer.length - this.#head < this.decl.bufferSize) {
        this.#buffer.push(seen);
        this.#behind = 0;
        continue;
      }
      this.#missed++;
      if (this.decl.whenFull === "drop") continue;
      // Algorithm R over the values since the buffer filled: each is kept with probability size / seen so far.
      this.#behind++;
      const slot = Math.floor(Math.random() * (this.decl.bufferSize + this.#behind));
      if (slot < this.decl.bufferSize) this.#buffer[this.#head + slot] = seen;
    }
  }

  /** Calls the tap's function with `first`, then with what is buffered, one at a time. */
  async #drain(first: Seen): Promise<void> {
    for (let seen: Seen | undefined = first; seen; seen = this.#take()) {
      try {
        const result: unknown = this.decl.fn(seen.value, { itemId: seen.itemId, node: this.node, to: seen.to });
        if (isPromiseLike(result)) await result;
      } catch (error) {
        this.#errors++;
        this.run.log("warn", "tap threw; the items move on unchanged", {
          stage: this.node,
          itemId: seen.itemId,
          tap: this.decl.name,
          error,
        });
      }
      this.#seen++;
    }
    this.#draining = false;
  }

  /** The next buffered value, if any. */
  #take(): Seen | undefined {
    if (this.#head === this.#buffer.length) {
      this.#buffer = [];
      this.#head = 0;
      return undefined;
    }
    const seen = this.#buffer[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > this.#buffer.length) {
      this.#buffer = this.#buffer.slice(this.#head);
      this.#head = 0;
    }
    return seen;
  }

  metrics(): GraphTapMetrics {
    return { seen: this.#seen, missed: this.#missed, errors: this.#errors, pending: this.#buffer.length - this.#head };
  }
}
