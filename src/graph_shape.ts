/**
 * The shape of a pipeline or a graph: its nodes and the edges between them,
 * with no behaviour. It is what the renderers (Mermaid, the text outline)
 * draw, so that a `Pipeline` and a `Graph` are drawn by the same code.
 *
 * @module
 */

/** What a node in a {@linkcode GraphShape} is. */
export type ShapeNodeKind =
  | "source"
  | "stage"
  | "route"
  | "broadcast"
  | "merge"
  | "join"
  | "tap"
  | "output";

/** Live counts drawn beside a node when a renderer is asked for them. */
export interface ShapeNodeCounts {
  /** Items that reached the node. */
  readonly ingested: number;
  /** Items the node passed on. */
  readonly completed: number;
  /** Items the node dead-lettered. */
  readonly failed: number;
  /** Items waiting in the node's queue. */
  readonly queued: number;
}

/** One node of a {@linkcode GraphShape}. */
export interface ShapeNode {
  /** The node's name, unique in its graph. */
  readonly name: string;
  /** What the node does. */
  readonly kind: ShapeNodeKind;
  /** Live counts, when the shape was taken from a running or finished graph. */
  readonly counts?: ShapeNodeCounts;
}

/** One edge of a {@linkcode GraphShape}: items flow from `from` to `to`. */
export interface ShapeEdge {
  /** The name of the node the items leave. */
  readonly from: string;
  /** The name of the node the items enter. */
  readonly to: string;
  /** A label, e.g. a route's branch key. */
  readonly label?: string;
  /** Items that crossed the edge, when the shape was taken from a running or finished graph. */
  readonly items?: number;
}

/**
 * A pipeline's or graph's nodes and edges, in the order they were declared.
 *
 * @example
 * ```ts
 * import type { GraphShape } from "./graph_shape.ts";
 *
 * const shape: GraphShape = {
 *   name: "etl",
 *   nodes: [{ name: "parse", kind: "stage" }, { name: "load", kind: "stage" }],
 *   edges: [{ from: "parse", to: "load" }],
 * };
 * console.assert(shape.edges[0].to === "load");
 * ```
 */
export interface GraphShape {
  /** The pipeline's or graph's name. */
  readonly name: string;
  /** Every node, in declaration order. */
  readonly nodes: readonly ShapeNode[];
  /** Every edge, in declaration order. */
  readonly edges: readonly ShapeEdge[];
}
