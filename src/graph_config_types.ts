/**
 * The types of a config for `fromConfig()`: what a JSON or YAML file holds.
 * `src/graph_config.ts` checks them with a zod schema of the same shape
 * (`tests/graph_config_test.ts` checks at compile time that the two agree).
 *
 * @module
 */

/** `[error name, action]`: when an error's `name` is the first, do the second. */
export type ErrorRuleConfig = readonly [
  errorName: string,
  action: "retry" | "deadLetter" | "skip" | "halt" | { readonly halt: "graceful" | "force" },
];

/** A processor's stage options: the data ones of `stage()`, `batchStage()` and `flatMapStage()`. */
export interface ProcessorOptionsConfig {
  /**
   * Items (a batch processor: batches) worked on at once.
   * @default {1}
   */
  readonly concurrency?: number;
  /**
   * Retries after the first attempt.
   * @default {0}
   */
  readonly maxRetries?: number;
  /** The delay between attempts. */
  readonly backoff?: {
    readonly initialDelayMs?: number;
    readonly maxDelayMs?: number;
    readonly multiplier?: number;
    readonly jitter?: boolean;
  };
  /** A limit per attempt, in milliseconds. */
  readonly timeoutMs?: number;
  /**
   * `true`: outputs leave in input order; `false`: in completion order.
   * @default {true}
   */
  readonly ordered?: boolean;
  /** Items that may wait in front of this processor. */
  readonly queueSize?: number;
  /** Batch processors only (required there): the most items in a batch. */
  readonly batchSize?: number;
  /** Batch processors only: flush a partial batch this long after its first item. */
  readonly flushIntervalMs?: number;
  /** At most `limit` attempts per `intervalMs`. */
  readonly rateLimit?: { readonly limit: number; readonly intervalMs: number };
  /** Stop calling a failing service for `cooldownMs`. */
  readonly circuitBreaker?: {
    readonly failureThreshold: number;
    readonly windowMs?: number;
    readonly windowSize?: number;
    readonly cooldownMs: number;
    readonly halfOpenProbes?: number;
    readonly drainTimeoutMs?: number;
  };
  /** Error rules tried in order. */
  readonly onError?: readonly ErrorRuleConfig[];
}

/** One processor of a {@linkcode PipelineConfig}. */
export interface ProcessorConfig {
  /** Its name, unique in the config (it keys metrics, events and dead letters). */
  readonly name: string;
  /** The registered processor type. */
  readonly type: string;
  /** The type's parameters, checked by its schema in the registry. */
  readonly parameters?: Readonly<Record<string, unknown>>;
  /** Its stage options. */
  readonly options?: ProcessorOptionsConfig;
}

/**
 * A pipeline as data: for {@linkcode fromConfig}.
 *
 * @example
 * ```ts
 * import type { PipelineConfig } from "./graph_config_types.ts";
 *
 * const config: PipelineConfig = {
 *   name: "lines",
 *   processors: [{ name: "parse", type: "json", options: { onError: [["SyntaxError", "skip"]] } }],
 *   options: { maxDeadLetters: 10 },
 * };
 * console.assert(config.processors.length === 1);
 * ```
 */
export interface PipelineConfig {
  /** The JSON Schema the file follows, for editors. */
  readonly $schema?: string;
  /**
   * The pipeline's name.
   * @default {"pipeline"}
   */
  readonly name?: string;
  /** The processors, in the order items flow through them. */
  readonly processors: readonly ProcessorConfig[];
  /** Pipeline options. */
  readonly options?: {
    /**
     * Items that may wait in front of each processor.
     * @default {1000}
     */
    readonly queueSize?: number;
    /**
     * `true` keeps failed items in `pipeline.deadLetters`; `false` only counts them.
     * @default {true}
     */
    readonly deadLetterQueue?: boolean;
    /** Halt the run after more than this many skips. */
    readonly maxSkips?: number;
    /** Halt the run after more than this many dead letters. */
    readonly maxDeadLetters?: number;
    /** How many of the latest failures `snapshot()` lists. */
    readonly recentErrors?: number;
    /** Error rules for every processor, after its own. */
    readonly onError?: readonly ErrorRuleConfig[];
  };
}

/** One node of a {@linkcode GraphConfig}. */
export interface GraphNodeConfig {
  /** Its name, unique among the graph's sources and nodes. */
  readonly name: string;
  /**
   * What it is: `stage` and `route` run a registered type; `broadcast`,
   * `merge` and `join` need none.
   * @default {"stage"}
   */
  readonly kind?: "stage" | "route" | "broadcast" | "merge" | "join";
  /** Stage and route nodes: the registered type (a route's type gives each item its branch). */
  readonly type?: string;
  /** Stage and route nodes: the type's parameters. */
  readonly parameters?: Readonly<Record<string, unknown>>;
  /** Stage nodes: stage options. */
  readonly options?: ProcessorOptionsConfig;
  /** Route nodes: the branch names its type may return. */
  readonly branches?: readonly string[];
  /** Route nodes: the branch for keys not in `branches`. */
  readonly default?: string;
  /** Join nodes: dead-letter a partial join this long after its first branch arrived. */
  readonly timeoutMs?: number;
}

/** Where items come from: a source or node, and for a route, which branch. */
export interface NodeRefConfig {
  /** A source's or a node's name. */
  readonly from: string;
  /** When `from` is a route: which of its branches. */
  readonly branch?: string;
}

/** An edge of a {@linkcode GraphConfig}. */
export interface ConnectionConfig extends NodeRefConfig {
  /** The node that takes the items. */
  readonly to: string;
  /**
   * When `to` is a join: the branch's name in the joined object.
   * @default {from}
   */
  readonly as?: string;
}

/**
 * A graph as data: for {@linkcode fromConfig}.
 *
 * @example
 * ```ts
 * import type { GraphConfig } from "./graph_config_types.ts";
 *
 * const config: GraphConfig = {
 *   sources: ["lines"],
 *   processors: [{ name: "parse", type: "json" }],
 *   connections: [{ from: "lines", to: "parse" }],
 *   outputs: { parsed: "parse" },
 * };
 * console.assert(config.connections[0].to === "parse");
 * ```
 */
export interface GraphConfig {
  /** The JSON Schema the file follows, for editors. */
  readonly $schema?: string;
  /**
   * The graph's name.
   * @default {"graph"}
   */
  readonly name?: string;
  /** The graph's sources, by name: `run()` takes one source per name. */
  readonly sources: readonly string[];
  /** The graph's nodes. */
  readonly processors: readonly GraphNodeConfig[];
  /** The edges: items flow from a source or node to a node. */
  readonly connections: readonly ConnectionConfig[];
  /** The outputs: output name → the node (or `{ from, branch }`) it reads. */
  readonly outputs: Readonly<Record<string, string | NodeRefConfig>>;
  /** Graph options. */
  readonly options?: {
    /**
     * Items that may wait in front of each node.
     * @default {1000}
     */
    readonly queueSize?: number;
    /**
     * `true` keeps failed items in `graph.deadLetters`; `false` only counts them.
     * @default {true}
     */
    readonly deadLetterQueue?: boolean;
  };
}
