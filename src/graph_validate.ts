/**
 * A graph's checks, once, at construction: duplicate names, edges to or
 * from nodes that do not exist, cycles (printed), inputs and outputs left
 * unconnected, nodes no source reaches, and joins whose branches do not all
 * reach them. Each is a `ConfigError` that names the nodes. What passes is
 * a {@linkcode GraphPlan}: the declarations in an order that runs.
 *
 * @module
 */

import { z } from "zod";
import { pipelineOptionsSchema, show, validate } from "./config.ts";
import type { DeadLetter } from "./dead_letter.ts";
import { ConfigError } from "./errors.ts";
import type { EventListener, ItemId } from "./events.ts";
import type { EdgeDecl, GraphDecl, NodeDecl, TapDecl } from "./graph_builder.ts";
import type { PipelineStrategies } from "./flow_control.ts";
import type { PipelineHooks } from "./hooks.ts";
import { type Logger, silentLogger } from "./logger.ts";
import type { StatusRecorder } from "./status_tracker.ts";

/** The options of `graph()`. @internal */
export const graphOptionsSchema = pipelineOptionsSchema
  .pick({
    name: true,
    queueSize: true,
    deadLetterQueue: true,
    logger: true,
    onEvent: true,
    id: true,
    statusTracker: true,
    onError: true,
    maxSkips: true,
    maxDeadLetters: true,
    hooks: true,
    breakpoint: true,
  })
  .extend({
    sources: z.record(z.string(), z.unknown(), { error: "must be an object of source<T>() declarations by name" })
      .refine((sources) => Object.keys(sources).length > 0, { error: "must declare at least one source" }),
  });

/** A checked graph, ready to run. @internal */
export interface GraphPlan {
  readonly name: string;
  readonly queueSize: number;
  readonly deadLetterQueue: boolean | WritableStream<DeadLetter> | (() => WritableStream<DeadLetter>);
  readonly logger: Logger;
  readonly onEvent: EventListener | undefined;
  readonly id: ((input: unknown, source: string) => ItemId) | undefined;
  /** The graph-wide error strategies and hooks, as given. */
  readonly strategies: PipelineStrategies;
  readonly hooks: PipelineHooks;
  readonly statusTracker: StatusRecorder | undefined;
  /** In declaration order. */
  readonly nodes: readonly NodeDecl[];
  readonly byName: ReadonlyMap<string, NodeDecl>;
  /** In declaration order. */
  readonly edges: readonly EdgeDecl[];
  readonly taps: readonly TapDecl[];
  readonly sources: readonly string[];
  /** The outputs' names (an output's node is named the same, or `<name>:out` when a node has that name). */
  readonly outputs: readonly string[];
  /** Node names, each after every node that feeds it. */
  readonly order: readonly string[];
}

/** Plans made by {@linkcode checkGraph}: the only ones a `Graph` takes. */
const plans = new WeakSet<object>();

/** Whether `value` is a plan made by {@linkcode checkGraph}. @internal */
export function isGraphPlan(value: unknown): value is GraphPlan {
  return typeof value === "object" && value !== null && plans.has(value);
}

/**
 * Checks a graph's declarations and makes its plan.
 * @throws {ConfigError} naming the nodes at fault.
 * @internal
 */
export function checkGraph(name: string, decl: GraphDecl, options: object): GraphPlan {
  const resolved = validate(graphOptionsSchema, options, { owner: `Graph "${name}"`, root: "graph options" });
  const byName = uniqueNodes(name, decl.nodes);
  checkEdgeEnds(name, byName, decl.edges);
  checkFed(name, decl.nodes, decl.edges);
  checkReachable(name, decl.nodes, decl.edges);
  const order = topologicalOrder(name, decl.nodes, decl.edges);
  checkInputs(name, decl.nodes, decl.edges);
  checkOutputs(name, decl.nodes, decl.edges);
  checkJoins(name, byName, decl.edges);
  checkTaps(name, byName, decl.edges, decl.taps);
  const plan: GraphPlan = {
    name,
    queueSize: resolved.queueSize ?? 1000,
    deadLetterQueue: (resolved.deadLetterQueue as GraphPlan["deadLetterQueue"] | undefined) ?? true,
    logger: (resolved.logger as Logger | undefined) ?? silentLogger,
    onEvent: resolved.onEvent as EventListener | undefined,
    id: resolved.id as GraphPlan["id"],
    strategies: resolved as PipelineStrategies,
    hooks: (resolved.hooks as PipelineHooks | undefined) ?? {},
    statusTracker: resolved.statusTracker as StatusRecorder | undefined,
    nodes: decl.nodes,
    byName,
    edges: decl.edges,
    taps: decl.taps,
    sources: decl.nodes.filter((node) => node.kind === "source").map((node) => node.name),
    outputs: decl.nodes.flatMap((node) => node.kind === "output" ? [node.output] : []),
    order,
  };
  plans.add(plan);
  return plan;
}

/** Pipeline options that mean nothing for a graph, and what to do instead. */
const PIPELINE_ONLY: Readonly<Record<string, string>> = {
  stages: "a graph's stages are the nodes its build function adds: b.add(stage(…), input)",
  taskConcurrency: "graphs do not share task limits across stages; give each stage its own taskConcurrency option",
  recentErrors: "it sizes pipeline.snapshot()'s list, and graphs have no snapshot(); read graph.deadLetters",
};

/** Rejects a `Pipeline` option that cannot apply to a graph, saying why and what to do. @internal */
export function checkPipelineOnly(owner: string, options: unknown): void {
  if (typeof options !== "object" || options === null) return; // the schema says what is wrong
  for (const [option, instead] of Object.entries(PIPELINE_ONLY)) {
    if (option in options) {
      const given = show((options as Record<string, unknown>)[option]);
      throw new ConfigError(
        `${owner}: option "${option}" (got ${given}) is a Pipeline option that a graph does not take: ${instead}`,
        { field: option },
      );
    }
  }
}

function fail(graph: string, message: string, node: string | undefined, field: string): never {
  throw new ConfigError(`Graph "${graph}": ${message}`, { stage: node, field });
}

function list(names: readonly string[]): string {
  return names.map((name) => `"${name}"`).join(", ");
}

function uniqueNodes(graph: string, nodes: readonly NodeDecl[]): Map<string, NodeDecl> {
  const byName = new Map<string, NodeDecl>();
  for (const node of nodes) {
    const other = byName.get(node.name);
    if (other) {
      fail(
        graph,
        `two nodes are named "${node.name}" (a ${other.kind} and a ${node.kind}); node names must be unique ` +
          `(sources, stages, routes, broadcasts, merges and joins share one namespace: rename one)`,
        node.name,
        "name",
      );
    }
    byName.set(node.name, node);
  }
  return byName;
}

function checkEdgeEnds(graph: string, byName: ReadonlyMap<string, NodeDecl>, edges: readonly EdgeDecl[]): void {
  const known = [...byName.keys()];
  for (const edge of edges) {
    if (!byName.has(edge.from) && edge.branch !== undefined) {
      fail(
        graph,
        `branch "${edge.branch}" of join "${edge.to}" names a node "${edge.from}" that does not exist; the nodes are ${
          list(known)
        }`,
        edge.to,
        "branches",
      );
    }
    for (const end of [edge.from, edge.to]) {
      if (!byName.has(end)) {
        fail(
          graph,
          `the edge "${edge.from}" → "${edge.to}" names a node "${end}" that does not exist; the nodes are ${
            list(known)
          }`,
          end,
          "edges",
        );
      }
    }
    const from = byName.get(edge.from)!;
    const to = byName.get(edge.to)!;
    if (from.kind === "output") {
      fail(graph, `output "${from.name}" is the end of the graph; it cannot feed "${to.name}"`, from.name, "edges");
    }
    if (to.kind === "source") {
      fail(graph, `source "${to.name}" cannot be fed (by "${from.name}"): sources only give items`, to.name, "edges");
    }
    if (to.kind === "join" && edge.branch === undefined) {
      fail(
        graph,
        `"${from.name}" is connected to join "${to.name}" outside its branches (${
          list(to.branches)
        }); declare it as a branch in join("${to.name}", { branch: node })`,
        to.name,
        "edges",
      );
    }
    if (from.kind === "route") {
      if (edge.port === undefined) {
        fail(
          graph,
          `route "${from.name}" has branches (${list(from.branches)}); connect one of them to "${to.name}", ` +
            `as { node: "${from.name}", port: "${from.branches[0]}" }`,
          from.name,
          "edges",
        );
      }
      if (!from.branches.includes(edge.port)) {
        fail(
          graph,
          `route "${from.name}" has no branch "${edge.port}" (wired to "${to.name}"); its branches are ${
            list(from.branches)
          }`,
          from.name,
          "edges",
        );
      }
    } else if (edge.port !== undefined) {
      fail(
        graph,
        `"${from.name}" is a ${from.kind}, not a route: it has no branch "${edge.port}" (wired to "${to.name}")`,
        from.name,
        "edges",
      );
    }
  }
}

/** Kahn's order; on a cycle, the cycle found by a walk from a node left over, printed. */
function topologicalOrder(graph: string, nodes: readonly NodeDecl[], edges: readonly EdgeDecl[]): string[] {
  const incoming = new Map(nodes.map((node) => [node.name, 0]));
  const next = new Map<string, string[]>(nodes.map((node) => [node.name, []]));
  for (const edge of edges) {
    incoming.set(edge.to, incoming.get(edge.to)! + 1);
    next.get(edge.from)!.push(edge.to);
  }
  const ready = nodes.filter((node) => incoming.get(node.name) === 0).map((node) => node.name);
  const order: string[] = [];
  while (ready.length > 0) {
    const name = ready.shift()!;
    order.push(name);
    for (const to of next.get(name)!) {
      const left = incoming.get(to)! - 1;
      incoming.set(to, left);
      if (left === 0) ready.push(to);
    }
  }
  if (order.length === nodes.length) return order;
  const cycle = findCycle(nodes.filter((node) => incoming.get(node.name)! > 0).map((node) => node.name), edges);
  return fail(
    graph,
    `it has a cycle: ${cycle.join(" → ")}; a graph must be acyclic (to retry items, use a stage's maxRetries)`,
    cycle[0],
    "edges",
  );
}

/**
 * A cycle among `left`, the nodes Kahn's order could not place: each has an
 * edge in from another of them, so walking edges backwards within them
 * never gets stuck and must come back to a node already seen.
 */
function findCycle(left: readonly string[], edges: readonly EdgeDecl[]): string[] {
  const inLeft = new Set(left);
  const seenAt = new Map<string, number>();
  const path: string[] = [];
  let node = left[0];
  while (!seenAt.has(node)) {
    seenAt.set(node, path.length);
    path.push(node);
    node = edges.find((edge) => edge.to === node && inLeft.has(edge.from))!.from;
  }
  const cycle = path.slice(seenAt.get(node)!).reverse();
  return [...cycle, cycle[0]];
}

function checkFed(graph: string, nodes: readonly NodeDecl[], edges: readonly EdgeDecl[]): void {
  for (const node of nodes) {
    if (node.kind === "source" || edges.some((edge) => edge.to === node.name)) continue;
    fail(
      graph,
      `${node.kind} "${node.name}" has no input: nothing is connected to it; give it one (add(stage, input), or connect(from, "${node.name}"))`,
      node.name,
      "inputs",
    );
  }
}

function checkInputs(graph: string, nodes: readonly NodeDecl[], edges: readonly EdgeDecl[]): void {
  for (const node of nodes) {
    const inputs = edges.filter((edge) => edge.to === node.name);
    if (inputs.length > 1 && node.kind !== "merge" && node.kind !== "join") {
      fail(
        graph,
        `${node.kind} "${node.name}" has ${inputs.length} inputs (${
          list(inputs.map((edge) => edge.from))
        }); a node takes one input: merge them first with merge(name, [...])`,
        node.name,
        "inputs",
      );
    }
  }
}

function checkOutputs(graph: string, nodes: readonly NodeDecl[], edges: readonly EdgeDecl[]): void {
  for (const node of nodes) {
    if (node.kind === "output") continue;
    const out = edges.filter((edge) => edge.from === node.name);
    if (node.kind === "route") {
      for (const branch of node.branches) {
        const taken = out.filter((edge) => edge.port === branch);
        if (taken.length === 0) {
          fail(
            graph,
            `branch "${branch}" of route "${node.name}" goes nowhere: connect it to a node, or return it as an output`,
            node.name,
            "outputs",
          );
        }
        if (taken.length > 1) {
          fail(
            graph,
            `branch "${branch}" of route "${node.name}" feeds ${
              list(taken.map((edge) => edge.to))
            }; a branch feeds one node: broadcast it first to feed several`,
            node.name,
            "outputs",
          );
        }
      }
      continue;
    }
    if (out.length === 0) {
      fail(
        graph,
        `the output of ${node.kind} "${node.name}" goes nowhere: connect it to a node, or return it as an output`,
        node.name,
        "outputs",
      );
    }
    if (out.length > 1 && node.kind !== "broadcast") {
      fail(
        graph,
        `${node.kind} "${node.name}" feeds ${out.length} nodes (${
          list(out.map((edge) => edge.to))
        }); a node feeds one: broadcast(name, handle) sends every item to several, route() to one of several`,
        node.name,
        "outputs",
      );
    }
  }
}

function checkReachable(graph: string, nodes: readonly NodeDecl[], edges: readonly EdgeDecl[]): void {
  const reached = new Set(nodes.filter((node) => node.kind === "source").map((node) => node.name));
  const stack = [...reached];
  while (stack.length > 0) {
    const name = stack.pop()!;
    for (const edge of edges) {
      if (edge.from === name && !reached.has(edge.to)) {
        reached.add(edge.to);
        stack.push(edge.to);
      }
    }
  }
  const unreachable = nodes.filter((node) => !reached.has(node.name)).map((node) => node.name);
  if (unreachable.length > 0) {
    fail(
      graph,
      `no source reaches ${list(unreachable)}: they are fed only by each other; connect them to a source`,
      unreachable[0],
      "edges",
    );
  }
}

/** Where a join branch's items come from: the broadcast or source that forked them, or the route on the way. */
type Origin = { readonly fork: string } | { readonly route: string; readonly port: string } | undefined;

function originOf(
  from: string,
  port: string | undefined,
  byName: ReadonlyMap<string, NodeDecl>,
  edges: readonly EdgeDecl[],
): Origin {
  let node = byName.get(from)!;
  let branch = port;
  for (;;) {
    if (node.kind === "broadcast" || node.kind === "source") return { fork: node.name };
    if (node.kind === "route") return { route: node.name, port: branch! };
    if (node.kind !== "stage") return undefined; // a merge or another join: items come from several places
    const input = edges.find((edge) => edge.to === node.name)!;
    node = byName.get(input.from)!;
    branch = input.port;
  }
}

/**
 * A join's branches must each get every item of the broadcast they fork
 * from: a route on the way sends some elsewhere, and those joins could only
 * time out.
 */
function checkJoins(graph: string, byName: ReadonlyMap<string, NodeDecl>, edges: readonly EdgeDecl[]): void {
  for (const join of byName.values()) {
    if (join.kind !== "join") continue;
    for (const edge of edges) {
      if (edge.to !== join.name) continue;
      const origin = originOf(edge.from, edge.port, byName, edges);
      if (origin && "route" in origin) {
        fail(
          graph,
          `branch "${edge.branch}" of join "${join.name}" does not reach it with every item: route "${origin.route}" ` +
            `sends only its "${origin.port}" items this way, and the others could never be joined; ` +
            `route before the broadcast or after the join`,
          join.name,
          "branches",
        );
      }
    }
  }
}

function checkTaps(
  graph: string,
  byName: ReadonlyMap<string, NodeDecl>,
  edges: readonly EdgeDecl[],
  taps: readonly TapDecl[],
): void {
  const tapNames = new Set<string>();
  for (const tap of taps) {
    if (byName.has(tap.name) || tapNames.has(tap.name)) {
      fail(graph, `tap "${tap.name}" has the name of another node or tap; give it its own name`, tap.name, "taps");
    }
    tapNames.add(tap.name);
    const target = tap.target;
    if ("from" in target) {
      if (!edges.some((edge) => edge.from === target.from && edge.to === target.to)) {
        fail(
          graph,
          `tap "${tap.name}" observes an edge "${target.from}" → "${target.to}" that does not exist`,
          target.from,
          "taps",
        );
      }
      continue;
    }
    const node = byName.get(target.node);
    if (!node) {
      fail(graph, `tap "${tap.name}" observes a node "${target.node}" that does not exist`, target.node, "taps");
    }
    if (node.kind === "output") {
      fail(
        graph,
        `tap "${tap.name}" observes output "${node.name}", which has no edge out; tap the node that feeds it`,
        node.name,
        "taps",
      );
    }
  }
}
