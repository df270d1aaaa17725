/**
 * OpenTelemetry for a pipeline (the `sluice/otel` entry point): counters,
 * histograms and observable gauges on the `meter` you give, and optionally
 * a span per item with a child span per attempt on the `tracer` you give.
 * `@opentelemetry/api` is an optional peer dependency: only this entry point
 * imports it. No global state: nothing is registered with the API's globals.
 *
 * It listens through `pipeline.subscribe()`, so the pipeline's own `onEvent`
 * stays yours, and a pipeline that is not instrumented pays nothing.
 *
 * @module
 */

import {
  type Attributes,
  type BatchObservableCallback,
  context,
  type Counter,
  type Histogram,
  type Meter,
  type Observable,
  type Span,
  SpanStatusCode,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import { ConfigError, type ItemId, type Pipeline, type PipelineEvent } from "../mod.ts";

/** Options of {@linkcode instrument}: give a `meter`, a `tracer`, or both. */
export interface InstrumentOptions {
  /** Where the counters, histograms and gauges go (`meterProvider.getMeter("sluice")`). */
  readonly meter?: OtelMeter;
  /** Where the spans go (`tracerProvider.getTracer("sluice")`). */
  readonly tracer?: OtelTracer;
  /**
   * With a `tracer`: a span per item (`sluice.item`) with a child span per
   * attempt (`sluice.attempt <stage>`). Item ids must be unique among the
   * items in flight (the default sequence numbers are, within one run).
   * @default {true}
   */
  readonly spans?: boolean;
  /**
   * Latency histogram bucket boundaries, in seconds.
   * @default {[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]}
   */
  readonly latencyBuckets?: readonly number[];
}

/** Attributes as sluice sets them on instruments and spans. */
export type OtelAttributes = Readonly<Record<string, string | number>>;

/**
 * The part of an OpenTelemetry `Meter` that {@linkcode instrument} uses,
 * spelled out so that sluice's public types do not pull in the API's: any
 * `Meter` of `@opentelemetry/api` (`meterProvider.getMeter(name)`) is one.
 */
export interface OtelMeter {
  /** Makes a counter. */
  createCounter(
    name: string,
    options?: { description?: string; unit?: string },
  ): { add(value: number, attributes?: OtelAttributes): void };
  /** Makes a histogram. */
  createHistogram(
    name: string,
    options?: { description?: string; unit?: string; advice?: { explicitBucketBoundaries?: number[] } },
  ): { record(value: number, attributes?: OtelAttributes): void };
  /** Makes an observable gauge. */
  createObservableGauge(name: string, options?: { description?: string; unit?: string }): object;
  /** Observes several observables in one callback. */
  addBatchObservableCallback(
    callback: (result: { observe(observable: object, value: number, attributes?: OtelAttributes): void }) => void,
    observables: object[],
  ): void;
  /** Undoes `addBatchObservableCallback`. */
  removeBatchObservableCallback(
    callback: (result: { observe(observable: object, value: number, attributes?: OtelAttributes): void }) => void,
    observables: object[],
  ): void;
}

/**
 * The part of an OpenTelemetry `Tracer` that {@linkcode instrument} uses:
 * any `Tracer` of `@opentelemetry/api` (`tracerProvider.getTracer(name)`) is one.
 */
export interface OtelTracer {
  /** Starts a span; `context` is an OpenTelemetry `Context`. */
  startSpan(
    name: string,
    options?: { startTime?: number; attributes?: OtelAttributes },
    context?: unknown,
  ): {
    setAttribute(key: string, value: string | number): unknown;
    setStatus(status: { code: number; message?: string }): unknown;
    end(endTime?: number): void;
  };
}

/** What {@linkcode instrument} returns. */
export interface Instrumentation {
  /** Stops listening and observing; spans still open are ended. Later calls do nothing. */
  stop(): void;
}

/**
 * The metric instruments' names, units and descriptions: the list the README gives.
 *
 * @example List the histograms
 * ```ts
 * import { OTEL_METRICS } from "../otel.ts";
 *
 * const histograms = OTEL_METRICS.filter((m) => m.kind === "histogram").map((m) => m.name);
 * console.assert(histograms.join() === "sluice.stage.duration");
 * ```
 */
export const OTEL_METRICS: readonly {
  /** The instrument's name. */
  readonly name: string;
  /** Counter, histogram or observable gauge. */
  readonly kind: "counter" | "histogram" | "gauge";
  /** The UCUM unit. */
  readonly unit: string;
  /** The instrument's description. */
  readonly description: string;
}[] = [
  {
    name: "sluice.pipeline.items.ingested",
    kind: "counter",
    unit: "{item}",
    description: "Items read from the source.",
  },
  {
    name: "sluice.pipeline.items.completed",
    kind: "counter",
    unit: "{item}",
    description: "Items that left the last stage.",
  },
  {
    name: "sluice.pipeline.items.dead_lettered",
    kind: "counter",
    unit: "{item}",
    description: "Items that failed for good and were dead-lettered.",
  },
  {
    name: "sluice.stage.items.completed",
    kind: "counter",
    unit: "{item}",
    description: "Items a stage finished successfully.",
  },
  {
    name: "sluice.stage.items.failed",
    kind: "counter",
    unit: "{item}",
    description: "Items that failed in a stage for good.",
  },
  { name: "sluice.stage.retries", kind: "counter", unit: "{retry}", description: "Retry attempts made." },
  {
    name: "sluice.stage.duration",
    kind: "histogram",
    unit: "s",
    description: "Per successful item, from its first attempt's start to success, backoff included.",
  },
  {
    name: "sluice.pipeline.items.in_flight",
    kind: "gauge",
    unit: "{item}",
    description: "Items ingested and not yet completed or failed.",
  },
  {
    name: "sluice.stage.items.in_flight",
    kind: "gauge",
    unit: "{item}",
    description: "Items in an attempt or backoff.",
  },
  {
    name: "sluice.stage.queue.depth",
    kind: "gauge",
    unit: "{item}",
    description: "Items waiting in a stage's input queue.",
  },
];

const DEFAULT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The attribute naming the pipeline. */
const PIPELINE = "sluice.pipeline.name";
/** The attribute naming the stage. */
const STAGE = "sluice.stage.name";

/**
 * Reports a pipeline to OpenTelemetry: the instruments of
 * {@linkcode OTEL_METRICS} on `meter` (attributes `sluice.pipeline.name`
 * and `sluice.stage.name`), and with `tracer`, a span per item and per
 * attempt (attributes: stage, item id, attempt, worker, outcome). Counters
 * and spans are driven by the pipeline's events, from the next run on;
 * gauges read `getMetrics()` when the meter collects.
 *
 * @throws {ConfigError} when neither a meter nor a tracer is given, or the pipeline is not one.
 *
 * @example The instruments it makes, and what it refuses
 * ```ts
 * import { ConfigError, Pipeline, stage } from "../mod.ts";
 * import { instrument, OTEL_METRICS } from "../otel.ts";
 *
 * const pipeline = new Pipeline({ name: "etl", stages: [stage("parse", (s: string) => Number(s))] });
 * console.assert(OTEL_METRICS.some((m) => m.name === "sluice.stage.duration" && m.unit === "s"));
 * try {
 *   instrument(pipeline, {}); // neither a meter nor a tracer
 * } catch (error) {
 *   console.assert(error instanceof ConfigError && error.field === "meter");
 * }
 * ```
 *
 * @example Instrument a pipeline with the SDK's meter and tracer providers (tests/otel_test.ts runs this with the SDK's in-memory exporters)
 * ```ts ignore
 * import { metrics, trace } from "@opentelemetry/api";
 * import { Pipeline, stage } from "sluice";
 * import { instrument } from "sluice/otel";
 *
 * const pipeline = new Pipeline({ name: "etl", stages: [stage("parse", (s: string) => Number(s))] });
 * const otel = instrument(pipeline, { meter: metrics.getMeter("sluice"), tracer: trace.getTracer("sluice") });
 * await pipeline.run(["1", "2"]);
 * otel.stop();
 * ```
 */
export function instrument(pipeline: PipelineLike, options: InstrumentOptions): Instrumentation {
  checkArguments(pipeline, options);
  const stops: (() => void)[] = [];
  const listeners: ((event: PipelineEvent) => void)[] = [];
  // The structural types above are the API's own, cut down; inside, the API's types are used as they are.
  const meter = options.meter as Meter | undefined;
  const tracer = options.tracer as Tracer | undefined;
  const stageNames = Object.keys(pipeline.getMetrics().stageMetrics);
  if (meter) {
    const metrics = new MetricsListener(pipeline.name, stageNames, meter, options.latencyBuckets ?? DEFAULT_BUCKETS);
    listeners.push((event) => metrics.onEvent(event));
    stops.push(observeGauges(pipeline, meter));
  }
  if (tracer && options.spans !== false) {
    const spans = new SpanListener(pipeline.name, stageNames, tracer);
    listeners.push((event) => spans.onEvent(event));
    stops.push(() => spans.endAll());
  }
  if (listeners.length > 0) {
    const unsubscribe = pipeline.subscribe((event) => {
      for (const listener of listeners) listener(event);
    });
    stops.unshift(unsubscribe);
  }
  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      for (const stop of stops) stop();
    },
  };
}

/** What {@linkcode instrument} needs of a pipeline: any {@linkcode Pipeline} is one. */
export type PipelineLike = Pick<Pipeline<readonly never[]>, "name" | "getMetrics" | "subscribe">;

function checkArguments(pipeline: PipelineLike, options: InstrumentOptions): void {
  if (
    typeof pipeline !== "object" || pipeline === null || typeof pipeline.subscribe !== "function" ||
    typeof pipeline.getMetrics !== "function"
  ) {
    throw new ConfigError(`instrument(): argument "pipeline" must be a Pipeline; got ${shown(pipeline)}`, {
      field: "pipeline",
    });
  }
  if (typeof options !== "object" || options === null) {
    throw new ConfigError(
      `instrument(): options must be an object with a meter and/or a tracer; got ${shown(options)}`,
      {
        field: "options",
      },
    );
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_NAMES.includes(key)) {
      throw new ConfigError(
        `instrument(): unknown option ${JSON.stringify(key)}; the options are ${OPTION_NAMES.join(", ")}`,
        { field: key },
      );
    }
  }
  if (!options.meter && !options.tracer) {
    throw new ConfigError(
      `instrument(pipeline "${pipeline.name}"): give a meter, a tracer or both ` +
        `(such as { meter: meterProvider.getMeter("sluice") })`,
      { field: "meter" },
    );
  }
  if (options.meter && typeof options.meter.createCounter !== "function") {
    throw new ConfigError(
      `instrument(): option "meter" must be an OpenTelemetry Meter (meterProvider.getMeter(name)); got ${
        shown(options.meter)
      }`,
      { field: "meter" },
    );
  }
  if (options.tracer && typeof options.tracer.startSpan !== "function") {
    throw new ConfigError(
      `instrument(): option "tracer" must be an OpenTelemetry Tracer (tracerProvider.getTracer(name)); got ${
        shown(options.tracer)
      }`,
      { field: "tracer" },
    );
  }
  if (options.spans !== undefined && typeof options.spans !== "boolean") {
    throw new ConfigError(`instrument(): option "spans" must be true or false; got ${shown(options.spans)}`, {
      field: "spans",
    });
  }
  const buckets = options.latencyBuckets;
  if (
    buckets !== undefined &&
    (!Array.isArray(buckets) || buckets.some((b, i) => !(b >= 0) || (i > 0 && b <= buckets[i - 1])))
  ) {
    throw new ConfigError(
      `instrument(): option "latencyBuckets" must be increasing numbers of seconds, 0 or more; got ${
        JSON.stringify(buckets)
      }`,
      { field: "latencyBuckets" },
    );
  }
}

const OPTION_NAMES = ["meter", "tracer", "spans", "latencyBuckets"];

/** A value as a message shows it: strings quoted, objects by kind. */
function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (typeof value === "object" && value !== null) return Array.isArray(value) ? "an array" : "an object";
  return String(value);
}

function describe(name: string): { description: string; unit: string } {
  const found = OTEL_METRICS.find((metric) => metric.name === name)!;
  return { description: found.description, unit: found.unit };
}

/** Counters and the latency histogram, from events. */
class MetricsListener {
  readonly #first: string;
  readonly #last: string;
  readonly #pipeline: Attributes;
  /** Per stage, its attribute set, made once. */
  readonly #stages = new Map<string, Attributes>();
  readonly #ingested: Counter;
  readonly #completed: Counter;
  readonly #deadLettered: Counter;
  readonly #stageCompleted: Counter;
  readonly #stageFailed: Counter;
  readonly #retries: Counter;
  readonly #duration: Histogram;

  constructor(pipeline: string, stages: readonly string[], meter: Meter, buckets: readonly number[]) {
    this.#first = stages[0];
    this.#last = stages[stages.length - 1];
    this.#pipeline = { [PIPELINE]: pipeline };
    for (const stage of stages) this.#stages.set(stage, { [PIPELINE]: pipeline, [STAGE]: stage });
    const counter = (name: string) => meter.createCounter(name, describe(name));
    this.#ingested = counter("sluice.pipeline.items.ingested");
    this.#completed = counter("sluice.pipeline.items.completed");
    this.#deadLettered = counter("sluice.pipeline.items.dead_lettered");
    this.#stageCompleted = counter("sluice.stage.items.completed");
    this.#stageFailed = counter("sluice.stage.items.failed");
    this.#retries = counter("sluice.stage.retries");
    this.#duration = meter.createHistogram("sluice.stage.duration", {
      ...describe("sluice.stage.duration"),
      advice: { explicitBucketBoundaries: [...buckets] },
    });
  }

  #stage(name: string): Attributes {
    return this.#stages.get(name) ?? { ...this.#pipeline, [STAGE]: name };
  }

  onEvent(event: PipelineEvent): void {
    switch (event.type) {
      case "queued":
        if (event.stage === this.#first) this.#ingested.add(1, this.#pipeline);
        return;
      case "completed":
        this.#stageCompleted.add(1, this.#stage(event.stage));
        this.#duration.record(event.durationMs / 1000, this.#stage(event.stage));
        if (event.stage === this.#last) this.#completed.add(1, this.#pipeline);
        return;
      case "failed":
        this.#stageFailed.add(1, this.#stage(event.stage));
        return;
      case "retry":
        this.#retries.add(1, this.#stage(event.stage));
        return;
      case "dead-lettered":
        this.#deadLettered.add(1, this.#pipeline);
        return;
    }
  }
}

/** The observable gauges: read from `getMetrics()` once per collection. */
function observeGauges(pipeline: PipelineLike, meter: Meter): () => void {
  const gauge = (name: string) => meter.createObservableGauge(name, describe(name));
  const inFlight = gauge("sluice.pipeline.items.in_flight");
  const stageInFlight = gauge("sluice.stage.items.in_flight");
  const queueDepth = gauge("sluice.stage.queue.depth");
  const observables: Observable[] = [inFlight, stageInFlight, queueDepth];
  const callback: BatchObservableCallback = (result) => {
    const metrics = pipeline.getMetrics();
    result.observe(inFlight, metrics.itemsInFlight, { [PIPELINE]: pipeline.name });
    for (const [stage, stageMetrics] of Object.entries(metrics.stageMetrics)) {
      const attributes = { [PIPELINE]: pipeline.name, [STAGE]: stage };
      result.observe(stageInFlight, stageMetrics.inFlight, attributes);
      result.observe(queueDepth, stageMetrics.queueDepth, attributes);
    }
  };
  meter.addBatchObservableCallback(callback, observables);
  return () => meter.removeBatchObservableCallback(callback, observables);
}

/** A span per item, from its first queueing to its fate, with a child span per attempt. */
class SpanListener {
  readonly #pipeline: string;
  readonly #first: string;
  readonly #last: string;
  readonly #tracer: Tracer;
  readonly #items = new Map<ItemId, Span>();
  /** Open attempts, by stage and then item id. */
  readonly #attempts = new Map<string, Map<ItemId, Span>>();

  constructor(pipeline: string, stages: readonly string[], tracer: Tracer) {
    this.#pipeline = pipeline;
    this.#first = stages[0];
    this.#last = stages[stages.length - 1];
    this.#tracer = tracer;
    for (const stage of stages) this.#attempts.set(stage, new Map());
  }

  onEvent(event: PipelineEvent): void {
    switch (event.type) {
      case "queued":
        if (event.stage === this.#first) this.#startItem(event.itemId, event.timestamp);
        return;
      case "started":
        return this.#startAttempt(event.stage, event.itemId, event.attempt, event.worker, event.timestamp);
      case "retry":
        return this.#endAttempt(event.stage, event.itemId, "retry", event.timestamp, event.error.message);
      case "completed":
        this.#endAttempt(event.stage, event.itemId, "completed", event.timestamp);
        if (event.stage === this.#last) this.#endItem(event.itemId, "completed", event.timestamp);
        return;
      case "failed":
        return this.#endAttempt(event.stage, event.itemId, "failed", event.timestamp, event.error.message);
      case "dead-lettered":
        return this.#endItem(event.itemId, "dead-lettered", event.timestamp, event.error.message, event.stage);
    }
  }

  #startItem(itemId: ItemId, timestamp: number): void {
    this.#items.get(itemId)?.end(timestamp); // an id reused while in flight: the old span ends here
    this.#items.set(
      itemId,
      this.#tracer.startSpan("sluice.item", {
        startTime: timestamp,
        attributes: { [PIPELINE]: this.#pipeline, "sluice.item.id": String(itemId) },
      }),
    );
  }

  #startAttempt(stage: string, itemId: ItemId, attempt: number, worker: number, timestamp: number): void {
    const item = this.#items.get(itemId);
    const parent = item ? trace.setSpan(context.active(), item) : undefined;
    const span = this.#tracer.startSpan(`sluice.attempt ${stage}`, {
      startTime: timestamp,
      attributes: {
        [PIPELINE]: this.#pipeline,
        [STAGE]: stage,
        "sluice.item.id": String(itemId),
        "sluice.attempt.number": attempt,
        "sluice.worker.index": worker,
      },
    }, parent);
    const open = this.#attemptsOf(stage);
    open.get(itemId)?.end(timestamp);
    open.set(itemId, span);
  }

  #endAttempt(stage: string, itemId: ItemId, outcome: string, timestamp: number, error?: string): void {
    const open = this.#attemptsOf(stage);
    const span = open.get(itemId);
    if (!span) return;
    open.delete(itemId);
    span.setAttribute("sluice.attempt.outcome", outcome);
    if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
    span.end(timestamp);
  }

  #endItem(itemId: ItemId, outcome: string, timestamp: number, error?: string, stage?: string): void {
    const span = this.#items.get(itemId);
    if (!span) return;
    this.#items.delete(itemId);
    span.setAttribute("sluice.item.outcome", outcome);
    if (stage !== undefined) span.setAttribute(STAGE, stage);
    if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
    span.end(timestamp);
  }

  #attemptsOf(stage: string): Map<ItemId, Span> {
    let open = this.#attempts.get(stage);
    if (!open) this.#attempts.set(stage, open = new Map());
    return open;
  }

  endAll(): void {
    for (const open of this.#attempts.values()) {
      for (const span of open.values()) span.end();
      open.clear();
    }
    for (const span of this.#items.values()) span.end();
    this.#items.clear();
  }
}
