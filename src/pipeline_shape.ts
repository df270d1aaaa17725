/**
 * A pipeline as a {@linkcode GraphShape}: its source, its stages in order and
 * its output, joined in a line, with live counts from its metrics when asked.
 *
 * @module
 */

import { z } from "zod";
import { validate } from "./config.ts";
import type { GraphShape, GraphShapeNode, ShapeOptions } from "./graph_shape.ts";
import { type MermaidOptions, mermaidOptionsSchema } from "./mermaid.ts";
import type { PipelineMetrics, StageMetrics } from "./metrics.ts";

const counts = z.boolean({ error: "must be true or false" }).optional();
const shapeOptionsSchema = z.strictObject({ counts }, { error: "must be an object" });
const renderOptionsSchema = mermaidOptionsSchema.extend({ counts });

/** Checks the options of `shape()` or `toOutline()`. @internal */
export function checkShapeOptions(options: ShapeOptions, owner: string): ShapeOptions {
  return validate(shapeOptionsSchema, options, { owner, root: "options" });
}

/** Checks the options of `toMermaid()` and splits them: what the shape takes, what Mermaid takes. @internal */
export function checkMermaidOptions(
  options: ShapeOptions & MermaidOptions,
  owner: string,
): { shape: ShapeOptions; mermaid: MermaidOptions } {
  const { counts, ...mermaid } = validate(renderOptionsSchema, options, { owner, root: "options" });
  return { shape: { counts }, mermaid };
}

/**
 * The shape of pipeline `name` with stages `stages`: `source → …stages →
 * output`. The end nodes are named `source` and `output` unless a stage has
 * that name (then `source 2`, and so on). With `metrics`, each node carries
 * counts and each edge the items that crossed it.
 * @internal
 */
export function pipelineShape(name: string, stages: readonly string[], metrics?: PipelineMetrics): GraphShape {
  const taken = new Set(stages);
  const source = freeName("source", taken);
  taken.add(source);
  const output = freeName("output", taken);
  const names = [source, ...stages, output];
  const edges = names.slice(1).map((to, index) => ({ from: names[index], to }));
  if (!metrics) {
    const nodes: GraphShapeNode[] = [
      { name: source, kind: "source" },
      ...stages.map((stage) => ({ name: stage, kind: "stage" as const })),
      { name: output, kind: "output" },
    ];
    return { name, nodes, edges };
  }
  const per = stages.map((stage) => metrics.stageMetrics[stage]);
  const read = metrics.totalIngested - per.reduce((sum, stage) => sum + (stage?.spawned ?? 0), 0);
  const passedOn = per.map((stage) => stage ? stage.succeeded - stage.expanded + stage.spawned : 0);
  const crossed = [read, ...passedOn.slice(0, -1), metrics.totalCompleted];
  const nodes: GraphShapeNode[] = [
    { name: source, kind: "source", counts: { ingested: read, completed: read, failed: 0, inFlight: 0 } },
    ...stages.map((stage, index) => ({ name: stage, kind: "stage" as const, counts: stageCounts(per[index]) })),
    {
      name: output,
      kind: "output",
      counts: { ingested: metrics.totalCompleted, completed: metrics.totalCompleted, failed: 0, inFlight: 0 },
    },
  ];
  return { name, nodes, edges: edges.map((edge, index) => ({ ...edge, items: crossed[index] })) };
}

function stageCounts(stage: StageMetrics | undefined): NonNullable<GraphShapeNode["counts"]> {
  if (!stage) return { ingested: 0, completed: 0, failed: 0, inFlight: 0 };
  const inFlight = stage.inFlight + stage.queueDepth;
  const filtered = stage.filtered + stage.skipped;
  return { ingested: stage.processed + inFlight, completed: stage.succeeded, failed: stage.failed, inFlight, filtered };
}

function freeName(base: string, taken: ReadonlySet<string>): string {
  let name = base;
  for (let n = 2; taken.has(name); n++) name = `${base} ${n}`;
  return name;
}
