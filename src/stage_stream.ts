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
 * ready together move on together as one chunk, handed straight to the
 * next stage when there is one (`feed`). Attempts that settle together share
 * one clock reading (`SettleClock`). An item stage starts items from the
 * chunks it received, and on success makes one object per item (its group):
 * the costs per item and stage are measured in bench/README.md, "Where case
 * 1's time goes".
 *
 * @module
 */

import { contextLogger, isPromiseLike, lazyAbort, type LazyParts, lazySignal, type StageContext } from "./attempt.ts";
import { Capacity } from "./capacity.ts";
import { Fifo } from "./fifo.ts";
import { serializeError } from "./dead_letter.ts";
import { type Chunk, chunkSize, Dropped, type Envelope, Failure, Item } from "./envelope.ts";
import { ShutdownError } from "./errors.ts";
import type { ItemId } from "./events.ts";
import { busyOf, type StageCounters } from "./metrics.ts";
import { type Outcome, type Unit, withRetries } from "./retry.ts";
import { idFields, type Logger } from "./logger.ts";
import type { RunContext } from "./run_context.ts";
import { settled } from "./settle_clock.ts";
import { skip } from "./skip.ts";
import type { StageSpec } from "./stage.ts";

/** The most envelopes moved downstream in one chunk. */
const MAX_CHUNK = 256;

/** What every unit of one stage in one run shares. */
interface StageSite {
  readonly run: RunContext;
  readonly stage: string;
  readonly counters: StageCounters;
}

/**
 * One item (item stage) or one batch, from its start until its result is in
 * order. It is also the context of its first attempt, which runs inline;
 * retries get contexts of their own. Like `LazyContext` it makes its signal
 * and logger on first use, but without extending it: a derived class's
 * construction cost 14–16 ns on JavaScriptCore (Bun) against 11 ns for a
 * plain one (measured), and a stage makes a group per item.
 */
class Group implements StageContext, Unit {
  // Plain assignments in the constructor, not field initializers: a stage
  // makes one group per item, and an initializer is one more call for each.
  /** The item (item stage), or the batch's first item. */
  declare readonly item: Item;
  /**
   * A batch's items; in an item stage undefined, until a failure or a drop
   * asks for `items` (the success path never makes an array per item). Its
   * entries become failures or dropped items when the unit ends so.
   */
  declare list: Envelope[] | undefined;
  declare readonly site: StageSite;
  declare readonly worker: number;
  declare readonly seq: number;
  /** performance.now() at the first attempt's start, for latency. */
  declare readonly startedAt: number;
  declare ids: readonly ItemId[] | undefined;
  /** The signal and logger, once asked for. */
  declare lazy: LazyParts | undefined;

  constructor(item: Item, list: Item[] | undefined, site: StageSite, worker: number, seq: number, startedAt: number) {
    this.lazy = undefined;
    this.item = item;
    this.list = list;
    this.site = site;
    this.worker = worker;
    this.seq = seq;
    this.startedAt = startedAt;
    this.ids = undefined;
  }

  /** The group is the context of attempt 1 only. */
  get attempt(): number {
    return 1;
  }

  get run(): RunContext {
    return this.site.run;
  }

  get stage(): string {
    return this.site.stage;
  }

  get counters(): StageCounters {
    return this.site.counters;
  }

  get itemId(): ItemId {
    return this.item.id;
  }

  get signal(): AbortSignal {
    return lazySignal(this.lazy ??= {});
  }

  get logger(): Logger {
    return (this.lazy ??= {}).logger ??= contextLogger(this);
  }

  abort(reason: unknown): void {
    lazyAbort(this.lazy ??= {}, reason);
  }

  /** How many items the unit holds. */
  get size(): number {
    return this.list === undefined ? 1 : this.list.length;
  }

  /** The unit's items, to turn into failures or dropped items in place (made on first use in an item stage). */
  get items(): Item[] {
    return (this.list ??= [this.item]) as Item[];
  }

  get itemIds(): readonly ItemId[] {
    return this.ids ??= this.list === undefined ? [this.item.id] : this.list.map((item) => item.id);
  }

  /** The attempt's input: the value, or a batch's values. */
  input(batch: boolean): unknown {
    return batch ? this.items.map((item) => item.value) : this.item.value;
  }
}

/** Where a stage's results go: its own readable side, or straight to the outlet. @internal */
export type Deliver = (chunk: Chunk) => void;

/**
 * The per-item methods are TypeScript-private, not `#private`: on
 * JavaScriptCore (Bun) a call to a `#private` method costs a few nanoseconds
 * more than a plain method call (measured: 4.5–5 ns against 2 ns), and a
 * stage makes a dozen such calls per item. V8 makes no difference.
 * @internal
 */
export class StageEngine {
  /** Counts what this stage holds; its producer takes from it. */
  readonly capacity: Capacity;
  readonly stream: TransformStream<Chunk, Chunk>;
  readonly #spec: StageSpec;
  readonly #run: RunContext;
  readonly #counters: StageCounters;
  readonly #site: StageSite;
  readonly #next: Capacity;
  readonly #batch: boolean;
  /** True when attempt 1 runs inline: no task-by-task retries and no timeout (the common case, checked once). */
  readonly #inline: boolean;
  #deliver: Deliver | undefined;
  /** The first stage stamps each item's `bornAt`; the last records its end-to-end latency. */
  readonly #first: boolean;
  readonly #last: boolean;

  #forming: Item[] = [];
  #formingTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Waiting for a worker: in an item stage, the chunks received, each started
   * item by item from `#waitingAt` (no queue operation per item); in a batch
   * stage, the batches. A Group is made when a worker starts one.
   */
  readonly #waiting = new Fifo<Item[]>();
  /** Item stages: the next item to start in the oldest waiting chunk. */
  #waitingAt = 0;
  #pumping = false;
  readonly #freeWorkers: number[];
  /** Groups in their inline first attempt, by worker. */
  readonly #running: (Group | undefined)[];
  /** Per worker, the handlers of its inline attempt's promise: made once, not per item. */
  readonly #onFirstAttemptDone: ((value: unknown) => void)[];
  readonly #onFirstAttemptFailed: ((error: unknown) => void)[];
  #nextSeq = 0;
  /**
   * Finished groups waiting for their turn, at `seq & #reorderMask` (ordered
   * stages): a power of two at least `concurrency` long, as at most
   * `concurrency` groups are out of line at once (a worker is free again only
   * once its group is in line).
   */
  readonly #reorder: (Group | undefined)[];
  readonly #reorderMask: number;
  #nextInOrder = 0;
  /** Envelopes ready to move downstream. */
  readonly #outbox = new Fifo<Envelope>();
  #flushScheduled = false;
  #outboxSeen = 0;
  #awaitingRoom = false;
  /** Items accepted and not yet moved downstream. */
  #held = 0;
  /** Items accepted and not started yet (forming a batch, or waiting for a worker). */
  #unstarted = 0;
  #ending = false;
  #drained: (() => void) | undefined;
  /** `Date.now() - performance.now()`, refreshed per chunk: wall-clock times without a second clock read per item. */
  #epochOffset = Date.now() - performance.now();
  #stopForce: () => void;

  constructor(
    spec: StageSpec,
    run: RunContext,
    queueSize: number,
    next: Capacity,
    deliver?: Deliver,
    position: { readonly first: boolean; readonly last: boolean } = { first: false, last: false },
  ) {
    this.#spec = spec;
    this.#run = run;
    this.#first = position.first;
    this.#last = position.last;
    this.#counters = run.metrics.stage(spec.name);
    this.#counters.useWorkers(spec.name, spec.concurrency);
    this.#site = { run, stage: spec.name, counters: this.#counters };
    this.#next = next;
    this.#deliver = deliver;
    this.#batch = spec.kind === "batch";
    this.#inline = spec.runTaskByTask === undefined && spec.policy.timeoutMs === undefined;
    this.capacity = new Capacity(queueSize + spec.concurrency * spec.batchSize);
    this.#freeWorkers = Array.from({ length: spec.concurrency }, (_, i) => spec.concurrency - 1 - i);
    this.#running = new Array(spec.concurrency).fill(undefined);
    const clock = run.clock;
    this.#onFirstAttemptDone = this.#running.map((_, worker) => (value) =>
      this.firstAttemptDone(worker, value, clock.settled())
    );
    this.#onFirstAttemptFailed = this.#running.map((_, worker) => (error) =>
      this.firstAttemptFailed(worker, error, clock.settled())
    );
    let ring = 1;
    while (ring < spec.concurrency) ring *= 2;
    this.#reorder = new Array(ring).fill(undefined);
    this.#reorderMask = ring - 1;
    // Waiting = counted for this stage but not yet received (in the stream's queue) + received, not started.
    this.#counters.queueDepth = () => this.capacity.used - this.#held + this.#unstarted;
    this.#counters.busyWorkers = () => busyOf(spec.concurrency, this.#freeWorkers);
    this.#stopForce = run.onForce((reason) => this.interruptAll(reason));
    run.onResume(() => this.pump());
    this.stream = new TransformStream<Chunk, Chunk>(
      {
        start: (controller) => {
          this.#deliver ??= (chunk) => controller.enqueue(chunk);
        },
        transform: (chunk) => this.accept(chunk),
        flush: () => this.drain(),
      },
      { highWaterMark: queueSize, size: chunkSize },
      { highWaterMark: 0, size: chunkSize },
    );
  }

  /**
   * Hands this stage's chunks straight to `next`, the stage its readable side
   * is piped into, instead of through that pipe: a call per chunk, not a
   * pipe's promises. The pipe still closes `next`'s input, after this stage
   * has drained, so nothing reaches `next` after its input ended.
   */
  feed(next: StageEngine): void {
    this.#deliver = (chunk) => next.accept(chunk);
  }

  private accept(chunk: Chunk): void {
    this.#held += chunk.length;
    const now = this.#run.clock.now();
    this.#epochOffset = Date.now() - now;
    const announce = this.#run.hasListener;
    const timestamp = this.epoch(now);
    const stage = this.#spec.name;
    const first = this.#first;
    const batch = this.#batch;
    /** Item stages: the items to wait, the chunk itself unless it holds failures or dropped items too. */
    let items = chunk as Item[];
    for (let i = 0; i < chunk.length; i++) {
      const envelope = chunk[i];
      if (!(envelope instanceof Item)) {
        if (items === chunk) items = chunk.slice(0, i) as Item[];
        this.#outbox.push(envelope); // failures and dropped items keep moving; order matters only for results
        continue;
      }
      if (first) envelope.bornAt = now;
      if (announce) this.#run.emit({ type: "queued", itemId: envelope.id, stage, timestamp });
      this.#unstarted++;
      if (batch) this.addToBatch(envelope);
      else if (items !== chunk) items.push(envelope);
    }
    if (!batch && items.length > 0) this.#waiting.push(items);
    this.pump(now);
    if (this.#outbox.length > 0) this.scheduleFlush();
  }

  /** Batch stages: `item` joins the batch being formed, which closes when full (or its flush interval ends). */
  private addToBatch(item: Item): void {
    this.#forming.push(item);
    if (this.#forming.length >= this.#spec.batchSize) this.closeBatch();
    else if (this.#forming.length === 1 && this.#spec.flushIntervalMs !== undefined) {
      this.#formingTimer = setTimeout(() => {
        this.closeBatch();
        this.pump();
      }, this.#spec.flushIntervalMs);
    }
  }

  /** Epoch milliseconds of a `performance.now()` reading. */
  private epoch(now: number): number {
    return Math.floor(now + this.#epochOffset);
  }

  private closeBatch(): void {
    if (this.#formingTimer !== undefined) {
      clearTimeout(this.#formingTimer);
      this.#formingTimer = undefined;
    }
    if (this.#forming.length === 0) return;
    this.#waiting.push(this.#forming);
    this.#forming = [];
  }

  /** Starts waiting groups on free workers; `now` is a fresh performance.now() if the caller has one. */
  private pump(now?: number): void {
    // A synchronous stage finishes inside start() and frees its worker, which
    // calls pump again: the loop below picks that worker up instead of
    // recursing once per item (which overflows the stack on a long queue).
    if (this.#pumping || this.#run.paused) return; // paused: resume() pumps again
    this.#pumping = true;
    while (this.#freeWorkers.length > 0 && this.#waiting.length > 0) {
      now ??= this.#run.clock.now();
      this.start(this.nextGroup(this.#freeWorkers.pop()!, now), now);
    }
    this.#pumping = false;
  }

  /** The group of the next waiting unit, one item (item stage) or a batch, to start on `worker`. */
  private nextGroup(worker: number, now: number): Group {
    if (this.#batch) return this.nextBatch(worker, now);
    const seq = this.#nextSeq++;
    const chunk = this.#waiting.peek()!;
    const item = chunk[this.#waitingAt++];
    if (this.#waitingAt === chunk.length) {
      this.#waiting.shift();
      this.#waitingAt = 0;
    }
    return new Group(item, undefined, this.#site, worker, seq, now);
  }

  /** Batch stages: the group of the oldest waiting batch. */
  private nextBatch(worker: number, now: number): Group {
    const batch = this.#waiting.shift()!;
    return new Group(batch[0], batch, this.#site, worker, this.#nextSeq++, now);
  }

  private start(group: Group, now: number): void {
    const size = group.size;
    this.#unstarted -= size;
    this.#counters.inFlight += size;
    const input = group.input(this.#batch);
    if (this.#inline && !this.#run.forced) this.firstAttempt(group, input);
    else this.startOtherwise(group, input, now);
  }

  /** A start that is not an inline first attempt: a forced shutdown, tasks retried one by one, or a timeout. */
  private startOtherwise(group: Group, input: unknown, now: number): void {
    const spec = this.#spec;
    if (this.#run.forced) {
      this.failed(group, new ShutdownError(spec.name, { cause: this.#run.forced.reason }), 1, now);
    } else if (spec.runTaskByTask) {
      this.settleWhenDone(group, spec.runTaskByTask(input, group));
    } else if (spec.policy.timeoutMs !== undefined) {
      this.retry(group, input, undefined);
    } else {
      this.firstAttempt(group, input);
    }
  }

  /** Attempt 1, inline: no timer and no per-attempt registration; the group is its context. */
  private firstAttempt(group: Group, input: unknown): void {
    const worker = group.worker;
    this.#running[worker] = group;
    if (this.#run.hasListener) {
      // An item stage's one event is built here, not in announceStarted's
      // loop: on JavaScriptCore (Bun) the events then cost less, more often
      // (bench/README.md, "Where case 1's time goes").
      if (this.#batch) this.announceStarted(group);
      else {
        this.#run.emit({
          type: "started",
          itemId: group.item.id,
          stage: this.#spec.name,
          attempt: 1,
          worker,
          timestamp: this.epoch(group.startedAt),
        });
      }
      if (this.#running[worker] !== group) return; // a listener forced a shutdown: this attempt must not run
    }
    if (this.#run.logsDebug) this.logStarted(group);
    let result: unknown;
    try {
      result = this.#spec.attempt(input, group);
    } catch (error) {
      return this.threwAtOnce(worker, error);
    }
    if (isPromiseLike(result)) {
      // Through Promise.resolve: a thenable that calls back at once would be
      // seen inside this call, where the shared clock reading does not hold.
      Promise.resolve(result).then(this.#onFirstAttemptDone[worker], this.#onFirstAttemptFailed[worker]);
    } else {
      this.returnedAtOnce(worker, result);
    }
  }

  /** The stage function returned a value, not a promise: settled now, so a fresh clock reading. */
  private returnedAtOnce(worker: number, result: unknown): void {
    this.firstAttemptDone(worker, result, this.#run.clock.now());
  }

  /** The stage function threw (did not reject): failed now, so a fresh clock reading. */
  private threwAtOnce(worker: number, error: unknown): void {
    this.firstAttemptFailed(worker, error, this.#run.clock.now());
  }

  /**
   * Settles the inline attempt running on `worker`. A worker runs one inline
   * attempt at a time, and one interrupted by a forced shutdown has left
   * `#running` already (no new one starts after that), so a late result finds
   * nothing to settle.
   */
  private firstAttemptDone(worker: number, value: unknown, now: number): void {
    const group = this.#running[worker];
    if (!group) return;
    this.#running[worker] = undefined;
    this.succeeded(group, value, 1, now);
  }

  private firstAttemptFailed(worker: number, error: unknown, now: number): void {
    const group = this.#running[worker];
    if (!group) return;
    this.#running[worker] = undefined;
    if (this.#spec.policy.maxRetries === 0) return this.failed(group, error, 1, now);
    this.retry(group, group.input(this.#batch), { error, durationMs: now - group.startedAt });
  }

  private retry(group: Group, input: unknown, firstFailure: { error: unknown; durationMs: number } | undefined): void {
    const attempt = this.#spec.attempt;
    this.settleWhenDone(group, withRetries(group, this.#spec.policy, (ctx) => attempt(input, ctx), firstFailure));
  }

  /** Records the outcome of a retry loop (or of tasks retried one by one) once it is known. */
  private settleWhenDone(group: Group, outcome: Promise<Outcome<unknown>>): void {
    const clock = this.#run.clock;
    outcome.then(
      (result) =>
        result.ok
          ? this.succeeded(group, result.value, result.attempts, clock.settled())
          : this.failed(group, result.error, result.attempts, clock.settled()),
      (error) => this.failed(group, error, 1, clock.settled()),
    );
  }

  /** A forced shutdown: every inline attempt fails now with a ShutdownError. */
  private interruptAll(reason: unknown): void {
    for (const group of this.#running) {
      if (!group) continue;
      const error = new ShutdownError(this.#spec.name, { cause: reason });
      group.abort(error);
      this.#running[group.worker] = undefined;
      this.failed(group, error, 1, this.#run.clock.now());
    }
  }

  /** The debug record of an inline first attempt's start (only with a logger). */
  private logStarted(group: Group): void {
    this.#run.log("debug", "attempt started", {
      stage: this.#spec.name,
      ...idFields(group.itemIds),
      attempt: 1,
      worker: group.worker,
    });
  }

  /** A batch's `started` events, one per item. */
  private announceStarted(group: Group): void {
    const timestamp = this.epoch(group.startedAt);
    const size = group.size;
    for (let i = 0; i < size; i++) {
      this.#run.emit({
        type: "started",
        itemId: (i === 0 ? group.item : group.list![i]).id,
        stage: this.#spec.name,
        attempt: 1,
        worker: group.worker,
        timestamp,
      });
    }
  }

  /**
   * The unit succeeded at `now`: `result` is the item's output, or a batch's
   * outputs. An item stage's path has no loop and no batch branch: the
   * smaller a hot method, the more of its callees V8 inlines into it.
   */
  private succeeded(group: Group, result: unknown, attempts: number, now: number): void {
    if (this.#batch || result === skip) return this.succeededEach(group, result, attempts, now);
    const counters = this.#counters;
    const run = this.#run;
    const item = group.item;
    const worker = group.worker;
    const durationMs = now - group.startedAt;
    counters.inFlight--;
    counters.succeeded++;
    counters.workerProcessed[worker]++;
    counters.workerBusyMs[worker] += durationMs;
    counters.latency.record(durationMs);
    item.value = result;
    item.workMs += durationMs;
    if (run.logsDebug) this.logCompleted(item, attempts, durationMs);
    if (run.hasListener) {
      run.emit({
        type: "completed",
        itemId: item.id,
        stage: this.#spec.name,
        attempt: attempts,
        worker,
        durationMs,
        timestamp: this.epoch(now),
      });
    }
    this.inLine(group, now);
  }

  /** The debug record of an item's success (only with a logger: out of `succeeded`, to keep it small). */
  private logCompleted(item: Item, attempts: number, durationMs: number): void {
    this.#run.log("debug", "completed", { stage: this.#spec.name, itemId: item.id, attempt: attempts, durationMs });
  }

  /**
   * The unit succeeded at `now`, item by item: a batch's `result` holds one
   * output per item, an item stage's is `skip`. An output of `skip` makes its
   * item `filtered`, travelling on to the outlet; the others completed.
   */
  private succeededEach(group: Group, result: unknown, attempts: number, now: number): void {
    const items = group.items;
    const counters = this.#counters;
    const run = this.#run;
    const name = this.#spec.name;
    const durationMs = now - group.startedAt;
    const timestamp = this.epoch(now);
    counters.inFlight -= items.length;
    counters.workerProcessed[group.worker] += items.length;
    counters.workerBusyMs[group.worker] += durationMs;
    if (run.logsDebug) {
      const someFiltered = this.#batch ? (result as readonly unknown[]).includes(skip) : true;
      run.log("debug", someFiltered ? "filtered" : "completed", {
        stage: name,
        ...idFields(group.itemIds),
        attempt: attempts,
        durationMs,
      });
    }
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const value = this.#batch ? (result as readonly unknown[])[i] : result;
      counters.latency.record(durationMs);
      if (value === skip) {
        counters.filtered++;
        (items as Envelope[])[i] = new Dropped(item.id, name, "filtered");
        continue;
      }
      counters.succeeded++;
      item.value = value;
      item.workMs += durationMs;
      if (!run.hasListener) continue;
      run.emit({
        type: "completed",
        itemId: item.id,
        stage: name,
        attempt: attempts,
        worker: group.worker,
        durationMs,
        timestamp,
      });
    }
    this.inLine(group, now);
  }

  /** The unit failed for good at `now`: its items become failures that travel on to the outlet. */
  private failed(group: Group, cause: unknown, attempts: number, now: number): void {
    if (this.#spec.settleFailure?.(group, cause, attempts) === "skip") return this.skipped(group, cause, now);
    const items = group.items;
    const run = this.#run;
    const { name } = this.#spec;
    const durationMs = now - group.startedAt;
    this.#counters.inFlight -= items.length;
    this.#counters.failed += items.length;
    this.#counters.workerProcessed[group.worker] += items.length;
    this.#counters.workerFailed[group.worker] += items.length;
    this.#counters.workerBusyMs[group.worker] += durationMs;
    const failedAt = Date.now();
    const error = run.hasListener ? serializeError(cause) : undefined;
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      (items as Envelope[])[i] = new Failure(
        item.id,
        name,
        item.value,
        cause,
        attempts,
        this.epoch(group.startedAt),
        failedAt,
      );
      if (!error) continue;
      run.emit({
        type: "failed",
        itemId: item.id,
        stage: name,
        attempt: attempts,
        worker: group.worker,
        error,
        durationMs,
        timestamp: failedAt,
      });
    }
    this.inLine(group, now);
  }

  /** Error routing skipped the unit: its items leave the pipeline as `skipped`, not as dead letters. */
  private skipped(group: Group, cause: unknown, now: number): void {
    const items = group.items;
    this.#counters.inFlight -= items.length;
    this.#counters.skipped += items.length;
    for (let i = 0; i < items.length; i++) {
      (items as Envelope[])[i] = new Dropped(items[i].id, this.#spec.name, "skipped", cause);
    }
    this.inLine(group, now);
  }

  /** Puts a settled group's result in line to move on: in input order, or at once if unordered. */
  private inLine(group: Group, now: number): void {
    if (!this.#spec.ordered) return this.release(group, now);
    const mask = this.#reorderMask;
    this.#reorder[group.seq & mask] = group;
    for (;;) {
      const slot = this.#nextInOrder & mask;
      const next = this.#reorder[slot];
      if (!next || next.seq !== this.#nextInOrder) break;
      this.#reorder[slot] = undefined;
      this.#nextInOrder++;
      this.release(next, now);
    }
  }

  /** The group's result is in line: its worker is free, its envelopes wait in the outbox. */
  private release(group: Group, now: number): void {
    const list = group.list;
    if (list === undefined) {
      if (this.#last) this.#run.metrics.recordLeftItem(group.item, now);
      this.#outbox.push(group.item);
    } else {
      this.releaseList(list, now);
    }
    this.#freeWorkers.push(group.worker);
    this.pump(now);
    this.scheduleFlush();
  }

  /** A batch's envelopes, or a unit's that failed or was dropped, wait in the outbox. */
  private releaseList(list: readonly Envelope[], now: number): void {
    if (this.#last) this.#run.metrics.recordLeft(list, now);
    for (let i = 0; i < list.length; i++) this.#outbox.push(list[i]);
  }

  /**
   * Moves the outbox on once the burst of completions that filled it is
   * over: while it keeps growing (more results arriving in the same tick)
   * and is below MAX_CHUNK, wait one more microtask.
   */
  private scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    this.#outboxSeen = this.#outbox.length;
    settled.then(this.#flushWhenSettled);
  }

  readonly #flushWhenSettled = (): void => {
    const ready = this.#outbox.length;
    if (ready > this.#outboxSeen && ready < MAX_CHUNK) {
      this.#outboxSeen = ready;
      settled.then(this.#flushWhenSettled);
      return;
    }
    this.#flushScheduled = false;
    this.flushOutbox();
  };

  /** Moves ready envelopes downstream, as many as the next stage has room for. */
  private flushOutbox(): void {
    while (this.#outbox.length > 0) {
      const ready = this.#outbox.length;
      const room = this.#next.take(Math.min(ready, MAX_CHUNK));
      if (room === 0) return this.waitForRoom(ready);
      const chunk = this.#outbox.take(room);
      this.#held -= room;
      this.capacity.release(room); // wakes this stage's producer if it waits for room
      this.#deliver!(chunk);
    }
    this.checkDrained();
  }

  /** Waits until the next stage has room for a good share of what is ready. */
  private waitForRoom(ready: number): void {
    if (this.#awaitingRoom) return;
    this.#awaitingRoom = true;
    this.#next.whenFree(Math.min(ready, MAX_CHUNK, Math.ceil(this.#next.limit / 8))).then(() => {
      this.#awaitingRoom = false;
      this.flushOutbox();
    });
  }

  /** Input has ended: flush the partial batch, then wait for everything to move on. */
  private drain(): Promise<void> {
    this.#ending = true;
    this.closeBatch();
    this.pump();
    if (this.#held === 0) return Promise.resolve(this.#stopForce());
    return new Promise((resolve) => {
      this.#drained = () => {
        this.#stopForce();
        resolve();
      };
    });
  }

  private checkDrained(): void {
    if (this.#ending && this.#held === 0) this.#drained?.();
  }
}

/** `input` piped through each engine's stream in turn. @internal */
export function pipeThroughEngines(
  input: ReadableStream<Chunk>,
  engines: readonly { readonly stream: TransformStream<Chunk, Chunk> }[],
): ReadableStream<Chunk> {
  let stream = input;
  for (const engine of engines) stream = stream.pipeThrough(engine.stream);
  return stream;
}

/**
 * Links each stage engine in `nodes` to the stage engine right after it, if
 * any (`feed`): the pipe between them then only carries the end of the
 * input, which reaches the second once the first has drained. `run()` does
 * this (its source is read on demand, by capacity: `sourceStream`);
 * `stream()` does not: there the producer's `pipeTo` writes while the first
 * stage has room, and with the first stage emptying into the second at once
 * the source was read once more after the consumer cancelled (a test in
 * tests/edges_test.ts asserts it is not).
 * @internal
 */
export function feedDirectly(nodes: readonly unknown[]): void {
  for (let i = 0; i + 1 < nodes.length; i++) {
    const node = nodes[i], next = nodes[i + 1];
    if (node instanceof StageEngine && next instanceof StageEngine) node.feed(next);
  }
}
