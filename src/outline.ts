/**
 * Draws a {@linkcode GraphShape} as a plain text outline: one line per node,
 * in the shape's order, with its kind, where its items go and, when the
 * shape carries live counts, its counts. For logs, terminals and tests.
 *
 * @module
 */

import type { GraphShape, GraphShapeEdge } from "./graph_shape.ts";
import { checkShape, countsText, items } from "./shape_check.ts";

/**
 * Renders `shape` as a text outline. The first line names the shape and
 * counts its nodes and edges; then each node has a line: its name, its kind
 * in parentheses, `→` and the nodes its edges go to (an edge's label in
 * brackets, its item count when the shape carries counts), and the node's
 * counts after `|`. Names that are not one plain word are quoted as JSON
 * strings, so a name with spaces or quotes reads unambiguously.
 *
 * @param shape The nodes and edges to draw.
 * @returns The outline, ending in a newline.
 * @throws {ConfigError} when the shape is invalid: a duplicate node name, an
 * edge to a node the shape does not have.
 *
 * @example Outline a route
 * ```ts
 * import { toOutline } from "./outline.ts";
 *
 * const text = toOutline({
 *   name: "orders",
 *   nodes: [
 *     { name: "source", kind: "source" },
 *     { name: "split", kind: "route" },
 *     { name: "big", kind: "stage" },
 *     { name: "small", kind: "stage" },
 *   ],
 *   edges: [
 *     { from: "source", to: "split" },
 *     { from: "split", to: "big", label: "big" },
 *     { from: "split", to: "small", label: "default" },
 *   ],
 * });
 * console.assert(text.split("\n")[2] === "  split   (route)   → big [big], small [default]");
 * ```
 */
export function toOutline(shape: GraphShape): string {
  checkShape(shape, "toOutline");
  const outgoing = new Map<string, GraphShapeEdge[]>(shape.nodes.map((node) => [node.name, []]));
  for (const edge of shape.edges) outgoing.get(edge.from)!.push(edge);
  const names = shape.nodes.map((node) => quote(node.name));
  const kinds = shape.nodes.map((node) => `(${node.kind})`);
  const nameWidth = Math.max(...names.map(width));
  const kindWidth = Math.max(...kinds.map(width));
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const lines = [`${quote(shape.name)}: ${plural(shape.nodes.length, "node")}, ${plural(shape.edges.length, "edge")}`];
  const targets = shape.nodes.map((node) => {
    const edges = outgoing.get(node.name)!;
    return edges.length > 0 ? `→ ${edges.map(target).join(", ")}` : "";
  });
  const targetWidth = Math.max(...targets.map(width));
  shape.nodes.forEach((node, index) => {
    const parts = [pad(names[index], nameWidth), pad(kinds[index], kindWidth), pad(targets[index], targetWidth)];
    if (node.counts) parts.push(`| ${countsText(node, node.counts)}`);
    lines.push(`  ${parts.join("  ")}`.trimEnd());
  });
  return lines.join("\n") + "\n";
}

function target(edge: GraphShapeEdge): string {
  const notes = [edge.label, edge.items === undefined ? undefined : items(edge.items)]
    .filter((note) => note !== undefined && note !== "");
  return notes.length > 0 ? `${quote(edge.to)} [${notes.join(", ")}]` : quote(edge.to);
}

/** A name as it is when it is one plain word (letters, digits, `_`, `.`, `-`), else as a JSON string. */
function quote(name: string): string {
  return /^[\p{L}\p{N}_.-]+$/u.test(name) ? name : JSON.stringify(name);
}

/** Width in code points (a name in any script lines up; wide characters are not measured). */
function width(text: string): number {
  return [...text].length;
}

function pad(text: string, to: number): string {
  return text + " ".repeat(to - width(text));
}
