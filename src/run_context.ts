/**
 * What one run of a pipeline shares across its stages: metrics, the logger,
 * the event listener, the clock and the forced-shutdown switch. A new one is
 * made for every `run()` and `stream()`, so runs never share state.
 *
 * @module
 */

import type { EventListener, PipelineEvent } from "./events.ts";
import { type Logger, type LogProperties, silentLogger } from "./logger.ts";
import { MetricsRecorder } from "./metrics.ts";
import { isPromiseLike } from "./attempt.ts";
import { SettleClock } from "./settle_clock.ts";
import type { TaskSlots } from "./task_slots.ts";

/** Something in progress that a forced shutdown must interrupt. @internal */
export type Interruptible = (reason: unknown) => void;

/** @internal */
export class RunContext {
  readonly metrics: MetricsRecorder;
  /** What the stages read the time from (`performance.now()`, shared where it can be). */
  readonly clock: SettleClock = new SettleClock();
  readonly #listener: EventListener | undefined;
  /** True when a logger was given: per-item debug records are written only then. */
  readonly logsDebug: boolean;
  /** True when events are listened to: build them only then. */
  readonly hasListener: boolean;
  readonly #interruptibles = new Set<Interruptible>();
  /** This run's task concurrency limits, by slot key (see task_slots.ts); undefined when there are none. */
  taskSlots: ReadonlyMap<string, TaskSlots> | undefined;
  #forced: { reason: unknown } | undefined;
  /** True while `pipeline.pause()` (or a breakpoint) holds new attempts back. */
  paused = false;
  #resumed: { promise: Promise<void>; resolve: () => void } | undefined;
  readonly #onResume: (() => void)[] = [];
  readonly #onEnd: (() => void)[] = [];

  constructor(
    readonly pipeline: string,
    stageNames: readonly string[],
    readonly logger: Logger,
    listener: EventListener | undefined,
  ) {
    this.metrics = new MetricsRecorder(stageNames);
    this.#listener = listener;
    this.logsDebug = logger !== silentLogger;
    this.hasListener = listener !== undefined;
  }

  /**
   * Delivers an event; a listener that throws or rejects is logged, never
   * fatal. Kept small, with what is rare (a listener that returns something)
   * in a method of its own: the engine calls it three times per item and
   * stage, and V8 inlines it, and the listener into it, only while the
   * caller's inlining budget lasts (bench/README.md, "Where case 1's time
   * goes").
   */
  emit(event: PipelineEvent): void {
    const listener = this.#listener;
    if (!listener) return;
    try {
      const result: unknown = listener(event);
      if (result !== undefined) this.#listenerReturned(event, result);
    } catch (error) {
      this.#listenerFailed(event, error);
    }
  }

  /** A listener returned a value: if it is a promise, its rejection is logged as a throw is. */
  #listenerReturned(event: PipelineEvent, result: unknown): void {
    if (isPromiseLike(result)) Promise.resolve(result).catch((error) => this.#listenerFailed(event, error));
  }

  /**
   * Writes a log record with the pipeline's name added. A logger that throws
   * or returns a rejected promise is ignored: a broken logger must not break
   * a run, and there is nowhere left to report it.
   */
  log(level: keyof Logger, message: string, properties: LogProperties): void {
    try {
      const result: unknown = this.logger[level](message, { pipeline: this.pipeline, ...properties });
      if (isPromiseLike(result)) Promise.resolve(result).catch(() => {});
    } catch {
      // See above.
    }
  }

  /** The forced-shutdown reason, once forced. */
  get forced(): { reason: unknown } | undefined {
    return this.#forced;
  }

  /** Registers work to interrupt on a forced shutdown; returns the deregistration. */
  onForce(interrupt: Interruptible): () => void {
    this.#interruptibles.add(interrupt);
    return () => this.#interruptibles.delete(interrupt);
  }

  /** Interrupts every attempt and backoff in progress, and every later one. */
  force(reason: unknown): void {
    if (this.#forced) return;
    this.#forced = { reason };
    this.resume(); // a paused run must still be able to fail what it holds
    this.log("warn", "forced shutdown: interrupting in-flight attempts", { inFlight: this.#interruptibles.size });
    const interrupts = [...this.#interruptibles];
    this.#interruptibles.clear();
    for (const interrupt of interrupts) interrupt(reason);
  }

  /** Holds new attempts back until `resume()`. */
  pause(): void {
    if (this.paused || this.#forced) return;
    this.paused = true;
    this.log("info", "paused: no new attempts start until resume()", {});
  }

  /** Lets attempts start again, and wakes everything that waits for it. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.log("info", "resumed", {});
    this.#resumed?.resolve();
    this.#resumed = undefined;
    for (const wake of this.#onResume) wake();
  }

  /** Resolves at the next `resume()` (at once if not paused). */
  whenResumed(): Promise<void> {
    if (!this.paused) return Promise.resolve();
    if (!this.#resumed) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#resumed = { promise, resolve };
    }
    return this.#resumed.promise;
  }

  /** Calls `wake` at every `resume()`. */
  onResume(wake: () => void): void {
    this.#onResume.push(wake);
  }

  /** Calls `cleanup` when the run is over (worker stages terminate their workers). */
  onEnd(cleanup: () => void): void {
    this.#onEnd.push(cleanup);
  }

  /** The run is over: runs the clean-ups given to `onEnd`, once; one that throws is logged. */
  ended(): void {
    for (const cleanup of this.#onEnd.splice(0)) {
      try {
        cleanup();
      } catch (error) {
        this.log("warn", "a clean-up at the end of the run threw", { error });
      }
    }
  }

  #listenerFailed(event: PipelineEvent, error: unknown): void {
    this.log("warn", "onEvent listener threw; the run goes on", {
      stage: event.stage,
      itemId: "itemId" in event ? event.itemId : undefined,
      event: event.type,
      error,
    });
  }
}
