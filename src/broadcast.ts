/**
 * The fan-out after a route or a broadcast: a small bounded buffer that
 * moves each item on one edge (route) or a copy on every edge (broadcast),
 * each edge as fast as its downstream node has room. The buffer frees an
 * item's room once it has left on all its edges, so a slow branch of a
 * broadcast fills the buffer and holds the source back: a broadcast goes at
 * the pace of its slowest branch. Failures and dropped items go straight to
 * the graph's outlet (they have no branch).
 *
 * @module
 */

import { Capacity } from "./capacity.ts";
import { type Chunk, type Envelope, Item } from "./envelope.ts";
import { Fifo } from "./fifo.ts";
import type { Edge, Inlet } from "./graph_edge.ts";
import type { Routed } from "./route.ts";

/** The most envelopes moved on one edge at once. */
const MAX_CHUNK = 256;

/** @internal */
export class FanOut implements Inlet {
  readonly capacity: Capacity;
  readonly #edges: readonly Edge[];
  readonly #pending: Fifo<Envelope>[];
  /** Broadcast: items moved on each edge so far; an item's room is free once every edge has moved it. */
  readonly #moved: number[];
  #released = 0;
  readonly #byBranch: ReadonlyMap<string, number> | undefined;
  readonly #outlet: Inlet;
  readonly #onCopies: (count: number) => void;
  readonly #waitingForRoom: boolean[];
  readonly #onEnd: () => void;
  #ending = false;
  #ended = false;

  /**
   * @param edges The edges out, in order.
   * @param branches For a route: each edge's branch, in the same order; none for a broadcast.
   * @param outlet Where failures and dropped items go.
   * @param onCopies Counts the extra copies a broadcast makes.
   * @param onEnd Called once every edge has ended.
   * @param limit How many items it holds (the graph's `queueSize`).
   */
  constructor(
    edges: readonly Edge[],
    branches: readonly string[] | undefined,
    outlet: Inlet,
    onCopies: (count: number) => void,
    onEnd: () => void,
    limit: number,
  ) {
    this.capacity = new Capacity(limit);
    this.#edges = edges;
    this.#pending = edges.map(() => new Fifo<Envelope>());
    this.#moved = edges.map(() => 0);
    this.#waitingForRoom = edges.map(() => false);
    this.#byBranch = branches && new Map(branches.map((branch, i) => [branch, i]));
    this.#outlet = outlet;
    this.#onCopies = onCopies;
    this.#onEnd = onEnd;
    edges.forEach((edge, i) => (edge.waiting = () => this.#pending[i].length));
  }

  /** Items held, not yet moved on every edge. */
  get buffered(): number {
    return this.capacity.used;
  }

  accept(chunk: Chunk): void {
    const byBranch = this.#byBranch;
    const pending = this.#pending;
    let other: Envelope[] | undefined;
    let copies = 0;
    for (const envelope of chunk) {
      if (!(envelope instanceof Item)) {
        (other ??= []).push(envelope);
      } else if (byBranch) {
        const routed = envelope.value as Routed;
        envelope.value = routed.value;
        pending[byBranch.get(routed.branch)!].push(envelope);
      } else {
        pending[0].push(envelope);
        for (let i = 1; i < pending.length; i++) {
          const copy = new Item(envelope.id, envelope.value);
          copy.bornAt = envelope.bornAt;
          copy.workMs = envelope.workMs;
          pending[i].push(copy);
        }
        copies += pending.length - 1;
      }
    }
    if (copies > 0) this.#onCopies(copies);
    if (other) this.#toOutlet(other);
    for (let i = 0; i < pending.length; i++) if (pending[i].length > 0) this.#flush(i);
  }

  end(): void {
    this.#ending = true;
    this.#checkEnded();
  }

  #toOutlet(chunk: Chunk): void {
    this.#outlet.capacity.take(chunk.length); // the outlet's room is unbounded
    this.#outlet.accept(chunk);
    if (this.#byBranch) this.capacity.release(chunk.length);
    else this.#releaseMoved(chunk.length);
  }

  /** Moves what waits for edge `i` on, as far as its node has room. */
  #flush(i: number): void {
    const pending = this.#pending[i];
    const edge = this.#edges[i];
    while (pending.length > 0) {
      const room = edge.target.capacity.take(Math.min(pending.length, MAX_CHUNK));
      if (room === 0) return this.#waitForRoom(i);
      edge.send(pending.take(room));
      if (this.#byBranch) this.capacity.release(room);
      else {
        this.#moved[i] += room;
        this.#releaseMoved(0);
      }
    }
    this.#checkEnded();
  }

  /** Broadcast: frees the room of items every edge has moved, and of `extra` that needed no edge. */
  #releaseMoved(extra: number): void {
    let least = this.#moved[0];
    for (let i = 1; i < this.#moved.length; i++) if (this.#moved[i] < least) least = this.#moved[i];
    const free = least - this.#released;
    this.#released = least;
    if (free + extra > 0) this.capacity.release(free + extra);
  }

  #waitForRoom(i: number): void {
    if (this.#waitingForRoom[i]) return;
    this.#waitingForRoom[i] = true;
    const next = this.#edges[i].target.capacity;
    next.whenFree(Math.min(this.#pending[i].length, MAX_CHUNK, Math.ceil(next.limit / 8))).then(() => {
      this.#waitingForRoom[i] = false;
      this.#flush(i);
    });
  }

  #checkEnded(): void {
    if (!this.#ending || this.#ended) return;
    for (const pending of this.#pending) if (pending.length > 0) return;
    this.#ended = true;
    for (const edge of this.#edges) edge.end();
    this.#onEnd();
  }
}
