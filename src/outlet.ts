/**
 * The end of a pipeline's chain: completed items go on, failures are split
 * off into the dead letter queue (memory, a `WritableStream`, or nowhere)
 * and counted, and dropped items (filtered, skipped) are counted by fate.
 *
 * @module
 */

import { Capacity } from "./capacity.ts";
import { type DeadLetter, describeThrown, serializeError } from "./dead_letter.ts";
import { type Chunk, Dropped, Failure } from "./envelope.ts";
import { DeadLetterSinkError } from "./errors.ts";
import type { RunContext } from "./run_context.ts";
import type { SettledItem } from "./source.ts";
import type { RecentErrors } from "./recent_errors.ts";

/** Hears items whose fate became final (an acknowledging source's `settle`). @internal */
export type SettleListener = (items: readonly SettledItem[]) => void;
import { callHook, type ItemEndInfo } from "./hooks.ts";

/** Where dead letters go: kept in memory, written to a stream, or only counted. @internal */
export type DeadLetterTarget = DeadLetter[] | WritableStream<DeadLetter> | undefined;

/** The most items between the last stage and a `stream()` consumer. @internal */
export const STREAM_OUTLET_CAPACITY = 8;

/** @internal */
export class Outlet {
  /**
   * The last stage takes from this before moving items on. While a slow dead
   * letter sink catches up, the outlet holds all of it, so the last stage
   * waits (and with it the whole pipeline).
   */
  readonly capacity: Capacity;
  readonly #run: RunContext;
  readonly #memory: DeadLetter[] | undefined;
  readonly #writer: WritableStreamDefaultWriter<DeadLetter> | undefined;
  /** Entries the sink did not take: kept in memory so that none is lost. */
  readonly #unwritten: DeadLetter[];
  #sinkError: { error: unknown } | undefined;
  #blocked = false;
  readonly #settle: SettleListener | undefined;
  /** The snapshot's ring of latest failures, when one is kept. */
  readonly #recent: RecentErrors | undefined;
  #onItemEnd: ((info: ItemEndInfo) => void | Promise<void>) | undefined;
  #lastStage = "";

  constructor(
    run: RunContext,
    target: DeadLetterTarget,
    fallback: DeadLetter[],
    limit: number,
    settle?: SettleListener,
    recent?: RecentErrors,
  ) {
    this.#settle = settle;
    this.capacity = new Capacity(limit);
    this.#run = run;
    this.#recent = recent;
    this.#unwritten = fallback;
    if (Array.isArray(target)) this.#memory = target;
    else if (target) this.#writer = target.getWriter();
  }

  /** Calls the `onItemEnd` hook for every item that leaves. */
  traceEnds(onItemEnd: (info: ItemEndInfo) => void | Promise<void>, lastStage: string): void {
    this.#onItemEnd = onItemEnd;
    this.#lastStage = lastStage;
  }

  /** Takes a chunk from the last stage. Completed values go to `emit`. */
  accept(chunk: Chunk, emit?: (value: unknown) => void): void {
    if (this.#onItemEnd) this.#traceEnds(chunk, this.#onItemEnd);
    const metrics = this.#run.metrics;
    for (const envelope of chunk) {
      if (envelope instanceof Failure) {
        this.#deadLetter(envelope);
      } else if (envelope instanceof Dropped) {
        this.#drop(envelope);
      } else {
        metrics.completed++;
        emit?.(envelope.value);
      }
    }
    if (this.#settle) this.#settleChunk(this.#settle, chunk);
    this.capacity.release(chunk.length);
  }

  /** Tells the source the fates that are final now; a dead letter written to a stream is told once written. */
  #settleChunk(settle: SettleListener, chunk: Chunk): void {
    const settled: SettledItem[] = [];
    for (const envelope of chunk) {
      if (envelope instanceof Failure) {
        if (!this.#writer) settled.push({ id: envelope.id, fate: "dead-lettered" });
      } else settled.push({ id: envelope.id, fate: envelope instanceof Dropped ? envelope.fate : "completed" });
    }
    if (settled.length > 0) settle(settled);
  }

  #traceEnds(chunk: Chunk, onItemEnd: (info: ItemEndInfo) => void | Promise<void>): void {
    for (const envelope of chunk) {
      const info: ItemEndInfo = envelope instanceof Failure
        ? { itemId: envelope.id, fate: "deadLettered", stage: envelope.stage, error: envelope.error }
        : envelope instanceof Dropped
        ? envelope.fate === "skipped"
          ? { itemId: envelope.id, fate: "skipped", stage: envelope.stage, error: envelope.error }
          : { itemId: envelope.id, fate: envelope.fate, stage: envelope.stage }
        : { itemId: envelope.id, fate: "completed", stage: this.#lastStage };
      callHook(this.#run, "onItemEnd", onItemEnd, info);
    }
  }

  #deadLetter(failure: Failure): void {
    const run = this.#run;
    run.metrics.deadLettered++;
    run.metrics.failed++;
    const reason = describeThrown(failure.error);
    run.log("error", "item dead-lettered", {
      stage: failure.stage,
      itemId: failure.id,
      attempt: failure.attempts,
      reason,
    });
    if (run.hasListener) {
      run.emit({
        type: "dead-lettered",
        itemId: failure.id,
        stage: failure.stage,
        attempt: failure.attempts,
        error: serializeError(failure.error),
        timestamp: Date.now(),
      });
    }
    this.#recent?.push({
      itemId: failure.id,
      stage: failure.stage,
      reason,
      error: failure.error,
      attempts: failure.attempts,
      failedAt: failure.failedAt,
    });
    if (this.#memory) this.#memory.push(toDeadLetter(failure, reason));
    else if (this.#writer) this.#write(this.#writer, toDeadLetter(failure, reason));
  }

  /** Counts an item that left on purpose (filtered or skipped); it is not a dead letter. */
  #drop(dropped: Dropped): void {
    const run = this.#run;
    const { id: itemId, stage, fate } = dropped;
    run.metrics[fate]++;
    if (fate === "skipped") {
      run.log("warn", "item skipped", { stage, itemId, reason: describeThrown(dropped.error) });
    }
    if (!run.hasListener) return;
    const timestamp = Date.now();
    if (fate === "expanded") {
      run.emit({ type: "expanded", itemId, stage, children: dropped.children ?? 0, timestamp });
      return;
    }
    run.emit(
      fate === "filtered"
        ? { type: "filtered", itemId, stage, timestamp }
        : { type: "skipped", itemId, stage, error: serializeError(dropped.error), timestamp },
    );
  }

  #write(writer: WritableStreamDefaultWriter<DeadLetter>, entry: DeadLetter): void {
    if (this.#sinkError) {
      this.#unwritten.push(entry);
      return;
    }
    try {
      const settle = this.#settle;
      writer.write(entry).then(
        settle && (() => settle([{ id: entry.itemId, fate: "dead-lettered" }])),
        (error) => {
          this.#sinkFailed(error);
          this.#unwritten.push(entry);
        },
      );
    } catch (error) {
      // Node 20 throws synchronously (an internal assertion) when writing to a
      // stream that was closed behind the writer's back.
      this.#sinkFailed(error);
      this.#unwritten.push(entry);
      return;
    }
    if ((writer.desiredSize ?? 0) <= 0) this.#blockUntil(writer.ready);
  }

  /** Holds all of the outlet's capacity until the sink is ready again. */
  #blockUntil(ready: Promise<void>): void {
    if (this.#blocked) return;
    this.#blocked = true;
    const held = this.capacity.take(Number.POSITIVE_INFINITY);
    const unblock = () => {
      this.#blocked = false;
      this.capacity.release(held);
    };
    ready.then(unblock, (error) => {
      this.#sinkFailed(error);
      unblock();
    });
  }

  #sinkFailed(error: unknown): void {
    if (this.#sinkError) return;
    this.#sinkError = { error };
    this.#run.log("error", "dead letter sink failed; keeping entries in pipeline.deadLetters", { error });
  }

  /** Flushes and closes the dead letter sink; throws if the sink failed. */
  async close(): Promise<void> {
    if (!this.#writer) return;
    try {
      if (!this.#sinkError) await this.#writer.close();
    } catch (error) {
      this.#sinkFailed(error);
    } finally {
      this.#writer.releaseLock();
    }
    if (this.#sinkError) {
      throw new DeadLetterSinkError(this.#unwritten.length, { cause: this.#sinkError.error });
    }
  }
}

function toDeadLetter(failure: Failure, reason: string): DeadLetter {
  return {
    itemId: failure.id,
    stage: failure.stage,
    item: failure.item,
    reason,
    error: serializeError(failure.error),
    attempts: failure.attempts,
    firstAttemptAt: new Date(failure.firstAttemptAt).toISOString(),
    failedAt: new Date(failure.failedAt).toISOString(),
  };
}
