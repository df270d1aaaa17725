/**
 * The node after a flatMap stage: it turns each parent's `Expansion` into
 * items, one output at a time, taking room in the next stage before each
 * one, so an async iterable that yields many outputs is read only as fast as
 * the pipeline takes them. Composition, not a second scheduler: the stage
 * itself is a plain `StageEngine` whose attempt returns the `Expansion`.
 *
 * @module
 */

import { Capacity } from "./capacity.ts";
import { type Chunk, chunkSize, Dropped, type Envelope, Failure, Item } from "./envelope.ts";
import { ShutdownError } from "./errors.ts";
import type { ItemId } from "./events.ts";
import { Expansion } from "./flat_map_stage.ts";
import type { StageCounters } from "./metrics.ts";
import type { RunContext } from "./run_context.ts";
import type { SettleGate } from "./settle_gate.ts";
import type { ChildOf, StageSpec } from "./stage.ts";
import type { Deliver } from "./stage_stream.ts";

/** The most envelopes handed on in one chunk. */
const MAX_CHUNK = 256;

type Step = { done: boolean; value: unknown };
type Cursor = { next(): Step | Promise<Step>; return?(): unknown };

/** @internal */
export class Expander {
  /** Parents (and other envelopes) waiting to be expanded; the flatMap stage takes from it. */
  readonly capacity: Capacity;
  readonly stream: TransformStream<Chunk, Chunk>;
  readonly #run: RunContext;
  readonly #stage: string;
  readonly #counters: StageCounters;
  readonly #next: Capacity;
  readonly #childId: (output: unknown, parent: ChildOf) => ItemId;
  readonly #last: boolean;
  /** Told of each output made, with an acknowledging source. */
  readonly #gate: SettleGate | undefined;
  #deliver: Deliver | undefined;
  #pending: Envelope[] = [];
  /** Rejects the read in progress on a forced shutdown. */
  #interrupt: ((reason: unknown) => void) | undefined;
  readonly #stopForce: () => void;

  constructor(
    spec: StageSpec,
    run: RunContext,
    next: Capacity,
    deliver: Deliver | undefined,
    last: boolean,
    gate?: SettleGate,
  ) {
    this.#run = run;
    this.#stage = spec.name;
    this.#counters = run.metrics.stage(spec.name);
    this.#next = next;
    this.#deliver = deliver;
    this.#last = last;
    this.#gate = gate;
    this.#childId = spec.expand?.childId ?? ((_output, parent) => `${parent.id}.${parent.index}`);
    this.capacity = new Capacity(spec.concurrency);
    this.#stopForce = run.onForce((reason) => this.#interrupt?.(reason));
    this.stream = new TransformStream<Chunk, Chunk>(
      {
        start: (controller) => {
          this.#deliver ??= (chunk) => controller.enqueue(chunk);
        },
        transform: (chunk) => this.#accept(chunk),
        flush: () => {
          this.#flush();
          this.#stopForce();
        },
      },
      { highWaterMark: spec.concurrency, size: chunkSize },
      { highWaterMark: 0, size: chunkSize },
    );
  }

  async #accept(chunk: Chunk): Promise<void> {
    for (const envelope of chunk) {
      if (envelope instanceof Item && envelope.value instanceof Expansion) {
        await this.#expand(envelope, envelope.value);
      } else {
        await this.#put(envelope);
      }
      this.capacity.release(1);
    }
    this.#flush();
  }

  /** Queues an envelope to hand on, once the next stage has room for it. */
  async #put(envelope: Envelope): Promise<void> {
    if (this.#next.take(1) === 0) {
      this.#flush();
      await this.#next.whenFree(Math.min(MAX_CHUNK, Math.ceil(this.#next.limit / 8)));
      this.#next.take(1);
    }
    this.#pending.push(envelope);
    if (this.#pending.length >= MAX_CHUNK) this.#flush();
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const chunk = this.#pending;
    this.#pending = [];
    if (this.#last) {
      this.#run.metrics.recordLeft(chunk, this.#run.clock.now());
      if (this.#run.hasListener) this.#announceLeft(chunk);
    }
    this.#deliver!(chunk);
  }

  /**
   * Outputs of a last flatMap stage leave the pipeline here: a `completed`
   * event each, with `attempt: 0` (they had no attempt of their own), which
   * tells them from their parent's `completed` (the call of `fn`).
   */
  #announceLeft(chunk: Chunk): void {
    const timestamp = Date.now();
    for (const envelope of chunk) {
      if (!(envelope instanceof Item)) continue;
      this.#run.emit({
        type: "completed",
        itemId: envelope.id,
        stage: this.#stage,
        attempt: 0,
        worker: 0,
        durationMs: 0,
        timestamp,
      });
    }
  }

  async #expand(parent: Item, expansion: Expansion): Promise<void> {
    const run = this.#run;
    const counters = this.#counters;
    let index = 0;
    let cursor: Cursor | undefined;
    try {
      cursor = cursorOf(expansion.outputs);
      for (;;) {
        if (run.forced) throw new ShutdownError(this.#stage, { cause: run.forced.reason });
        let step = cursor.next();
        if (step instanceof Promise) {
          this.#flush(); // what is ready moves on while the source is slow
          step = await this.#interruptible(step);
        }
        if (step.done) break;
        const child = new Item(this.#childId(step.value, { id: parent.id, index }), step.value);
        child.bornAt = parent.bornAt;
        child.workMs = parent.workMs;
        index++;
        this.#gate?.adopt(parent.id, child.id);
        run.metrics.ingested++;
        counters.spawned++;
        await this.#put(child);
      }
    } catch (error) {
      if (cursor) closeQuietly(cursor);
      counters.succeeded--;
      counters.failed++;
      const now = Date.now();
      await this.#put(new Failure(parent.id, this.#stage, expansion.input, error, 1, now, now));
      return;
    }
    counters.expanded++;
    await this.#put(new Dropped(parent.id, this.#stage, "expanded", undefined, index));
  }

  /** `step`, or a ShutdownError as soon as a forced shutdown comes. */
  #interruptible(step: Promise<Step>): Promise<Step> {
    return new Promise<Step>((resolve, reject) => {
      this.#interrupt = (reason) => reject(new ShutdownError(this.#stage, { cause: reason }));
      step.then(resolve, reject).finally(() => {
        this.#interrupt = undefined;
      });
    });
  }
}

function cursorOf(outputs: unknown): Cursor {
  const source = outputs as { [Symbol.iterator]?: () => Cursor; [Symbol.asyncIterator]?: () => Cursor };
  if (typeof source[Symbol.asyncIterator] === "function") return source[Symbol.asyncIterator]!();
  return source[Symbol.iterator]!();
}

function closeQuietly(cursor: Cursor): void {
  try {
    Promise.resolve(cursor.return?.()).catch(() => {});
  } catch {
    // The outputs' source failed while being closed; nothing was lost by it.
  }
}
