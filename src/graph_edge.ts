/**
 * What joins the nodes of a running graph: each node's way in (an
 * {@linkcode Inlet}: the room it has, and where items go) and the edges
 * between them, which count what crosses them and feed their taps.
 *
 * @module
 */

import type { Capacity } from "./capacity.ts";
import { type Chunk, Item } from "./envelope.ts";
import type { TapRun } from "./tap.ts";

/**
 * A node's way in. A producer takes room from `capacity` before it calls
 * `accept` with at most that many envelopes; `end` is called once per edge
 * in when that edge has no more. @internal
 */
export interface Inlet {
  readonly capacity: Capacity;
  accept(chunk: Chunk): void;
  end(): void;
}

/** One edge of a running graph. @internal */
export class Edge {
  /** Items that crossed it (failures and dropped items on their way to the outlet are not counted). */
  items = 0;
  /** Taps observing it; empty for most edges. */
  taps: TapRun[] = [];
  /** Envelopes sent on it and held upstream until the downstream node has room (set by a fan-out). */
  waiting: () => number = () => 0;

  constructor(
    readonly from: string,
    readonly to: string,
    readonly label: string | undefined,
    readonly target: Inlet,
  ) {}

  /** Moves a chunk on (the target's room is already taken for it). */
  send(chunk: Chunk): void {
    this.items += itemsIn(chunk);
    if (this.taps.length > 0) { for (const tap of this.taps) tap.offer(chunk, this.to); }
    this.target.accept(chunk);
  }

  /** This edge has no more. */
  end(): void {
    this.target.end();
  }
}

/**
 * Counts the edges into a node: `onEnd` runs when the last of them has
 * ended. @internal
 */
export function endAfter(edges: number, onEnd: () => void): () => void {
  let left = edges;
  return () => {
    left--;
    if (left === 0) onEnd();
  };
}

/** How many of a chunk's envelopes are items. @internal */
export function itemsIn(chunk: Chunk): number {
  let items = 0;
  for (const envelope of chunk) if (envelope instanceof Item) items++;
  return items;
}
