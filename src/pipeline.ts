/**
 * `Pipeline`: stages joined by bounded queues, run over a source or used as
 * a `{ writable, readable }` pair.
 *
 * @module
 */

import { ConfigError, HaltError } from "./errors.ts";
import { pipelineOptionsSchema, runOptionsSchema, show, validate } from "./config.ts";
import type { DeadLetter } from "./dead_letter.ts";
import { type Chunk, type Envelope, Failure, Item } from "./envelope.ts";
import type { EventListener, ItemId } from "./events.ts";
import { type Logger, silentLogger } from "./logger.ts";
import type { PipelineMetrics } from "./metrics.ts";
import { type DeadLetterTarget, Outlet, STREAM_OUTLET_CAPACITY } from "./outlet.ts";
import { RunContext } from "./run_context.ts";
import { onShutdownSignals } from "./signals.ts";
import { openPipelineStream, type PipelineStream } from "./pipeline_stream.ts";
import { checkSource, type Source, sourceStream } from "./source.ts";
import { specOf, type Stage, type StageSpec } from "./stage.ts";
import { pipeThroughEngines, StageEngine } from "./stage_stream.ts";
import { FlowControl, type PipelineStrategies, type PipelineStrategyOptions } from "./flow_control.ts";
import { callHook, type PipelineHooks } from "./hooks.ts";
import { checkReplay, type ReplayEntry, replayEnvelope, unpend } from "./replay.ts";

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
  /** The pipeline's name, in log records and error messages. */
  readonly name: string;
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
    this.name = resolved.name;
    this.#specs = resolved.stages.map((candidate, index) => checkStage(resolved.name, candidate, index));
    checkUniqueNames(resolved.name, this.#specs);
    this.#queueSize = resolved.queueSize ?? DEFAULT_QUEUE_SIZE;
    this.#target = (resolved.deadLetterQueue as PipelineOptions<S>["deadLetterQueue"]) ?? true;
    this.#logger = (resolved.logger as Logger | undefined) ?? silentLogger;
    this.#onEvent = resolved.onEvent as EventListener | undefined;
    this.#id = resolved.id as ((input: unknown) => ItemId) | undefined;
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
  async run(source: Source<PipelineInput<S>>, options: RunOptions = {}): Promise<PipelineMetrics> {
    checkSource(source);
    validate(runOptionsSchema, options, { owner: `Pipeline "${this.name}" run`, root: "options" });
    return await this.#execute(source, options, (run) => this.#ingester(run), undefined);
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
    return await this.#execute(checked.entries, options, ingester, checked.startStages);
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

  /** One run over `source`: shutdown, hooks, error strategies, and how it settles. */
  async #execute(
    source: Source<unknown>,
    options: RunOptions,
    ingester: (run: RunContext) => (value: unknown) => Envelope,
    replayStages: ReadonlySet<number> | undefined,
  ): Promise<PipelineMetrics> {
    const target = this.#deadLetterTarget();
    const run = this.#begin();
    const stop = new AbortController();
    const hooks = this.#hooks;
    let flow: FlowControl | undefined;
    const graceful = () => {
      flow?.stop();
      run.resume();
      if (stop.signal.aborted) return;
      run.log("info", "stopping: no more items are read; draining", {});
      stop.abort();
    };
    if (this.#strategies) {
      flow = new FlowControl(run, this.#strategies, (halt) => {
        graceful();
        if (halt.force) run.force(halt.error);
      });
    }
    const detach = this.#attachShutdown(run, graceful, options);
    let sourceError: { error: unknown } | undefined;
    let thrown: { error: unknown } | undefined;
    try {
      await callHook(run, "onStart", hooks.onStart, { pipeline: this.name });
      const engines = this.#engines(run, "run", target, flow);
      const onDrain = hooks.onDrain
        ? () => callHook(run, "onDrain", hooks.onDrain, { pipeline: this.name })
        : undefined;
      const input = sourceStream(source, engines[0].capacity, ingester(run), stop.signal, (error) => {
        sourceError = { error };
        run.log("error", "source failed; finishing the items already read", { error });
      }, onDrain);
      const output = replayStages ? this.#pipeReplay(input, engines, replayStages) : pipeThroughEngines(input, engines);
      await output.pipeTo(new WritableStream<Chunk>());
      await engines.outlet.close().catch((error) => {
        if (!sourceError) throw error;
        throw new AggregateError([sourceError.error, error], "The source failed and so did the dead letter sink", {
          cause: sourceError.error,
        });
      });
    } catch (error) {
      thrown = { error };
    } finally {
      detach();
      this.#end(run);
      flow?.dispose();
    }
    const metrics = run.metrics.snapshot();
    const halt = flow?.halted;
    const failure = thrown ??
      (halt ? { error: finalHaltError(halt.error, halt.force, metrics, this.#deadLetters) } : sourceError);
    if (hooks.onEnd) {
      await callHook(
        run,
        "onEnd",
        hooks.onEnd,
        failure ? { pipeline: this.name, metrics, error: failure.error } : {
          pipeline: this.name,
          metrics,
        },
      );
    }
    if (failure) throw failure.error;
    return metrics;
  }

  /** The chain for a replay: before each stage some entries start at, a step that makes them items. */
  #pipeReplay(
    input: ReadableStream<Chunk>,
    engines: readonly StageEngine[],
    startStages: ReadonlySet<number>,
  ): ReadableStream<Chunk> {
    let stream = input;
    engines.forEach((engine, index) => {
      if (startStages.has(index)) stream = stream.pipeThrough(unpend(this.#specs[index].name));
      stream = stream.pipeThrough(engine.stream);
    });
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
    const run = this.#begin();
    const flow = this.#strategies ? new FlowControl(run, this.#strategies, (halt) => run.force(halt.error)) : undefined;
    const engines = this.#engines(run, "stream", target, flow);
    return openPipelineStream(run, engines, engines.outlet, this.#ingester(run), () => {
      this.#end(run);
      flow?.dispose();
    });
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
    return new RunContext(this.name, this.#specs.map((spec) => spec.name), this.#logger, this.#onEvent);
  }

  #begin(): RunContext {
    const run = this.#newRun();
    this.#current = run;
    run.log("info", "run started", { stages: this.#specs.map((spec) => spec.name) });
    return run;
  }

  #end(run: RunContext): void {
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
  ): StageEngine[] & { outlet: Outlet } {
    const limit = mode === "run" ? Number.MAX_SAFE_INTEGER : STREAM_OUTLET_CAPACITY;
    const outlet = new Outlet(run, target, this.#deadLetters, limit);
    if (this.#hooks.onItemEnd) outlet.traceEnds(this.#hooks.onItemEnd, this.#specs[this.#specs.length - 1].name);
    const engines: StageEngine[] = [];
    let next = outlet.capacity;
    for (let i = this.#specs.length - 1; i >= 0; i--) {
      const spec = flow ? flow.derive(this.#specs[i]) : this.#specs[i];
      const deliver = mode === "run" && i === this.#specs.length - 1
        ? (chunk: Chunk) => outlet.accept(chunk)
        : undefined;
      const engine = new StageEngine(spec, run, spec.queueSize ?? this.#queueSize, next, deliver);
      engines.unshift(engine);
      next = engine.capacity;
    }
    return Object.assign(engines, { outlet });
  }

  /** Wraps a source value as an item with its id, counting it as ingested. */
  #ingester(run: RunContext): (value: unknown) => Envelope {
    let sequence = 0;
    const id = this.#id;
    const firstStage = this.#specs[0].name;
    const onItemStart = this.#hooks.onItemStart;
    if (onItemStart) {
      const ingest = this.#ingesterOf(run, id, firstStage, () => sequence++);
      return (value) => {
        const envelope = ingest(value);
        callHook(run, "onItemStart", onItemStart, { itemId: envelope.id, item: value });
        return envelope;
      };
    }
    return this.#ingesterOf(run, id, firstStage, () => sequence++);
  }

  #ingesterOf(
    run: RunContext,
    id: ((input: unknown) => ItemId) | undefined,
    firstStage: string,
    next: () => number,
  ): (value: unknown) => Envelope {
    return (value) => {
      run.metrics.ingested++;
      const seq = next();
      if (!id) return new Item(seq, value);
      try {
        const itemId = id(value);
        if (typeof itemId !== "string" && typeof itemId !== "number") {
          throw new TypeError(`The pipeline's id() must return a string or a number; got ${show(itemId)}`);
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

  #attachShutdown(run: RunContext, graceful: () => void, options: RunOptions): () => void {
    const cleanups: (() => void)[] = [];
    const force = () => {
      graceful();
      run.force(options.forceSignal?.reason ?? new Error("forced shutdown"));
    };
    for (const [signal, handler] of [[options.signal, graceful], [options.forceSignal, force]] as const) {
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

/** The pipeline's strategy options, or undefined when neither it nor any stage uses one. */
function strategiesIn(options: PipelineStrategies, specs: readonly StageSpec[]): PipelineStrategies | undefined {
  const { onError, maxSkips, maxDeadLetters, hooks, breakpoint } = options;
  const any = onError !== undefined || maxSkips !== undefined || maxDeadLetters !== undefined ||
    hooks?.onStageError !== undefined || breakpoint !== undefined || specs.some((spec) => spec.strategies);
  return any ? { onError, maxSkips, maxDeadLetters, hooks, breakpoint } : undefined;
}

/** The HaltError `run` rejects with: the halt as asked for, with the run's final account. */
function finalHaltError(
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
