/**
 * Declarative config: {@linkcode fromConfig} builds a pipeline from a plain
 * object (JSON, or YAML parsed by your parser) whose processors name types
 * in a registry of your code. The config's schema is zod
 * ({@linkcode configSchema}), and JSON Schema for editors
 * ({@linkcode configJsonSchema}, committed as `config.schema.json`). Every
 * mistake is a {@linkcode ConfigError} whose message starts with its path in
 * the config: `processors[2].parameters.case: expected one of "upper", "lower"; got "title"`.
 *
 * @module
 */

import { z } from "zod";
import type { StageContext } from "./attempt.ts";
import { batchStage } from "./batch_stage.ts";
import {
  backoffSchema,
  circuitBreakerSchema,
  editDistance,
  nonNegativeInteger,
  positiveInteger,
  positiveMs,
  rateLimitSchema,
  show,
  valueAt,
} from "./config.ts";
import { ConfigError } from "./errors.ts";
import { flatMapStage } from "./flat_map_stage.ts";
import { type AnyStage, Pipeline, type PipelineOptions } from "./pipeline.ts";
import { type Graph, graph, source } from "./graph.ts";
import type { GraphOptions } from "./graph_types.ts";
import type { GraphConfig, PipelineConfig } from "./graph_config_types.ts";
import { type Stage, stage } from "./stage.ts";

// The schema: data only (no functions), so that it has a JSON Schema.

const nodeName = z.string({ error: "must be a non-empty string" }).trim()
  .min(1, { error: "must be a non-empty string" });

const errorAction = z.union([
  z.enum(["retry", "deadLetter", "skip", "halt"]),
  z.strictObject({ halt: z.enum(["graceful", "force"]) }),
], { error: 'must be "retry", "deadLetter", "skip", "halt" or { halt: "graceful" | "force" }' });

const onError = z.array(
  z.tuple([
    z.string({ error: "must be an error name" }).min(1, { error: "must be an error name" }),
    errorAction,
  ], { error: "must be an [error name, action] pair" }),
  { error: "must be an array of [error name, action] pairs" },
).describe(
  'Error rules tried in order: [error name, action], e.g. ["SyntaxError", "skip"]. ' +
    'Actions: "retry", "deadLetter", "skip", "halt", { "halt": "force" }.',
);

const processorOptions = z.strictObject({
  concurrency: positiveInteger.optional().describe("Items (a batch processor: batches) worked on at once. Default 1."),
  maxRetries: nonNegativeInteger.optional().describe("Retries after the first attempt. Default 0."),
  backoff: backoffSchema.optional().describe("The delay between attempts."),
  timeoutMs: positiveMs.optional().describe("A limit per attempt, in milliseconds."),
  ordered: z.boolean({ error: "must be true or false" }).optional()
    .describe("true: outputs leave in input order; false: in completion order. Default true."),
  queueSize: positiveInteger.optional().describe("Items that may wait in front of this processor."),
  batchSize: positiveInteger.optional().describe("Batch processors only (required there): the most items in a batch."),
  flushIntervalMs: positiveMs.optional()
    .describe("Batch processors only: flush a partial batch this long after its first item."),
  rateLimit: rateLimitSchema.optional().describe("At most limit attempts per intervalMs."),
  circuitBreaker: circuitBreakerSchema.optional().describe("Stop calling a failing service for cooldownMs."),
  onError: onError.optional(),
}, { error: "must be an object of stage options" });

const processorConfig = z.strictObject({
  name: nodeName.describe("The processor's name, unique in the config (it keys metrics, events and dead letters)."),
  type: z.string({ error: "must be the name of a registered processor type" })
    .min(1, { error: "must be the name of a registered processor type" })
    .describe("The registered processor type."),
  parameters: z.record(z.string(), z.unknown(), { error: "must be an object" }).optional()
    .describe("The type's parameters, checked by its schema in the registry."),
  options: processorOptions.optional().describe("Stage options: concurrency, retries, timeouts, error rules."),
}, { error: "must be an object with name and type" });

const pipelineOptions = z.strictObject({
  queueSize: positiveInteger.optional().describe("Items that may wait in front of each processor. Default 1000."),
  deadLetterQueue: z.boolean({ error: "must be true or false" }).optional()
    .describe("true keeps failed items in pipeline.deadLetters; false only counts them. Default true."),
  maxSkips: nonNegativeInteger.optional().describe("Halt the run after more than this many skips."),
  maxDeadLetters: nonNegativeInteger.optional().describe("Halt the run after more than this many dead letters."),
  recentErrors: nonNegativeInteger.optional().describe("How many of the latest failures snapshot() lists."),
  onError: onError.optional(),
}, { error: "must be an object of pipeline options" });

/** The zod schema of a {@linkcode PipelineConfig}. @internal */
export const pipelineConfigSchema = z.strictObject({
  $schema: z.string().optional().describe("The JSON Schema this file follows, for editors."),
  name: nodeName.optional().describe('The pipeline\'s name. Default "pipeline".'),
  processors: z.array(processorConfig, { error: "must be an array of processors" })
    .min(1, { error: "must hold at least one processor" })
    .describe("The processors, in the order items flow through them."),
  options: pipelineOptions.optional().describe("Pipeline options."),
}, { error: "must be an object with processors" }).describe("A sluice pipeline config (see fromConfig).");

const graphNode = processorConfig.extend({
  kind: z.enum(["stage", "route", "broadcast", "merge", "join"], {
    error: 'must be "stage", "route", "broadcast", "merge" or "join"',
  }).optional().describe(
    'What the node is. "stage" (the default) and "route" run a registered type; ' +
      '"broadcast", "merge" and "join" need no type.',
  ),
  type: processorConfig.shape.type.optional()
    .describe("The registered processor type (stage and route nodes; a route's type gives each item its branch)."),
  branches: z.array(nodeName, { error: "must be an array of branch names" })
    .min(1, { error: "must name at least one branch" }).optional()
    .describe("Route nodes: the branch names its type's key function may return."),
  default: nodeName.optional().describe("Route nodes: the branch for keys not in branches."),
  timeoutMs: positiveMs.optional()
    .describe("Join nodes: dead-letter a partial join this long after its first branch arrived."),
});

const nodeRef = z.strictObject({
  from: nodeName.describe("A source's or a node's name."),
  branch: nodeName.optional().describe("When from is a route: which of its branches."),
}, { error: "must be an object with from" });

const connection = nodeRef.extend({
  to: nodeName.describe("The node that takes the items."),
  as: nodeName.optional().describe("When to is a join: the branch's name in the joined object. Default: from."),
});

/** The zod schema of a {@linkcode GraphConfig}. @internal */
export const graphConfigSchema = z.strictObject({
  $schema: z.string().optional().describe("The JSON Schema this file follows, for editors."),
  name: nodeName.optional().describe('The graph\'s name. Default "graph".'),
  sources: z.array(nodeName, { error: "must be an array of source names" })
    .min(1, { error: "must name at least one source" })
    .describe("The graph's sources, by name: run() takes one source per name."),
  processors: z.array(graphNode, { error: "must be an array of nodes" })
    .min(1, { error: "must hold at least one node" })
    .describe("The graph's nodes."),
  connections: z.array(connection, { error: "must be an array of connections" })
    .describe("The edges: items flow from a source or node to a node."),
  outputs: z.record(nodeName, z.union([nodeName, nodeRef], { error: "must be a node's name or { from, branch }" }), {
    error: "must be an object of output names to node names",
  }).describe("The graph's outputs: output name → the node (or route branch) it reads."),
  options: pipelineOptions.omit({ recentErrors: true })
    .describe("Graph options: the pipeline's, with the same meaning over every stage and route node.")
    .optional(),
}, { error: "must be an object with sources, processors, connections and outputs" })
  .describe("A sluice graph config (see fromConfig).");

/** The zod schema of any config: a pipeline's or (with `sources`) a graph's. @internal */
export const configSchema = z.union([pipelineConfigSchema, graphConfigSchema]);

/**
 * The config's JSON Schema (draft 2020-12), for editors: point a JSON or
 * YAML file's `$schema` (or your editor's schema setting) at
 * `config.schema.json` in the package, which is this function's output. Give
 * your registry to get a schema that also knows its types: `type` is one of
 * them, and each type's `parameters` follow its zod schema.
 *
 * @param registry Your processor types, to describe them too.
 * @returns A JSON Schema object.
 *
 * @example A schema that completes your processor types
 * ```ts
 * import { z } from "zod";
 * import { configJsonSchema, processor } from "./graph_config.ts";
 *
 * const schema = configJsonSchema({
 *   upper: processor({ create: () => (s: string) => s.toUpperCase() }),
 *   pad: processor({
 *     parameters: z.object({ width: z.int().min(1) }),
 *     create: ({ width }) => (s: string) => s.padStart(width),
 *   }),
 * });
 * console.assert(JSON.stringify(schema).includes('"const":"pad"'));
 * ```
 */
export function configJsonSchema(registry?: ProcessorRegistry): Record<string, unknown> {
  if (registry === undefined) return z.toJSONSchema(configSchema, { io: "input" });
  checkRegistry(registry);
  const typed = <T extends typeof processorConfig | typeof graphNode>(base: T, optional: boolean) => {
    const types = Object.entries(registry).map(([type, definition]) => {
      const literal = z.literal(type).describe(definition.description ?? `The registered processor type "${type}".`);
      return base.extend({
        type: optional ? literal.optional() : literal,
        parameters: (zodOf(definition.parameters) ?? z.record(z.string(), z.unknown())).optional(),
      });
    });
    return types.length === 1 ? types[0] : z.union(types);
  };
  const schema = z.union([
    pipelineConfigSchema.extend({ processors: z.array(typed(processorConfig, false)).min(1) }),
    graphConfigSchema.extend({ processors: z.array(typed(graphNode, true)).min(1) }),
  ]);
  return z.toJSONSchema(schema, { io: "input", unrepresentable: "any" });
}

/** `schema` as a zod schema, when it is one (it has zod's internals). */
function zodOf(schema: ParameterSchema<unknown> | undefined): z.ZodType | undefined {
  return (schema as { _zod?: unknown } | undefined)?._zod ? schema as unknown as z.ZodType : undefined;
}

// The registry.

/** A processor's function: a stage's `(item, ctx)`, a batch's `(items, ctx)` or a flatMap's. */
export type ProcessorFn = (input: never, ctx: StageContext) => unknown;

/**
 * A processor type in a {@linkcode ProcessorRegistry}: how to make the
 * function of a processor of this type from its parameters.
 * @typeParam P The parameters, as `parameters` parses them.
 */
export interface ProcessorDefinition<P = Record<string, unknown>> {
  /**
   * What the function is: a `stage` (one item in, one out), a `batch`
   * (`batchStage`: items in, outputs or nothing out; needs `batchSize`) or a
   * `flatMap` (`flatMapStage`: one item in, zero or more out); or, for a
   * graph's route nodes, a `route`: the function gives each item its branch's
   * name.
   * @default {"stage"}
   */
  readonly kind?: ProcessorKind;
  /** One line about the type, for the JSON Schema and error messages. */
  readonly description?: string;
  /**
   * The parameters' schema; a config's `parameters` are parsed with it and
   * each problem is reported at its path.
   * @default {undefined} the parameters are passed as they are (`{}` when absent)
   */
  readonly parameters?: ParameterSchema<P>;
  /** Makes the function of one processor from its parameters. */
  readonly create: (parameters: P) => ProcessorFn;
}

/**
 * What `parameters` must be: a zod schema (any zod 4 schema is one). Only
 * `safeParse` is used to check parameters; `configJsonSchema(registry)`
 * converts it with `z.toJSONSchema`.
 * @typeParam P The parameters, once parsed.
 */
export interface ParameterSchema<P> {
  /** Parses `value`: the parameters, or the issues found, each with its path. */
  safeParse(value: unknown):
    | { readonly success: true; readonly data: P }
    | { readonly success: false; readonly error: { readonly issues: readonly ParameterIssue[] } };
}

/** One problem a {@linkcode ParameterSchema} found, as zod reports it. */
export interface ParameterIssue {
  /** What kind of problem (zod's issue codes: `invalid_value`, `unrecognized_keys`, …). */
  readonly code: string;
  /** Where, inside the parameters. */
  readonly path: readonly PropertyKey[];
  /** What is wrong. */
  readonly message: string;
}

/** Processor types by name, for {@linkcode fromConfig}. */
export type ProcessorRegistry = Readonly<Record<string, AnyProcessorDefinition>>;

/** What a processor type's function is: see {@linkcode ProcessorDefinition.kind}. */
export type ProcessorKind = "stage" | "batch" | "flatMap" | "route";

/** A {@linkcode ProcessorDefinition} of any parameters. */
export interface AnyProcessorDefinition {
  /** See {@linkcode ProcessorDefinition.kind}. */
  readonly kind?: ProcessorKind;
  /** See {@linkcode ProcessorDefinition.description}. */
  readonly description?: string;
  /** See {@linkcode ProcessorDefinition.parameters}. */
  readonly parameters?: ParameterSchema<unknown>;
  /** See {@linkcode ProcessorDefinition.create}. */
  readonly create: (parameters: never) => ProcessorFn;
}

/**
 * Defines a processor type, typing `create`'s parameters from the
 * `parameters` schema. It returns the definition as it is.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { processor } from "./graph_config.ts";
 *
 * const pad = processor({
 *   description: "Pads a string on the left",
 *   parameters: z.object({ width: z.int().min(1), fill: z.string().default(" ") }),
 *   create: ({ width, fill }) => (s: string) => s.padStart(width, fill),
 * });
 * console.assert(pad.kind === undefined);
 * ```
 */
export function processor<P = Record<string, unknown>>(definition: ProcessorDefinition<P>): ProcessorDefinition<P> {
  return definition;
}

// Building.

/**
 * Options of {@linkcode fromConfig}: the pipeline options that are code, not
 * data (a logger, an event listener, a dead letter sink, hooks, …). They
 * apply on top of the config's `options`.
 */
export type FromConfigOptions = Omit<PipelineOptions<readonly AnyStage[]>, "stages" | "name">;

/**
 * Builds a pipeline from a config: each processor is its registered type's
 * function, made from its checked parameters, wrapped in `stage()`,
 * `batchStage()` or `flatMapStage()` with its options. The config is checked
 * whole first; the error lists every problem found, each at its path.
 *
 * @typeParam I What the pipeline takes (the config cannot tell; say it).
 * @typeParam O What it gives.
 * @param config The config: an object as {@linkcode configSchema} describes.
 * @param registry The processor types the config may name.
 * @param options Pipeline options that are code rather than data.
 * @returns A pipeline, ready to run.
 * @throws {ConfigError} for any mistake, its `field` the first problem's
 * path in the config (`processors[2].parameters.case`), its message listing
 * each problem after its path (`processors[2].parameters.case: …`).
 *
 * @example Build a pipeline from JSON
 * ```ts
 * import { z } from "zod";
 * import { fromConfig, processor } from "./graph_config.ts";
 *
 * const registry = {
 *   parse: processor({ create: () => (line: string) => JSON.parse(line) as unknown }),
 *   change: processor({
 *     parameters: z.object({ case: z.enum(["upper", "lower"]) }),
 *     create: (p) => (s: string) => p.case === "upper" ? s.toUpperCase() : s.toLowerCase(),
 *   }),
 * };
 * const config = JSON.parse(`{
 *   "name": "names",
 *   "processors": [
 *     { "name": "parse", "type": "parse", "options": { "onError": [["SyntaxError", "skip"]] } },
 *     { "name": "shout", "type": "change", "parameters": { "case": "upper" } }
 *   ]
 * }`);
 * const pipeline = fromConfig<string, string>(config, registry);
 * const { outputs, metrics } = await pipeline.collect(['"ada"', "{", '"bob"']);
 * console.assert(outputs.join() === "ADA,BOB" && metrics.totalSkipped === 1);
 * ```
 *
 * @example Every mistake names its path
 * ```ts
 * import { z } from "zod";
 * import { ConfigError } from "./errors.ts";
 * import { fromConfig, processor } from "./graph_config.ts";
 *
 * const registry = {
 *   change: processor({
 *     parameters: z.object({ case: z.enum(["upper", "lower"]) }),
 *     create: (p) => (s: string) => p.case === "upper" ? s.toUpperCase() : s.toLowerCase(),
 *   }),
 * };
 * try {
 *   fromConfig({ processors: [{ name: "c", type: "change", parameters: { case: "title" } }] }, registry);
 * } catch (error) {
 *   console.assert(error instanceof ConfigError);
 *   console.assert((error as Error).message.includes(
 *     'processors[0].parameters.case: expected one of "upper", "lower"; got "title"',
 *   ));
 * }
 * ```
 */
export function fromConfig<I = unknown, O = unknown>(
  config: PipelineConfig,
  registry: ProcessorRegistry,
  options?: FromConfigOptions,
): Pipeline<readonly [Stage<I, O>]>;
/**
 * Builds a graph from a config with `sources`: stage and route nodes of
 * registered types, broadcasts, merges and joins, joined by `connections`
 * and read by `outputs`. See the first overload, and {@linkcode graph}.
 * A config parsed from JSON or YAML is `any` to TypeScript, which picks the
 * pipeline overload: type a graph's config as {@linkcode GraphConfig}.
 *
 * @typeParam In Each source's item type, by source name (the config cannot tell; say it).
 * @typeParam Out Each output's item type, by output name.
 * @param config The config: an object as {@linkcode graphConfigSchema} describes.
 * @param registry The processor types the config may name.
 * @param options Graph options that are code rather than data.
 * @returns A graph, ready to run.
 * @throws {ConfigError} for any mistake, at its path in the config; the
 * graph's own checks (a cycle, an unreachable node, …) at the node's path.
 *
 * @example Route by a registered key function
 * ```ts
 * import { fromConfig, processor } from "./graph_config.ts";
 * import type { GraphConfig } from "./graph_config_types.ts";
 *
 * const registry = {
 *   parity: processor({ kind: "route", create: () => (n: number) => n % 2 === 0 ? "even" : "odd" }),
 *   triple: processor({ create: () => (n: number) => n * 3 }),
 * };
 * const config: GraphConfig = {
 *   sources: ["numbers"],
 *   processors: [
 *     { name: "split", kind: "route", type: "parity", branches: ["even", "odd"] },
 *     { name: "triple", type: "triple" },
 *   ],
 *   connections: [{ from: "numbers", to: "split" }, { from: "split", branch: "odd", to: "triple" }],
 *   outputs: { even: { from: "split", branch: "even" }, tripled: "triple" },
 * };
 * const g = fromConfig<{ numbers: number }, { even: number; tripled: number }>(config, registry);
 * const { outputs } = await g.collect([1, 2, 3]);
 * console.assert(outputs.even.join() === "2" && outputs.tripled.join() === "3,9");
 * ```
 */
export function fromConfig<In = Record<string, unknown>, Out = Record<string, unknown>>(
  config: GraphConfig,
  registry: ProcessorRegistry,
  options?: FromGraphConfigOptions,
): Graph<In, Out>;
export function fromConfig(
  config: PipelineConfig | GraphConfig,
  registry: ProcessorRegistry,
  options: FromConfigOptions | FromGraphConfigOptions = {},
): Pipeline<readonly AnyStage[]> | Graph<unknown, unknown> {
  checkRegistry(registry);
  const isGraph = typeof config === "object" && config !== null && !Array.isArray(config) && "sources" in config;
  return isGraph
    ? graphFromConfig(config as GraphConfig, registry, options as FromGraphConfigOptions)
    : pipelineFromConfig(config as PipelineConfig, registry, options as FromConfigOptions);
}

/** Options of {@linkcode fromConfig} for a graph: the graph options that are code, not data. */
export type FromGraphConfigOptions = Omit<GraphOptions<unknown>, "sources" | "name">;

function parsedOrThrow<T>(schema: z.ZodType<T>, config: unknown): T {
  const parsed = schema.safeParse(config);
  if (parsed.success) return parsed.data;
  throw configError(config, parsed.error.issues.map((issue) => problemOf(issue, schema, config)), parsed.error);
}

function pipelineFromConfig(
  config: PipelineConfig,
  registry: ProcessorRegistry,
  options: FromConfigOptions,
): Pipeline<readonly AnyStage[]> {
  const checked = parsedOrThrow(pipelineConfigSchema, config);
  const problems: Problem[] = [];
  const made = checked.processors.map((entry, index) => makeStage(entry, index, registry, problems));
  problems.push(...duplicateNames(checked.processors));
  if (problems.length > 0) throw configError(config, problems);
  const { onError: pipelineOnError, ...pipelineRest } = checked.options ?? {};
  try {
    return new Pipeline({
      ...pipelineRest,
      ...(pipelineOnError ? { onError: pipelineOnError } : {}),
      ...options,
      ...(checked.name === undefined ? {} : { name: checked.name }),
      stages: made as readonly AnyStage[],
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw configError(config, [{ path: ["options", ...error.field.split(".")], message: error.message }], error);
  }
}

type CheckedGraph = z.output<typeof graphConfigSchema>;
type CheckedNode = CheckedGraph["processors"][number];

/** Fields that belong to one kind of node only, and the kinds they belong to. */
const NODE_FIELDS: Readonly<Record<string, readonly string[]>> = {
  type: ["stage", "route"],
  parameters: ["stage", "route"],
  options: ["stage"],
  branches: ["route"],
  default: ["route"],
  timeoutMs: ["join"],
};

function graphFromConfig(
  config: GraphConfig,
  registry: ProcessorRegistry,
  options: FromGraphConfigOptions,
): Graph<unknown, unknown> {
  const checked = parsedOrThrow(graphConfigSchema, config);
  const problems: Problem[] = [];
  const nodes = new Map(checked.processors.map((node, index) => [node.name, { node, index }]));
  const built = new Map<string, AnyStage | ProcessorFn>();
  checked.processors.forEach((node, index) => {
    const made = makeNode(node, index, registry, problems);
    if (made) built.set(node.name, made);
  });
  problems.push(...duplicateNames(checked.processors, checked.sources));
  problems.push(...checkConnections(checked, nodes));
  if (problems.length > 0) throw configError(config, problems);
  const inputsOf = (name: string) => checked.connections.filter((edge) => edge.to === name);
  const ref = (edge: { from: string; branch?: string }) =>
    edge.branch === undefined ? edge.from : { node: edge.from, port: edge.branch };
  try {
    const { onError: graphOnError, ...graphRest } = checked.options ?? {};
    return graph({
      ...(checked.name === undefined ? {} : { name: checked.name }),
      ...graphRest,
      ...(graphOnError ? { onError: graphOnError } : {}),
      ...options,
      sources: Object.fromEntries(checked.sources.map((name) => [name, source<unknown>()])),
    }, (b) => {
      for (const node of checked.processors) {
        const inputs = inputsOf(node.name);
        const kind = node.kind ?? "stage";
        if (kind === "stage") {
          b.add(built.get(node.name) as AnyStage);
          for (const edge of inputs) b.connect(ref(edge), node.name);
        } else if (kind === "route") {
          b.route(node.name, ref(inputs[0]), {
            branches: node.branches ?? [],
            key: built.get(node.name) as (value: unknown) => string,
            ...(node.default === undefined ? {} : { default: node.default }),
          });
        } else if (kind === "broadcast") b.broadcast(node.name, ref(inputs[0]));
        else if (kind === "merge") b.merge(node.name, inputs.map(ref));
        else {
          const branches = Object.fromEntries(inputs.map((edge) => [edge.as ?? edge.from, ref(edge)]));
          b.join(node.name, branches, node.timeoutMs === undefined ? {} : { timeoutMs: node.timeoutMs });
        }
      }
      return Object.fromEntries(
        Object.entries(checked.outputs).map(([name, from]) => [name, typeof from === "string" ? from : ref(from)]),
      );
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const at = error.stage === undefined ? undefined : nodes.get(error.stage);
    const option = error.field.split(".");
    const path = at
      ? ["processors", at.index]
      : checked.options !== undefined && option[0] in checked.options
      ? ["options", ...option]
      : ["connections"];
    throw configError(config, [{ path, message: error.message }], error);
  }
}

/** A graph node's stage (stage nodes) or key function (route nodes); nothing for the others. */
function makeNode(
  node: CheckedNode,
  index: number,
  registry: ProcessorRegistry,
  problems: Problem[],
): AnyStage | ProcessorFn | undefined {
  const kind = node.kind ?? "stage";
  const at = ["processors", index];
  const before = problems.length;
  for (const [field, kinds] of Object.entries(NODE_FIELDS)) {
    if (node[field as keyof CheckedNode] !== undefined && !kinds.includes(kind)) {
      problems.push({
        path: [...at, field],
        message: `belongs to ${kinds.join(" and ")} nodes, not to a ${kind} node`,
      });
    }
  }
  if ((kind === "stage" || kind === "route") && node.type === undefined) {
    problems.push({ path: [...at, "type"], message: `a ${kind} node needs a registered type` });
  }
  if (kind === "route" && node.branches === undefined) {
    problems.push({ path: [...at, "branches"], message: "a route node needs the branch names its type may return" });
  }
  if (problems.length > before || (kind !== "stage" && kind !== "route")) return undefined;
  const type = node.type!;
  const definition = Object.hasOwn(registry, type) ? registry[type] : undefined;
  const isRoute = definition?.kind === "route";
  if (definition && isRoute !== (kind === "route")) {
    problems.push({
      path: [...at, "type"],
      message: kind === "route"
        ? `type ${JSON.stringify(type)} is a ${definition.kind ?? "stage"} type; a route node needs a route type`
        : `type ${JSON.stringify(type)} is a route type; use it in a node with kind: route`,
    });
    return undefined;
  }
  if (kind === "stage") return makeStage({ ...node, type }, index, registry, problems);
  if (!definition) {
    problems.push({ path: [...at, "type"], message: unknownType(type, registry) });
    return undefined;
  }
  const parameters = checkParameters(definition, node.parameters, [...at, "parameters"], problems);
  if (problems.length > before) return undefined;
  return createFn(definition, type, parameters, at, problems);
}

/** Each connection's ends name a source or node, a branch names a route's branch, `as` feeds a join. */
function checkConnections(
  checked: CheckedGraph,
  nodes: ReadonlyMap<string, { node: CheckedNode; index: number }>,
): Problem[] {
  const problems: Problem[] = [];
  const sources = new Set(checked.sources);
  const names = [...checked.sources, ...nodes.keys()];
  const end = (path: readonly PropertyKey[], from: { from: string; branch?: string }) => {
    const node = nodes.get(from.from)?.node;
    if (!node && !sources.has(from.from)) {
      problems.push({ path: [...path, "from"], message: notANode(from.from, names) });
    } else if (from.branch !== undefined) {
      const branches = node?.kind === "route" ? [...node.branches ?? [], ...(node.default ? [node.default] : [])] : [];
      if (!branches.includes(from.branch)) {
        problems.push({
          path: [...path, "branch"],
          message: node?.kind === "route"
            ? `${JSON.stringify(from.branch)} is not a branch of route ${JSON.stringify(from.from)}; its branches are ${
              branches.map((b) => JSON.stringify(b)).join(", ")
            }`
            : `${JSON.stringify(from.from)} is not a route, so it has no branches`,
        });
      }
    }
  };
  checked.connections.forEach((edge, index) => {
    const path = ["connections", index];
    end(path, edge);
    const to = nodes.get(edge.to)?.node;
    if (!to) {
      problems.push({
        path: [...path, "to"],
        message: sources.has(edge.to)
          ? `${JSON.stringify(edge.to)} is a source; nothing flows into a source`
          : notANode(edge.to, [...nodes.keys()]),
      });
    } else if (edge.as !== undefined && to.kind !== "join") {
      problems.push({
        path: [...path, "as"],
        message: `names a join's branch, and ${JSON.stringify(edge.to)} is no join`,
      });
    }
  });
  for (const [name, from] of Object.entries(checked.outputs)) {
    end(["outputs", name], typeof from === "string" ? { from } : from);
  }
  for (const [name, { node, index }] of nodes) {
    const message = inputProblem(node.kind ?? "stage", name, checked.connections.filter((edge) => edge.to === name));
    if (message) problems.push({ path: ["processors", index], message });
  }
  return problems;
}

/** What is wrong with the connections into a node, if anything: each kind takes so many. */
function inputProblem(
  kind: string,
  name: string,
  inputs: readonly { from: string; as?: string }[],
): string | undefined {
  const count = `${JSON.stringify(name)} has ${inputs.length}`;
  if (kind === "merge") {
    return inputs.length === 0 ? `a merge node takes one connection in or more; ${count}` : undefined;
  }
  if (kind === "join") {
    if (inputs.length < 2) return `a join node takes two connections in or more; ${count}`;
    const branches = inputs.map((edge) => edge.as ?? edge.from);
    const twice = branches.find((branch, i) => branches.indexOf(branch) !== i);
    return twice === undefined
      ? undefined
      : `two connections into join ${JSON.stringify(name)} are its branch ${JSON.stringify(twice)}; ` +
        `give one another name with "as"`;
  }
  if (inputs.length === 1) return undefined;
  const from = inputs.map((edge) => JSON.stringify(edge.from)).join(", ");
  return `a ${kind} node takes exactly one connection in; ${count}` +
    (inputs.length > 1 ? ` (from ${from}): add a merge node for them` : ": connect a source or node to it");
}

function notANode(name: string, names: readonly string[]): string {
  const near = names.find((other) => editDistance(other.toLowerCase(), name.toLowerCase()) <= 2);
  return `${JSON.stringify(name)} is not a source or node of the config; ${
    near ? `did you mean ${JSON.stringify(near)}? ` : ""
  }they are ${names.map((n) => JSON.stringify(n)).join(", ")}`;
}

/** One mistake: where in the config, and what. */
interface Problem {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

type CheckedProcessor = z.output<typeof processorConfig>;

/** The processor's stage, or `undefined` with its problems pushed. */
function makeStage(
  entry: CheckedProcessor,
  index: number,
  registry: ProcessorRegistry,
  problems: Problem[],
): AnyStage | undefined {
  const at = ["processors", index];
  const definition = Object.hasOwn(registry, entry.type) ? registry[entry.type] : undefined;
  if (!definition) {
    problems.push({ path: [...at, "type"], message: unknownType(entry.type, registry) });
    return undefined;
  }
  const kind = definition.kind ?? "stage";
  if (kind === "route") {
    problems.push({
      path: [...at, "type"],
      message: `type ${JSON.stringify(entry.type)} is a route type: graphs only`,
    });
    return undefined;
  }
  const options = entry.options ?? {};
  const before = problems.length;
  if (kind === "batch" && options.batchSize === undefined) {
    problems.push({ path: [...at, "options", "batchSize"], message: `is required by batch type "${entry.type}"` });
  }
  for (const field of ["batchSize", "flushIntervalMs"] as const) {
    if (kind !== "batch" && options[field] !== undefined) {
      problems.push({
        path: [...at, "options", field],
        message: `belongs to batch types only, and "${entry.type}" is a ${kind} type; got ${show(options[field])}`,
      });
    }
  }
  const parameters = checkParameters(definition, entry.parameters, [...at, "parameters"], problems);
  if (problems.length > before) return undefined;
  const fn = createFn(definition, entry.type, parameters, at, problems);
  if (!fn) return undefined;
  try {
    return wrap(kind, entry.name, fn, options);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push({ path: [...at, "options", ...error.field.split(".")], message: error.message });
    return undefined;
  }
}

/** The function `definition` makes from `parameters`, or `undefined` with the problem pushed. */
function createFn(
  definition: AnyProcessorDefinition,
  type: string,
  parameters: unknown,
  at: readonly PropertyKey[],
  problems: Problem[],
): ProcessorFn | undefined {
  let fn: ProcessorFn;
  try {
    fn = definition.create(parameters as never);
  } catch (error) {
    problems.push({ path: at, message: `type "${type}" could not be made: ${(error as Error)?.message}` });
    return undefined;
  }
  if (typeof fn === "function") return fn;
  problems.push({ path: at, message: `type "${type}"'s create() must return a function; got ${show(fn)}` });
  return undefined;
}

function wrap(
  kind: "stage" | "batch" | "flatMap",
  name: string,
  fn: ProcessorFn,
  options: CheckedProcessor["options"] & object,
): AnyStage {
  const { batchSize, flushIntervalMs, ...common } = options;
  if (kind === "batch") {
    return batchStage(name, fn as never, { ...common, batchSize: batchSize!, flushIntervalMs }) as AnyStage;
  }
  if (kind === "flatMap") return flatMapStage(name, fn as never, common) as AnyStage;
  return stage(name, fn as never, common) as AnyStage;
}

function checkParameters(
  definition: AnyProcessorDefinition,
  given: Record<string, unknown> | undefined,
  at: readonly PropertyKey[],
  problems: Problem[],
): unknown {
  if (!definition.parameters) return given ?? {};
  const result = definition.parameters.safeParse(given ?? {});
  if (result.success) return result.data;
  for (const issue of result.error.issues) {
    problems.push(problemOf(issue as z.core.$ZodIssue, definition.parameters as z.ZodType, given ?? {}, at));
  }
  return undefined;
}

function duplicateNames(processors: readonly { readonly name: string }[], sources: readonly string[] = []): Problem[] {
  const first = new Map<string, number>();
  const problems: Problem[] = [];
  const taken = new Set(sources);
  processors.forEach((entry, index) => {
    if (taken.has(entry.name)) {
      problems.push({
        path: ["processors", index, "name"],
        message: `${JSON.stringify(entry.name)} is a source's name too; names must be unique`,
      });
    }
  });
  processors.forEach((entry, index) => {
    const earlier = first.get(entry.name);
    if (earlier === undefined) first.set(entry.name, index);
    else {
      problems.push({
        path: ["processors", index, "name"],
        message: `${JSON.stringify(entry.name)} is processors[${earlier}]'s name too; names must be unique`,
      });
    }
  });
  return problems;
}

function unknownType(type: string, registry: ProcessorRegistry): string {
  const known = Object.keys(registry);
  const near = known.find((name) => editDistance(name.toLowerCase(), type.toLowerCase()) <= 2);
  return `unknown processor type ${JSON.stringify(type)}; ${near ? `did you mean ${JSON.stringify(near)}? ` : ""}${
    known.length > 0
      ? `the registry has ${known.map((name) => JSON.stringify(name)).join(", ")}`
      : "the registry is empty"
  }`;
}

/**
 * A zod issue of `schema` over `root` as a problem at `prefix` + its path,
 * in the library's words ("expected one of …", "unknown key …"), with the
 * value given.
 */
function problemOf(
  issue: z.core.$ZodIssue,
  schema: z.ZodType,
  root: unknown,
  prefix: readonly PropertyKey[] = [],
): Problem {
  const path = [...prefix, ...issue.path];
  const got = `got ${show(valueAt(root, issue.path))}`;
  if (issue.code === "unrecognized_keys") {
    const allowed = Object.keys(shapeAt(schema, issue.path));
    const keys = issue.keys.map((key) => JSON.stringify(key)).join(", ");
    const near = allowed.find((name) => editDistance(name.toLowerCase(), issue.keys[0].toLowerCase()) <= 2);
    const hint = near ? `did you mean ${JSON.stringify(near)}? ` : "";
    return {
      path,
      message: `unknown key${issue.keys.length > 1 ? "s" : ""} ${keys}; ${hint}${
        allowed.length > 0 ? `the keys are ${allowed.join(", ")}` : "no keys are allowed here"
      }`,
    };
  }
  if (issue.code === "invalid_value" && issue.values.length > 1) {
    return { path, message: `expected one of ${issue.values.map((v) => show(v)).join(", ")}; ${got}` };
  }
  return { path, message: `${lowerFirst(issue.message)}; ${got}` };
}

/** The keys the object schema at `path` in `schema` allows (none known when it is not a plain object schema). */
function shapeAt(schema: z.ZodType, path: readonly PropertyKey[]): Record<string, unknown> {
  let current: unknown = schema;
  for (const key of path) {
    const inner = unwrapSchema(current) as { shape?: Record<string, unknown>; element?: unknown };
    current = typeof key === "number" ? inner.element : inner.shape?.[key as string];
  }
  return (unwrapSchema(current) as { shape?: Record<string, unknown> }).shape ?? {};
}

function unwrapSchema(schema: unknown): unknown {
  let current = schema as { _zod?: { def: { type: string; innerType?: unknown } } } | undefined;
  while (current?._zod?.def.type === "optional" || current?._zod?.def.type === "default") {
    current = current._zod.def.innerType as typeof current;
  }
  return current ?? {};
}

function lowerFirst(text: string): string {
  return /^[A-Z][a-z]/.test(text) ? text[0].toLowerCase() + text.slice(1) : text;
}

/** `processors[2].parameters.case`, as it reads in a config. @internal */
export function pathText(path: readonly PropertyKey[]): string {
  return path.map((key, index) =>
    typeof key === "number"
      ? `[${key}]`
      : /^[A-Za-z_$][\w$]*$/.test(String(key))
      ? `${index === 0 ? "" : "."}${String(key)}`
      : `[${JSON.stringify(String(key))}]`
  ).join("");
}

function configError(config: unknown, problems: readonly Problem[], cause?: unknown): ConfigError {
  const name = (config as { name?: unknown } | null)?.name;
  const owner = typeof name === "string" ? `Config ${JSON.stringify(name)}` : "Config";
  const lines = problems.map((problem) => `${pathText(problem.path) || "the config"}: ${problem.message}`);
  const message = lines.length === 1
    ? problems[0].path.length === 0 ? `${owner} ${problems[0].message}` : `${owner}: ${lines[0]}`
    : `${owner} has ${lines.length} problems:\n  ${lines.join("\n  ")}`;
  return new ConfigError(message, { field: pathText(problems[0].path) || "config" }, cause ? { cause } : undefined);
}

function checkRegistry(registry: unknown): asserts registry is ProcessorRegistry {
  if (typeof registry !== "object" || registry === null || Array.isArray(registry)) {
    throw new ConfigError(
      `fromConfig: the registry must be an object of processor types by name; got ${show(registry)}`,
      { field: "registry" },
    );
  }
  for (const [type, definition] of Object.entries(registry)) {
    const d = definition as Partial<AnyProcessorDefinition> | null;
    const problem = typeof d !== "object" || d === null
      ? `must be a processor definition ({ create, parameters?, kind? }); got ${show(d)}`
      : typeof d.create !== "function"
      ? `.create must be a function making the processor's function; got ${show(d.create)}`
      : d.kind !== undefined && !["stage", "batch", "flatMap", "route"].includes(d.kind)
      ? `.kind must be "stage", "batch", "flatMap" or "route"; got ${show(d.kind)}`
      : d.parameters !== undefined && typeof (d.parameters as { safeParse?: unknown }).safeParse !== "function"
      ? `.parameters must be a zod schema; got ${show(d.parameters)}`
      : undefined;
    if (problem) {
      throw new ConfigError(
        `fromConfig: registry[${JSON.stringify(type)}]${problem.startsWith(".") ? "" : " "}${problem}`,
        {
          field: `registry.${type}`,
        },
      );
    }
  }
}
