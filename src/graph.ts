/**
 * `graph()`: stages joined by edges into a directed acyclic graph, with
 * routes, broadcasts, merges, joins and taps, run on the same stage engine
 * as a `Pipeline`.
 *
 * @module
 */

import { show, validate } from "./config.ts";
import { runOptionsSchema } from "./config.ts";
import type { DeadLetter } from "./dead_letter.ts";
import type { RunOptions } from "./pipeline.ts";
import { acknowledgingOf, checkSource, type Source } from "./source.ts";
import type { GraphShape, ShapeOptions } from "./graph_shape.ts";
import { type MermaidOptions, toMermaid } from "./mermaid.ts";
import { toOutline } from "./outline.ts";
import { checkMermaidOptions, checkShapeOptions } from "./pipeline_shape.ts";
import { GraphRecorder } from "./graph_builder.ts";
import { checkGraph, checkPipelineOnly, isGraphPlan } from "./graph_validate.ts";
import { GraphRunner } from "./graph_run.ts";
import type {
  GraphBuilder,
  GraphMetrics,
  GraphOptions,
  GraphSources,
  Handle,
  HandleType,
  NodeRef,
  SourceDeclaration,
  SourceType,
} from "./graph_types.ts";
import { graphOptionsSchema } from "./graph_validate.ts";

/**
 * Declares a graph source that gives items of type `T` (type-level only).
 *
 * @example
 * ```ts
 * import { graph, source, stage } from "../mod.ts";
 *
 * const g = graph({ sources: { numbers: source<number>() } }, (b, { numbers }) => ({
 *   doubled: b.add(stage("double", (n: number) => n * 2), numbers),
 * }));
 * const { outputs } = await g.collect([1, 2]);
 * console.assert(outputs.doubled.join() === "2,4");
 * ```
 */
export function source<T>(): SourceDeclaration<T> {
  return {};
}

/** What {@linkcode Graph.prototype.collect} resolves with. */
export interface GraphCollectResult<Out> {
  /** Each output's values, in completion order. */
  readonly outputs: { readonly [K in keyof Out]: Out[K][] };
  /** The run's final metrics. */
  readonly metrics: GraphMetrics;
}

/** What {@linkcode Graph.prototype.start} returns: the outputs as streams. */
export interface GraphRun<Out> {
  /** Each output as a `ReadableStream`. Read all of them: an output nobody reads fills up and holds the graph back. */
  readonly outputs: { readonly [K in keyof Out]: ReadableStream<Out[K]> };
  /** Resolves with the final metrics once every item has its fate; rejects as `run()` does. */
  readonly finished: Promise<GraphMetrics>;
}

/** What {@linkcode Graph.prototype.stream} returns. */
export interface GraphStream<In, Out> extends GraphRun<Out> {
  /** One writable per source; close each when it has no more. */
  readonly writables: { readonly [K in keyof In]: WritableStream<In[K]> };
}

/** A graph's sources for a run: one per source, by name; a graph with one source also takes it alone. */
export type GraphInput<In> = GraphSources<In> | Source<In[keyof In]>;

/**
 * A directed acyclic graph of stages, made by {@linkcode graph}. Every node
 * is a stage with its own bounded queue, so backpressure, retries, the dead
 * letter queue, metrics, events, error strategies, hooks, the status
 * tracker, pause and shutdown work as in a `Pipeline`.
 *
 * @typeParam In Each source's item type, by source name.
 * @typeParam Out Each output's item type, by output name.
 */
export class Graph<In, Out> {
  /** The graph's name. */
  readonly name: string;
  readonly #runner: GraphRunner;

  /**
   * Use {@linkcode graph}: it checks the graph and makes it.
   * @throws {TypeError} when called with anything but what `graph()` passes.
   */
  constructor(plan: object) {
    if (!isGraphPlan(plan)) throw new TypeError("A Graph is made by graph(options, build), not new Graph()");
    this.name = plan.name;
    this.#runner = new GraphRunner(plan);
  }

  /** Dead letters of the latest run, when `deadLetterQueue` is `true` (or a sink failed). */
  get deadLetters(): readonly DeadLetter[] {
    return this.#runner.deadLetters;
  }

  /** The latest run's metrics; live while it runs. Before any run, all zero. */
  getMetrics(): GraphMetrics {
    return this.#runner.metrics();
  }

  /**
   * Runs every item of the sources through the graph and resolves with the
   * final metrics once each has its fate. Outputs are counted, not kept
   * (see `collect()` and `start()`).
   *
   * @example
   * ```ts
   * import { graph, source, stage } from "../mod.ts";
   *
   * const g = graph({ sources: { n: source<number>() } }, (b, { n }) => {
   *   const { even, odd } = b.route("parity", n, { when: { even: (x) => x % 2 === 0 }, default: "odd" });
   *   return { even, odd: b.add(stage("triple", (x: number) => x * 3), odd) };
   * });
   * const metrics = await g.run([1, 2, 3]);
   * console.assert(metrics.outputs.even === 1 && metrics.outputs.odd === 2);
   * ```
   *
   * @throws {TypeError} when a source cannot be read, is missing, or is an `AcknowledgingSource` (read one with a `Pipeline`).
   * @throws a source's own error, after everything already read has finished.
   */
  run(sources: GraphInput<In>, options: RunOptions = {}): Promise<GraphMetrics> {
    return this.#start(sources, options, true).finished;
  }

  /**
   * Runs the graph like `run()` and resolves with every output's values
   * and the final metrics. For small jobs: the outputs are held in memory.
   *
   * @example
   * ```ts
   * import { graph, source, stage } from "../mod.ts";
   *
   * const g = graph({ sources: { n: source<number>() } }, (b, { n }) => {
   *   const both = b.broadcast("both", n);
   *   const square = b.add(stage("square", (x: number) => x * x), both);
   *   const negate = b.add(stage("negate", (x: number) => -x), both);
   *   return { joined: b.join("pair", { square, negate }) };
   * });
   * const { outputs } = await g.collect([3]);
   * console.assert(outputs.joined[0].square === 9 && outputs.joined[0].negate === -3);
   * ```
   */
  async collect(sources: GraphInput<In>, options: RunOptions = {}): Promise<GraphCollectResult<Out>> {
    const collected: Record<string, unknown[]> = {};
    for (const name of this.#runner.plan.outputs) collected[name] = [];
    const checked = this.#sourcesOf(sources);
    validate(runOptionsSchema, options, { owner: `Graph "${this.name}" collect`, root: "options" });
    const metrics = await this.#runner.start(checked, options, {
      emit: (output, value) => void collected[output].push(value),
    }).finished;
    return { outputs: collected as { [K in keyof Out]: Out[K][] }, metrics };
  }

  /**
   * Runs the graph over the sources and gives each output as a
   * `ReadableStream` (`start(sources).outputs.name`), with backpressure:
   * an output's consumer that is slow holds the graph back.
   *
   * @example
   * ```ts
   * import { graph, source, stage } from "../mod.ts";
   *
   * const g = graph({ sources: { words: source<string>() } }, (b, { words }) => ({
   *   upper: b.add(stage("upper", (w: string) => w.toUpperCase()), words),
   * }));
   * const { outputs, finished } = g.start(["a", "b"]);
   * const seen: string[] = [];
   * for await (const word of outputs.upper) seen.push(word);
   * console.assert(seen.join() === "A,B" && (await finished).totalCompleted === 2);
   * ```
   */
  start(sources: GraphInput<In>, options: RunOptions = {}): GraphRun<Out> {
    return this.#start(sources, options, false);
  }

  /** `discard`: outputs are counted only (for `run()`). */
  #start(sources: GraphInput<In>, options: RunOptions, discard: boolean): GraphRun<Out> {
    const checked = this.#sourcesOf(sources);
    validate(runOptionsSchema, options, { owner: `Graph "${this.name}" run`, root: "options" });
    return this.#runner.start(checked, options, discard ? { emit: () => {} } : {}) as GraphRun<Out>;
  }

  /**
   * A fresh run fed by hand: one `WritableStream` per source, each output a
   * `ReadableStream`. The run ends once every writable is closed and every
   * item has its fate.
   *
   * @example
   * ```ts
   * import { graph, source, stage } from "../mod.ts";
   *
   * const g = graph({ sources: { n: source<number>() } }, (b, { n }) => ({
   *   inc: b.add(stage("inc", (x: number) => x + 1), n),
   * }));
   * const { writables, outputs } = g.stream();
   * const writer = writables.n.getWriter();
   * writer.write(1);
   * writer.close();
   * const { value } = await outputs.inc.getReader().read();
   * console.assert(value === 2);
   * ```
   */
  stream(): GraphStream<In, Out> {
    const writables: Record<string, WritableStream<unknown>> = {};
    const sources: Record<string, Source<unknown>> = {};
    for (const name of this.#runner.plan.sources) {
      const pass = new TransformStream<unknown, unknown>(undefined, { highWaterMark: 1 }, { highWaterMark: 0 });
      writables[name] = pass.writable;
      sources[name] = pass.readable;
    }
    const run = this.#runner.start(sources, {}, {});
    return { writables, outputs: run.outputs, finished: run.finished } as GraphStream<In, Out>;
  }

  /**
   * The graph's nodes and edges, for `toMermaid()` and `toOutline()`; with
   * `counts: true`, the latest run's live counts on nodes and edges.
   *
   * @example
   * ```ts
   * import { graph, source, stage } from "../mod.ts";
   *
   * const g = graph({ name: "etl", sources: { lines: source<string>() } }, (b, { lines }) => ({
   *   parsed: b.add(stage("parse", (s: string) => s.trim()), lines),
   * }));
   * const shape = g.shape();
   * console.assert(shape.edges.map((e) => `${e.from}>${e.to}`).join() === "lines>parse,parse>parsed");
   * ```
   */
  shape(options: ShapeOptions = {}): GraphShape {
    const { counts } = checkShapeOptions(options, `Graph "${this.name}" shape()`);
    return this.#runner.shape(counts === true);
  }

  /**
   * The graph as a Mermaid flowchart (see {@linkcode toMermaid}): routes,
   * broadcasts and joins drawn apart, route branches and join branches as
   * edge labels, and with `counts: true` the latest run's counts.
   *
   * @example
   * ```ts
   * import { graph, source, stage } from "../mod.ts";
   *
   * const g = graph({ name: "split", sources: { n: source<number>() } }, (b, { n }) => {
   *   const { small, big } = b.route("size", n, { when: { small: (x) => x < 10 }, default: "big" });
   *   return { small, big: b.add(stage("shrink", (x: number) => x / 10), big) };
   * });
   * const text = g.toMermaid();
   * console.assert(text.includes("flowchart LR") && text.includes(`n1 -->|"small"| n3`));
   * ```
   */
  toMermaid(options: ShapeOptions & MermaidOptions = {}): string {
    const { shape, mermaid } = checkMermaidOptions(options, `Graph "${this.name}" toMermaid()`);
    return toMermaid(this.shape(shape), mermaid);
  }

  /**
   * The graph as a plain text outline (see {@linkcode toOutline}), one line
   * per node with where its items go; with `counts: true` the latest run's
   * counts.
   *
   * @example
   * ```ts
   * import { graph, source, stage } from "../mod.ts";
   *
   * const g = graph({ name: "etl", sources: { lines: source<string>() } }, (b, { lines }) => ({
   *   parsed: b.add(stage("parse", (s: string) => s.trim()), lines),
   * }));
   * await g.run([" a "]);
   * console.assert(g.toOutline({ counts: true }).includes("parse"));
   * ```
   */
  toOutline(options: ShapeOptions = {}): string {
    return toOutline(this.shape(options));
  }

  /**
   * Stops every run in progress gracefully (as its `signal` would: no more
   * items are read from any source, the ones already read finish) and
   * resolves once they are over; `await using g = graph(…)` calls it at the
   * end of the scope. The graph may run again afterwards. A `start()` or
   * `stream()` run is over once its outputs have been read to the end.
   *
   * @example
   * ```ts
   * import { graph, source, stage } from "../mod.ts";
   *
   * const g = graph({ sources: { n: source<number>() } }, (b, { n }) => ({
   *   out: b.add(stage("s", async (x: number) => x), n),
   * }));
   * async function* forever() {
   *   for (let i = 0; ; i++) yield i;
   * }
   * const running = g.run(forever());
   * await new Promise((resolve) => setTimeout(resolve, 10));
   * await g.close();
   * const metrics = await running;
   * console.assert(metrics.itemsInFlight === 0 && metrics.totalCompleted === metrics.totalIngested);
   * ```
   */
  close(): Promise<void> {
    return this.#runner.close();
  }

  /** `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Pauses the current run, as `pipeline.pause()` does: no new attempt
   * starts at any stage or route node (attempts in flight finish), queues
   * fill and backpressure holds the sources. A stop, a halt or a forced
   * shutdown resumes it, so that it can drain.
   *
   * @example
   * ```ts
   * import { graph, source, stage } from "../mod.ts";
   *
   * const g = graph({ sources: { n: source<number>() } }, (b, { n }) => ({
   *   out: b.add(stage("s", (x: number) => x), n),
   * }));
   * const running = g.run([1, 2, 3]);
   * g.pause();
   * console.assert(g.paused && g.getMetrics().totalCompleted === 0);
   * g.resume();
   * console.assert((await running).totalCompleted === 3);
   * ```
   */
  pause(): void {
    this.#runner.run?.pause();
  }

  /** Lets the current run start attempts again after {@linkcode Graph.prototype.pause} or a breakpoint. */
  resume(): void {
    this.#runner.run?.resume();
  }

  /** True while the current run is paused. */
  get paused(): boolean {
    return this.#runner.run?.paused ?? false;
  }

  /** Checks each source and makes a record of them. */
  #sourcesOf(sources: GraphInput<In>): Record<string, Source<unknown>> {
    const names = this.#runner.plan.sources;
    const single = sources instanceof ReadableStream ||
      (typeof sources === "object" && sources !== null &&
        (Symbol.asyncIterator in sources || Symbol.iterator in sources));
    if (single) {
      if (names.length !== 1) {
        throw new TypeError(
          `Graph "${this.name}" has ${names.length} sources (${
            names.map((n) => `"${n}"`).join(", ")
          }); pass them by name: run({ ${names.join(": …, ")}: … })`,
        );
      }
      this.#checkSource(names[0], sources);
      return { [names[0]]: sources as Source<unknown> };
    }
    if (typeof sources !== "object" || sources === null) {
      throw new TypeError(
        `Graph "${this.name}": run() takes the sources by name, { ${names.join(", ")} }; got ${show(sources)}`,
      );
    }
    const record = sources as Record<string, Source<unknown>>;
    for (const key of Object.keys(record)) {
      if (!names.includes(key)) {
        throw new TypeError(
          `Graph "${this.name}": "${key}" is not one of its sources; they are ${names.map((n) => `"${n}"`).join(", ")}`,
        );
      }
    }
    for (const name of names) {
      if (!(name in record)) {
        throw new TypeError(`Graph "${this.name}": source "${name}" is missing; pass every source by name`);
      }
      this.#checkSource(name, record[name]);
    }
    return record;
  }

  /** A source a graph can read: not an acknowledging one, whose messages it would never acknowledge. */
  #checkSource(name: string, source: unknown): void {
    checkSource(source);
    if (acknowledgingOf(source)) {
      throw new TypeError(
        `Graph "${this.name}": source "${name}" is an AcknowledgingSource (a queue that acknowledges a message once ` +
          `its item has ended, such as redisStreamSource()); graphs do not tell sources the fates of their items, so ` +
          `its messages would never be acknowledged and would be delivered again: read it with a Pipeline`,
      );
    }
  }
}

/**
 * Builds a graph: `build` adds nodes with the builder it gets, starting
 * from the sources' handles, and returns the outputs by name. The graph is
 * checked once, here: a cycle, an input or output left unconnected, an
 * unreachable node, a duplicate name or a join whose branches do not all
 * reach it is a `ConfigError` that names the nodes.
 *
 * @typeParam In The sources' declarations, by name.
 * @typeParam Out The outputs' handles, by name.
 *
 * @example Split valid and invalid records
 * ```ts
 * import { graph, source, stage } from "../mod.ts";
 *
 * type Row = { id: number; email: string };
 * const g = graph({ name: "signup", sources: { rows: source<Row>() } }, (b, { rows }) => {
 *   const { valid, invalid } = b.route("check", rows, {
 *     when: { valid: (row) => row.email.includes("@") },
 *     default: "invalid",
 *   });
 *   const saved = b.add(stage("save", async (row: Row) => ({ ...row, saved: true })), valid);
 *   return { saved, invalid };
 * });
 * const { outputs } = await g.collect([{ id: 1, email: "a@b" }, { id: 2, email: "nope" }]);
 * console.assert(outputs.saved.length === 1 && outputs.invalid[0].id === 2);
 * ```
 *
 * @example Graph-wide error rules and limits, as for a pipeline
 * ```ts
 * import { graph, HaltError, source, stage } from "../mod.ts";
 *
 * const g = graph({
 *   sources: { lines: source<string>() },
 *   onError: [[SyntaxError, "skip"]], // for every node without rules of its own
 *   maxDeadLetters: 0, // the first dead letter halts the graph
 * }, (b, { lines }) => {
 *   const parsed = b.add(stage("parse", (line: string) => JSON.parse(line) as number), lines);
 *   const checked = b.add(stage("check", (n: number) => {
 *     if (n < 0) throw new RangeError(`negative: ${n}`);
 *     return n;
 *   }), parsed);
 *   return { checked };
 * });
 * const { outputs, metrics } = await g.collect(["4", "{", "9"]);
 * console.assert(outputs.checked.join() === "4,9" && metrics.totalSkipped === 1);
 * const halted = await g.run(["-1", "2"]).catch((error: unknown) => error);
 * console.assert(halted instanceof HaltError && halted.stage === "check");
 * ```
 *
 * @throws {ConfigError} when an option is invalid or the graph is not a valid DAG.
 */
export function graph<
  const In extends Readonly<Record<string, SourceDeclaration<unknown>>>,
  const Out extends Readonly<Record<string, NodeRef<unknown>>>,
>(
  options: GraphOptions<In>,
  build: (builder: GraphBuilder, sources: { readonly [K in keyof In]: Handle<SourceType<In[K]>> }) => Out,
): Graph<{ [K in keyof In]: SourceType<In[K]> }, { [K in keyof Out]: HandleType<Out[K]> }> {
  const owner = typeof options?.name === "string" ? `Graph "${options.name}"` : "Graph";
  checkPipelineOnly(owner, options);
  const resolved = validate(graphOptionsSchema, options, { owner, root: "graph options" });
  const name = resolved.name ?? "graph";
  if (typeof build !== "function") {
    throw new TypeError(
      `Graph "${name}": graph() takes a build function (builder, sources) => outputs; got ${show(build)}`,
    );
  }
  const recorder = new GraphRecorder(name);
  const handles: Record<string, Handle<unknown>> = {};
  for (const key of Object.keys(resolved.sources)) handles[key] = recorder.source(key);
  const outputs = build(recorder, handles as { readonly [K in keyof In]: Handle<SourceType<In[K]>> });
  if (typeof outputs !== "object" || outputs === null || Object.keys(outputs).length === 0) {
    throw new TypeError(
      `Graph "${name}": the build function must return the outputs by name, { name: handle }; got ${show(outputs)}`,
    );
  }
  const taken = new Set(recorder.decl.nodes.map((node) => node.name));
  for (const [output, from] of Object.entries(outputs)) {
    recorder.output(taken.has(output) ? `${output}:out` : output, output, from);
  }
  return new Graph(checkGraph(name, recorder.decl, options));
}
