import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import parsePrometheusTextFormat, {
  type ParsedFamily,
  type ParsedSample,
  type ParsedSummary,
} from "parse-prometheus-text-format";
import {
  ConfigError,
  metricsHandler,
  PermanentError,
  Pipeline,
  type PipelineMetrics,
  PROMETHEUS_CONTENT_TYPE,
  PROMETHEUS_METRICS,
  stage,
  toPrometheus,
} from "../mod.ts";
import { busy, deferred, guard, range, runtime } from "./_helpers.ts";

const noDelay = { initialDelayMs: 0, maxDelayMs: 0, jitter: false } as const;

/** A pipeline that completes, retries and dead-letters some items. */
function mixedPipeline(name = "etl") {
  const attempts = new Map<number, number>();
  return new Pipeline({
    name,
    stages: [
      stage("parse", (n: number) => {
        if (n % 5 === 4) throw new PermanentError(`bad ${n}`);
        return n;
      }),
      stage("load", (n: number) => {
        const attempt = (attempts.get(n) ?? 0) + 1;
        attempts.set(n, attempt);
        busy(1);
        if (n % 3 === 0 && attempt === 1) throw new Error("flaky");
        return n * 2;
      }, { maxRetries: 2, backoff: noDelay, concurrency: 2 }),
    ],
  });
}

function family(families: readonly ParsedFamily[], name: string): ParsedFamily {
  const found = families.find((f) => f.name === name);
  assert.ok(found, `no metric family ${name} in ${families.map((f) => f.name).join(", ")}`);
  return found;
}

/**
 * One stage's summary, parsed. parse-prometheus-text-format flattens a
 * summary's samples into one unlabelled entry (it keeps quantiles, _sum and
 * _count only when the summary has no labels), so the family's sample lines
 * are given to it without their # TYPE line: it then reads them as plain
 * samples, `name{…,quantile}`, `name_sum{…}` and `name_count{…}`, labels and
 * all. (The # TYPE line is checked on the whole text's parse.)
 */
function summaryOf(text: string, name: string, labels: Record<string, string>): ParsedSummary {
  const samples = text.split("\n").filter((line) => !line.startsWith("#") && line.startsWith(name));
  const families = parsePrometheusTextFormat(samples.join("\n") + "\n");
  const quantiles: Record<string, string> = {};
  for (const metric of samplesNamed(families, name)) {
    const { quantile, ...rest } = metric.labels ?? {};
    if (quantile !== undefined && JSON.stringify(rest) === JSON.stringify(labels)) quantiles[quantile] = metric.value;
  }
  return {
    labels,
    quantiles,
    sum: String(sampleOf(families, `${name}_sum`, labels)),
    count: String(sampleOf(families, `${name}_count`, labels)),
  };
}

/** The samples of every family named `name` (untyped samples of one name may come in several runs). */
function samplesNamed(families: readonly ParsedFamily[], name: string): ParsedSample[] {
  return families.filter((f) => f.name === name).flatMap((f) => f.metrics as ParsedSample[]);
}

function sampleOf(families: readonly ParsedFamily[], name: string, labels: Record<string, string>): number {
  const metric = samplesNamed(families, name).find((m) => JSON.stringify(m.labels ?? {}) === JSON.stringify(labels));
  assert.ok(metric, `no sample ${name}${JSON.stringify(labels)}`);
  return Number(metric.value);
}

test("toPrometheus() output parses, and every sample equals the metrics it was rendered from", async () => {
  const pipeline = mixedPipeline();
  const metrics = await pipeline.run(range(20));
  const text = toPrometheus(pipeline);
  const families = parsePrometheusTextFormat(text);
  const labels = { pipeline: "etl" };

  assert.equal(sampleOf(families, "sluice_items_ingested_total", labels), 20);
  assert.equal(sampleOf(families, "sluice_items_completed_total", labels), metrics.totalCompleted);
  assert.equal(sampleOf(families, "sluice_items_failed_total", labels), 4);
  assert.equal(sampleOf(families, "sluice_items_dead_lettered_total", labels), 4);
  assert.equal(sampleOf(families, "sluice_items_in_flight", labels), 0);
  assert.equal(sampleOf(families, "sluice_run_duration_seconds", labels), metrics.durationSeconds);
  for (const [name, stageMetrics] of Object.entries(metrics.stageMetrics)) {
    const stageLabels = { pipeline: "etl", stage: name };
    assert.equal(sampleOf(families, "sluice_stage_items_completed_total", stageLabels), stageMetrics.succeeded);
    assert.equal(sampleOf(families, "sluice_stage_items_failed_total", stageLabels), stageMetrics.failed);
    assert.equal(sampleOf(families, "sluice_stage_retries_total", stageLabels), stageMetrics.retries);
    assert.equal(sampleOf(families, "sluice_stage_queue_depth", stageLabels), 0);
    assert.equal(sampleOf(families, "sluice_stage_items_in_flight", stageLabels), 0);
  }
  assert.equal(sampleOf(families, "sluice_stage_retries_total", { pipeline: "etl", stage: "load" }), 6);

  assert.equal(family(families, "sluice_stage_latency_seconds").type, "SUMMARY");
  const load = summaryOf(text, "sluice_stage_latency_seconds", { pipeline: "etl", stage: "load" });
  const expected = metrics.stageMetrics.load.latency;
  assert.deepEqual(Object.keys(load.quantiles).sort(), ["0.5", "0.95", "0.99"]);
  assert.equal(Number(load.quantiles["0.5"]), expected.p50 / 1000, "milliseconds become seconds");
  assert.equal(Number(load.quantiles["0.99"]), expected.p99 / 1000);
  assert.equal(Number(load.count), 16, "one latency per successful item");
  assert.equal(Number(load.sum), expected.sum / 1000);
  assert.ok(Number(load.sum) >= 16 * 0.001 * 0.9, "each item was busy for about 1 ms");
});

test("toPrometheus() writes # HELP and # TYPE once per family, counters ending in _total, in the table's order", () => {
  const text = toPrometheus([mixedPipeline("a"), mixedPipeline("b")]);
  const families = parsePrometheusTextFormat(text);
  assert.deepEqual(families.map((f) => f.name), PROMETHEUS_METRICS.map((m) => `sluice_${m.name}`));
  for (const metric of PROMETHEUS_METRICS) {
    const parsed = family(families, `sluice_${metric.name}`);
    assert.equal(parsed.type, metric.type.toUpperCase());
    assert.equal(parsed.help, metric.help);
    assert.equal(metric.name.endsWith("_total"), metric.type === "counter", `${metric.name}: _total iff a counter`);
    if (metric.type === "summary") {
      for (const labels of [{ pipeline: "a", stage: "parse" }, { pipeline: "b", stage: "load" }]) {
        assert.equal(summaryOf(text, `sluice_${metric.name}`, labels).count, "0");
      }
    } else {
      const perPipeline = metric.scope === "pipeline" ? 1 : 2;
      assert.equal(parsed.metrics.length, 2 * perPipeline, `${metric.name}: samples of both pipelines`);
    }
    assert.equal(text.split("\n").filter((line) => line === `# TYPE sluice_${metric.name} ${metric.type}`).length, 1);
  }
});

test("toPrometheus() escapes label values: quotes, backslashes and line feeds in names survive a parser", async () => {
  const name = 'say "hi"\\now\nnext';
  const pipeline = new Pipeline({ name, stages: [stage('st"age\\1', (n: number) => n)] });
  await pipeline.run([1]);
  const families = parsePrometheusTextFormat(toPrometheus(pipeline));
  assert.equal(sampleOf(families, "sluice_items_completed_total", { pipeline: name }), 1);
  assert.equal(
    sampleOf(families, "sluice_stage_items_completed_total", { pipeline: name, stage: 'st"age\\1' }),
    1,
  );
});

test("toPrometheus() takes bare metrics with labels, and a prefix", async () => {
  const pipeline = mixedPipeline();
  const metrics: PipelineMetrics = await pipeline.run(range(5));
  const text = toPrometheus(metrics, { prefix: "shop_", labels: { pipeline: "orders", instance: "w1" } });
  const families = parsePrometheusTextFormat(text);
  assert.equal(sampleOf(families, "shop_items_ingested_total", { pipeline: "orders", instance: "w1" }), 5);
  assert.equal(
    sampleOf(families, "shop_stage_items_failed_total", { pipeline: "orders", instance: "w1", stage: "parse" }),
    1,
  );
  assert.ok(!text.includes("sluice_"));
  const unlabelled = parsePrometheusTextFormat(toPrometheus(metrics, { prefix: "" }));
  assert.equal(sampleOf(unlabelled, "items_ingested_total", {}), 5);
});

test("toPrometheus() on a pipeline that never ran gives zeros, and live values while it runs", async () => {
  const release = deferred();
  const started = deferred();
  const pipeline = new Pipeline({
    name: "live",
    stages: [stage("wait", async (n: number) => {
      started.resolve();
      await release.promise;
      return n;
    })],
  });
  const idleText = toPrometheus(pipeline);
  const idle = parsePrometheusTextFormat(idleText);
  assert.equal(sampleOf(idle, "sluice_items_ingested_total", { pipeline: "live" }), 0);
  const idleSummary = summaryOf(idleText, "sluice_stage_latency_seconds", { pipeline: "live", stage: "wait" });
  assert.deepEqual(idleSummary.quantiles, { "0.5": "0", "0.95": "0", "0.99": "0" });
  assert.equal(idleSummary.count, "0");

  const done = pipeline.run(range(3));
  await guard(started.promise, "the first item started");
  const live = parsePrometheusTextFormat(toPrometheus(pipeline));
  assert.equal(sampleOf(live, "sluice_stage_items_in_flight", { pipeline: "live", stage: "wait" }), 1);
  assert.equal(sampleOf(live, "sluice_items_in_flight", { pipeline: "live" }), 3);
  release.resolve();
  await done;
});

test("toPrometheus() and metricsHandler() refuse a bad prefix, bad label names and two pipelines of one name", () => {
  const pipeline = mixedPipeline();
  assert.throws(() => toPrometheus(pipeline, { prefix: "9lives" }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.field, "prefix");
    assert.match(error.message, /got "9lives"/);
    return true;
  });
  assert.throws(() => toPrometheus(pipeline, { labels: { stage: "x" } }), /invalid label name "stage"/);
  assert.throws(() => toPrometheus(pipeline, { labels: { "a-b": "x" } }), /invalid label name "a-b"/);
  assert.throws(() => metricsHandler([pipeline, mixedPipeline()]), /same labels \(pipeline "etl"\)/);
  assert.throws(() => metricsHandler([pipeline, {} as never]), /pipelines\[1\] must be a Pipeline/);
  assert.throws(() => toPrometheus(42 as never), TypeError);
});

test("metricsHandler() answers GET with the exposition format, HEAD without a body, other methods with 405", async () => {
  const pipeline = mixedPipeline();
  await pipeline.run(range(10));
  const handler = metricsHandler(pipeline);
  const response = handler(new Request("http://localhost/metrics"));
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
  const families = parsePrometheusTextFormat(await response.text());
  assert.equal(sampleOf(families, "sluice_items_ingested_total", { pipeline: "etl" }), 10);

  const head = handler(new Request("http://localhost/metrics", { method: "HEAD" }));
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
  const post = handler(new Request("http://localhost/metrics", { method: "POST", body: "x" }));
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
});

interface Served {
  readonly url: string;
  close(): Promise<void>;
}

interface DenoServe {
  serve(
    options: { port: number; hostname: string; onListen?: () => void },
    handler: (request: Request) => Response,
  ): { addr: { port: number }; shutdown(): Promise<void> };
}

interface BunServe {
  serve(options: { port: number; hostname: string; fetch: (request: Request) => Response }): {
    port: number;
    stop(force?: boolean): Promise<void> | void;
  };
}

/** Serves `handler` with this runtime's own HTTP server: Deno.serve, Bun.serve, or node:http through the adapter. */
function serve(handler: (request: Request) => Response): Promise<Served> {
  if (runtime() === "deno") {
    const deno = (globalThis as unknown as { Deno: DenoServe }).Deno;
    const server = deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, handler);
    return Promise.resolve({ url: `http://127.0.0.1:${server.addr.port}/metrics`, close: () => server.shutdown() });
  }
  if (runtime() === "bun") {
    const bun = (globalThis as unknown as { Bun: BunServe }).Bun;
    const server = bun.serve({ port: 0, hostname: "127.0.0.1", fetch: handler });
    return Promise.resolve({
      url: `http://127.0.0.1:${server.port}/metrics`,
      close: async () => void await server.stop(true),
    });
  }
  // The two-line Node adapter from the README.
  const server = createServer(async (req, res) => {
    const response = handler(new Request(`http://${req.headers.host}${req.url}`, { method: req.method }));
    res.writeHead(response.status, Object.fromEntries(response.headers)).end(await response.text());
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}/metrics`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}

test(`metricsHandler() serves live metrics from this runtime's own HTTP server (${runtime()})`, async () => {
  const pipeline = mixedPipeline("served");
  const other = mixedPipeline("other");
  const served = await serve(metricsHandler([pipeline, other]));
  try {
    await pipeline.run(range(15));
    const response = await fetch(served.url);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
    const families = parsePrometheusTextFormat(await response.text());
    assert.equal(sampleOf(families, "sluice_items_ingested_total", { pipeline: "served" }), 15);
    assert.equal(sampleOf(families, "sluice_items_ingested_total", { pipeline: "other" }), 0);
    const rejected = await fetch(served.url, { method: "DELETE" });
    assert.equal(rejected.status, 405);
    await rejected.body?.cancel();
  } finally {
    await served.close();
  }
});
