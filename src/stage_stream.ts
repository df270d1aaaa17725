/**
 * The `TransformStream` that runs one stage: a pool of `concurrency` workers
 * fed from the stage's input queue, outputs put back in order (or not), and
 * the item-count capacities that bound what the stage holds.
 *
 * A stage holds at most `queueSize + concurrency` items (for a batch stage,
 * `queueSize + concurrency × batchSize`): items waiting, items in an attempt,
 * and results waiting for their turn or for room downstream. Results keep
 * their worker busy until they have moved on, so a slow next stage makes this
 * one wait, and so on up to the source.
 *
 * @module
 */

import { Capacity } from "./capacity.ts";
import { serializeError } from "./dead_letter.ts";
import { type Chunk, chunkSize, type Envelope, Failure, type Item } from "./envelope.ts";
import type { StageCounters } from "./metrics.ts";
import type { Unit } from "./retry.ts";
import type { RunContext } from "./run_context.ts";
import type { StageSpec, UnitOutcome } from "./stage.ts";

/** A unit of work: one item (or one batch), or a failure passing through. */
interface Group {
  readonly seq: number;
  readonly envelopes: Envelope[];
  worker: number;
  done: boolean;
}

/** @internal */
export class StageEngine {
  /** Counts what this stage holds; its producer takes from it. */
  readonly capacity: Capacity;
  readonly stream: TransformStream<Chunk, Chunk>;
  readonly #spec: StageSpec;
  readonly #run: RunContext;
  readonly #counters: StageCounters;
  readonly #next: Capacity;
  #controller!: TransformStreamDefaultController<Chunk>;

  #forming: Item[] = [];
  #formingTimer: ReturnType<typeof setTimeout> | undefined;
  #waiting: Group[] = [];
  #waitingHead = 0;
  readonly #freeWorkers: number[];
  #nextSeq = 0;
  /** Finished groups not yet in the outbox, by seq (ordered stages only). */
  readonly #finished = new Map<number, Group>();
  #nextToEmit = 0;
  /** Groups whose envelopes are ready to move downstream, in order. */
  #outbox: Group[] = [];
  #outboxCount = 0;
  #flushScheduled = false;
  #awaitingRoom = false;
  /** Items accepted and not yet moved downstream. */
  #held = 0;
  /** Items in started groups not yet moved downstream. */
  #active = 0;
  #ending = false;
  #drained: (() => void) | undefined;

  constructor(spec: StageSpec, run: RunContext, queueSize: number, next: Capacity) {
    this.#spec = spec;
    this.#run = run;
    this.#counters = run.metrics.stage(spec.name);
    this.#next = next;
    this.capacity = new Capacity(queueSize + spec.concurrency * spec.batchSize);
    this.#freeWorkers = Array.from({ length: spec.concurrency }, (_, i) => spec.concurrency - 1 - i);
    this.#counters.queueDepth = () => this.capacity.used - this.#active;
    this.stream = new TransformStream<Chunk, Chunk>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        transform: (chunk) => this.#accept(chunk),
        flush: () => this.#drain(),
      },
      { highWaterMark: queueSize, size: chunkSize },
      { highWaterMark: 0, size: chunkSize },
    );
  }

  #accept(chunk: Chunk): void {
    this.#held += chunk.length;
    const announce = this.#run.hasListener;
    for (const envelope of chunk) {
      if (envelope instanceof Failure) {
        this.#passThrough(envelope);
        continue;
      }
      if (announce) {
        this.#run.emit({ type: "queued", itemId: envelope.id, stage: this.#spec.name, timestamp: Date.now() });
      }
      this.#forming.push(envelope);
      if (this.#forming.length >= this.#spec.batchSize) this.#closeBatch();
      else if (this.#forming.length === 1 && this.#spec.flushIntervalMs !== undefined) {
        this.#formingTimer = setTimeout(() => this.#closeBatch(), this.#spec.flushIntervalMs);
      }
    }
    this.#pump();
  }

  /** A failure from an earlier stage keeps its place and moves on untouched. */
  #passThrough(failure: Failure): void {
    const group: Group = { seq: this.#nextSeq++, envelopes: [failure], worker: -1, done: true };
    this.#finish(group);
  }

  #closeBatch(): void {
    if (this.#formingTimer !== undefined) {
      clearTimeout(this.#formingTimer);
      this.#formingTimer = undefined;
    }
    if (this.#forming.length === 0) return;
    this.#waiting.push({ seq: this.#nextSeq++, envelopes: this.#forming, worker: -1, done: false });
    this.#forming = [];
    this.#pump();
  }

  #pump(): void {
    while (this.#freeWorkers.length > 0 && this.#waitingHead < this.#waiting.length) {
      const group = this.#waiting[this.#waitingHead++];
      this.#start(group, this.#freeWorkers.pop()!);
    }
    if (this.#waitingHead > 1024 && this.#waitingHead * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#waitingHead);
      this.#waitingHead = 0;
    }
  }

  #start(group: Group, worker: number): void {
    group.worker = worker;
    const items = group.envelopes as Item[];
    const count = items.length;
    this.#active += count;
    this.#counters.inFlight += count;
    const unit: Unit = {
      run: this.#run,
      stage: this.#spec.name,
      itemIds: items.length === 1 ? [items[0].id] : items.map((item) => item.id),
      worker,
      counters: this.#counters,
    };
    const firstAttemptAt = Date.now();
    const startedAt = performance.now();
    let outcome: Promise<UnitOutcome>;
    try {
      outcome = this.#spec.process(items.length === 1 ? [items[0].value] : items.map((item) => item.value), unit);
    } catch (error) {
      outcome = Promise.resolve({ ok: false, error, attempts: 1 });
    }
    outcome
      .catch((error): UnitOutcome => ({ ok: false, error, attempts: 1 }))
      .then((result) => {
        this.#counters.inFlight -= count;
        this.#record(group, unit, result, firstAttemptAt, performance.now() - startedAt);
        this.#finish(group);
      });
  }

  /** Turns an outcome into the group's outgoing envelopes, with metrics and events. */
  #record(group: Group, unit: Unit, result: UnitOutcome, firstAttemptAt: number, durationMs: number): void {
    const items = group.envelopes as Item[];
    const { name } = this.#spec;
    const timestamp = Date.now();
    if (result.ok) {
      for (let i = 0; i < items.length; i++) items[i].value = result.outputs[i];
      this.#counters.succeeded += items.length;
      for (let i = 0; i < items.length; i++) this.#counters.latency.record(durationMs);
      if (!this.#run.hasListener) return;
      for (const item of items) {
        this.#run.emit({
          type: "completed",
          itemId: item.id,
          stage: name,
          attempt: result.attempts,
          worker: unit.worker,
          durationMs,
          timestamp,
        });
      }
      return;
    }
    this.#counters.failed += items.length;
    const error = this.#run.hasListener ? serializeError(result.error) : undefined;
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      group.envelopes[i] = new Failure(
        item.id,
        name,
        item.value,
        result.error,
        result.attempts,
        firstAttemptAt,
        timestamp,
      );
      if (error) {
        this.#run.emit({
          type: "failed",
          itemId: item.id,
          stage: name,
          attempt: result.attempts,
          worker: unit.worker,
          error,
          durationMs,
          timestamp,
        });
      }
    }
  }

  /** Queues a finished group for moving on: in seq order, or at once if unordered. */
  #finish(group: Group): void {
    group.done = true;
    if (!this.#spec.ordered) {
      this.#toOutbox(group);
    } else {
      this.#finished.set(group.seq, group);
      for (let next = this.#finished.get(this.#nextToEmit); next; next = this.#finished.get(this.#nextToEmit)) {
        this.#finished.delete(this.#nextToEmit++);
        this.#toOutbox(next);
      }
    }
    this.#scheduleFlush();
  }

  #toOutbox(group: Group): void {
    this.#outbox.push(group);
    this.#outboxCount += group.envelopes.length;
  }

  /** Moves what is ready once the current burst of completions has settled. */
  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#flushOutbox();
    });
  }

  /** Moves ready envelopes downstream, as many as the next stage has room for. */
  #flushOutbox(): void {
    while (this.#outboxCount > 0) {
      const room = this.#next.take(this.#outboxCount);
      if (room === 0) {
        this.#waitForRoom();
        break;
      }
      this.#controller.enqueue(this.#takeFromOutbox(room));
    }
    this.#pump();
    this.#checkDrained();
  }

  #waitForRoom(): void {
    if (this.#awaitingRoom) return;
    this.#awaitingRoom = true;
    this.#next.whenFree().then(() => {
      this.#awaitingRoom = false;
      this.#flushOutbox();
    });
  }

  #takeFromOutbox(count: number): Chunk {
    const chunk: Chunk = [];
    while (chunk.length < count) {
      const group = this.#outbox[0];
      const take = Math.min(count - chunk.length, group.envelopes.length);
      if (group.worker >= 0) this.#active -= take;
      if (take === group.envelopes.length) {
        for (const envelope of group.envelopes) chunk.push(envelope);
        this.#outbox.shift();
        this.#release(group);
      } else {
        for (const envelope of group.envelopes.splice(0, take)) chunk.push(envelope);
      }
    }
    this.#outboxCount -= count;
    this.#held -= count;
    this.capacity.release(count);
    return chunk;
  }

  /** A group that has fully moved on frees its worker. */
  #release(group: Group): void {
    if (group.worker < 0) return;
    this.#freeWorkers.push(group.worker);
    group.worker = -1;
  }

  /** Input has ended: flush the partial batch, then wait for everything to move on. */
  #drain(): Promise<void> {
    this.#ending = true;
    this.#closeBatch();
    if (this.#held === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#drained = resolve;
    });
  }

  #checkDrained(): void {
    if (this.#ending && this.#held === 0) this.#drained?.();
  }
}
