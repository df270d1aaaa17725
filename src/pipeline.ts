/**
 * `Pipeline`: stages joined by bounded queues, run over a source or used as
 * a `{ writable, readable }` pair.
 *
 * @module
 */

import { ConfigError, ShutdownError } from "./errors.ts";
import type { Capacity } from "./capacity.ts";
import { pipelineOptionsSchema, runOptionsSchema, show, validate } from "./config.ts";
import type { DeadLetter } from "./dead_letter.ts";
import { type Chunk, type Envelope, Failure, Item } from "./envelope.ts";
import type { EventListener, ItemId } from "./events.ts";
import { fanOut } from "./listeners.ts";
import { RecentErrors } from "./recent_errors.ts";
import { type PipelineSnapshot, takeSnapshot } from "./snapshot.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { type PipelineMetrics, workerNamesOf } from "./metrics.ts";
import { type DeadLetterTarget, Outlet, type SettleListener, STREAM_OUTLET_CAPACITY } from "./outlet.ts";
import { SettleGate } from "./settle_gate.ts";
import { RunContext } from "./run_context.ts";
import { openPipelineStream, type PipelineStream } from "./pipeline_stream.ts";
import { acknowledgingOf, type AcknowledgingSource, checkSource, type Source, sourceStream } from "./source.ts";
import { specOf, type Stage, type StageSpec } from "./stage.ts";
import { feedDirectly, pipeThroughEngines, StageEngine } from "./stage_stream.ts";
import { Expander } from "./expander.ts";
import { statusChangeOf, type StatusRecorder } from "./status_tracker.ts";
import { pipelineSlotKey, TaskSlots } from "./task_slots.ts";
import { type LatencyReport, latencyReport } from "./latency_report.ts";
import { FlowControl, type PipelineStrategies, type PipelineStrategyOptions } from "./flow_control.ts";
import { attachShutdown, finalHaltError, runFlowControl, settleRun, strategiesIn, withTracker } from "./run_control.ts";
import { callHook, type PipelineHooks } from "./hooks.ts";
import { checkReplay, type ReplayEntry, replayEnvelope, unpend } from "./replay.ts";
import type { GraphShape, ShapeOptions } from "./graph_shape.ts";
import { type MermaidOptions, toMermaid } from "./mermaid.ts";
import { toOutline } from "./outline.ts";
import { checkMermaidOptions, checkShapeOptions, pipelineShape } from "./pipeline_shape.ts";

/** Any stage, whatever it takes and gives. */
export type AnyStage = Stage<never, unknown>;
/** What a stage takes. */
export type StageInput<S> = S extends Stage<infer I, unknown> ? I : never;
/** What a stage gives. */
export type StageOutput<S> = S extends Stage<never, infer O> ? O : never;
/** What a pipeline of stages `S` takes: its first stage's input. */
export type PipelineInput<S extends readonly AnyStage[]> = S extends readonly [infer First, ...unknown[]]
  ? StageInput<First>
  : never;
/** What a pipeline of stages `S` gives: its last stage's output. */
export type PipelineOutput<S extends readonly AnyStage[]> = S extends readonly [...unknown[], infer Last]
  ? StageOutput<Last>
  : never;

/**
 * `S` with each stage's input replaced by the previous stage's output: a
 * stage list is well-typed when it is assignable to this.
 */
export type ChainedStages<S extends readonly AnyStage[], In> = S extends
  readonly [infer Head extends AnyStage, ...infer Tail extends readonly AnyStage[]]
  ? readonly [Stage<In, StageOutput<Head>>, ...ChainedStages<Tail, StageOutput<Head>>]
  : S;

/** Options of {@linkcode Pipeline}. */
export interface PipelineOptions<S extends readonly AnyStage[]> extends PipelineStrategyOptions {
  /**
   * The pipeline's name, in log records and error messages.
   * @default {"pipeline"}
   */
  readonly name?: string;
  /** The stages, in order; each one's input type must match the previous one's output. */
  readonly stages: S;
  /**
   * Items that may wait in front of each stage (a stage's own `queueSize` overrides it).
   * @default {1000}
   */
  readonly queueSize?: number;
  /**
   * `true` keeps failed items in `pipeline.deadLetters`; a `WritableStream`
   * receives them instead and is closed (flushed) when the run ends, so it
   * serves one run; a function returning a `WritableStream` is called at the
   * start of each run; `false` only counts them.
   * @default {true}
   */
  readonly deadLetterQueue?: boolean | WritableStream<DeadLetter> | (() => WritableStream<DeadLetter>);
  /**
   * Receives log records with `pipeline`, `stage`, `itemId` and `attempt`.
   * @default {silentLogger}
   */
  readonly logger?: Logger;
  /** Receives typed per-item events; a listener that throws is logged and ignored. */
  readonly onEvent?: EventListener;
  /**
   * Gives each item its id.
   * @default {a sequence number from 0}
   */
  readonly id?: (input: PipelineInput<S>) => ItemId;
  /**
   * At most this many calls at once of each named task, across all the
   * workers and stages that use it (a task is named by its function's name,
   * or `{ name, fn }`); the other tasks keep their stage's full concurrency.
   * A stage's own `taskConcurrency` overrides it there.
   * @default {undefined} no limits
   */
  readonly taskConcurrency?: Readonly<Record<string, number>>;
  /** Receives every item's status changes: a `StatusTracker`, or any object with its `record` method. */
  readonly statusTracker?: StatusRecorder;
  /**
   * How many of the latest failures {@linkcode Pipeline.prototype.snapshot}
   * lists. With `deadLetterQueue: true` they are read from `deadLetters`, so
   * nothing extra is kept; with a sink or `false`, a ring of this size is kept
   * (written only when an item is dead-lettered) if you give a number here.
   * @default {10 with deadLetterQueue: true, else 0}
   */
  readonly recentErrors?: number;
}

/** What {@linkcode Pipeline.prototype.collect} resolves with. */
export interface CollectResult<O> {
  /** The last stage's outputs: in input order when every stage is ordered, else in completion order. */
  readonly outputs: O[];
  /** The run's final metrics, as `run()` gives them. */
  readonly metrics: PipelineMetrics;
}

/** Options of {@linkcode Pipeline.prototype.run}. */
export interface RunOptions {
  /**
   * Graceful shutdown: once aborted, the source is no longer read, everything
   * already read finishes, partial batches flush, the dead letter sink is
   * closed, and `run` resolves with the final metrics.
   */
  readonly signal?: AbortSignal;
  /**
   * Fast shutdown: once aborted, attempts in flight see `ctx.signal` aborted
   * and their items (and any not yet started) are dead-lettered with a
   * `ShutdownError`, without retries.
   */
  readonly forceSignal?: AbortSignal;
  /**
   * Handle SIGINT/SIGTERM (Node, Deno, Bun): the first stops gracefully, the
   * second forces. The handlers are removed when the run ends.
   * @default {false}
   */
  readonly handleSignals?: boolean;
}

/** The default `name`. */
export const DEFAULT_PIPELINE_NAME = "pipeline";

/** The default `queueSize`. */
export const DEFAULT_QUEUE_SIZE = 1000;

/**
 * A sequence of async stages joined by bounded queues.
 *
 * @typeParam S The stages; the pipeline takes the first one's input and gives
 * the last one's output.
 *
 * @example Run over an array and read the metrics
 * ```ts
 * import { PermanentError, Pipeline, stage } from "../mod.ts";
 *
 * const pipeline = new Pipeline({
 *   name: "orders",
 *   stages: [
 *     stage("parse", (line: string) => JSON.parse(line) as { total: number }),
 *     stage("check", (order: { total: number }) => {
 *       if (order.total < 0) throw new PermanentError("negative total");
 *       return order;
 *     }),
 *   ],
 * });
 * const metrics = await pipeline.run(['{"total":1}', '{"total":-1}']);
 * console.assert(metrics.totalCompleted === 1 && metrics.totalFailed === 1);
 * console.assert(pipeline.deadLetters[0].reason === "negative total");
 * ```
 *
 * @example Use it as a transform stream
 * ```ts
 * import { Pipeline, stage } from "../mod.ts";
 *
 * const pipeline = new Pipeline({ name: "upper", stages: [stage("upper", (s: string) => s.toUpperCase())] });
 * const out: string[] = [];
 * const readable = ReadableStream.from(["a", "b"]).pipeThrough(pipeline.stream());
 * for await (const value of readable) out.push(value);
 * console.assert(out.join("") === "AB");
 * ```
 */
export class Pipeline<const S extends readonly AnyStage[]> {
  /** The pipeline's name. */
  readonly name: string;
  readonly #specs: readonly StageSpec[];
  readonly #queueSize: number;
  readonly #target: boolean | WritableStream<DeadLetter> | (() => WritableStream<DeadLetter>);
  /** Dead letter streams a run has used (and so closed): each serves one run. */
  readonly #usedSinks = new WeakSet<WritableStream<DeadLetter>>();
  readonly #logger: Logger;
  readonly #onEvent: EventListener | undefined;
  readonly #id: ((input: unknown) => ItemId) | undefined;
  #deadLetters: DeadLetter[] = [];
  #current: RunContext | undefined;
  /** Task limits by slot key: each run gets fresh slots. */
  readonly #slotLimits: ReadonlyMap<string, number>;
  /** Runs in progress, for close(): how to stop each gracefully, and when it is over. */
  readonly #active = new Set<{ readonly stop: () => void; readonly done: Promise<unknown> }>();
  /** Listeners added with `subscribe()`, beside `onEvent`. */
  readonly #subscribers = new Set<EventListener>();
  readonly #recentErrors: number | undefined;
  /** The latest run's ring of failures, when one is kept (see `recentErrors`). */
  #recent: RecentErrors | undefined;
  /** Error strategies and flow control, when any option asks for them. */
  readonly #strategies: PipelineStrategies | undefined;
  readonly #hooks: PipelineHooks;

  /**
   * Builds a pipeline, checking every option once.
   * @throws {ConfigError} when an option or a stage is invalid.
   */
  constructor(options: PipelineOptions<S> & { readonly stages: ChainedStages<S, PipelineInput<S>> }) {
    const named = typeof (options as { name?: unknown } | null)?.name === "string"
      ? `Pipeline "${options.name}"`
      : "Pipeline";
    const resolved = validate(pipelineOptionsSchema, options, { owner: named, root: "Pipeline options" });
    this.name = resolved.name ?? DEFAULT_PIPELINE_NAME;
    const specs = resolved.stages.map((candidate, index) => checkStage(this.name, candidate, index));
    checkUniqueNames(this.name, specs);
    const limits = checkPipelineTaskLimits(this.name, specs, resolved.taskConcurrency);
    const limited = new Set(limits.keys());
    this.#specs = specs.map((spec) =>
      spec.withPipelineSlots && spec.taskNames?.some((task) => limited.has(task))
        ? spec.withPipelineSlots(limited)
        : spec
    );
    this.#slotLimits = new Map([
      ...[...limits].map(([task, limit]) => [pipelineSlotKey(task), limit] as const),
      ...this.#specs.flatMap((spec) => [...(spec.slotLimits ?? [])]),
    ]);
    this.#queueSize = resolved.queueSize ?? DEFAULT_QUEUE_SIZE;
    this.#target = (resolved.deadLetterQueue as PipelineOptions<S>["deadLetterQueue"]) ?? true;
    this.#logger = (resolved.logger as Logger | undefined) ?? silentLogger;
    const last = this.#specs[this.#specs.length - 1];
    this.#onEvent = withTracker(
      resolved.onEvent as EventListener | undefined,
      resolved.statusTracker as StatusRecorder | undefined,
      (event) => statusChangeOf(event, last.name, last.expand !== undefined),
      this.#logger,
      this.name,
    );
    this.#id = resolved.id as ((input: unknown) => ItemId) | undefined;
    this.#recentErrors = resolved.recentErrors;
    this.#strategies = strategiesIn(resolved as PipelineStrategies, this.#specs);
    this.#hooks = (resolved.hooks as PipelineHooks | undefined) ?? {};
  }

  /** Dead letters of the latest run, when `deadLetterQueue` is `true` (or when a sink failed). */
  get deadLetters(): readonly DeadLetter[] {
    return this.#deadLetters;
  }

  /**
   * The latest run's metrics; live while it runs. Before any run, all zero.
   *
   * @example
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({ name: "p", stages: [stage("s", (n: number) => n)] });
   * console.assert(pipeline.getMetrics().totalIngested === 0);
   * ```
   */
  getMetrics(): PipelineMetrics {
    return (this.#current ?? this.#newRun()).metrics.snapshot();
  }

  /**
   * One JSON-serialisable object for dashboards: the latest run's metrics,
   * each stage's workers (busy or idle), circuit states where a stage has a
   * circuit, and the latest failures (see the `recentErrors` option). Its
   * schema is {@linkcode PipelineSnapshotSchema}.
   *
   * @example
   * ```ts
   * import { PermanentError, Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({
   *   name: "p",
   *   stages: [stage("check", (n: number) => {
   *     if (n < 0) throw new PermanentError(`negative: ${n}`);
   *     return n;
   *   })],
   * });
   * await pipeline.run([1, -2]);
   * const snapshot = pipeline.snapshot();
   * console.assert(snapshot.recentErrors[0].reason === "negative: -2");
   * console.assert(JSON.parse(JSON.stringify(snapshot)).metrics.totalFailed === 1);
   * ```
   */
  snapshot(): PipelineSnapshot {
    const run = this.#current ?? this.#newRun();
    const memory = this.#target === true;
    return takeSnapshot({
      pipeline: this.name,
      metrics: run.metrics.snapshot(),
      stages: this.#specs.map((spec) => ({
        name: spec.name,
        concurrency: spec.concurrency,
        queueSize: spec.queueSize ?? this.#queueSize,
        busy: run.metrics.stage(spec.name).busyWorkers(),
        circuit: run.metrics.stage(spec.name).circuit,
      })),
      failures: this.#recent?.list() ?? (memory ? this.#deadLetters : []),
      limit: this.#recent?.size ?? (memory ? this.#recentErrors ?? 10 : 0),
    });
  }

  /**
   * Adds an event listener beside the `onEvent` option (integrations such as
   * `sluice/otel` use it, so yours stays yours). It hears every run or
   * stream started after this call; the returned function removes it, at
   * once. A pipeline with no listener builds no events at all.
   *
   * @example
   * ```ts
   * import { Pipeline, type PipelineEvent, stage } from "../mod.ts";
   *
   * const mine: string[] = [];
   * const theirs: string[] = [];
   * const pipeline = new Pipeline({
   *   name: "p",
   *   stages: [stage("s", (n: number) => n)],
   *   onEvent: (event: PipelineEvent) => void mine.push(event.type),
   * });
   * const unsubscribe = pipeline.subscribe((event) => void theirs.push(event.type));
   * await pipeline.run([1]);
   * unsubscribe();
   * console.assert(mine.join() === theirs.join() && theirs.includes("completed"));
   * ```
   */
  subscribe(listener: EventListener): () => void {
    if (typeof listener !== "function") {
      throw new TypeError(
        `Pipeline "${this.name}": subscribe() takes a function (event) => void; got ${show(listener)}`,
      );
    }
    const own = (event: Parameters<EventListener>[0]) => listener(event); // one entry per call, even for one function
    this.#subscribers.add(own);
    return () => void this.#subscribers.delete(own);
  }

  /**
   * Runs every item of `source` through the stages and resolves with the
   * final metrics once all of them have completed or been dead-lettered.
   *
   * @example Stop gracefully on SIGINT/SIGTERM
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({ name: "p", stages: [stage("s", (n: number) => n)] });
   * const metrics = await pipeline.run([1, 2, 3], { handleSignals: true });
   * console.assert(metrics.itemsInFlight === 0);
   * ```
   *
   * @throws {TypeError} when `source` cannot be read.
   * @throws the source's own error, after everything already read has finished.
   * @throws {DeadLetterSinkError} when the dead letter sink failed (entries are kept in `deadLetters`).
   */
  run(source: Source<PipelineInput<S>>, options: RunOptions = {}): Promise<PipelineMetrics> {
    return this.#tracked((stop) => this.#execute(source, options, undefined, stop));
  }

  /**
   * Runs every item of `source` through the stages, like `run()` (same
   * options, same shutdown behaviour), and resolves with the last stage's
   * outputs, in input order when every stage is ordered, and the final
   * metrics. For small jobs: the outputs are held in memory; use
   * `results()` to stream them.
   *
   * @example
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({ stages: [stage("square", async (n: number) => n * n, { concurrency: 4 })] });
   * const { outputs, metrics } = await pipeline.collect([1, 2, 3]);
   * console.assert(outputs.join() === "1,4,9" && metrics.totalCompleted === 3);
   * ```
   *
   * @throws as `run()` does.
   */
  collect(source: Source<PipelineInput<S>>, options: RunOptions = {}): Promise<CollectResult<PipelineOutput<S>>> {
    const outputs: PipelineOutput<S>[] = [];
    return this.#tracked((stop) =>
      this.#execute(source, options, (value) => outputs.push(value as PipelineOutput<S>), stop)
    ).then((metrics) => ({ outputs, metrics }));
  }

  /**
   * The last stage's outputs as an async iterable, with backpressure: the
   * pipeline works only as far ahead of the consumer as its queues allow.
   * Same options and shutdown behaviour as `run()`; `getMetrics()` gives
   * the final metrics once the loop ends. Leaving the loop early (`break`,
   * `return`, a throw) stops reading the source, interrupts the attempts in
   * flight and dead-letters what is left with a `ShutdownError`, as
   * cancelling a `stream()`'s readable does; the loop's exit waits for that.
   *
   * @example
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({ stages: [stage("inc", (n: number) => n + 1)] });
   * const seen: number[] = [];
   * for await (const n of pipeline.results([1, 2, 3])) seen.push(n);
   * console.assert(seen.join() === "2,3,4" && pipeline.getMetrics().totalCompleted === 3);
   * ```
   *
   * @throws {TypeError} when `source` cannot be read (at once); the source's or the dead letter sink's error at the end of the loop.
   */
  results(source: Source<PipelineInput<S>>, options: RunOptions = {}): AsyncIterableIterator<PipelineOutput<S>> {
    checkSource(source);
    validate(runOptionsSchema, options, { owner: `Pipeline "${this.name}" results`, root: "options" });
    return this.#results(source, options) as AsyncIterableIterator<PipelineOutput<S>>;
  }

  async *#results(source: Source<unknown>, options: RunOptions): AsyncGenerator<unknown> {
    const target = this.#deadLetterTarget();
    const run = this.#begin();
    const stop = new AbortController();
    let closing = false;
    let markDone!: () => void;
    const entry = {
      stop: () => {
        closing = true;
        stop.abort();
      },
      done: new Promise<void>((resolve) => (markDone = resolve)),
    };
    this.#active.add(entry);
    const { flow, graceful } = this.#flowControl(run, stop);
    const detach = attachShutdown(run, graceful, options);
    let sourceError: { error: unknown } | undefined;
    let finished = false;
    const engines = this.#engines(run, "stream", target, flow);
    const input = sourceStream(source, engines[0].capacity, this.#ingester(run), stop.signal, (error) => {
      sourceError = { error };
      run.log("error", "source failed; finishing the items already read", { error });
    });
    const reader = pipeThroughEngines(input, engines).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const ready: unknown[] = [];
        engines.outlet.accept(value, (output) => ready.push(output));
        for (const output of ready) yield output;
      }
      finished = true;
      await closeOutlet(engines.outlet, sourceError);
    } finally {
      if (!finished) {
        stop.abort();
        if (!closing) run.force(new ShutdownError("results", { cause: "the consumer left the results loop" }));
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          engines.outlet.accept(value);
        }
        await engines.outlet.close().catch(() => {});
      }
      detach();
      this.#end(run);
      flow?.dispose();
      this.#active.delete(entry);
      markDone();
    }
    await this.#settle(run, flow, undefined, sourceError);
  }

  /** Runs `execute` as a run close() can stop (by aborting the controller given) and wait for. */
  #tracked<T>(execute: (stop: AbortController) => Promise<T>): Promise<T> {
    const stop = new AbortController();
    const done = execute(stop);
    const entry = { stop: () => stop.abort(), done: done.catch(() => {}) };
    this.#active.add(entry);
    return done.finally(() => this.#active.delete(entry));
  }

  /**
   * Stops every run in progress gracefully (as its `signal` would: no more
   * items are read, the ones already read finish) and resolves once they
   * are over. `await using pipeline = new Pipeline(…)` calls it at the end
   * of the scope. A `stream()` in progress has its writable side closed;
   * its readable must still be read to the end. The pipeline may run again
   * afterwards.
   *
   * @example
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({ stages: [stage("s", async (n: number) => n)] });
   * async function* forever() {
   *   for (let i = 0; ; i++) yield i;
   * }
   * const running = pipeline.run(forever());
   * await new Promise((resolve) => setTimeout(resolve, 10));
   * await pipeline.close();
   * const metrics = await running;
   * console.assert(metrics.itemsInFlight === 0 && metrics.totalCompleted === metrics.totalIngested);
   * ```
   */
  async close(): Promise<void> {
    const active = [...this.#active];
    for (const entry of active) entry.stop();
    await Promise.all(active.map((entry) => entry.done));
  }

  /** `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Each stage's worker names, `"<stage>-<index>"`, in index order: the
   * names of `stageMetrics[stage].workers` (events carry the index as `worker`).
   *
   * @example
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({ stages: [stage("transform", (n: number) => n, { concurrency: 2 })] });
   * console.assert(pipeline.workerNames().transform.join() === "transform-0,transform-1");
   * ```
   */
  workerNames(): Record<string, string[]> {
    return Object.fromEntries(this.#specs.map((spec) => [spec.name, workerNamesOf(spec.name, spec.concurrency)]));
  }

  /**
   * The latest run's latency (live while it runs), in constant memory: per
   * stage, the time of each item from its first attempt's start to its
   * success (backoff included): `avgMs`, `totalMs`, `p50`, `p95`, `p99`; and
   * end to end, per completed item, from its arrival at the first stage to
   * its leaving the last: `avgTotalMs`, `p50TotalMs`, `p99TotalMs`, and how
   * that time divides into `inAttemptMs` (in attempts and backoff) and
   * `queueWaitMs` (waiting in queues and for its turn), as totals and
   * `queueWaitShare`.
   *
   * @example
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({ stages: [stage("wait", async (n: number) => {
   *   await new Promise((resolve) => setTimeout(resolve, 2));
   *   return n;
   * })] });
   * await pipeline.run([1, 2, 3]);
   * const latency = pipeline.latencySummary();
   * console.assert(latency.stages.wait.count === 3 && latency.stages.wait.p50 >= 1);
   * console.assert(latency.completed === 3 && latency.avgTotalMs >= latency.stages.wait.avgMs * 0.9);
   * ```
   */
  latencySummary(): LatencyReport {
    return latencyReport((this.#current ?? this.#newRun()).metrics);
  }

  /**
   * The pipeline as nodes and edges: `source → …stages → output`, the shape
   * {@linkcode toMermaid} and {@linkcode toOutline} draw. With
   * `{ counts: true }`, each node carries the latest run's counts (live while
   * it runs) and each edge the items that crossed it.
   *
   * @example
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({ name: "p", stages: [stage("double", (n: number) => n * 2)] });
   * await pipeline.run([1, 2, 3]);
   * const shape = pipeline.shape({ counts: true });
   * console.assert(shape.nodes.map((node) => node.name).join() === "source,double,output");
   * console.assert(shape.edges[1].items === 3 && shape.nodes[1].counts?.completed === 3);
   * ```
   */
  shape(options: ShapeOptions = {}): GraphShape {
    const { counts } = checkShapeOptions(options, `Pipeline "${this.name}" shape()`);
    return pipelineShape(this.name, this.#specs.map((spec) => spec.name), counts ? this.getMetrics() : undefined);
  }

  /**
   * The pipeline as a Mermaid flowchart (see {@linkcode toMermaid}), with
   * the latest run's counts on its nodes and edges when `counts` is `true`.
   *
   * @example
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({ name: "etl", stages: [stage("parse", (s: string) => JSON.parse(s))] });
   * const text = pipeline.toMermaid({ direction: "TB" });
   * console.assert(text.includes("flowchart TB") && text.includes('n1["parse"]') && text.includes("n1 --> n2"));
   * ```
   */
  toMermaid(options: ShapeOptions & MermaidOptions = {}): string {
    const { shape, mermaid } = checkMermaidOptions(options, `Pipeline "${this.name}" toMermaid()`);
    return toMermaid(this.shape(shape), mermaid);
  }

  /**
   * The pipeline as a plain text outline (see {@linkcode toOutline}), with
   * the latest run's counts when `counts` is `true`.
   *
   * @example
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({ name: "etl", stages: [stage("parse", (s: string) => JSON.parse(s))] });
   * await pipeline.run(["1", "{"]);
   * console.assert(pipeline.toOutline({ counts: true }).includes("parse   (stage)   → output [1 item]  | in 2 · done 1 · failed 1"));
   * ```
   */
  toOutline(options: ShapeOptions = {}): string {
    return toOutline(this.shape(options));
  }

  /**
   * Runs dead letters again, each from the stage it failed in (not from the
   * start), keeping its id. Entries may come from `pipeline.deadLetters` or
   * be read back with `DeadLetterSchema.parse`. Attempts restart: the stage's
   * `maxRetries` applies afresh, and an entry that fails again is
   * dead-lettered again, once, with the replay's attempt count. Resolves (or
   * rejects) like {@linkcode Pipeline.prototype.run}; the run's metrics count
   * the entries as ingested.
   *
   * @example Replay what failed once the cause is fixed
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * let down = true;
   * const pipeline = new Pipeline({
   *   name: "sync",
   *   stages: [
   *     stage("parse", (text: string) => Number(text)),
   *     stage("send", (n: number) => {
   *       if (down) throw new Error("service unavailable");
   *       return n;
   *     }),
   *   ],
   * });
   * await pipeline.run(["1", "2"]);
   * const failed = [...pipeline.deadLetters];
   * console.assert(failed.length === 2 && failed[0].stage === "send");
   * down = false;
   * const metrics = await pipeline.replay(failed);
   * console.assert(metrics.totalCompleted === 2 && metrics.stageMetrics.parse.processed === 0);
   * ```
   *
   * @throws {TypeError} when an entry has no id or names a stage the pipeline does not have (before anything runs).
   */
  async replay(deadLetters: Iterable<ReplayEntry>, options: RunOptions = {}): Promise<PipelineMetrics> {
    const names = this.#specs.map((spec) => spec.name);
    const checked = checkReplay(this.name, names, deadLetters);
    validate(runOptionsSchema, options, { owner: `Pipeline "${this.name}" replay`, root: "options" });
    const firstStage = names[0];
    const onItemStart = this.#hooks.onItemStart;
    const ingester = (run: RunContext) => (value: unknown): Envelope => {
      const entry = value as ReplayEntry;
      run.metrics.ingested++;
      if (onItemStart) callHook(run, "onItemStart", onItemStart, { itemId: entry.itemId, item: entry.item });
      return replayEnvelope(entry, firstStage);
    };
    return await this.#tracked((stop) =>
      this.#execute(checked.entries, options, undefined, stop, { ingester, stages: checked.startStages })
    );
  }

  /**
   * Pauses the current run: no new attempt starts (attempts in flight
   * finish), queues fill and backpressure holds the source. A stop, a halt or
   * a forced shutdown resumes it, so that it can drain.
   *
   * @example
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({ name: "p", stages: [stage("s", (n: number) => n)] });
   * const running = pipeline.run([1, 2, 3]);
   * pipeline.pause();
   * console.assert(pipeline.paused && pipeline.getMetrics().totalCompleted === 0);
   * pipeline.resume();
   * console.assert((await running).totalCompleted === 3);
   * ```
   */
  pause(): void {
    this.#current?.pause();
  }

  /** Lets the current run start attempts again after {@linkcode Pipeline.prototype.pause} or a breakpoint. */
  resume(): void {
    this.#current?.resume();
  }

  /** True while the current run is paused. */
  get paused(): boolean {
    return this.#current?.paused ?? false;
  }

  /**
   * One run over `source`: shutdown, hooks, error strategies, and how it
   * settles. `emit` gets the last stage's outputs (`collect`); `replay` runs
   * dead letters from the stages they failed in.
   */
  async #execute(
    source: Source<unknown>,
    options: RunOptions,
    emit: ((value: unknown) => void) | undefined,
    stop: AbortController,
    replay?: { ingester: (run: RunContext) => (value: unknown) => Envelope; stages: ReadonlySet<number> },
  ): Promise<PipelineMetrics> {
    checkSource(source);
    validate(runOptionsSchema, options, { owner: `Pipeline "${this.name}" run`, root: "options" });
    const acking = replay ? undefined : acknowledgingOf(source);
    if (acking && this.#id) {
      throw new TypeError(
        `Pipeline "${this.name}": the source gives its items their ids (an AcknowledgingSource); remove the id option`,
      );
    }
    const target = this.#deadLetterTarget();
    const run = this.#begin();
    const hooks = this.#hooks;
    const { flow, graceful } = this.#flowControl(run, stop);
    const detach = attachShutdown(run, graceful, options, stop.signal);
    let sourceError: { error: unknown } | undefined;
    let thrown: { error: unknown } | undefined;
    try {
      await callHook(run, "onStart", hooks.onStart, { pipeline: this.name });
      const engines = this.#engines(run, "run", target, flow, emit, acking && settleListener(run, acking));
      const onDrain = hooks.onDrain
        ? () => callHook(run, "onDrain", hooks.onDrain, { pipeline: this.name })
        : undefined;
      const ingest = replay ? replay.ingester(run) : this.#ingester(run, acking);
      const input = sourceStream(source, engines[0].capacity, ingest, stop.signal, (error) => {
        sourceError = { error };
        run.log("error", "source failed; finishing the items already read", { error });
      }, onDrain);
      if (!replay) feedDirectly(engines); // a replay's chain has steps between some stages (#pipeReplay)
      const output = replay ? this.#pipeReplay(input, engines, replay.stages) : pipeThroughEngines(input, engines);
      await output.pipeTo(new WritableStream<Chunk>());
      try {
        await closeOutlet(engines.outlet, sourceError);
      } finally {
        await acking?.close(); // every fate is told by now: the source flushes its acknowledgements
      }
    } catch (error) {
      thrown = { error };
    } finally {
      detach();
      this.#end(run);
      flow?.dispose();
    }
    return await this.#settle(run, flow, thrown, sourceError);
  }

  /** How a run ends: its final metrics, or what it throws (a failure, a halt, the source's error); `onEnd` first. */
  #settle(
    run: RunContext,
    flow: FlowControl | undefined,
    thrown: { error: unknown } | undefined,
    sourceError: { error: unknown } | undefined,
  ): Promise<PipelineMetrics> {
    const metrics = run.metrics.snapshot();
    const ending = { run, name: this.name, flow, onEnd: this.#hooks.onEnd, metrics, thrown, sourceError };
    return settleRun({ ...ending, deadLetters: this.#deadLetters });
  }

  /** A run's graceful stop and, when an option asks for error strategies, its flow control. */
  #flowControl(run: RunContext, stop: AbortController): { flow?: FlowControl; graceful: () => void } {
    return runFlowControl(run, this.#strategies, stop);
  }

  /** The chain for a replay: before each stage some entries start at, a step that makes them items. */
  #pipeReplay(
    input: ReadableStream<Chunk>,
    nodes: readonly PipelineNode[],
    startStages: ReadonlySet<number>,
  ): ReadableStream<Chunk> {
    let stream = input;
    let index = 0; // the stage of the next engine (a flatMap stage's expander follows its engine)
    for (const node of nodes) {
      if (node instanceof StageEngine) {
        if (startStages.has(index)) stream = stream.pipeThrough(unpend(this.#specs[index].name));
        index++;
      }
      stream = stream.pipeThrough(node.stream);
    }
    return stream;
  }

  /**
   * A fresh `{ writable, readable, finished }` triple: items written to
   * `writable` come out of `readable` after the last stage; failures go to the
   * dead letter queue; `finished` resolves with the final metrics. Each call
   * starts a new run (`getMetrics()` follows the latest). Cancelling
   * `readable` interrupts the attempts in flight and dead-letters what is left
   * with a `ShutdownError`; aborting `writable` finishes what was written,
   * then errors `readable` with the abort reason.
   *
   * @example Pipe a stream through it
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({ name: "upper", stages: [stage("upper", (s: string) => s.toUpperCase())] });
   * const source = new ReadableStream<string>({
   *   start(controller) {
   *     controller.enqueue("a");
   *     controller.enqueue("b");
   *     controller.close();
   *   },
   * });
   * const out: string[] = [];
   * for await (const value of source.pipeThrough(pipeline.stream())) out.push(value);
   * console.assert(out.join("") === "AB");
   * ```
   *
   * @example Write and read by hand
   * ```ts
   * import { Pipeline, stage } from "../mod.ts";
   *
   * const pipeline = new Pipeline({ name: "p", stages: [stage("inc", (n: number) => n + 1)] });
   * const { writable, readable } = pipeline.stream();
   * const writer = writable.getWriter();
   * writer.write(1);
   * writer.close();
   * const { value } = await readable.getReader().read();
   * console.assert(value === 2);
   * ```
   */
  stream(): PipelineStream<PipelineInput<S>, PipelineOutput<S>> {
    const target = this.#deadLetterTarget();
    const deadLetters = this.#deadLetters; // this run's, whatever later runs do
    const run = this.#begin();
    // A halt stops the input as run() stops reading (the writable errors with it); force interrupts too.
    const input: { stop?: (reason: unknown) => void } = {}; // set once the stream is open, before any item runs
    const flow = this.#strategies
      ? new FlowControl(run, this.#strategies, (halt) => {
        input.stop?.(halt.error);
        if (halt.force) run.force(halt.error);
      })
      : undefined;
    const engines = this.#engines(run, "stream", target, flow);
    const halted = () => {
      const halt = flow?.halted;
      return halt && { error: finalHaltError(halt.error, halt.force, run.metrics.snapshot(), deadLetters) };
    };
    const opened = openPipelineStream<PipelineInput<S>, PipelineOutput<S>>(
      run,
      engines,
      engines.outlet,
      this.#ingester(run),
      () => {
        this.#end(run);
        flow?.dispose();
      },
      halted,
    );
    input.stop = opened.closeInput;
    const entry = { stop: opened.closeInput, done: opened.finished };
    this.#active.add(entry);
    opened.finished.then(() => this.#active.delete(entry));
    return { writable: opened.writable, readable: opened.readable, finished: opened.finished };
  }

  /** Where this run's dead letters go; a stream is checked before the run starts. */
  #deadLetterTarget(): DeadLetterTarget {
    this.#deadLetters = []; // this run's entries (or, with a sink, the ones it refused)
    if (this.#target === true) return this.#deadLetters;
    if (this.#target === false) return undefined;
    const sink = typeof this.#target === "function" ? this.#target() : this.#target;
    if (!(sink instanceof WritableStream)) {
      throw new TypeError(`Pipeline "${this.name}": deadLetterQueue() must return a WritableStream; got ${show(sink)}`);
    }
    if (sink.locked) {
      throw new TypeError(
        `Pipeline "${this.name}": the deadLetterQueue WritableStream is locked: another run (or a writer) is using it; ` +
          `give each run its own with deadLetterQueue: () => new WritableStream(…)`,
      );
    }
    if (this.#usedSinks.has(sink)) {
      throw new TypeError(
        `Pipeline "${this.name}": the deadLetterQueue WritableStream was closed when an earlier run ended; ` +
          `pass a function instead, deadLetterQueue: () => new WritableStream(…), to give each run its own`,
      );
    }
    this.#usedSinks.add(sink);
    return sink;
  }

  #newRun(): RunContext {
    const listener = this.#subscribers.size > 0 ? fanOut(this.#onEvent, this.#subscribers) : this.#onEvent;
    const run = new RunContext(this.name, this.#specs.map((spec) => spec.name), this.#logger, listener);
    if (this.#slotLimits.size > 0) {
      run.taskSlots = new Map([...this.#slotLimits].map(([key, limit]) => [key, new TaskSlots(limit)]));
    }
    return run;
  }

  #begin(): RunContext {
    const run = this.#newRun();
    this.#current = run;
    run.log("info", "run started", { stages: this.#specs.map((spec) => spec.name) });
    return run;
  }

  #end(run: RunContext): void {
    run.ended();
    run.metrics.end();
    const { totalIngested, totalCompleted, totalFailed, totalFiltered, totalSkipped } = run.metrics.snapshot();
    run.log("info", "run finished", { totalIngested, totalCompleted, totalFailed, totalFiltered, totalSkipped });
  }

  /**
   * Builds the stage engines, each feeding the next. For `run` the last one
   * hands its chunks straight to the outlet (nothing reads its readable
   * side); for `stream` they go through the readable to the consumer.
   */
  #engines(
    run: RunContext,
    mode: "run" | "stream",
    target: DeadLetterTarget,
    flow?: FlowControl,
    emit?: (value: unknown) => void,
    settle?: SettleListener,
  ): PipelineNode[] & { outlet: Outlet } {
    const limit = mode === "run" ? Number.MAX_SAFE_INTEGER : STREAM_OUTLET_CAPACITY;
    this.#recent = !Array.isArray(target) && this.#recentErrors ? new RecentErrors(this.#recentErrors) : undefined;
    // A flatMap parent is told only once its outputs are: see SettleGate.
    const gate = settle && this.#specs.some((spec) => spec.expand) ? new SettleGate(settle) : undefined;
    const outlet = new Outlet(run, target, this.#deadLetters, limit, gate?.settle ?? settle, this.#recent);
    if (this.#hooks.onItemEnd) outlet.traceEnds(this.#hooks.onItemEnd, this.#specs[this.#specs.length - 1].name);
    const engines: PipelineNode[] = [];
    let next = outlet.capacity;
    for (let i = this.#specs.length - 1; i >= 0; i--) {
      const own = this.#specs[i].forRun?.(run) ?? this.#specs[i];
      const spec = flow ? flow.derive(own) : own;
      const last = i === this.#specs.length - 1;
      let deliver = mode === "run" && last ? (chunk: Chunk) => outlet.accept(chunk, emit) : undefined;
      if (spec.expand) {
        // A flatMap stage: the engine calls fn, the expander after it reads the outputs.
        const expander = new Expander(spec, run, next, deliver, last, gate);
        engines.unshift(expander);
        next = expander.capacity;
        deliver = undefined;
      }
      const position = { first: i === 0, last: last && !spec.expand };
      const engine = new StageEngine(spec, run, spec.queueSize ?? this.#queueSize, next, deliver, position);
      engines.unshift(engine);
      next = engine.capacity;
    }
    return Object.assign(engines, { outlet });
  }

  /**
   * Wraps a source value as an item with its id, counting it as ingested. An
   * acknowledging source names the ids, and may reject a value.
   */
  #ingester(run: RunContext, acking?: AcknowledgingSource<unknown>): (value: unknown) => Envelope {
    const ingest = this.#plainIngester(run, acking);
    const onItemStart = this.#hooks.onItemStart;
    if (!onItemStart) return ingest;
    return (value) => {
      const envelope = ingest(value);
      callHook(run, "onItemStart", onItemStart, { itemId: envelope.id, item: value });
      return envelope;
    };
  }

  #plainIngester(run: RunContext, acking: AcknowledgingSource<unknown> | undefined): (value: unknown) => Envelope {
    let sequence = 0;
    const id = acking ? (value: unknown) => acking.itemId(value) : this.#id;
    const firstStage = this.#specs[0].name;
    return (value) => {
      run.metrics.ingested++;
      const seq = sequence++;
      if (!id) return new Item(seq, value);
      try {
        const itemId = id(value);
        if (typeof itemId !== "string" && typeof itemId !== "number") {
          throw new TypeError(`The pipeline's id() must return a string or a number; got ${show(itemId)}`);
        }
        const rejected = acking?.rejection?.(value);
        if (rejected !== undefined) {
          run.metrics.stage(firstStage).failed++;
          const now = Date.now();
          return new Failure(itemId, firstStage, value, rejected, 1, now, now);
        }
        return new Item(itemId, value);
      } catch (error) {
        // Dead-lettered at the first stage, and counted there, so that its
        // metrics and the dead letter agree.
        run.metrics.stage(firstStage).failed++;
        const now = Date.now();
        return new Failure(seq, firstStage, value, error, 1, now, now);
      }
    };
  }
}

/** The outlet's listener for an acknowledging source: a `settle` that throws is logged, never fatal. */
function settleListener(run: RunContext, acking: AcknowledgingSource<unknown>): SettleListener {
  return (items) => {
    try {
      acking.settle(items);
    } catch (error) {
      run.log("error", "the source's settle() threw; its items may be delivered again", { error });
    }
  };
}

function checkStage(pipeline: string, candidate: unknown, index: number): StageSpec {
  const spec = specOf(candidate);
  if (spec) return spec;
  const hint = typeof candidate === "function"
    ? `wrap the function with stage("name", fn)`
    : `make stages with stage() or batchStage()`;
  throw new ConfigError(
    `Pipeline "${pipeline}": stages[${index}] is not a stage; got ${show(candidate)}: ${hint}`,
    { field: `stages[${index}]` },
  );
}

function checkUniqueNames(pipeline: string, specs: readonly StageSpec[]): void {
  const seen = new Set<string>();
  for (const spec of specs) {
    if (seen.has(spec.name)) {
      throw new ConfigError(
        `Pipeline "${pipeline}": two stages are named "${spec.name}"; stage names must be unique (they key the metrics)`,
        { stage: spec.name, field: "name" },
      );
    }
    seen.add(spec.name);
  }
}

/** A node of the chain: a stage engine, or the expander after a flatMap stage. @internal */
export interface PipelineNode {
  readonly capacity: Capacity;
  readonly stream: TransformStream<Chunk, Chunk>;
}

/** Closes the dead letter sink; with a source error as well, throws both. */
async function closeOutlet(outlet: Outlet, sourceError: { error: unknown } | undefined): Promise<void> {
  await outlet.close().catch((error) => {
    if (!sourceError) throw error;
    throw new AggregateError([sourceError.error, error], "The source failed and so did the dead letter sink", {
      cause: sourceError.error,
    });
  });
}

/** Checks the pipeline's `taskConcurrency` names against the stages' tasks. */
function checkPipelineTaskLimits(
  pipeline: string,
  specs: readonly StageSpec[],
  limits: Readonly<Record<string, number>> | undefined,
): ReadonlyMap<string, number> {
  const known = new Set(specs.flatMap((spec) => spec.taskNames ?? []));
  for (const name of Object.keys(limits ?? {})) {
    if (!known.has(name)) {
      throw new ConfigError(
        `Pipeline "${pipeline}": option "taskConcurrency.${name}" names no task of any stage; the tasks are ${
          [...known].map((task) => `"${task}"`).join(", ")
        } (a task is named by its function's name, or give it one with { name, fn })`,
        { field: `taskConcurrency.${name}` },
      );
    }
  }
  return new Map(Object.entries(limits ?? {}));
}
