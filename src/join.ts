/**
 * A join node: collects the copies of one item (by id) that come in on its
 * branches and moves on one item whose value holds each branch's output
 * under the branch's name. A join that cannot complete (a branch's copy
 * failed, was filtered or skipped, did not come within `timeoutMs`, or the
 * inputs ended without it) is dead-lettered as one partial item with a
 * {@linkcode JoinError} naming the missing branches.
 *
 * Each branch has its own room, so a fast branch never takes the room a
 * slow one needs to catch up; a copy keeps its room until the joined item
 * has moved on, so a slow node after the join holds the branches back.
 *
 * @module
 */

import { Capacity } from "./capacity.ts";
import { type Chunk, Dropped, type Envelope, Failure, Item } from "./envelope.ts";
import { Fifo } from "./fifo.ts";
import type { ItemId } from "./events.ts";
import type { Edge, Inlet } from "./graph_edge.ts";
import type { StageCounters } from "./metrics.ts";
import type { RunContext } from "./run_context.ts";

/**
 * Dead-letters a partial join: the branches named in `missing` did not
 * deliver the item. The dead letter's `item` holds what did arrive, by
 * branch.
 *
 * @example
 * ```ts
 * import { JoinError } from "../mod.ts";
 *
 * const error = new JoinError("enrich", ["credit"], "timed out after 50 ms");
 * console.assert(error.name === "JoinError" && error.missing[0] === "credit");
 * ```
 */
export class JoinError extends Error {
  /** The join's name. */
  readonly join: string;
  /** The branches that did not deliver. */
  readonly missing: readonly string[];
  /**
   * Makes the error.
   * @param join The join's name.
   * @param missing The branches that did not deliver.
   * @param why What happened: a timeout, a branch that failed, the inputs' end.
   */
  constructor(join: string, missing: readonly string[], why: string, options?: ErrorOptions) {
    super(
      `Join "${join}": missing branch${missing.length > 1 ? "es" : ""} ${
        missing.map((b) => `"${b}"`).join(", ")
      } (${why}); the item holds the branches that arrived and can be replayed once the cause is fixed`,
      options,
    );
    this.name = "JoinError";
    this.join = join;
    this.missing = missing;
  }
}

/** One item's copies so far, by branch index. */
interface Entry {
  readonly id: ItemId;
  readonly parts: (Item | undefined)[];
  arrived: number;
  /** Per branch whose copy ended in another fate, how; undefined until one does. */
  lost: (string | undefined)[] | undefined;
  lostCount: number;
  /** performance.now() at the first copy. */
  readonly firstAt: number;
}

/** @internal */
export class JoinNode {
  readonly #name: string;
  readonly #branches: readonly string[];
  readonly #timeoutMs: number | undefined;
  readonly #run: RunContext;
  readonly #counters: StageCounters;
  readonly #ports: Capacity[];
  readonly #entries = new Map<ItemId, Entry>();
  /** What waits to move on, and beside each envelope the branch ports (a bit mask) whose room it frees once it has. */
  readonly #outbox = new Fifo<Envelope>();
  readonly #outPorts = new Fifo<number>();
  #out!: Edge;
  #open: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #awaitingRoom = false;
  #ended = false;
  readonly #onJoined: (count: number) => void;
  readonly #onEnd: () => void;
  /** Envelopes that came in, per branch. */
  readonly received: number[];
  /** Scratch for #flush: room freed per branch port. */
  readonly #freed: number[];

  constructor(
    name: string,
    branches: readonly string[],
    timeoutMs: number | undefined,
    run: RunContext,
    portLimit: number,
    onJoined: (count: number) => void,
    onEnd: () => void,
  ) {
    this.#name = name;
    this.#branches = branches;
    this.#timeoutMs = timeoutMs;
    this.#run = run;
    this.#counters = run.metrics.stage(name);
    this.#ports = branches.map(() => new Capacity(portLimit));
    this.#open = branches.length;
    this.#onJoined = onJoined;
    this.#onEnd = onEnd;
    this.received = branches.map(() => 0);
    this.#freed = branches.map(() => 0);
  }

  /** Where the joined items go. */
  connect(out: Edge): void {
    this.#out = out;
  }

  /** Copies waiting for their other branches. */
  get pending(): number {
    let parts = 0;
    for (const entry of this.#entries.values()) parts += entry.arrived;
    return parts;
  }

  /** The way in of one branch. */
  inlet(branch: string): Inlet {
    const port = this.#branches.indexOf(branch);
    return {
      capacity: this.#ports[port],
      accept: (chunk) => this.#accept(port, chunk),
      end: () => this.#endBranch(),
    };
  }

  #accept(port: number, chunk: Chunk): void {
    this.received[port] += chunk.length;
    const width = this.#branches.length;
    for (const envelope of chunk) {
      const entry = this.#entryFor(envelope.id);
      if (envelope instanceof Item) {
        if (entry.parts[port] !== undefined) {
          // A second copy on one branch (ids repeat): it cannot pair; it fails on its own.
          this.#fail(this.#lone(envelope, port), 1 << port, [], "its id came twice on this branch; ids must be unique");
          continue;
        }
        entry.parts[port] = envelope;
        entry.arrived++;
      } else {
        (entry.lost ??= new Array(width).fill(undefined))[port] = lostHow(envelope);
        entry.lostCount++;
        this.#push(envelope, 1 << port); // its own fate, counted where it ends
      }
      if (entry.arrived + entry.lostCount === width) this.#settle(entry);
    }
    this.#flush();
  }

  #entryFor(id: ItemId): Entry {
    let entry = this.#entries.get(id);
    if (!entry) {
      const now = this.#run.clock.settled(); // one reading for the copies that arrive together
      const parts = new Array<Item | undefined>(this.#branches.length).fill(undefined);
      entry = { id, parts, arrived: 0, lost: undefined, lostCount: 0, firstAt: now };
      this.#entries.set(id, entry);
      if (this.#timeoutMs !== undefined && this.#timer === undefined) this.#arm(now + this.#timeoutMs);
    }
    return entry;
  }

  /** Every branch is in (or lost): a joined item, or a partial one. */
  #settle(entry: Entry, why?: string): void {
    this.#entries.delete(entry.id);
    if (entry.arrived === 0) return; // every copy had its own fate
    if (entry.arrived > 1) this.#onJoined(entry.arrived - 1);
    const branches = this.#branches;
    let ports = 0;
    for (let i = 0; i < branches.length; i++) if (entry.parts[i] !== undefined) ports |= 1 << i;
    if (entry.arrived === branches.length) {
      const value: Record<string, unknown> = {};
      let bornAt = Number.POSITIVE_INFINITY;
      let workMs = 0;
      for (let i = 0; i < branches.length; i++) {
        const part = entry.parts[i]!;
        value[branches[i]] = part.value;
        if (part.bornAt < bornAt) bornAt = part.bornAt;
        if (part.workMs > workMs) workMs = part.workMs;
      }
      const joined = new Item(entry.id, value);
      joined.bornAt = bornAt;
      joined.workMs = workMs;
      this.#counters.succeeded++;
      this.#push(joined, ports);
      return;
    }
    const missing = branches.filter((_, i) => entry.parts[i] === undefined);
    const reason = why ??
      branches.flatMap((branch, i) => entry.lost?.[i] ? [`"${branch}" ${entry.lost[i]}`] : []).join(", ");
    this.#fail(entry, ports, missing, reason);
  }

  #lone(item: Item, port: number): Entry {
    const parts = new Array<Item | undefined>(this.#branches.length).fill(undefined);
    parts[port] = item;
    return { id: item.id, parts, arrived: 1, lost: undefined, lostCount: 0, firstAt: this.#run.clock.now() };
  }

  #fail(entry: Entry, ports: number, missing: readonly string[], why: string): void {
    const value: Record<string, unknown> = {};
    this.#branches.forEach((branch, i) => {
      if (entry.parts[i] !== undefined) value[branch] = entry.parts[i]!.value;
    });
    this.#counters.failed++;
    const error = new JoinError(this.#name, missing, why);
    const now = Date.now();
    const firstAt = Math.floor(now - (this.#run.clock.now() - entry.firstAt));
    this.#push(new Failure(entry.id, this.#name, value, error, 1, firstAt, now), ports);
  }

  #push(envelope: Envelope, ports: number): void {
    this.#outbox.push(envelope);
    this.#outPorts.push(ports);
  }

  /** Moves what is ready on, as far as the next node has room, and frees the branch room it held. */
  #flush(): void {
    const next = this.#out.target.capacity;
    const freed = this.#freed;
    while (this.#outbox.length > 0) {
      const room = next.take(Math.min(this.#outbox.length, 256));
      if (room === 0) return this.#waitForRoom();
      const chunk = this.#outbox.take(room);
      for (const ports of this.#outPorts.take(room)) {
        for (let i = 0; i < freed.length; i++) if (ports & (1 << i)) freed[i]++;
      }
      this.#out.send(chunk);
      for (let i = 0; i < freed.length; i++) {
        if (freed[i] > 0) this.#ports[i].release(freed[i]);
        freed[i] = 0;
      }
    }
    this.#checkEnded();
  }

  #waitForRoom(): void {
    if (this.#awaitingRoom) return;
    this.#awaitingRoom = true;
    const next = this.#out.target.capacity;
    next.whenFree(Math.min(this.#outbox.length, 256, Math.ceil(next.limit / 8))).then(() => {
      this.#awaitingRoom = false;
      this.#flush();
    });
  }

  #arm(at: number): void {
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, at - this.#run.clock.now()));
  }

  /** Dead-letters every partial join older than `timeoutMs`; entries are kept in arrival order. */
  #expire(): void {
    this.#timer = undefined;
    const timeout = this.#timeoutMs!;
    const now = this.#run.clock.now();
    for (const entry of this.#entries.values()) {
      if (entry.firstAt + timeout > now) {
        this.#arm(entry.firstAt + timeout);
        break;
      }
      this.#settle(entry, `timed out after ${timeout} ms`);
    }
    this.#flush();
  }

  #endBranch(): void {
    this.#open--;
    if (this.#open > 0) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const entry of [...this.#entries.values()]) {
      const absent = this.#branches.filter((_, i) => entry.parts[i] === undefined && entry.lost?.[i] === undefined);
      this.#settle(entry, `the join's inputs ended without ${absent.map((b) => `"${b}"`).join(", ")}`);
    }
    this.#flush();
  }

  #checkEnded(): void {
    if (this.#open > 0 || this.#ended || this.#outbox.length > 0) return;
    this.#ended = true;
    this.#out.end();
    this.#onEnd();
  }
}

/** How a branch's copy ended, for the partial join's message. */
function lostHow(envelope: Envelope): string {
  if (envelope instanceof Failure) return `failed in "${envelope.stage}"`;
  if (envelope instanceof Dropped) return `was ${envelope.fate} in "${envelope.stage}"`;
  return "did not arrive";
}
