/**
 * The builder a graph's build function gets: it records nodes, edges and
 * taps as plain declarations, which `graph_validate.ts` checks and
 * `graph_run.ts` runs.
 *
 * @module
 */

import { ConfigError } from "./errors.ts";
import { z } from "zod";
import { show, validate } from "./config.ts";
import { specOf, type StageSpec } from "./stage.ts";
import type {
  EdgeRef,
  GraphBuilder,
  Handle,
  Joined,
  JoinOptions,
  NodeRef,
  RouteHandles,
  RouteKeyOptions,
  RouteWhenOptions,
  TapFn,
  TapOptions,
} from "./graph_types.ts";
import type { Stage } from "./stage.ts";

/** A node as declared. @internal */
export type NodeDecl =
  | { readonly kind: "source"; readonly name: string }
  | { readonly kind: "stage"; readonly name: string; readonly spec: StageSpec }
  | {
    readonly kind: "route";
    readonly name: string;
    /** The branch for a value, or undefined when none takes it. */
    readonly choose: (value: unknown) => string | undefined;
    readonly branches: readonly string[];
    /** For a route by key: the key, for the error when it names no branch. */
    readonly keyOf?: (value: unknown) => string;
  }
  | { readonly kind: "broadcast"; readonly name: string }
  | { readonly kind: "merge"; readonly name: string }
  | { readonly kind: "join"; readonly name: string; readonly branches: readonly string[]; readonly timeoutMs?: number }
  /** `output`: the output's name; the node's is the same, or `<output>:out` when a node has that name. */
  | { readonly kind: "output"; readonly name: string; readonly output: string };

/** An edge as declared: from a node (a route's branch: `port`) to a node; a join's edges carry their branch. @internal */
export interface EdgeDecl {
  readonly from: string;
  readonly port?: string;
  readonly to: string;
  /** The join branch this edge feeds. */
  readonly branch?: string;
}

/** A tap as declared. @internal */
export interface TapDecl {
  readonly name: string;
  readonly target: { readonly node: string; readonly port?: string } | EdgeRef;
  readonly fn: TapFn<unknown>;
  readonly bufferSize: number;
  readonly whenFull: "drop" | "sample";
}

/** Everything a build function declared. @internal */
export interface GraphDecl {
  readonly nodes: NodeDecl[];
  readonly edges: EdgeDecl[];
  readonly taps: TapDecl[];
}

/** The default tap `bufferSize`. */
const DEFAULT_TAP_BUFFER = 1000;

const joinOptionsSchema = z.strictObject({
  timeoutMs: z.number({ error: "must be a finite number of milliseconds above 0" })
    .positive({ error: "must be a finite number of milliseconds above 0" }).optional(),
}, { error: "must be an object" });

const tapOptionsSchema = z.strictObject({
  name: z.string({ error: "must be a non-empty string" }).min(1, { error: "must be a non-empty string" }).optional(),
  bufferSize: z.int({ error: "must be a positive integer" }).min(1, { error: "must be a positive integer" })
    .optional(),
  whenFull: z.enum(["drop", "sample"], { error: 'must be "drop" or "sample"' }).optional(),
}, { error: "must be an object" });

/** Records a graph's declarations. @internal */
export class GraphRecorder implements GraphBuilder {
  readonly decl: GraphDecl = { nodes: [], edges: [], taps: [] };

  constructor(readonly graph: string) {}

  source<T>(name: string): Handle<T> {
    return this.#node({ kind: "source", name });
  }

  add<I, O>(stage: Stage<I, O>, input?: NodeRef<NoInfer<I>>): Handle<O> {
    const spec = specOf(stage);
    if (!spec) {
      throw new ConfigError(
        `Graph "${this.graph}": add() takes a stage made by stage(), batchStage() or flatMapStage(); got ${
          show(stage)
        }`,
        { field: "add" },
      );
    }
    const handle = this.#node<O>({ kind: "stage", name: spec.name, spec });
    if (input !== undefined) this.connect(input, spec.name);
    return handle;
  }

  connect(from: NodeRef<unknown>, to: string): void {
    const ref = this.#ref(from, `connect(…, "${to}")`);
    this.#checkName(to, "connect()'s target");
    this.decl.edges.push({ from: ref.node, port: ref.port, to });
  }

  route<T, const K extends string, const D extends string = never>(
    name: string,
    input: NodeRef<T>,
    options: RouteWhenOptions<NoInfer<T>, K, D> | RouteKeyOptions<NoInfer<T>, K, D>,
  ): RouteHandles<T, K | D> {
    const { choose, branches, keyOf } = routeChoice(this.graph, name, options as RouteWhenOptions<unknown, K, D>);
    this.#node({ kind: "route", name, choose, branches, keyOf });
    this.connect(input, name);
    return Object.fromEntries(branches.map((port) => [port, { node: name, port }])) as RouteHandles<T, K | D>;
  }

  broadcast<T>(name: string, input: NodeRef<T>): Handle<T> {
    const handle = this.#node<T>({ kind: "broadcast", name });
    this.connect(input, name);
    return handle;
  }

  merge<T>(name: string, inputs: readonly NodeRef<T>[]): Handle<T> {
    if (!Array.isArray(inputs) || inputs.length === 0) {
      throw new ConfigError(
        `Graph "${this.graph}": merge("${name}") takes an array of the nodes it merges; got ${show(inputs)}`,
        { stage: name, field: "inputs" },
      );
    }
    const handle = this.#node<T>({ kind: "merge", name });
    for (const input of inputs) this.connect(input, name);
    return handle;
  }

  join<const B extends Readonly<Record<string, NodeRef<unknown>>>>(
    name: string,
    branches: B,
    options: JoinOptions = {},
  ): Handle<Joined<B>> {
    const keys = typeof branches === "object" && branches !== null ? Object.keys(branches) : [];
    if (keys.length < 2) {
      throw new ConfigError(
        `Graph "${this.graph}": join("${name}") takes at least two branches, as { name: handle }; got ${
          show(branches)
        }`,
        { stage: name, field: "branches" },
      );
    }
    if (keys.length > 30) {
      throw new ConfigError(
        `Graph "${this.graph}": join("${name}") has ${keys.length} branches; a join takes at most 30`,
        { stage: name, field: "branches" },
      );
    }
    const { timeoutMs } = validate(joinOptionsSchema, options, {
      owner: `Graph "${this.graph}": join("${name}")`,
      stage: name,
      root: "options",
    });
    const handle = this.#node<Joined<B>>({ kind: "join", name, branches: keys, timeoutMs });
    for (const branch of keys) {
      const ref = this.#ref(branches[branch], `join("${name}") branch "${branch}"`);
      this.decl.edges.push({ from: ref.node, port: ref.port, to: name, branch });
    }
    return handle;
  }

  tap<T>(target: NodeRef<T> | EdgeRef, fn: TapFn<T>, options: TapOptions = {}): void {
    if (typeof fn !== "function") {
      throw new ConfigError(`Graph "${this.graph}": tap() takes a function (value, info) => void; got ${show(fn)}`, {
        field: "tap",
      });
    }
    const resolved = validate(tapOptionsSchema, options, { owner: `Graph "${this.graph}": tap()`, root: "options" });
    const bufferSize = resolved.bufferSize ?? DEFAULT_TAP_BUFFER;
    const whenFull = resolved.whenFull ?? "drop";
    const edge = typeof target === "object" && target !== null && "from" in target && "to" in target;
    const where = edge ? target as EdgeRef : this.#ref(target as NodeRef<T>, "tap()");
    const label = edge ? `${(where as EdgeRef).from}->${(where as EdgeRef).to}` : (where as Handle<T>).node;
    const name = resolved.name ?? `${label}:tap${this.decl.taps.length}`;
    this.decl.taps.push({ name, target: where, fn: fn as TapFn<unknown>, bufferSize, whenFull });
  }

  /** Declares an output node (named `name`) for output `output`, reading `from`. */
  output(name: string, output: string, from: NodeRef<unknown>): void {
    this.#node({ kind: "output", name, output });
    this.connect(from, name);
  }

  #node<T>(decl: NodeDecl): Handle<T> {
    this.#checkName(decl.name, `a ${decl.kind} node's name`);
    this.decl.nodes.push(decl);
    return { node: decl.name };
  }

  #ref(ref: NodeRef<unknown>, where: string): { node: string; port?: string } {
    if (typeof ref === "string") return { node: ref };
    if (typeof ref === "object" && ref !== null && typeof ref.node === "string") {
      return ref.port === undefined ? { node: ref.node } : { node: ref.node, port: ref.port };
    }
    throw new ConfigError(
      `Graph "${this.graph}": ${where} takes a node's handle or name; got ${show(ref)}`,
      { field: where },
    );
  }

  #checkName(name: unknown, what: string): asserts name is string {
    if (typeof name !== "string" || name.length === 0) {
      throw new ConfigError(`Graph "${this.graph}": ${what} must be a non-empty string; got ${show(name)}`, {
        field: "name",
      });
    }
  }
}

/** A route's choice function and branch names, from either form of its options. */
function routeChoice(
  graph: string,
  name: string,
  options: RouteWhenOptions<unknown, string, string> | RouteKeyOptions<unknown, string, string>,
): { choose: (value: unknown) => string | undefined; branches: string[]; keyOf?: (value: unknown) => string } {
  const fallback = options?.default;
  if (fallback !== undefined && typeof fallback !== "string") {
    throw new ConfigError(
      `Graph "${graph}": route("${name}") option "default" must be a branch name; got ${show(fallback)}`,
      { stage: name, field: "default" },
    );
  }
  if (options && "when" in options && typeof options.when === "object" && options.when !== null) {
    const tests = Object.entries(options.when);
    for (const [branch, test] of tests) {
      if (typeof test !== "function") {
        throw new ConfigError(
          `Graph "${graph}": route("${name}") option "when.${branch}" must be a predicate (value) => boolean; got ${
            show(test)
          }`,
          { stage: name, field: `when.${branch}` },
        );
      }
    }
    const branches = uniqueBranches(graph, name, [...tests.map(([branch]) => branch), ...(fallback ? [fallback] : [])]);
    return {
      branches,
      choose: (value) => {
        for (const [branch, test] of tests) if (test(value)) return branch;
        return fallback;
      },
    };
  }
  if (options && "key" in options && typeof options.key === "function" && Array.isArray(options.branches)) {
    const key = options.key;
    const known = new Set<string>(options.branches);
    const branches = uniqueBranches(graph, name, [...options.branches, ...(fallback ? [fallback] : [])]);
    return {
      branches,
      keyOf: key,
      choose: (value) => {
        const chosen = key(value);
        return known.has(chosen) ? chosen : fallback;
      },
    };
  }
  throw new ConfigError(
    `Graph "${graph}": route("${name}") takes { when: { branch: predicate }, default? } or ` +
      `{ key: (value) => branch, branches: [...], default? }; got ${show(options)}`,
    { stage: name, field: "options" },
  );
}

function uniqueBranches(graph: string, name: string, branches: readonly string[]): string[] {
  if (branches.length === 0) {
    throw new ConfigError(`Graph "${graph}": route("${name}") has no branches; give it at least one`, {
      stage: name,
      field: "branches",
    });
  }
  const seen = new Set<string>();
  for (const branch of branches) {
    if (typeof branch !== "string" || branch.length === 0) {
      throw new ConfigError(
        `Graph "${graph}": route("${name}") branch names must be non-empty strings; got ${show(branch)}`,
        { stage: name, field: "branches" },
      );
    }
    if (seen.has(branch)) {
      throw new ConfigError(
        `Graph "${graph}": route("${name}") has two branches named "${branch}" (is the default also a branch?)`,
        { stage: name, field: "branches" },
      );
    }
    seen.add(branch);
  }
  return branches as string[];
}
