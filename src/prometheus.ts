/**
 * Prometheus export: a pipeline's metrics in the text exposition format
 * (version 0.0.4), and a web `(Request) => Response` handler serving them.
 * Web-platform APIs only, so it runs wherever the core does.
 *
 * Every metric is one row in {@linkcode PROMETHEUS_METRICS}: adding a counter
 * to the metrics is adding a row there, nothing else.
 *
 * @module
 */

import { show } from "./config.ts";
import { ConfigError } from "./errors.ts";
import type { LatencySummary, PipelineMetrics, StageMetrics } from "./metrics.ts";

/** Anything with a name and live metrics: a {@linkcode Pipeline} is one. */
export interface MetricsSource {
  /** The `pipeline` label's value. */
  readonly name: string;
  /** The metrics to render, read once per scrape. */
  getMetrics(): PipelineMetrics;
}

/** Options of {@linkcode toPrometheus} and {@linkcode metricsHandler}. */
export interface PrometheusOptions {
  /**
   * Put before every metric name; must match `[a-zA-Z_:][a-zA-Z0-9_:]*` (or be empty).
   * @default {"sluice_"}
   */
  readonly prefix?: string;
  /**
   * Labels added to every sample (such as `{ instance: "worker-1" }`). With a
   * bare {@linkcode PipelineMetrics}, give the pipeline's name here as `pipeline`.
   * @default {{}}
   */
  readonly labels?: Readonly<Record<string, string>>;
}

/** What every row of {@linkcode PROMETHEUS_METRICS} has. */
export interface PrometheusMetricBase {
  /** The name after the prefix, in base units and with `_total` for counters. */
  readonly name: string;
  /** The `# HELP` line. */
  readonly help: string;
}

/** A counter or gauge with one sample per pipeline. */
export interface PipelinePrometheusMetric extends PrometheusMetricBase {
  /** The `# TYPE` line's type. */
  readonly type: "counter" | "gauge";
  /** One sample per pipeline. */
  readonly scope: "pipeline";
  /** Reads the value from the pipeline's metrics. */
  readonly value: (metrics: PipelineMetrics) => number;
}

/** A counter or gauge with one sample per stage, labelled `stage`. */
export interface StagePrometheusMetric extends PrometheusMetricBase {
  /** The `# TYPE` line's type. */
  readonly type: "counter" | "gauge";
  /** One sample per stage. */
  readonly scope: "stage";
  /** Reads the value from a stage's metrics. */
  readonly value: (metrics: StageMetrics) => number;
}

/** A summary per stage: quantiles 0.5, 0.95, 0.99, `_sum` and `_count`, in seconds. */
export interface StageSummaryPrometheusMetric extends PrometheusMetricBase {
  /** The `# TYPE` line's type. */
  readonly type: "summary";
  /** One summary per stage. */
  readonly scope: "stage";
  /** Reads the stage's latencies, in milliseconds (rendered in seconds). */
  readonly latency: (metrics: StageMetrics) => LatencySummary;
}

/** One row of {@linkcode PROMETHEUS_METRICS}. */
export type PrometheusMetric = PipelinePrometheusMetric | StagePrometheusMetric | StageSummaryPrometheusMetric;

const seconds = (ms: number) => ms / 1000;

/**
 * Every metric {@linkcode toPrometheus} renders, in order: the Grafana-ready
 * list in the README is this table.
 */
export const PROMETHEUS_METRICS: readonly PrometheusMetric[] = [
  pipelineMetric("items_ingested_total", "counter", "Items read from the source.", (m) => m.totalIngested),
  pipelineMetric("items_completed_total", "counter", "Items that left the last stage.", (m) => m.totalCompleted),
  pipelineMetric("items_failed_total", "counter", "Items that failed for good in some stage.", (m) => m.totalFailed),
  pipelineMetric("items_dead_lettered_total", "counter", "Items dead-lettered.", (m) => m.deadLetterCount),
  pipelineMetric("items_filtered_total", "counter", "Items a stage dropped by returning skip.", (m) => m.totalFiltered),
  pipelineMetric("items_skipped_total", "counter", "Items whose failure was skipped.", (m) => m.totalSkipped),
  pipelineMetric("items_expanded_total", "counter", "Items a flatMap stage expanded.", (m) => m.totalExpanded),
  pipelineMetric("items_in_flight", "gauge", "Items ingested and not yet finished.", (m) => m.itemsInFlight),
  pipelineMetric(
    "run_duration_seconds",
    "gauge",
    "Seconds since the run started (until it ended).",
    (m) => m.durationSeconds,
  ),
  stageMetric("stage_items_completed_total", "counter", "Items the stage finished successfully.", (m) => m.succeeded),
  stageMetric("stage_items_failed_total", "counter", "Items that failed in the stage for good.", (m) => m.failed),
  stageMetric("stage_items_filtered_total", "counter", "Items the stage dropped by returning skip.", (m) => m.filtered),
  stageMetric("stage_items_skipped_total", "counter", "Items whose failure the stage skipped.", (m) => m.skipped),
  stageMetric("stage_retries_total", "counter", "Retry attempts made (attempts after the first).", (m) => m.retries),
  stageMetric("stage_items_in_flight", "gauge", "Items in an attempt or in backoff.", (m) => m.inFlight),
  stageMetric("stage_queue_depth", "gauge", "Items waiting in the stage's input queue.", (m) => m.queueDepth),
  {
    name: "stage_latency_seconds",
    type: "summary",
    help: "Per successful item, attempts and backoff included.",
    scope: "stage",
    latency: (m) => m.latency,
  },
  stageMetric(
    "stage_latency_max_seconds",
    "gauge",
    "The slowest successful item's latency.",
    (m) => seconds(m.latency.max),
  ),
];

function pipelineMetric(
  name: string,
  type: "counter" | "gauge",
  help: string,
  value: (metrics: PipelineMetrics) => number,
): PipelinePrometheusMetric {
  return { name, type, help, scope: "pipeline", value };
}

function stageMetric(
  name: string,
  type: "counter" | "gauge",
  help: string,
  value: (metrics: StageMetrics) => number,
): StagePrometheusMetric {
  return { name, type, help, scope: "stage", value };
}

const QUANTILES = [["0.5", "p50"], ["0.95", "p95"], ["0.99", "p99"]] as const;
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The `Content-Type` of the text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Renders metrics in the Prometheus text exposition format: `# HELP` and
 * `# TYPE` lines, counters ending in `_total`, latency in seconds as a
 * summary with quantiles 0.5, 0.95 and 0.99, labels `pipeline` and `stage`.
 *
 * @param sources A pipeline, several (each metric lists every pipeline's
 * samples under one `# TYPE`), or a bare metrics object (label it with
 * `labels: { pipeline }`).
 * @throws {ConfigError} when the prefix or a label name is invalid, or two pipelines share a name.
 *
 * @example Render a pipeline's metrics after a run
 * ```ts
 * import { Pipeline, stage, toPrometheus } from "../mod.ts";
 *
 * const pipeline = new Pipeline({ name: "etl", stages: [stage("parse", (s: string) => Number(s))] });
 * await pipeline.run(["1", "2"]);
 * const text = toPrometheus(pipeline);
 * console.assert(text.includes('sluice_items_completed_total{pipeline="etl"} 2'));
 * ```
 */
export function toPrometheus(
  sources: MetricsSource | PipelineMetrics | readonly (MetricsSource | PipelineMetrics)[],
  options: PrometheusOptions = {},
): string {
  const { prefix, labels } = checkOptions(options);
  const list = Array.isArray(sources) ? sources : [sources as MetricsSource | PipelineMetrics];
  const read = list.map((source) => readSource(source, labels));
  checkDistinct(read.map(([own]) => own));
  const lines: string[] = [];
  for (const metric of PROMETHEUS_METRICS) {
    const name = prefix + metric.name;
    lines.push(`# HELP ${name} ${escapeHelp(metric.help)}`, `# TYPE ${name} ${metric.type}`);
    for (const [own, metrics] of read) {
      if (metric.scope === "pipeline") {
        lines.push(sample(name, own, metric.value(metrics)));
        continue;
      }
      for (const [stage, stageMetrics] of Object.entries(metrics.stageMetrics)) {
        const stageLabels: Labels = [...own, ["stage", stage]];
        if (metric.type === "summary") lines.push(...summary(name, stageLabels, metric.latency(stageMetrics)));
        else lines.push(sample(name, stageLabels, metric.value(stageMetrics)));
      }
    }
  }
  return lines.join("\n") + "\n";
}

/**
 * A web request handler serving {@linkcode toPrometheus} of `pipelines` on
 * GET (and HEAD); other methods get 405. It reads the metrics at every
 * request, so it serves live values while a run goes on.
 *
 * @throws {ConfigError} when the options are invalid or two pipelines share a name.
 *
 * @example Serve the metrics (Deno, Bun, workerd: pass the handler as is)
 * ```ts
 * import { metricsHandler, Pipeline, stage } from "../mod.ts";
 *
 * const pipeline = new Pipeline({ name: "etl", stages: [stage("s", (n: number) => n)] });
 * const handler = metricsHandler([pipeline]);
 * // Deno.serve({ port: 9464 }, handler);  Bun.serve({ port: 9464, fetch: handler });
 * const response = handler(new Request("http://localhost/metrics"));
 * console.assert(response.status === 200);
 * console.assert((await response.text()).includes("# TYPE sluice_items_ingested_total counter"));
 * ```
 *
 * @example Node: a two-line adapter
 * ```ts ignore
 * const { createServer } = await import("node:http");
 * const handler = metricsHandler([pipeline]);
 * createServer(async (req, res) => {
 *   const response = handler(new Request(`http://${req.headers.host}${req.url}`, { method: req.method }));
 *   res.writeHead(response.status, Object.fromEntries(response.headers)).end(await response.text());
 * }).listen(9464);
 * ```
 */
export function metricsHandler(
  pipelines: MetricsSource | readonly MetricsSource[],
  options: PrometheusOptions = {},
): (request: Request) => Response {
  const list: readonly MetricsSource[] = Array.isArray(pipelines) ? pipelines : [pipelines as MetricsSource];
  for (const [index, source] of list.entries()) {
    if (!isSource(source)) {
      throw new ConfigError(
        `metricsHandler(): pipelines[${index}] must be a Pipeline (an object with name and getMetrics()); got ${
          typeof source === "object" ? "an object without them" : String(source)
        }`,
        { field: `pipelines[${index}]` },
      );
    }
  }
  checkOptions(options);
  checkDistinct(list.map((source) => [["pipeline", source.name]]));
  return (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("Method Not Allowed: the metrics are served on GET\n", {
        status: 405,
        headers: { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" },
      });
    }
    const body = toPrometheus(list, options);
    return new Response(request.method === "HEAD" ? null : body, {
      status: 200,
      headers: { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" },
    });
  };
}

type Labels = readonly (readonly [string, string])[];

const OPTION_NAMES = ["prefix", "labels"];

function checkOptions(options: PrometheusOptions): { prefix: string; labels: Labels } {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new ConfigError(`Prometheus options must be an object such as { prefix, labels }; got ${show(options)}`, {
      field: "options",
    });
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_NAMES.includes(key)) {
      throw new ConfigError(
        `Prometheus export: unknown option ${JSON.stringify(key)}; the options are ${OPTION_NAMES.join(", ")}`,
        { field: key },
      );
    }
  }
  const labelsGiven: unknown = options.labels ?? {};
  if (typeof labelsGiven !== "object" || labelsGiven === null || Array.isArray(labelsGiven)) {
    throw new ConfigError(
      `Prometheus option "labels" must be an object of label names to strings; got ${show(labelsGiven)}`,
      { field: "labels" },
    );
  }
  const prefix = options.prefix ?? "sluice_";
  if (typeof prefix !== "string" || (prefix !== "" && !METRIC_NAME.test(prefix))) {
    throw new ConfigError(
      `Prometheus option "prefix" must be letters, digits, _ and : (not starting with a digit); got ${
        JSON.stringify(prefix)
      }`,
      { field: "prefix" },
    );
  }
  const labels = Object.entries(options.labels ?? {});
  for (const [name, value] of labels) {
    if (!LABEL_NAME.test(name) || name.startsWith("__") || name === "stage" || name === "quantile") {
      throw new ConfigError(
        `Prometheus option "labels" has an invalid label name ${JSON.stringify(name)}: use letters, digits and _ ` +
          `(not starting with a digit or __), and not "stage" or "quantile", which sluice sets`,
        { field: "labels" },
      );
    }
    if (typeof value !== "string") {
      throw new ConfigError(`Prometheus option "labels.${name}" must be a string; got ${String(value)}`, {
        field: `labels.${name}`,
      });
    }
  }
  return { prefix, labels };
}

function isSource(value: unknown): value is MetricsSource {
  return typeof value === "object" && value !== null && typeof (value as MetricsSource).name === "string" &&
    typeof (value as MetricsSource).getMetrics === "function";
}

function readSource(source: MetricsSource | PipelineMetrics, labels: Labels): [Labels, PipelineMetrics] {
  if (isSource(source)) {
    const own = labels.filter(([name]) => name !== "pipeline");
    return [[["pipeline", source.name], ...own], source.getMetrics()];
  }
  if (typeof source !== "object" || source === null || typeof source.stageMetrics !== "object") {
    throw new TypeError(
      `toPrometheus() takes a Pipeline, its metrics (pipeline.getMetrics()) or an array of them; got ${String(source)}`,
    );
  }
  return [labels, source];
}

function checkDistinct(sets: readonly Labels[]): void {
  const seen = new Set<string>();
  for (const labels of sets) {
    const key = JSON.stringify(labels);
    if (seen.has(key)) {
      const pipeline = labels.find(([name]) => name === "pipeline")?.[1];
      throw new ConfigError(
        `Prometheus export: two pipelines have the same labels (${
          pipeline === undefined ? "no pipeline label" : `pipeline "${pipeline}"`
        }); give each pipeline its own name, or set labels to tell them apart`,
        { field: "pipelines" },
      );
    }
    seen.add(key);
  }
}

function summary(name: string, labels: Labels, latency: LatencySummary): string[] {
  return [
    ...QUANTILES.map(([quantile, key]) => sample(name, [...labels, ["quantile", quantile]], seconds(latency[key]))),
    sample(`${name}_sum`, labels, seconds(latency.sum)),
    sample(`${name}_count`, labels, latency.count),
  ];
}

function sample(name: string, labels: Labels, value: number): string {
  const rendered = labels.map(([label, text]) => `${label}="${escapeLabel(text)}"`).join(",");
  return `${name}${rendered ? `{${rendered}}` : ""} ${formatValue(value)}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}

/** Label values escape backslash, double quote and line feed. */
function escapeLabel(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Help text escapes backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
