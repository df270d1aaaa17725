/**
 * `sluice/otel` against the real OpenTelemetry SDK: metrics go through a
 * MeterProvider into the SDK's InMemoryMetricExporter, spans through a
 * BasicTracerProvider into its InMemorySpanExporter. Nothing is registered
 * globally. Runs on Node, Deno and Bun.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { SpanStatusCode } from "@opentelemetry/api";
import { ConfigError, PermanentError, Pipeline, stage } from "../mod.ts";
import { instrument, OTEL_METRICS } from "../otel.ts";
import { deferred, range } from "./_helpers.ts";

const noDelay = { initialDelayMs: 0, maxDelayMs: 0, jitter: false } as const;

/** A pipeline where 4 dead-letters in parse and 3 fails its first load attempt. */
function mixedPipeline(name = "etl") {
  const attempts = new Map<number, number>();
  return new Pipeline({
    name,
    stages: [
      stage("parse", (n: number) => {
        if (n === 4) throw new PermanentError(`bad ${n}`);
        return n;
      }),
      stage("load", (n: number) => {
        const attempt = (attempts.get(n) ?? 0) + 1;
        attempts.set(n, attempt);
        if (n === 3 && attempt === 1) throw new Error("flaky");
        return n * 2;
      }, { maxRetries: 2, backoff: noDelay, concurrency: 2 }),
    ],
  });
}

/** A meter on a fresh SDK MeterProvider whose exporter is read on demand. */
function meterRig() {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  return {
    meter: provider.getMeter("sluice-test"),
    /** Collects now, and returns the newest export's metrics by name. */
    async collect(): Promise<Map<string, MetricData>> {
      exporter.reset();
      await reader.forceFlush();
      const byName = new Map<string, MetricData>();
      for (const resource of exporter.getMetrics()) {
        for (const scope of resource.scopeMetrics) {
          for (const metric of scope.metrics) byName.set(metric.descriptor.name, metric);
        }
      }
      return byName;
    },
    shutdown: () => provider.shutdown(),
  };
}

function tracerRig() {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return { tracer: provider.getTracer("sluice-test"), spans: () => exporter.getFinishedSpans(), exporter };
}

/** The value of a sum or gauge data point with these attributes. */
function pointValue(metric: MetricData | undefined, attributes: Record<string, string>): number | undefined {
  assert.ok(metric, "metric missing");
  const point = metric.dataPoints.find((p) => JSON.stringify(p.attributes) === JSON.stringify(attributes));
  return point?.value as number | undefined;
}

const PIPELINE = "sluice.pipeline.name";
const STAGE = "sluice.stage.name";

test("instrument(): counters, a latency histogram in seconds and their units reach the SDK's in-memory exporter", async () => {
  const rig = meterRig();
  const pipeline = mixedPipeline();
  const otel = instrument(pipeline, { meter: rig.meter });
  const result = await pipeline.run(range(10));
  const metrics = await rig.collect();
  const etl = { [PIPELINE]: "etl" };
  const stageOf = (s: string) => ({ [PIPELINE]: "etl", [STAGE]: s });

  assert.equal(pointValue(metrics.get("sluice.pipeline.items.ingested"), etl), result.totalIngested);
  assert.equal(pointValue(metrics.get("sluice.pipeline.items.completed"), etl), result.totalCompleted);
  assert.equal(pointValue(metrics.get("sluice.pipeline.items.dead_lettered"), etl), result.deadLetterCount);
  assert.equal(result.totalCompleted, 9);
  assert.equal(result.deadLetterCount, 1);
  for (const name of ["parse", "load"]) {
    const own = result.stageMetrics[name];
    assert.equal(pointValue(metrics.get("sluice.stage.items.completed"), stageOf(name)), own.succeeded);
    assert.equal(pointValue(metrics.get("sluice.stage.items.failed"), stageOf(name)) ?? 0, own.failed);
    assert.equal(pointValue(metrics.get("sluice.stage.retries"), stageOf(name)) ?? 0, own.retries);
  }
  assert.equal(pointValue(metrics.get("sluice.stage.retries"), stageOf("load")), 1);

  const duration = metrics.get("sluice.stage.duration");
  assert.ok(duration);
  assert.equal(duration.dataPointType, DataPointType.HISTOGRAM);
  assert.equal(duration.descriptor.unit, "s");
  const loadPoint = duration.dataPoints.find((p) => p.attributes[STAGE] === "load");
  assert.ok(loadPoint);
  const histogram = loadPoint.value as { count: number; sum?: number; buckets: { boundaries: number[] } };
  assert.equal(histogram.count, result.stageMetrics.load.succeeded);
  assert.deepEqual(histogram.buckets.boundaries.slice(0, 3), [0.0005, 0.001, 0.0025]);
  assert.ok(histogram.sum !== undefined && histogram.sum < 60, "seconds, not milliseconds");

  for (const definition of OTEL_METRICS) {
    const exported = metrics.get(definition.name);
    assert.ok(exported, `${definition.name} not exported`);
    assert.equal(exported.descriptor.unit, definition.unit, definition.name);
    assert.equal(exported.descriptor.description, definition.description, definition.name);
  }
  otel.stop();
  await rig.shutdown();
});

test("instrument(): observable gauges read in-flight items and queue depth when the meter collects", async () => {
  const rig = meterRig();
  const release = deferred();
  const started = deferred();
  const pipeline = new Pipeline({
    name: "slow",
    queueSize: 4,
    stages: [stage("hold", async (n: number) => {
      started.resolve();
      await release.promise;
      return n;
    })],
  });
  const otel = instrument(pipeline, { meter: rig.meter });
  const done = pipeline.run(range(3));
  await started.promise;
  const during = await rig.collect();
  const live = pipeline.getMetrics();
  assert.equal(pointValue(during.get("sluice.pipeline.items.in_flight"), { [PIPELINE]: "slow" }), live.itemsInFlight);
  assert.ok(live.itemsInFlight > 0);
  const hold = { [PIPELINE]: "slow", [STAGE]: "hold" };
  assert.equal(pointValue(during.get("sluice.stage.items.in_flight"), hold), 1);
  assert.equal(pointValue(during.get("sluice.stage.queue.depth"), hold), live.stageMetrics.hold.queueDepth);
  release.resolve();
  await done;
  const after = await rig.collect();
  assert.equal(pointValue(after.get("sluice.pipeline.items.in_flight"), { [PIPELINE]: "slow" }), 0);
  otel.stop();
  await rig.shutdown();
});

test("instrument(): after stop() the gauges' callback no longer reads the pipeline", async () => {
  const rig = meterRig();
  const pipeline = mixedPipeline();
  let reads = 0;
  const counted = {
    name: pipeline.name,
    subscribe: pipeline.subscribe.bind(pipeline),
    getMetrics: () => (reads++, pipeline.getMetrics()),
  };
  const otel = instrument(counted, { meter: rig.meter });
  const before = reads;
  await rig.collect();
  assert.equal(reads, before + 1, "one read per collection");
  otel.stop();
  await rig.collect();
  assert.equal(reads, before + 1, "no read after stop()");
  await rig.shutdown();
});

test("instrument(): a span per item with a child span per attempt, outcomes and error status", async () => {
  const { tracer, spans } = tracerRig();
  const pipeline = mixedPipeline();
  const otel = instrument(pipeline, { tracer });
  await pipeline.run(range(6));
  otel.stop();
  const finished = spans();
  const items = finished.filter((s) => s.name === "sluice.item");
  const attempts = finished.filter((s) => s.name.startsWith("sluice.attempt "));
  assert.equal(items.length, 6);
  const itemById = new Map(items.map((s) => [s.attributes["sluice.item.id"], s] as const));
  const attr = (s: ReadableSpan, k: string) => s.attributes[k];

  // Item 3: parse ok, load retry then completed. Item 4: dead-lettered in parse.
  const item3 = itemById.get("3")!;
  const item4 = itemById.get("4")!;
  assert.equal(attr(item3, "sluice.item.outcome"), "completed");
  assert.equal(attr(item4, "sluice.item.outcome"), "dead-lettered");
  assert.equal(attr(item4, STAGE), "parse");
  assert.equal(item4.status.code, SpanStatusCode.ERROR);
  assert.equal(item3.status.code, SpanStatusCode.UNSET);

  const of = (id: string) => attempts.filter((s) => attr(s, "sluice.item.id") === id);
  const load3 = of("3").filter((s) => attr(s, STAGE) === "load").sort((a, b) =>
    Number(attr(a, "sluice.attempt.number")) - Number(attr(b, "sluice.attempt.number"))
  );
  assert.deepEqual(load3.map((s) => [attr(s, "sluice.attempt.number"), attr(s, "sluice.attempt.outcome")]), [
    [1, "retry"],
    [2, "completed"],
  ]);
  assert.equal(load3[0].status.code, SpanStatusCode.ERROR);
  assert.equal(load3[0].status.message, "flaky");
  assert.deepEqual(of("4").map((s) => [s.name, attr(s, "sluice.attempt.outcome")]), [[
    "sluice.attempt parse",
    "failed",
  ]]);

  // Every attempt is a child of its item's span, in the same trace.
  for (const attempt of attempts) {
    const item = itemById.get(attr(attempt, "sluice.item.id"))!;
    assert.equal(attempt.parentSpanContext?.spanId, item.spanContext().spanId);
    assert.equal(attempt.spanContext().traceId, item.spanContext().traceId);
  }
  // Each item has its own trace.
  assert.equal(new Set(items.map((s) => s.spanContext().traceId)).size, 6);
  // 6 parse attempts + 5 items reaching load + 1 retry.
  assert.equal(attempts.length, 12);
});

test("instrument(): spans: false leaves the tracer unused; stop() stops counting and is idempotent", async () => {
  const { tracer, spans } = tracerRig();
  const rig = meterRig();
  const pipeline = mixedPipeline();
  const otel = instrument(pipeline, { meter: rig.meter, tracer, spans: false });
  await pipeline.run(range(3));
  assert.equal(spans().length, 0);
  const first = await rig.collect();
  assert.equal(pointValue(first.get("sluice.pipeline.items.ingested"), { [PIPELINE]: "etl" }), 3);
  otel.stop();
  otel.stop();
  await pipeline.run(range(3));
  const second = await rig.collect();
  assert.equal(pointValue(second.get("sluice.pipeline.items.ingested"), { [PIPELINE]: "etl" }), 3, "not counted");
  await rig.shutdown();
});

test("instrument(): the pipeline's own onEvent still gets every event", async () => {
  const { tracer, spans } = tracerRig();
  const seen: string[] = [];
  const pipeline = new Pipeline({
    name: "mine",
    stages: [stage("double", (n: number) => n * 2)],
    onEvent: (event) => void seen.push(event.type),
  });
  const otel = instrument(pipeline, { tracer });
  await pipeline.run([1, 2]);
  otel.stop();
  assert.equal(seen.filter((t) => t === "completed").length, 2);
  assert.equal(spans().filter((s) => s.name === "sluice.item").length, 2);
});

test("instrument(): bad arguments are ConfigErrors naming the field", () => {
  const pipeline = mixedPipeline();
  const { tracer } = tracerRig();
  const cases: [() => unknown, string, RegExp][] = [
    [() => instrument(null as never, { tracer }), "pipeline", /must be a Pipeline; got null/],
    [() => instrument({} as never, { tracer }), "pipeline", /must be a Pipeline/],
    [() => instrument(pipeline, null as never), "options", /options must be an object/],
    [() => instrument(pipeline, {}), "meter", /give a meter, a tracer or both/],
    [() => instrument(pipeline, { meter: {} as never }), "meter", /must be an OpenTelemetry Meter/],
    [() => instrument(pipeline, { tracer: {} as never }), "tracer", /must be an OpenTelemetry Tracer/],
    [
      () => instrument(pipeline, { tracer, latencyBuckets: [1, 0.5] }),
      "latencyBuckets",
      /must be increasing numbers of seconds/,
    ],
  ];
  for (const [call, field, message] of cases) {
    assert.throws(call, (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.field, field);
      assert.match(error.message, message);
      return true;
    });
  }
});
