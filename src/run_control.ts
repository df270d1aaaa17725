/**
 * What a `Pipeline` run and a `Graph` run share around their stages: the
 * graceful stop and the shutdown signals, the flow control the error
 * strategies ask for, the status tracker's feed, and how a run settles
 * (the final `HaltError`, the `onEnd` hook). None of it is on the path of
 * an item: each piece is made once per run.
 *
 * @module
 */

import { isPromiseLike } from "./attempt.ts";
import type { DeadLetter } from "./dead_letter.ts";
import { HaltError } from "./errors.ts";
import type { EventListener, PipelineEvent } from "./events.ts";
import { FlowControl, type PipelineStrategies } from "./flow_control.ts";
import { callHook, type PipelineHooks } from "./hooks.ts";
import type { Logger } from "./logger.ts";
import type { PipelineMetrics } from "./metrics.ts";
import type { RunOptions } from "./pipeline.ts";
import type { RunContext } from "./run_context.ts";
import { onShutdownSignals } from "./runtime.ts";
import type { StageSpec } from "./stage.ts";
import type { StatusChange, StatusRecorder } from "./status_tracker.ts";

/**
 * Stops `graceful`ly on `stopSignal` (close()) and `options.signal`, forces
 * on `forceSignal`, and on process signals if asked; returns the clean-up.
 * @internal
 */
export function attachShutdown(
  run: RunContext,
  graceful: () => void,
  options: RunOptions,
  stopSignal?: AbortSignal,
): () => void {
  const cleanups: (() => void)[] = [];
  const force = () => {
    graceful();
    run.force(options.forceSignal?.reason ?? new Error("forced shutdown"));
  };
  const handlers = [[stopSignal, graceful], [options.signal, graceful], [options.forceSignal, force]] as const;
  for (const [signal, handler] of handlers) {
    if (!signal) continue;
    if (signal.aborted) handler();
    else {
      signal.addEventListener("abort", handler, { once: true });
      cleanups.push(() => signal.removeEventListener("abort", handler));
    }
  }
  if (options.handleSignals) {
    cleanups.push(onShutdownSignals((name, count) => {
      run.log("info", `received ${name}`, { count });
      if (count === 1) graceful();
      else force();
    }));
  }
  return () => {
    for (const cleanup of cleanups) cleanup();
  };
}

/**
 * A run's graceful stop, once: `before` (flow control stops, circuits drain),
 * a paused run resumes so that it can drain, and the source is no longer read.
 */
function gracefulStop(run: RunContext, stop: AbortController, before: () => void): () => void {
  let stopping = false;
  return () => {
    if (stopping) return;
    stopping = true;
    before();
    run.resume();
    run.log("info", "stopping: no more items are read; draining", {});
    stop.abort();
  };
}

/**
 * A run's graceful stop (aborting `stop` ends the reading of its sources)
 * and, when `strategies` are given, its flow control: a halt stops the run
 * gracefully, and forces it if asked.
 * @internal
 */
export function runFlowControl(
  run: RunContext,
  strategies: PipelineStrategies | undefined,
  stop: AbortController,
): { flow?: FlowControl; graceful: () => void } {
  let flow: FlowControl | undefined;
  const graceful = gracefulStop(run, stop, () => flow?.stop());
  if (strategies) {
    flow = new FlowControl(run, strategies, (halt) => {
      graceful();
      if (halt.force) run.force(halt.error);
    });
  }
  return { flow, graceful };
}

/** The strategy options, or undefined when neither they nor any stage use one. @internal */
export function strategiesIn(options: PipelineStrategies, specs: Iterable<StageSpec>): PipelineStrategies | undefined {
  const { onError, maxSkips, maxDeadLetters, hooks, breakpoint } = options;
  const any = onError !== undefined || maxSkips !== undefined || maxDeadLetters !== undefined ||
    hooks?.onStageError !== undefined || breakpoint !== undefined || [...specs].some((spec) => spec.strategies);
  return any ? { onError, maxSkips, maxDeadLetters, hooks, breakpoint } : undefined;
}

/** How a run ended, for {@linkcode settleRun}. @internal */
export interface RunEnding<M extends PipelineMetrics> {
  readonly run: RunContext;
  /** The pipeline's or the graph's name, for `onEnd`. */
  readonly name: string;
  readonly flow: FlowControl | undefined;
  readonly onEnd: PipelineHooks["onEnd"];
  /** The run's final metrics. */
  readonly metrics: M;
  readonly deadLetters: readonly DeadLetter[];
  /** What the run threw (a dead letter sink that failed, …). */
  readonly thrown: { error: unknown } | undefined;
  readonly sourceError: { error: unknown } | undefined;
}

/**
 * A run's end: its final metrics, or what it throws (a failure, else a
 * halt with the run's final account, else the source's error); `onEnd` first.
 * @internal
 */
export async function settleRun<M extends PipelineMetrics>(ending: RunEnding<M>): Promise<M> {
  const { run, name, flow, onEnd, metrics, thrown, sourceError } = ending;
  const halt = flow?.halted;
  const failure = thrown ??
    (halt ? { error: finalHaltError(halt.error, halt.force, metrics, ending.deadLetters) } : sourceError);
  if (onEnd) {
    await callHook(
      run,
      "onEnd",
      onEnd,
      failure ? { pipeline: name, metrics, error: failure.error } : { pipeline: name, metrics },
    );
  }
  if (failure) throw failure.error;
  return metrics;
}

/** The HaltError a run rejects with: the halt as asked for, with the run's final account. @internal */
export function finalHaltError(
  asked: HaltError,
  force: boolean,
  metrics: PipelineMetrics,
  deadLetters: readonly DeadLetter[],
): HaltError {
  return new HaltError(asked.stage, asked.itemId, force ? "force" : asked.mode, {
    cause: asked.cause,
    reason: asked.reason,
    metrics,
    deadLetters: [...deadLetters],
  });
}

/**
 * Gives `change` to the tracker; a tracker that throws or rejects is logged
 * (a `warn` record) and the run goes on.
 * @internal
 */
export function recordStatus(tracker: StatusRecorder, change: StatusChange, logger: Logger, pipeline: string): void {
  const failed = (error: unknown) => {
    try {
      const logged: unknown = logger.warn("statusTracker threw; the run goes on", {
        pipeline,
        itemId: change.itemId,
        error,
      });
      if (isPromiseLike(logged)) Promise.resolve(logged).catch(() => {});
    } catch {
      // A broken logger must not break a run.
    }
  };
  try {
    const result: unknown = tracker.record(change);
    if (isPromiseLike(result)) Promise.resolve(result).catch(failed);
  } catch (error) {
    failed(error);
  }
}

/**
 * The event listener with a status recorder fed from it (`statusOf` reads
 * an event's status change): no listener at all when there is neither.
 * @internal
 */
export function withTracker(
  onEvent: EventListener | undefined,
  tracker: StatusRecorder | undefined,
  statusOf: (event: PipelineEvent) => StatusChange | undefined,
  logger: Logger,
  pipeline: string,
): EventListener | undefined {
  if (!tracker) return onEvent;
  return (event) => {
    const change = statusOf(event);
    if (change) recordStatus(tracker, change, logger, pipeline);
    return onEvent?.(event);
  };
}
