/**
 * `sluice/otel`: OpenTelemetry metrics and traces for a sluice pipeline.
 * Needs `@opentelemetry/api` (an optional peer dependency of sluice).
 *
 * @example
 * ```ts ignore
 * import { metrics } from "@opentelemetry/api";
 * import { instrument } from "sluice/otel";
 *
 * const otel = instrument(pipeline, { meter: metrics.getMeter("sluice") });
 * ```
 *
 * @module
 */

export { instrument, OTEL_METRICS } from "./src/otel.ts";
export type {
  Instrumentation,
  InstrumentOptions,
  OtelAttributes,
  OtelMeter,
  OtelTracer,
  PipelineLike,
} from "./src/otel.ts";
