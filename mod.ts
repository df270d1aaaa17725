/**
 * sluice: async data pipelines on WHATWG web streams — stages joined by
 * bounded queues, with concurrency, retries, timeouts, a dead letter queue,
 * live metrics and graceful shutdown. Runs on Node, Deno, Bun, edge runtimes
 * and browsers.
 *
 * @example
 * ```ts
 * import { PermanentError, Pipeline, stage } from "./mod.ts";
 *
 * const pipeline = new Pipeline({
 *   name: "etl",
 *   stages: [
 *     stage("parse", (line: string) => JSON.parse(line) as { n: number }),
 *     stage("check", (row: { n: number }) => {
 *       if (row.n < 0) throw new PermanentError("n must not be negative");
 *       return row.n;
 *     }, { concurrency: 4 }),
 *   ],
 * });
 * const metrics = await pipeline.run(['{"n":1}', '{"n":-1}']);
 * console.assert(metrics.totalIngested === metrics.totalCompleted + metrics.totalFailed);
 * ```
 *
 * @module
 */

export { Pipeline } from "./src/pipeline.ts";
export type {
  AnyStage,
  ChainedStages,
  PipelineInput,
  PipelineOptions,
  PipelineOutput,
  RunOptions,
  StageInput,
  StageOutput,
} from "./src/pipeline.ts";
export { stage } from "./src/stage.ts";
export type { CommonStageOptions, Stage, StageFn, StageOptions } from "./src/stage.ts";
export { batchStage } from "./src/batch_stage.ts";
export type { BatchFn, BatchStageOptions } from "./src/batch_stage.ts";
export type { StageContext } from "./src/attempt.ts";
export { backoffDelay } from "./src/backoff.ts";
export type { BackoffOptions, ResolvedBackoff } from "./src/backoff.ts";
export { isRetryable } from "./src/retry.ts";
export type { RetryPredicate } from "./src/retry.ts";
export { ConfigError, DeadLetterSinkError, PermanentError, ShutdownError, TimeoutError } from "./src/errors.ts";
export { DeadLetterSchema, serializeError } from "./src/dead_letter.ts";
export type { DeadLetter, SerializedError } from "./src/dead_letter.ts";
export type { LatencySummary, PipelineMetrics, StageMetrics } from "./src/metrics.ts";
export type {
  CompletedEvent,
  DeadLetteredEvent,
  EventBase,
  EventListener,
  FailedEvent,
  FilteredEvent,
  ItemId,
  PipelineEvent,
  QueuedEvent,
  RetryEvent,
  SkippedEvent,
  StartedEvent,
} from "./src/events.ts";
export { consoleLogger, silentLogger } from "./src/logger.ts";
export type { ConsoleLoggerOptions, Logger, LogLevel, LogProperties } from "./src/logger.ts";
export type { Source } from "./src/source.ts";
export type { AcknowledgingSource, Fate, SettledItem } from "./src/source.ts";
export type { PipelineStream } from "./src/pipeline_stream.ts";

// Seed parity (issue 12): filter, flatMap, status tracking, tasks, latency, results.
export { skip } from "./src/skip.ts";
export type { Skip } from "./src/skip.ts";
export { flatMapStage } from "./src/flat_map_stage.ts";
export type { FlatMapResult, FlatMapStageOptions } from "./src/flat_map_stage.ts";
export type { ChildOf } from "./src/stage.ts";
export type { NamedTask, TaskFn } from "./src/tasks.ts";
export { ITEM_STATUSES, StatusTracker } from "./src/status_tracker.ts";
export type { ItemStatus, StatusChange, StatusRecorder, StatusTrackerOptions } from "./src/status_tracker.ts";
export type { LatencyReport, StageLatency } from "./src/latency_report.ts";
export type { CollectResult } from "./src/pipeline.ts";
export type { WorkerMetrics } from "./src/metrics.ts";
export type {
  ExpandedEvent,
  TaskCompletedEvent,
  TaskEventBase,
  TaskFailedEvent,
  TaskRetryEvent,
  TaskStartedEvent,
} from "./src/events.ts";
// Observability export (issue 16): Prometheus, snapshot, terminal progress view.
export { metricsHandler, PROMETHEUS_CONTENT_TYPE, PROMETHEUS_METRICS, toPrometheus } from "./src/prometheus.ts";
export type {
  MetricsSource,
  PipelinePrometheusMetric,
  PrometheusMetric,
  PrometheusMetricBase,
  PrometheusOptions,
  StagePrometheusMetric,
  StageSummaryPrometheusMetric,
} from "./src/prometheus.ts";
export { PipelineSnapshotSchema } from "./src/snapshot.ts";
export type { PipelineSnapshot, RecentError, StageSnapshot, WorkerState } from "./src/snapshot.ts";
export { progress } from "./src/progress.ts";
export type { ProgressOptions, ProgressOutput, ProgressView } from "./src/progress.ts";
// Error strategies and flow control (issue 13).
export { CircuitOpenError, HaltError } from "./src/errors.ts";
export type {
  ErrorAction,
  ErrorActionFn,
  ErrorClass,
  ErrorMatcher,
  ErrorRouteContext,
  ErrorRule,
  OnError,
} from "./src/error_router.ts";
export type { CircuitBreakerOptions, CircuitState } from "./src/circuit_breaker.ts";
export { RateLimiter } from "./src/rate_limiter.ts";
export type { RateLimitOptions } from "./src/rate_limiter.ts";
export type { Clock } from "./src/clock.ts";
export type { StageStrategyOptions } from "./src/strategies.ts";
export type { Breakpoint, PipelineStrategyOptions } from "./src/flow_control.ts";
export type { ItemEndInfo, ItemFate, PipelineHooks, RunEndInfo, StageErrorInfo } from "./src/hooks.ts";
export type { ReplayEntry } from "./src/replay.ts";
export type {
  CircuitClosedEvent,
  CircuitHalfOpenEvent,
  CircuitOpenedEvent,
  PausedEvent,
  StageEventBase,
} from "./src/events.ts";
// Graphs (issue 18).
export { Graph, graph, source } from "./src/graph.ts";
export type { GraphCollectResult, GraphInput, GraphRun, GraphStream } from "./src/graph.ts";
export type {
  EdgeRef,
  GraphBuilder,
  GraphEdgeMetrics,
  GraphMetrics,
  GraphNodeMetrics,
  GraphOptions,
  GraphSources,
  GraphTapMetrics,
  Handle,
  HandleType,
  Joined,
  JoinOptions,
  NodeRef,
  RouteHandles,
  RouteKeyOptions,
  RouteWhenOptions,
  SourceDeclaration,
  SourceType,
  TapFn,
  TapInfo,
  TapOptions,
} from "./src/graph_types.ts";
export { RouteError } from "./src/route.ts";
export { JoinError } from "./src/join.ts";
// Graphs (issue 18): rendering and declarative config.
export type {
  GraphNodeCounts,
  GraphNodeKind,
  GraphShape,
  GraphShapeEdge,
  GraphShapeNode,
  ShapeOptions,
} from "./src/graph_shape.ts";
export { toMermaid } from "./src/mermaid.ts";
export type { MermaidOptions } from "./src/mermaid.ts";
export { toOutline } from "./src/outline.ts";
export { configJsonSchema, fromConfig, processor } from "./src/graph_config.ts";
export type {
  AnyProcessorDefinition,
  FromConfigOptions,
  FromGraphConfigOptions,
  ParameterIssue,
  ParameterSchema,
  ProcessorDefinition,
  ProcessorFn,
  ProcessorKind,
  ProcessorRegistry,
} from "./src/graph_config.ts";
export type {
  ConnectionConfig,
  ErrorRuleConfig,
  GraphConfig,
  GraphNodeConfig,
  NodeRefConfig,
  PipelineConfig,
  ProcessorConfig,
  ProcessorOptionsConfig,
} from "./src/graph_config_types.ts";
// Worker stages (issue 14).
export { workerStage } from "./src/worker_stage.ts";
export type { WorkerContext, WorkerFn, WorkerStageOptions } from "./src/worker_stage.ts";
export { WorkerCrashedError } from "./src/worker_errors.ts";
