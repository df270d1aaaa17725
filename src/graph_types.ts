/**
 * The public types of graphs: handles (typed references to a node's
 * output), the combinators' options, and what a graph run reports.
 *
 * @module
 */

import type { DeadLetter } from "./dead_letter.ts";
import type { EventListener, ItemId } from "./events.ts";
import type { PipelineStrategyOptions } from "./flow_control.ts";
import type { Logger } from "./logger.ts";
import type { StatusRecorder } from "./status_tracker.ts";
import type { Source } from "./source.ts";
import type { PipelineMetrics } from "./metrics.ts";
import type { Stage } from "./stage.ts";

/**
 * A typed reference to a node's output (for a route, to one of its
 * branches). Passing it as the input of a stage whose input type does not
 * match is a compile error. A plain `{ node, port }` object, so a graph
 * built from names can write one too.
 *
 * @typeParam T What the node gives.
 */
export interface Handle<T> {
  /** The node's name. */
  readonly node: string;
  /** A route's branch; absent for every other node. */
  readonly port?: string;
  /** Type-level only (always undefined): what flows out of it. */
  readonly types?: { readonly output: () => T };
}

/** What flows out of a handle. */
export type HandleType<H> = H extends Handle<infer T> ? T : unknown;

/** A node's output: a typed {@linkcode Handle}, or a node's name (untyped, for graphs built from names). */
export type NodeRef<T> = Handle<T> | string;

/** An edge between two nodes, by name: for taps on one edge of a broadcast. */
export interface EdgeRef {
  /** The upstream node. */
  readonly from: string;
  /** The downstream node. */
  readonly to: string;
}

/**
 * Declares a graph source of items of type `T`: see {@linkcode source}.
 *
 * @typeParam T What the source gives.
 */
export interface SourceDeclaration<T> {
  /** Type-level only (always undefined). */
  readonly types?: { readonly output: () => T };
}

/** What a source declaration gives. */
export type SourceType<D> = D extends SourceDeclaration<infer T> ? T : unknown;

/** Options of a route by predicates: {@linkcode GraphBuilder.route}. */
export interface RouteWhenOptions<T, K extends string, D extends string> {
  /** Branch name → predicate. An item goes to the first branch (in this order) whose predicate is true. */
  readonly when: { readonly [P in K]: (value: T) => boolean };
  /** The branch for items no predicate takes; without one, such an item is dead-lettered with a `RouteError`. */
  readonly default?: D;
}

/** Options of a route by key: {@linkcode GraphBuilder.route}. */
export interface RouteKeyOptions<T, K extends string, D extends string> {
  /** The branch names `key` may return. */
  readonly branches: readonly K[];
  /** Gives each item its branch's name. */
  readonly key: (value: T) => string;
  /** The branch for keys not in `branches`; without one, such an item is dead-lettered with a `RouteError`. */
  readonly default?: D;
}

/** A route's branches as handles, by branch name. */
export type RouteHandles<T, K extends string> = { readonly [P in K]: Handle<T> };

/** Options of {@linkcode GraphBuilder.join}. */
export interface JoinOptions {
  /**
   * Milliseconds from the first branch's arrival after which a partial join
   * is dead-lettered with a `JoinError` naming the missing branches.
   * @default {undefined} wait until the join's inputs end (then dead-letter what is partial)
   */
  readonly timeoutMs?: number;
}

/** What a join gives: one object with each branch's output under its branch name. */
export type Joined<B> = { -readonly [K in keyof B]: HandleType<B[K]> };

/** What a tap's function is told beside the value. */
export interface TapInfo {
  /** The item's id. */
  readonly itemId: ItemId;
  /** The node whose output the tap observes. */
  readonly node: string;
  /** The node the item goes to next (for a node with several edges out, each edge is tapped apart). */
  readonly to: string;
}

/** A tap's function: observes a value; what it returns or throws changes nothing. */
export type TapFn<T> = (value: T, info: TapInfo) => void | Promise<void>;

/** Options of {@linkcode GraphBuilder.tap}. */
export interface TapOptions {
  /**
   * The tap's name, in its metrics.
   * @default {"<node>:tap<n>"}
   */
  readonly name?: string;
  /**
   * Values waiting for a busy tap.
   * @default {1000}
   */
  readonly bufferSize?: number;
  /**
   * What a tap that falls behind sees once its buffer is full: `"drop"`
   * ignores new values until it catches up (it sees the start of each
   * burst); `"sample"` keeps a uniform random sample of everything since it
   * fell behind (reservoir sampling). Items move on either way.
   * @default {"drop"}
   */
  readonly whenFull?: "drop" | "sample";
}

/** One node's counters, in {@linkcode GraphMetrics}. */
export interface GraphNodeMetrics {
  /** What the node is. */
  readonly kind: "source" | "stage" | "route" | "broadcast" | "merge" | "join" | "output";
  /** Items that entered it (failures passing through on their way to the dead letter queue are not counted). */
  readonly items: number;
  /** Items waiting in its input queue right now. */
  readonly queueDepth: number;
}

/** One edge's counters, in {@linkcode GraphMetrics}. */
export interface GraphEdgeMetrics {
  /** The upstream node. */
  readonly from: string;
  /** The downstream node. */
  readonly to: string;
  /** A route's branch, or a join's branch name. */
  readonly label?: string;
  /** Items that crossed it. */
  readonly items: number;
  /** Items that crossed it and wait for room in the downstream node (its queue is shared by its edges in). */
  readonly queueDepth: number;
}

/** One tap's counters, in {@linkcode GraphMetrics}. */
export interface GraphTapMetrics {
  /** Values the tap's function was called with. */
  readonly seen: number;
  /** Values it did not see because it was behind (dropped, or not sampled). */
  readonly missed: number;
  /** Calls that threw or rejected (logged, never fatal). */
  readonly errors: number;
  /** Values waiting for it. */
  readonly pending: number;
}

/**
 * A graph run's metrics: a {@linkcode PipelineMetrics} (stage metrics per
 * stage, route and join node) plus the graph's own counts. Conservation
 * over the whole graph: a broadcast into `k` branches makes `k − 1` extra
 * copies, each accounted for on its own branch, and a join that merges `k`
 * copies into one counts `k − 1` as joined, so at the end of every run
 * `totalIngested + totalCopies === totalCompleted + totalFailed +
 * totalFiltered + totalSkipped + totalExpanded + totalJoined` and
 * `itemsInFlight === 0`.
 */
export interface GraphMetrics extends PipelineMetrics {
  /** Extra copies made by broadcasts (`k − 1` per item sent into `k` branches). */
  readonly totalCopies: number;
  /** Copies merged away by joins (`k − 1` per `k` copies joined into one item, or into one partial dead letter). */
  readonly totalJoined: number;
  /** Per node, by name, in declaration order. */
  readonly nodes: Readonly<Record<string, GraphNodeMetrics>>;
  /** Per edge, in declaration order. */
  readonly edges: readonly GraphEdgeMetrics[];
  /** Per tap, by name. */
  readonly taps: Readonly<Record<string, GraphTapMetrics>>;
  /** Items completed per output, by output name. */
  readonly outputs: Readonly<Record<string, number>>;
}

/**
 * Options of {@linkcode graph}. The error strategies (`onError`,
 * `maxSkips`, `maxDeadLetters`, `breakpoint`), `hooks` and `statusTracker`
 * mean what they mean for a `Pipeline`, over every stage and route node of
 * the graph.
 */
export interface GraphOptions<In> extends PipelineStrategyOptions {
  /**
   * The graph's name, in log records and error messages.
   * @default {"graph"}
   */
  readonly name?: string;
  /** The sources, by name: `{ orders: source<Order>() }`. */
  readonly sources: In;
  /**
   * Items that may wait in front of each node (a stage's own `queueSize` overrides it).
   * @default {1000}
   */
  readonly queueSize?: number;
  /**
   * As for a `Pipeline`: `true` keeps dead letters in `graph.deadLetters`,
   * a `WritableStream` (or a function returning one per run) receives them,
   * `false` only counts them.
   * @default {true}
   */
  readonly deadLetterQueue?: boolean | WritableStream<DeadLetter> | (() => WritableStream<DeadLetter>);
  /**
   * Receives log records with `pipeline` (the graph's name), `stage` (the node's name) and `itemId`.
   * @default {silentLogger}
   */
  readonly logger?: Logger;
  /** Receives typed per-item events; `stage` is the node's name. */
  readonly onEvent?: EventListener;
  /**
   * Gives each item its id; ids must be unique within a run for joins to pair copies.
   * @default {a sequence number from 0, shared by all sources}
   */
  readonly id?: (input: unknown, source: string) => ItemId;
  /**
   * Receives every item's status changes, as for a `Pipeline`; an item
   * completes at an output (`stage` is the output's name). A broadcast's
   * copies share their item's id: the latest status is the fate of the copy
   * that ended last, and the history holds each.
   */
  readonly statusTracker?: StatusRecorder;
}

/**
 * What the build function of `graph()` gets: adds nodes and edges.
 * Every method takes its input as a {@linkcode Handle} (typed) or a node's
 * name (untyped, may name a node declared later).
 *
 * @example Typed handles
 * ```ts
 * import { graph, source, stage } from "../mod.ts";
 *
 * const g = graph({ sources: { words: source<string>() } }, (b, { words }) => {
 *   const lengths = b.add(stage("length", (w: string) => w.length), words);
 *   const { long, short } = b.route("size", lengths, { when: { long: (n) => n > 3 }, default: "short" });
 *   return { long, short };
 * });
 * const { outputs } = await g.collect(["a", "graph"]);
 * console.assert(outputs.long[0] === 5 && outputs.short[0] === 1);
 * ```
 *
 * @example By name, as a config would: nodes may be named before they are declared
 * ```ts
 * import { graph, source, stage } from "../mod.ts";
 *
 * const g = graph({ sources: { n: source<number>() } }, (b) => {
 *   b.add(stage("double", (x: number) => x * 2));
 *   b.add(stage("inc", (x: number) => x + 1));
 *   b.connect("n", "double");
 *   b.connect("double", "inc");
 *   return { out: "inc" };
 * });
 * const { outputs } = await g.collect([1, 2]);
 * console.assert(outputs.out.join() === "3,5");
 * ```
 */
export interface GraphBuilder {
  /**
   * Adds a stage as a node fed by `input` (or, without one, by `connect`).
   * The node's name is the stage's name.
   */
  add<I, O>(stage: Stage<I, O>, input?: NodeRef<NoInfer<I>>): Handle<O>;
  /** Adds an edge from `from` to the node named `to`: for graphs built from names. */
  connect(from: NodeRef<unknown>, to: string): void;
  /** Sends each item to the first branch whose predicate holds, or to `default`. */
  route<T, const K extends string, const D extends string = never>(
    name: string,
    input: NodeRef<T>,
    options: RouteWhenOptions<NoInfer<T>, K, D>,
  ): RouteHandles<T, K | D>;
  /** Sends each item to the branch its key names, or to `default`. */
  route<T, const K extends string, const D extends string = never>(
    name: string,
    input: NodeRef<T>,
    options: RouteKeyOptions<NoInfer<T>, K, D>,
  ): RouteHandles<T, K | D>;
  /** Sends every item to every node fed by the returned handle; the slowest of them sets the pace. */
  broadcast<T>(name: string, input: NodeRef<T>): Handle<T>;
  /** Feeds the items of several nodes into one. */
  merge<T>(name: string, inputs: readonly NodeRef<T>[]): Handle<T>;
  /** Collects each item's outputs of the branches (by item id) into one object. */
  join<const B extends Readonly<Record<string, NodeRef<unknown>>>>(
    name: string,
    branches: B,
    options?: JoinOptions,
  ): Handle<Joined<B>>;
  /** Observes the items leaving a node (or crossing one edge), without changing their flow. */
  tap<T>(target: NodeRef<T> | EdgeRef, fn: TapFn<T>, options?: TapOptions): void;
}

/** What a graph's sources are given as in `run` and `collect`. */
export type GraphSources<In> = { readonly [K in keyof In]: Source<In[K]> };
