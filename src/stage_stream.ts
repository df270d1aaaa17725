/**
 * The `TransformStream` that runs one stage: a pool of `concurrency` workers
 * fed from the stage's input queue, results put back in input order (or
 * not), and the item-count capacities that bound what the stage holds.
 *
 * A stage holds at most `queueSize + concurrency` items (a batch stage
 * `queueSize + concurrency × batchSize`): items waiting, items in an attempt,
 * results waiting for their turn, and results waiting for room downstream.
 * A slow next stage has no room, so this stage fills up and its producer
 * waits, and so on up to the source.
 *
 * Hot path: the first attempt runs inline (no timer, no registration per
 * attempt); retries and timeouts go through `withRetries`. Results that are
 * ready together move on together as one chunk.
 *
 * @module
 */

import { AttemptContext, isPromiseLike } from "./attempt.ts";
import { Capacity } from "./capacity.ts";
import { serializeError } from "./dead_letter.ts";
import { type Chunk, chunkSize, type Envelope, Failure, type Item } from "./envelope.ts";
import { ShutdownError } from "./errors.ts";
import type { ItemId } from "./events.ts";
import type { StageCounters } from "./metrics.ts";
import { type Outcome, type Unit, withRetries } from "./retry.ts";
import type { RunContext } from "./run_context.ts";
import type { StageSpec, UnitOutcome } from "./stage.ts";

/** The most envelopes moved downstream in one chunk. */
const MAX_CHUNK = 256;

/** One item (item stage) or one batch, from its start until its result is in order. */
class Group implements Unit {
  seq = 0;
  worker = -1;
  /** performance.now() at the first attempt's start, for latency. */
  startedAt = 0;
  /** Date.now() at the first attempt's start, for dead letters and events. */
  startedAtEpoch = 0;
  /** The inline first attempt, while it runs. */
  attempt: AttemptContext | undefined;
  #ids: readonly ItemId[] | undefined;

  constructor(
    readonly items: Item[],
    readonly run: RunContext,
    readonly stage: string,
    readonly counters: StageCounters,
  ) {}

  get itemIds(): readonly ItemId[] {
    return this.#ids ??= this.items.map((item) => item.id);
  }

  /** The attempt's input: the value, or a batch's values. */
  input(batch: boolean): unknown {
    return batch ? this.items.map((item) => item.value) : this.items[0].value;
  }
}

/** Where a stage's results go: its own readable side, or straight to the outlet. @internal */
export type Deliver = (chunk: Chunk) => void;

/** @internal */
export class StageEngine {
  /** Counts what this stage holds; its producer takes from it. */
  readonly capacity: Capacity;
  readonly stream: TransformStream<Chunk, Chunk>;
  readonly #spec: StageSpec;
  readonly #run: RunContext;
  readonly #counters: StageCounters;
  readonly #next: Capacity;
  readonly #batch: boolean;
  #deliver: Deliver | undefined;

  #forming: Item[] = [];
  #formingTimer: ReturnType<typeof setTimeout> | undefined;
  #waiting: Group[] = [];
  #waitingHead = 0;
  readonly #freeWorkers: number[];
  /** Running groups by worker, for a forced shutdown. */
  readonly #running: (Group | undefined)[];
  #nextSeq = 0;
  /** Finished groups waiting for their turn, at `seq % concurrency` (ordered stages). */
  readonly #reorder: (Group | undefined)[];
  #nextInOrder = 0;
  /** Envelopes ready to move downstream, from `#outboxHead` on. */
  #outbox: Envelope[] = [];
  #outboxHead = 0;
  #flushScheduled = false;
  #outboxSeen = 0;
  #awaitingRoom = false;
  /** Items accepted and not yet moved downstream. */
  #held = 0;
  /** Items in started groups whose results have not moved downstream yet. */
  #active = 0;
  #ending = false;
  #drained: (() => void) | undefined;
  #stopForce: () => void;

  constructor(spec: StageSpec, run: RunContext, queueSize: number, next: Capacity, deliver?: Deliver) {
    this.#spec = spec;
    this.#run = run;
    this.#counters = run.metrics.stage(spec.name);
    this.#next = next;
    this.#deliver = deliver;
    this.#batch = spec.kind === "batch";
    this.capacity = new Capacity(queueSize + spec.concurrency * spec.batchSize);
    this.#freeWorkers = Array.from({ length: spec.concurrency }, (_, i) => spec.concurrency - 1 - i);
    this.#running = new Array(spec.concurrency).fill(undefined);
    this.#reorder = new Array(spec.concurrency).fill(undefined);
    this.#counters.queueDepth = () => this.capacity.used - this.#active;
    this.#stopForce = run.onForce((reason) => this.#interruptAll(reason));
    this.stream = new TransformStream<Chunk, Chunk>(
      {
        start: (controller) => {
          this.#deliver ??= (chunk) => controller.enqueue(chunk);
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
    const timestamp = announce ? Date.now() : 0;
    for (const envelope of chunk) {
      if (envelope instanceof Failure) {
        this.#toOutbox(envelope); // failures keep moving; order matters only for results
        continue;
      }
      if (announce) this.#run.emit({ type: "queued", itemId: envelope.id, stage: this.#spec.name, timestamp });
      if (!this.#batch) {
        this.#waiting.push(new Group([envelope], this.#run, this.#spec.name, this.#counters));
        continue;
      }
      this.#forming.push(envelope);
      if (this.#forming.length >= this.#spec.batchSize) this.#closeBatch();
      else if (this.#forming.length === 1 && this.#spec.flushIntervalMs !== undefined) {
        this.#formingTimer = setTimeout(() => {
          this.#closeBatch();
          this.#pump();
        }, this.#spec.flushIntervalMs);
      }
    }
    this.#pump();
    if (this.#outbox.length > this.#outboxHead) this.#scheduleFlush();
  }

  #closeBatch(): void {
    if (this.#formingTimer !== undefined) {
      clearTimeout(this.#formingTimer);
      this.#formingTimer = undefined;
    }
    if (this.#forming.length === 0) return;
    this.#waiting.push(new Group(this.#forming, this.#run, this.#spec.name, this.#counters));
    this.#forming = [];
  }

  #pump(): void {
    while (this.#freeWorkers.length > 0 && this.#waitingHead < this.#waiting.length) {
      const group = this.#waiting[this.#waitingHead];
      this.#waiting[this.#waitingHead++] = undefined!;
      this.#start(group, this.#freeWorkers.pop()!);
    }
    if (this.#waitingHead === this.#waiting.length) {
      this.#waiting = [];
      this.#waitingHead = 0;
    } else if (this.#waitingHead > 1024 && this.#waitingHead * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#waitingHead);
      this.#waitingHead = 0;
    }
  }

  #start(group: Group, worker: number): void {
    const spec = this.#spec;
    group.worker = worker;
    group.seq = this.#nextSeq++;
    group.startedAt = performance.now();
    group.startedAtEpoch = Date.now();
    this.#active += group.items.length;
    this.#counters.inFlight += group.items.length;
    const input = group.input(this.#batch);
    if (this.#run.forced) {
      this.#settle(group, {
        ok: false,
        error: new ShutdownError(spec.name, { cause: this.#run.forced.reason }),
        attempts: 1,
      });
    } else if (spec.runTaskByTask) {
      spec.runTaskByTask(input, group).then(
        (outcome) => this.#settle(group, outcome),
        (error) => this.#settle(group, { ok: false, error, attempts: 1 }),
      );
    } else if (spec.policy.timeoutMs !== undefined) {
      this.#retry(group, input, undefined);
    } else {
      this.#firstAttempt(group, input);
    }
  }

  /** Attempt 1, inline: no timer and no per-attempt registration. */
  #firstAttempt(group: Group, input: unknown): void {
    const ctx = new AttemptContext(this.#run, this.#spec.name, group, 1);
    group.attempt = ctx;
    this.#running[group.worker] = group;
    if (this.#run.hasListener) this.#announceStarted(group);
    if (this.#run.logsDebug) {
      this.#run.log("debug", "attempt started", {
        stage: this.#spec.name,
        ...idFields(group),
        attempt: 1,
        worker: group.worker,
      });
    }
    let result: unknown;
    try {
      result = this.#spec.attempt(input, ctx);
    } catch (error) {
      return this.#firstAttemptFailed(group, ctx, input, error);
    }
    if (isPromiseLike(result)) {
      result.then(
        (value) => this.#firstAttemptDone(group, ctx, value),
        (error) => this.#firstAttemptFailed(group, ctx, input, error),
      );
    } else {
      this.#firstAttemptDone(group, ctx, result);
    }
  }

  #firstAttemptDone(group: Group, ctx: AttemptContext, value: unknown): void {
    if (group.attempt !== ctx) return; // a forced shutdown has already settled it
    this.#endFirstAttempt(group);
    this.#settle(group, { ok: true, outputs: this.#batch ? value as unknown[] : [value], attempts: 1 });
  }

  #firstAttemptFailed(group: Group, ctx: AttemptContext, input: unknown, error: unknown): void {
    if (group.attempt !== ctx) return;
    this.#endFirstAttempt(group);
    if (this.#spec.policy.maxRetries === 0) return this.#settle(group, { ok: false, error, attempts: 1 });
    this.#retry(group, input, { error, durationMs: performance.now() - group.startedAt });
  }

  #endFirstAttempt(group: Group): void {
    group.attempt = undefined;
    this.#running[group.worker] = undefined;
  }

  #retry(group: Group, input: unknown, firstFailure: { error: unknown; durationMs: number } | undefined): void {
    const attempt = this.#spec.attempt;
    withRetries(group, this.#spec.policy, (ctx) => attempt(input, ctx), firstFailure).then(
      (outcome: Outcome<unknown>) =>
        this.#settle(
          group,
          outcome.ok
            ? {
              ok: true,
              outputs: this.#batch ? outcome.value as unknown[] : [outcome.value],
              attempts: outcome.attempts,
            }
            : outcome,
        ),
      (error) => this.#settle(group, { ok: false, error, attempts: 1 }),
    );
  }

  /** A forced shutdown: every inline attempt fails now with a ShutdownError. */
  #interruptAll(reason: unknown): void {
    for (const group of this.#running) {
      if (!group?.attempt) continue;
      const error = new ShutdownError(this.#spec.name, { cause: reason });
      group.attempt.abort(error);
      this.#endFirstAttempt(group);
      this.#settle(group, { ok: false, error, attempts: 1 });
    }
  }

  #announceStarted(group: Group): void {
    const timestamp = group.startedAtEpoch;
    for (const item of group.items) {
      this.#run.emit({
        type: "started",
        itemId: item.id,
        stage: this.#spec.name,
        attempt: 1,
        worker: group.worker,
        timestamp,
      });
    }
  }

  /** Records the outcome, then puts the result in line to move on. */
  #settle(group: Group, outcome: UnitOutcome): void {
    this.#counters.inFlight -= group.items.length;
    this.#record(group, outcome);
    if (!this.#spec.ordered) return this.#release(group);
    this.#reorder[group.seq % this.#spec.concurrency] = group;
    for (;;) {
      const slot = this.#nextInOrder % this.#spec.concurrency;
      const next = this.#reorder[slot];
      if (!next || next.seq !== this.#nextInOrder) break;
      this.#reorder[slot] = undefined;
      this.#nextInOrder++;
      this.#release(next);
    }
  }

  /** The group's result is in line: its worker is free, its envelopes wait in the outbox. */
  #release(group: Group): void {
    for (const envelope of group.items as Envelope[]) this.#outbox.push(envelope);
    this.#freeWorkers.push(group.worker);
    this.#pump();
    this.#scheduleFlush();
  }

  /** Replaces the group's items by their results (or failures), with metrics and events. */
  #record(group: Group, outcome: UnitOutcome): void {
    const items = group.items;
    const counters = this.#counters;
    const run = this.#run;
    const { name } = this.#spec;
    const durationMs = performance.now() - group.startedAt;
    if (outcome.ok) {
      for (let i = 0; i < items.length; i++) {
        items[i].value = outcome.outputs[i];
        counters.latency.record(durationMs);
      }
      counters.succeeded += items.length;
      if (run.logsDebug) {
        run.log("debug", "completed", { stage: name, ...idFields(group), attempt: outcome.attempts, durationMs });
      }
      if (!run.hasListener) return;
      const timestamp = Date.now();
      for (const item of items) {
        run.emit({
          type: "completed",
          itemId: item.id,
          stage: name,
          attempt: outcome.attempts,
          worker: group.worker,
          durationMs,
          timestamp,
        });
      }
      return;
    }
    counters.failed += items.length;
    const failedAt = Date.now();
    const firstAttemptAt = group.startedAtEpoch;
    const error = run.hasListener ? serializeError(outcome.error) : undefined;
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      (items as Envelope[])[i] = new Failure(
        item.id,
        name,
        item.value,
        outcome.error,
        outcome.attempts,
        firstAttemptAt,
        failedAt,
      );
      if (error) {
        run.emit({
          type: "failed",
          itemId: item.id,
          stage: name,
          attempt: outcome.attempts,
          worker: group.worker,
          error,
          durationMs,
          timestamp: failedAt,
        });
      }
    }
  }

  #toOutbox(envelope: Envelope): void {
    this.#outbox.push(envelope);
  }

  /**
   * Moves the outbox on once the burst of completions that filled it is
   * over: while it keeps growing (more results arriving in the same tick)
   * and is below MAX_CHUNK, wait one more microtask.
   */
  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    this.#outboxSeen = this.#outbox.length - this.#outboxHead;
    queueMicrotask(() => this.#flushWhenSettled());
  }

  #flushWhenSettled(): void {
    const ready = this.#outbox.length - this.#outboxHead;
    if (ready > this.#outboxSeen && ready < MAX_CHUNK) {
      this.#outboxSeen = ready;
      queueMicrotask(() => this.#flushWhenSettled());
      return;
    }
    this.#flushScheduled = false;
    this.#flushOutbox();
  }

  /** Moves ready envelopes downstream, as many as the next stage has room for. */
  #flushOutbox(): void {
    for (
      let ready = this.#outbox.length - this.#outboxHead;
      ready > 0;
      ready = this.#outbox.length - this.#outboxHead
    ) {
      const room = this.#next.take(Math.min(ready, MAX_CHUNK));
      if (room === 0) return this.#waitForRoom(ready);
      const chunk = this.#outbox.slice(this.#outboxHead, this.#outboxHead + room);
      this.#outboxHead += room;
      if (this.#outboxHead === this.#outbox.length) {
        this.#outbox = [];
        this.#outboxHead = 0;
      }
      this.#moved(chunk);
      this.#deliver!(chunk);
    }
    this.#checkDrained();
  }

  /** Bookkeeping for envelopes leaving the stage. */
  #moved(chunk: Chunk): void {
    let results = 0;
    for (const envelope of chunk) {
      if (envelope instanceof Failure ? envelope.stage === this.#spec.name : true) results++;
    }
    this.#active -= results;
    this.#held -= chunk.length;
    this.capacity.release(chunk.length);
  }

  /** Waits until the next stage has room for a good share of what is ready. */
  #waitForRoom(ready: number): void {
    if (this.#awaitingRoom) return;
    this.#awaitingRoom = true;
    this.#next.whenFree(Math.min(ready, MAX_CHUNK, Math.ceil(this.#next.limit / 8))).then(() => {
      this.#awaitingRoom = false;
      this.#flushOutbox();
    });
  }

  /** Input has ended: flush the partial batch, then wait for everything to move on. */
  #drain(): Promise<void> {
    this.#ending = true;
    this.#closeBatch();
    this.#pump();
    if (this.#held === 0) return Promise.resolve(this.#stopForce());
    return new Promise((resolve) => {
      this.#drained = () => {
        this.#stopForce();
        resolve();
      };
    });
  }

  #checkDrained(): void {
    if (this.#ending && this.#held === 0) this.#drained?.();
  }
}

/** `itemId` for one item, `itemIds` for a batch, for log records. */
function idFields(group: Group): { itemId: ItemId } | { itemIds: readonly ItemId[] } {
  return group.items.length === 1 ? { itemId: group.items[0].id } : { itemIds: group.itemIds };
}
