/**
 * The shape of a pipeline or graph as the renderers see it: nodes and the
 * edges between them, with optional live counts. The graph builder
 * (`src/graph.ts`) and `Pipeline` produce it; Mermaid (`src/mermaid.ts`) and
 * the text outline (`src/outline.ts`) draw it.
 *
 * @module
 */

/** What a node in a graph is. */
export type GraphNodeKind = "source" | "stage" | "route" | "broadcast" | "merge" | "join" | "tap" | "output";

/** Live counts drawn on a node, when asked for. */
export interface GraphNodeCounts {
  /** Items that entered the node. */
  readonly ingested: number;
  /** Items it completed (passed on). */
  readonly completed: number;
  /** Items it dead-lettered. */
  readonly failed: number;
  /** Items waiting in its queue or in flight. */
  readonly inFlight: number;
  /** Items it dropped on purpose (`skip`) or whose failure error routing skipped; drawn when above 0. */
  readonly filtered?: number;
}

/** One node of a {@linkcode GraphShape}. */
export interface GraphShapeNode {
  /** The node's name, unique in its graph. */
  readonly name: string;
  /** What the node is. */
  readonly kind: GraphNodeKind;
  /** Live counts, when the shape was taken with them. */
  readonly counts?: GraphNodeCounts;
}

/** One edge of a {@linkcode GraphShape}: items flow from `from` to `to`. */
export interface GraphShapeEdge {
  /** The upstream node's name. */
  readonly from: string;
  /** The downstream node's name. */
  readonly to: string;
  /** A label: a route's branch key, say. */
  readonly label?: string;
  /** Items that crossed the edge, when the shape was taken with live counts. */
  readonly items?: number;
}

/**
 * A pipeline or graph as nodes and edges, in the order they were declared.
 *
 * @example
 * ```ts
 * import type { GraphShape } from "./graph_shape.ts";
 *
 * const shape: GraphShape = {
 *   name: "etl",
 *   nodes: [{ name: "source", kind: "source" }, { name: "parse", kind: "stage" }],
 *   edges: [{ from: "source", to: "parse" }],
 * };
 * console.assert(shape.edges[0].to === "parse");
 * ```
 */
export interface GraphShape {
  /** The pipeline's or graph's name. */
  readonly name: string;
  /** Its nodes. */
  readonly nodes: readonly GraphShapeNode[];
  /** Its edges. */
  readonly edges: readonly GraphShapeEdge[];
}

/** How a pipeline or graph takes its {@linkcode GraphShape}. */
export interface ShapeOptions {
  /**
   * Take live counts from the latest run's metrics (nodes' `counts`, edges'
   * `items`).
   * @default false
   */
  readonly counts?: boolean;
}
