/**
 * The check both renderers make before drawing a {@linkcode GraphShape}: it
 * is an object of nodes and edges, node names are unique, and every edge
 * joins two nodes of the shape.
 *
 * @module
 */

import { z } from "zod";
import { validate } from "./config.ts";
import { ConfigError } from "./errors.ts";
import type { GraphNodeCounts, GraphShape, GraphShapeNode } from "./graph_shape.ts";

const count = z.number({ error: "must be a whole number, 0 or more" })
  .int({ error: "must be a whole number, 0 or more" }).min(0, { error: "must be a whole number, 0 or more" });
const name = z.string({ error: "must be a non-empty string" }).min(1, { error: "must be a non-empty string" });

const shapeSchema = z.object({
  name,
  nodes: z.array(
    z.object({
      name,
      kind: z.enum(["source", "stage", "route", "broadcast", "merge", "join", "tap", "output"], {
        error: "must be one of source, stage, route, broadcast, merge, join, tap, output",
      }),
      counts: z.object({
        ingested: count,
        completed: count,
        failed: count,
        inFlight: count,
        filtered: count.optional(),
      }, { error: "must be an object of counts" }).optional(),
    }, { error: "must be an object with a name and a kind" }),
    { error: "must be an array of nodes" },
  ),
  edges: z.array(
    z.object({
      from: name,
      to: name,
      label: z.string({ error: "must be a string" }).optional(),
      items: count.optional(),
    }, { error: "must be an object with from and to" }),
    { error: "must be an array of edges" },
  ),
}, { error: "must be an object with name, nodes and edges" });

/**
 * Checks `shape` for `renderer` (`"toMermaid"`, `"toOutline"`) and returns
 * the names of its nodes, each once.
 * @throws {ConfigError} naming the field, the value and what is allowed.
 * @internal
 */
export function checkShape(shape: GraphShape, renderer: string): ReadonlySet<string> {
  validate(shapeSchema, shape, { owner: renderer, root: "shape" });
  const names = new Set<string>();
  shape.nodes.forEach((node, index) => {
    if (names.has(node.name)) {
      throw new ConfigError(
        `${renderer}: two nodes are named ${JSON.stringify(node.name)} (nodes[${index}]); node names must be unique`,
        { field: `nodes[${index}].name` },
      );
    }
    names.add(node.name);
  });
  shape.edges.forEach((edge, index) => {
    for (const end of ["from", "to"] as const) {
      if (!names.has(edge[end])) {
        throw new ConfigError(
          `${renderer}: edges[${index}].${end} is ${JSON.stringify(edge[end])}, which is not a node of ${
            JSON.stringify(shape.name)
          }; the nodes are ${[...names].map((n) => JSON.stringify(n)).join(", ")}`,
          { field: `edges[${index}].${end}` },
        );
      }
    }
  });
  return names;
}

/**
 * A node's counts as text: "in 10 · done 9 · failed 1", with "filtered"
 * and "in flight" counts when above 0; a source or an output just the items
 * it gave or received, "10 items".
 * @internal
 */
export function countsText(node: GraphShapeNode, counts: GraphNodeCounts): string {
  if (node.kind === "source" || node.kind === "output") return items(counts.completed);
  const parts = [`in ${counts.ingested}`, `done ${counts.completed}`, `failed ${counts.failed}`];
  if (counts.filtered) parts.push(`filtered ${counts.filtered}`);
  if (counts.inFlight) parts.push(`in flight ${counts.inFlight}`);
  return parts.join(" · ");
}

/** "1 item", "3 items". @internal */
export function items(n: number): string {
  return `${n} item${n === 1 ? "" : "s"}`;
}
