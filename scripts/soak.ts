/**
 * Soak test (issue 3, item 4): pushes many items through a four-stage
 * pipeline into a slow sink and watches memory. RSS must plateau: a pipeline
 * holds a bounded number of items, so nothing it keeps may grow with the
 * number of items it has processed.
 *
 * The pipeline:
 *   parse     stage, sync, concurrency 1
 *   validate  stage, async, concurrency 4: 1% of items fail with a PermanentError (dead-lettered)
 *   enrich    stage, concurrency 8, maxRetries 2, 1 ms backoff timer, timeoutMs 60 s:
 *             0.1% of items fail their first attempt and succeed on the retry
 *   load      batchStage, batchSize 100, flushIntervalMs 50, concurrency 2: the slow sink,
 *             a 1 ms timer every 1000 items, so queues fill and backpressure reaches the source
 * The dead letter queue is a WritableStream that counts and discards entries
 * (so dead letters do not pile up in `pipeline.deadLetters`).
 *
 * It samples RSS (and the heap) every `--sample-ms` (default 1000), with a
 * full GC before every `--gc-every`th sample (default 10) when the runtime
 * has a GC hook, prints each sample, then the final metrics and the slope of
 * RSS over the second half of the run in MB per million items (a
 * least-squares fit of RSS against items ingested).
 *
 * Exit code 1 when conservation fails (ingested ≠ N, ingested ≠ completed +
 * failed, items in flight, dead letters or retries ≠ what was injected, the
 * sink or the dead letter stream saw a different count), or when memory grows:
 * - RSS slope over the second half above `--max-slope` (default 2 MB per
 *   million items). Enforced only when the second half spans at least
 *   `--min-slope-items` items (default 2,000,000): over fewer items, GC and
 *   allocator noise of a few MB swamps any per-item growth.
 * - With a GC hook, the heap after a full GC growing by more than
 *   `--max-heap-growth` MB (default 8) over the second half (the fitted
 *   slope times the items it spans). That heap holds only what the run
 *   keeps, so this works on short runs (CI) too.
 *
 * Why 2 MB per million items: that is 2 bytes per item. The smallest
 * plausible leak is one pointer slot per item (8 bytes: an array that keeps
 * growing) or one small object per dead letter (≥ 200 bytes × 1% = 2 bytes
 * per item); a retained promise or closure per item is 50–200 bytes. A
 * healthy run's RSS only moves with GC and allocator noise, which a fit over
 * ≥ 5 million items and ~80 samples puts under 1 MB per million (measured:
 * -0.4 on Node over 10 million items).
 *
 * Why 8 MB of heap: the pipeline holds at most Σ(queueSize + concurrency ×
 * batchSize) ≈ 4,200 items plus 64 dead letters in the stream's queue; at a
 * few hundred bytes each that is about 2 MB, the most a plateaued heap can
 * move between samples. 8 MB is four times that, and a leak of 80 bytes per
 * item (one small object) already exceeds it over 100,000 items.
 *
 * Usage (N defaults to 10,000,000; a full run takes a few minutes):
 *   node --expose-gc --import tsx scripts/soak.ts [--items N] [--max-slope MB] [--sample-ms MS] [--gc-every K]
 *     [--min-slope-items N] [--max-heap-growth MB]
 *   npx deno run -A --v8-flags=--expose-gc scripts/soak.ts [options]
 *   npx bun scripts/soak.ts [options]
 * With a GC hook (`--expose-gc`; Bun always has one) the samples marked
 * "after a full GC" show what the run keeps, not its garbage. Not every
 * sample forces a GC: on Deno a full GC every second makes RSS creep by a
 * few MB per million items while the heap stays flat.
 *
 * @module
 */

import { batchStage, type DeadLetter, PermanentError, Pipeline, type PipelineMetrics, stage } from "../mod.ts";

interface Options {
  readonly items: number;
  readonly maxSlope: number;
  readonly sampleMs: number;
  readonly minSlopeItems: number;
  readonly maxHeapGrowth: number;
  readonly gcEvery: number;
}

interface Sample {
  /** Seconds since the start. */
  readonly seconds: number;
  readonly ingested: number;
  readonly rssMB: number;
  readonly heapMB: number;
  /** True when taken right after a full GC: only those heap figures are compared. */
  readonly afterGc: boolean;
}

interface Row {
  readonly id: number;
  readonly value: number;
}

interface Enriched extends Row {
  readonly label: string;
}

// ---------------------------------------------------------------------------
// Runtime glue: arguments, memory, exit (Node, Deno and Bun).

interface DenoLike {
  readonly args: string[];
  memoryUsage(): { rss: number; heapUsed: number };
  exit(code: number): never;
}
interface ProcessLike {
  readonly argv: string[];
  memoryUsage(): { rss: number; heapUsed: number };
  exit(code: number): never;
  readonly versions: Record<string, string | undefined>;
  readonly version: string;
}
const deno = (globalThis as { Deno?: DenoLike }).Deno;
const proc = (globalThis as { process?: ProcessLike }).process;

function runtimeName(): string {
  if (deno) return `deno ${(deno as unknown as { version: { deno: string } }).version.deno}`;
  if (proc?.versions.bun) return `bun ${proc.versions.bun}`;
  return `node ${proc?.version}`;
}

function args(): string[] {
  return deno ? deno.args : proc!.argv.slice(2);
}

/** A full GC, where the runtime exposes one (node --expose-gc, deno --v8-flags=--expose-gc, Bun.gc). */
const collectGarbage: (() => void) | undefined = (() => {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (bun) return () => bun.gc(true);
  const gc = (globalThis as { gc?: () => void }).gc;
  return typeof gc === "function" ? () => gc() : undefined;
})();

function memory(gc: boolean): { rss: number; heapUsed: number } {
  if (gc) collectGarbage?.(); // the heap after a full GC is what the run really keeps
  return deno ? deno.memoryUsage() : proc!.memoryUsage();
}

function exit(code: number): never {
  return deno ? deno.exit(code) : proc!.exit(code);
}

function parseOptions(argv: readonly string[]): Options {
  const number = (flag: string, fallback: number): number => {
    const index = argv.indexOf(flag);
    if (index < 0) return fallback;
    const value = Number(argv[index + 1]?.replaceAll("_", ""));
    if (!Number.isFinite(value) || value < 0) {
      console.error(`${flag} needs a number, 0 or more; got ${argv[index + 1]}`);
      exit(2);
    }
    return value;
  };
  const known = new Set([
    "--items",
    "--max-slope",
    "--sample-ms",
    "--min-slope-items",
    "--max-heap-growth",
    "--gc-every",
  ]);
  for (let i = 0; i < argv.length; i += 2) {
    if (!known.has(argv[i])) {
      console.error(`unknown argument ${argv[i]}; use ${[...known].join(", ")}`);
      exit(2);
    }
  }
  return {
    items: Math.floor(number("--items", 10_000_000)),
    maxSlope: number("--max-slope", 2),
    sampleMs: Math.max(1, number("--sample-ms", 1000)),
    minSlopeItems: number("--min-slope-items", 2_000_000),
    maxHeapGrowth: number("--max-heap-growth", 8),
    gcEvery: Math.max(1, Math.floor(number("--gc-every", 10))),
  };
}

// ---------------------------------------------------------------------------
// The workload: which items fail, deterministically.

/** 1% of items: dead-lettered by `validate`. */
const isBad = (id: number) => id % 100 === 7;
/** 0.1% of items: their first `enrich` attempt fails; the retry succeeds. */
const isFlaky = (id: number) => id % 1000 === 3;

function expectedCounts(items: number): { failed: number; retries: number } {
  let failed = 0;
  let retries = 0;
  for (let id = 0; id < items; id++) {
    if (isBad(id)) failed++;
    else if (isFlaky(id)) retries++;
  }
  return { failed, retries };
}

/** `0 … count - 1` without an array or a generator frame per item. */
function source(count: number): Iterable<number> {
  return {
    [Symbol.iterator]() {
      let next = 0;
      return {
        next: (): IteratorResult<number> =>
          next < count ? { done: false, value: next++ } : { done: true, value: undefined },
      };
    },
  };
}

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

function build(sink: { loaded: number; checksum: number }, letters: { count: number }) {
  const deadLetterQueue = new WritableStream<DeadLetter>({
    write() {
      letters.count++;
    },
  }, { highWaterMark: 64 });
  let batches = 0;
  return new Pipeline({
    name: "soak",
    queueSize: 1000,
    deadLetterQueue,
    stages: [
      stage("parse", (id: number): Row => ({ id, value: id * 2 })),
      stage("validate", async (row: Row) => {
        if (isBad(row.id)) throw new PermanentError(`row ${row.id} is bad`);
        return row;
      }, { concurrency: 4 }),
      stage("enrich", async (row: Row, ctx): Promise<Enriched> => {
        if (isFlaky(row.id) && ctx.attempt === 1) throw new Error(`row ${row.id}: transient`);
        return { ...row, label: `r${row.id}` };
      }, {
        concurrency: 8,
        maxRetries: 2,
        backoff: { initialDelayMs: 1, jitter: false },
        timeoutMs: 60_000,
      }),
      batchStage("load", async (rows: readonly Enriched[]) => {
        if (++batches % 10 === 0) await tick(); // the slow part: a timer every ~1000 items
        for (const row of rows) {
          sink.loaded++;
          sink.checksum += row.value;
        }
      }, { batchSize: 100, flushIntervalMs: 50, concurrency: 2 }),
    ],
  });
}

// ---------------------------------------------------------------------------
// Measuring.

/** Least-squares slope of y against x. */
function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((sum, p) => sum + p.x, 0) / n;
  const my = points.reduce((sum, p) => sum + p.y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const p of points) {
    sxy += (p.x - mx) * (p.y - my);
    sxx += (p.x - mx) ** 2;
  }
  return sxx === 0 ? NaN : sxy / sxx;
}

const MB = 1024 * 1024;
const fmt = (n: number, digits = 1) => n.toFixed(digits);

function sample(start: number, pipeline: Pipeline<never>, gc: boolean): Sample {
  const afterGc = gc && collectGarbage !== undefined;
  const { rss, heapUsed } = memory(afterGc);
  return {
    seconds: (performance.now() - start) / 1000,
    ingested: pipeline.getMetrics().totalIngested,
    rssMB: rss / MB,
    heapMB: heapUsed / MB,
    afterGc,
  };
}

function printSample(s: Sample): void {
  console.log(
    `  t=${fmt(s.seconds).padStart(6)} s  items=${String(s.ingested).padStart(10)}  ` +
      `rss=${fmt(s.rssMB).padStart(7)} MB  heap=${fmt(s.heapMB).padStart(7)} MB${
        s.afterGc ? " (after a full GC)" : ""
      }`,
  );
}

function check(failures: string[], ok: boolean, what: string): void {
  console.log(`  ${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
}

async function main(): Promise<void> {
  const options = parseOptions(args());
  const { items } = options;
  console.log(
    `sluice soak on ${runtimeName()}: ${items} items, 4 stages, 1% failures, samples every ${options.sampleMs} ms, ` +
      (collectGarbage
        ? `a full GC before every ${options.gcEvery}th sample`
        : "no GC hook (heap figures include garbage; run with --expose-gc to check the heap)"),
  );

  const sink = { loaded: 0, checksum: 0 };
  const letters = { count: 0 };
  const pipeline = build(sink, letters);
  const samples: Sample[] = [];
  const start = performance.now();
  const take = (gc: boolean) => {
    const s = sample(start, pipeline as unknown as Pipeline<never>, gc);
    samples.push(s);
    printSample(s);
    return s;
  };
  take(true);
  // A full GC on every sample would itself move RSS (V8 gives pages back and takes them again),
  // so the heap is collected only on every gcEvery-th sample; RSS is read on all of them.
  const timer = setInterval(() => take(samples.length % options.gcEvery === 0), options.sampleMs);

  let metrics: PipelineMetrics;
  try {
    metrics = await pipeline.run(source(items));
  } finally {
    clearInterval(timer);
  }
  const last = take(true);

  const seconds = (performance.now() - start) / 1000;
  console.log(`\nfinal metrics after ${fmt(seconds)} s (${fmt(items / seconds / 1000)}k items/s):`);
  console.log(
    `  ingested=${metrics.totalIngested} completed=${metrics.totalCompleted} failed=${metrics.totalFailed} ` +
      `inFlight=${metrics.itemsInFlight} deadLetters=${metrics.deadLetterCount}`,
  );
  for (const [name, s] of Object.entries(metrics.stageMetrics)) {
    console.log(
      `  ${name.padEnd(9)} processed=${s.processed} succeeded=${s.succeeded} failed=${s.failed} retries=${s.retries} ` +
        `inFlight=${s.inFlight} queueDepth=${s.queueDepth} p50=${fmt(s.latency.p50, 3)} ms p99=${
          fmt(s.latency.p99, 3)
        } ms max=${fmt(s.latency.max, 1)} ms`,
    );
  }

  // Memory over the second half of the run, against items ingested. The
  // sample taken after the run is left out: by then the run's structures are
  // garbage, and counting it would hide what the run kept while it ran.
  const secondHalf = samples.slice(0, -1).filter((s) => s.ingested >= items / 2);
  const span = secondHalf.length > 0 ? secondHalf.at(-1)!.ingested - secondHalf[0].ingested : 0;
  const rssSlope = slope(secondHalf.map((s) => ({ x: s.ingested / 1e6, y: s.rssMB })));
  const collected = secondHalf.filter((s) => s.afterGc);
  const heapSlope = slope(collected.map((s) => ({ x: s.ingested / 1e6, y: s.heapMB })));
  const rss = samples.map((s) => s.rssMB);
  console.log(
    `\nmemory: ${samples.length} samples; RSS min ${fmt(Math.min(...rss))} MB, max ${fmt(Math.max(...rss))} MB, ` +
      `final ${fmt(last.rssMB)} MB`,
  );
  console.log(
    `  second half: ${secondHalf.length} samples over ${span} items; ` +
      `RSS slope ${fmt(rssSlope, 3)} MB per million items; heap after a full GC (${collected.length} samples) ` +
      `slope ${fmt(heapSlope, 3)} MB per million items`,
  );

  const expected = expectedCounts(items);
  const failures: string[] = [];
  console.log("\nchecks:");
  check(failures, metrics.totalIngested === items, `ingested ${metrics.totalIngested} = items ${items}`);
  check(
    failures,
    metrics.totalIngested === metrics.totalCompleted + metrics.totalFailed,
    `ingested ${metrics.totalIngested} = completed ${metrics.totalCompleted} + failed ${metrics.totalFailed}`,
  );
  check(failures, metrics.itemsInFlight === 0, `items in flight ${metrics.itemsInFlight} = 0`);
  check(
    failures,
    metrics.totalFailed === expected.failed,
    `failed ${metrics.totalFailed} = injected ${expected.failed}`,
  );
  check(
    failures,
    metrics.deadLetterCount === metrics.totalFailed && letters.count === metrics.deadLetterCount,
    `dead letters: counted ${metrics.deadLetterCount}, written to the stream ${letters.count}, failed ${metrics.totalFailed}`,
  );
  check(failures, pipeline.deadLetters.length === 0, `no dead letters kept in memory (${pipeline.deadLetters.length})`);
  check(
    failures,
    sink.loaded === metrics.totalCompleted,
    `the sink loaded ${sink.loaded} = completed ${metrics.totalCompleted}`,
  );
  check(
    failures,
    metrics.stageMetrics.enrich.retries === expected.retries,
    `retries ${metrics.stageMetrics.enrich.retries} = injected ${expected.retries}`,
  );
  if (span >= options.minSlopeItems && secondHalf.length >= 5) {
    check(
      failures,
      rssSlope <= options.maxSlope,
      `RSS slope ${fmt(rssSlope, 3)} MB per million items <= ${options.maxSlope}`,
    );
  } else {
    console.log(
      `  skip RSS slope: the second half spans ${span} items in ${secondHalf.length} samples ` +
        `(enforced from ${options.minSlopeItems} items and 5 samples; noise dominates below)`,
    );
  }
  if (collected.length >= 3) {
    // After a full GC the heap holds only what the run keeps, so it is steady
    // enough to check on short runs too: the fitted growth over the second half.
    const heapSpan = collected.at(-1)!.ingested - collected[0].ingested;
    const growth = heapSlope * heapSpan / 1e6;
    check(
      failures,
      growth <= options.maxHeapGrowth,
      `heap growth after full GCs over the second half ${fmt(growth, 2)} MB <= ${options.maxHeapGrowth} MB ` +
        `(slope ${fmt(heapSlope, 3)} MB per million items)`,
    );
  } else {
    console.log(
      `  skip heap growth: ${
        collectGarbage ? "fewer than 3 samples after a full GC in the second half (lower --gc-every)" : "no GC hook"
      }`,
    );
  }
  console.log(failures.length === 0 ? "\nsoak passed" : `\nsoak FAILED: ${failures.length} check(s)`);
  exit(failures.length === 0 ? 0 : 1);
}

await main();
