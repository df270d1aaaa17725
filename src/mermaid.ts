/**
 * Draws a {@linkcode GraphShape} as a Mermaid flowchart: one node per stage
 * (its shape says its kind), one arrow per edge with the edge's label, and,
 * when the shape carries live counts, the counts on the nodes and arrows.
 *
 * @module
 */

import { z } from "zod";
import { validate } from "./config.ts";
import type { GraphNodeKind, GraphShape, GraphShapeEdge, GraphShapeNode } from "./graph_shape.ts";
import { checkShape, countsText } from "./shape_check.ts";

/** Options of {@linkcode toMermaid}. */
export interface MermaidOptions {
  /**
   * Which way the flowchart runs: left to right, top to bottom, and so on.
   * @default "LR"
   */
  readonly direction?: "LR" | "RL" | "TB" | "BT";
  /**
   * Put the shape's name above the chart (Mermaid front matter `title`).
   * @default true
   */
  readonly title?: boolean;
}

/** @internal */
export const mermaidOptionsSchema = z.strictObject({
  direction: z.enum(["LR", "RL", "TB", "BT"], { error: 'must be "LR", "RL", "TB" or "BT"' }).optional(),
  title: z.boolean({ error: "must be true or false" }).optional(),
}, { error: "must be an object" });

/** Mermaid's opening and closing brackets for each kind of node. */
const BRACKETS: Readonly<Record<GraphNodeKind, readonly [string, string]>> = {
  source: ["([", "])"],
  stage: ["[", "]"],
  route: ["{", "}"],
  broadcast: ["{{", "}}"],
  merge: ["[/", "\\]"],
  join: ["[\\", "/]"],
  tap: [">", "]"],
  output: ["([", "])"],
};

/**
 * Renders `shape` as Mermaid flowchart text. Names and labels are quoted
 * and escaped (`"`, `&`, `<`, `>` and a `#` that would start an entity code
 * become Mermaid entity codes), so any name draws as written; node ids are
 * `n0`, `n1`, … in the shape's order, so a name such as `end` is no keyword. Nodes that dead-lettered items get the `failed`
 * class (a red outline). Counts are drawn when the shape carries them.
 *
 * @param shape The nodes and edges to draw.
 * @param options Direction and title.
 * @returns The flowchart text, ending in a newline.
 * @throws {ConfigError} when the shape or an option is invalid: a duplicate
 * node name, an edge to a node the shape does not have.
 *
 * @example Draw a route with labelled branches
 * ```ts
 * import { toMermaid } from "./mermaid.ts";
 *
 * const text = toMermaid({
 *   name: "orders",
 *   nodes: [
 *     { name: "source", kind: "source" },
 *     { name: "by total", kind: "route" },
 *     { name: "big", kind: "stage" },
 *     { name: "small", kind: "stage" },
 *   ],
 *   edges: [
 *     { from: "source", to: "by total" },
 *     { from: "by total", to: "big", label: "> 100" },
 *     { from: "by total", to: "small", label: "default" },
 *   ],
 * });
 * console.assert(text.includes('n1{"by total"}'));
 * console.assert(text.includes('n1 -->|"#gt; 100"| n2'));
 * ```
 */
export function toMermaid(shape: GraphShape, options: MermaidOptions = {}): string {
  const resolved = validate(mermaidOptionsSchema, options, { owner: "toMermaid", root: "options" });
  checkShape(shape, "toMermaid");
  const ids = new Map(shape.nodes.map((node, index) => [node.name, `n${index}`]));
  const lines: string[] = [];
  if (resolved.title ?? true) lines.push("---", `title: ${JSON.stringify(shape.name)}`, "---");
  lines.push(`flowchart ${resolved.direction ?? "LR"}`);
  for (const node of shape.nodes) lines.push(`  ${nodeLine(ids.get(node.name)!, node)}`);
  const kinds = new Map(shape.nodes.map((node) => [node.name, node.kind]));
  for (const edge of shape.edges) {
    lines.push(`  ${edgeLine(ids.get(edge.from)!, ids.get(edge.to)!, edge, kinds.get(edge.to) === "tap")}`);
  }
  const failed = shape.nodes.filter((node) => (node.counts?.failed ?? 0) > 0).map((node) => ids.get(node.name)!);
  if (failed.length > 0) {
    lines.push("  classDef failed stroke:#c62828,stroke-width:2px", `  class ${failed.join(",")} failed`);
  }
  return lines.join("\n") + "\n";
}

function nodeLine(id: string, node: GraphShapeNode): string {
  const [open, close] = BRACKETS[node.kind];
  const text = node.counts ? `${escape(node.name)}<br/>${escape(countsText(node, node.counts))}` : escape(node.name);
  return `${id}${open}"${text}"${close}`;
}

function edgeLine(from: string, to: string, edge: GraphShapeEdge, dotted: boolean): string {
  const label = [edge.label, edge.items === undefined ? undefined : `${edge.items}`]
    .filter((part) => part !== undefined && part !== "").join(" · ");
  const arrow = dotted ? "-.->" : "-->";
  return label ? `${from} ${arrow}|"${escape(label)}"| ${to}` : `${from} ${arrow} ${to}`;
}

/**
 * Escapes text for a quoted Mermaid label, as little as will do (each entity
 * code Mermaid decodes is one more thing its SVG-text edge labels show
 * literally): `"`, `&`, `<` and `>` become entity codes, a `#` that would
 * start one becomes `#35;`, a leading backtick (a Markdown string) `#96;`,
 * and line breaks spaces. Everything else, letters in any script among it,
 * stays as it is.
 */
function escape(text: string): string {
  return text.replace(/[\r\n\t]+/g, " ")
    .replace(/#(?=\w+;)/g, "#35;")
    .replace(/["&<>]/g, (c) => ENTITIES[c])
    .replace(/^`/, "#96;");
}

const ENTITIES: Readonly<Record<string, string>> = { '"': "#quot;", "&": "#amp;", "<": "#lt;", ">": "#gt;" };
