/**
 * sluice's benchmark suite (issue #4): the same work through sluice, a naive
 * chain of `TransformStream`s, p-map, Effect's `Stream`, Node's
 * `Readable.prototype.map` and a plain `for await` loop, in one process,
 * interleaved after a warm-up; median items/s and the ratio to sluice.
 *
 * Runs unchanged on the three runtimes:
 *
 *   node --import tsx bench/main.ts      (npm run bench)
 *   npx deno run -A bench/main.ts
 *   npx bun bench/main.ts
 *
 * Options:
 *   --quick        tiny N, one round, every contender, every case (CI: the suite cannot rot);
 *                  writes bench/results/quick/<runtime>.{json,md}
 *   --case <n>     run only case n (repeatable, or a comma list); the other cases in the
 *                  results files are kept
 *   --rounds <n>   measured rounds per case instead of the case's own
 *   --n <n>        items per run instead of the case's own (for exploring; the report records it)
 *   --contenders a,b   only these contenders (and sluice, the yardstick)
 *   --queue-size <n>  sluice's queueSize per stage instead of its default (and as many items held by
 *                  buffered_loop); the report says so in each case's notes
 *   --budget <s>   seconds a measured throughput run may take (default 20; 0: no limit); a contender whose
 *                  warm-up rate says N would take longer runs fewer items, and the report says so
 *   --no-write     print the table only
 *   --render       run nothing: rewrite results/<runtime>.md (and the targets in the JSON) from results/<runtime>.json
 *
 * Results: bench/results/<runtime>.json and bench/results/<runtime>.md, and the
 * table on stdout. Nothing here asserts a timing; a wrong result fails the run.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import os from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { type BenchCase, cases, ITEM_SIZE_CONTENDERS, ITEM_SIZES } from "./cases.ts";
import { measureLatency, measureThroughput } from "./lib/harness.ts";
import { type Contender, withQueueSize } from "./lib/job.ts";
import { measureMemory, memoryChild, mib } from "./lib/memory.ts";
import {
  type CaseReport,
  libraryVersions,
  markdown,
  merge,
  type Report,
  type Row,
  type SizeReport,
  write,
} from "./lib/report.ts";
import {
  collectionBeforeRun,
  gitCommit,
  machine,
  rss,
  runtimeName,
  runtimeVersion,
  sourceHash,
} from "./lib/runtime.ts";
import { measureScaling, type ScalingResult } from "./lib/scaling.ts";
import { sluiceForm } from "./lib/sluice_module.ts";

/** The library code this process loaded (the working tree may change while the suite runs). */
const SOURCE = sourceHash();

/**
 * Each contender's module, imported only when it is about to run: a memory
 * child (case 5) loads its own contender and no other's library, so its heap,
 * and with it the garbage collector's headroom, holds nothing another brought.
 */
const CONTENDER_MODULES: Readonly<Record<string, () => Promise<Contender>>> = {
  sluice: async () => (await import("./contenders/sluice.ts")).sluice,
  sluice_ordered: async () => (await import("./contenders/sluice.ts")).sluiceOrdered,
  naive_streams: async () => (await import("./contenders/naive_streams.ts")).naiveStreams,
  p_map: async () => (await import("./contenders/p_map.ts")).pMapContender,
  p_map_retry: async () => (await import("./contenders/p_map_retry.ts")).pMapRetry,
  effect: async () => (await import("./contenders/effect.ts")).effect,
  node_readable: async () => (await import("./contenders/node_readable.ts")).nodeReadable,
  for_await: async () => (await import("./contenders/for_await.ts")).forAwait,
  buffered_loop: async () => (await import("./contenders/buffered_loop.ts")).bufferedLoop,
  worker_pool: async () => (await import("./contenders/worker_pool.ts")).workerPool,
};
const loaded = new Map<string, Contender>();
/** Seconds one measured throughput run may take before its contender gets fewer items (0: no limit). */
const DEFAULT_BUDGET = 20;
const SCRIPT = fileURLToPath(import.meta.url);
const RESULTS = fileURLToPath(new URL("./results/", import.meta.url));

interface Args {
  quick: boolean;
  cases: number[];
  rounds: number | undefined;
  write: boolean;
  childMemory: string | undefined;
  n: number | undefined;
  queueSize: number | undefined;
  only: string[];
  budget: number;
  render: boolean;
  /** Case 5's child: the size of each item. */
  itemBytes: number | undefined;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    quick: false,
    cases: [],
    rounds: undefined,
    write: true,
    childMemory: undefined,
    n: undefined,
    queueSize: undefined,
    only: [],
    budget: DEFAULT_BUDGET,
    render: false,
    itemBytes: undefined,
  };
  const value = (i: number, flag: string) => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith("--")) throw new Error(`${flag} needs a value`);
    return v;
  };
  const integer = (text: string, flag: string) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} takes a positive integer; got ${JSON.stringify(text)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--quick") args.quick = true;
    else if (arg === "--no-write") args.write = false;
    else if (arg === "--render") args.render = true;
    else if (arg === "--case") {
      for (const part of value(i++, arg).split(",")) args.cases.push(integer(part, arg));
    } else if (arg === "--rounds") args.rounds = integer(value(i++, arg), arg);
    else if (arg === "--child-memory") args.childMemory = value(i++, arg);
    else if (arg === "--budget") {
      args.budget = Number(value(i++, arg));
      if (!(args.budget >= 0)) throw new Error(`--budget takes seconds, 0 or more; got ${argv[i]}`);
    } else if (arg === "--n") args.n = integer(value(i++, arg), arg);
    else if (arg === "--queue-size") args.queueSize = integer(value(i++, arg), arg);
    else if (arg === "--item-bytes") args.itemBytes = integer(value(i++, arg), arg);
    else if (arg === "--contenders") args.only.push(...value(i++, arg).split(",").map(knownContender));
    else throw new Error(`unknown argument ${JSON.stringify(arg)}; see the options at the top of bench/main.ts`);
  }
  return args;
}

function knownContender(name: string): string {
  if (!(name in CONTENDER_MODULES)) {
    throw new Error(
      `no contender ${JSON.stringify(name)}; the contenders are ${Object.keys(CONTENDER_MODULES).join(", ")}`,
    );
  }
  return name;
}

/** Loads a contender; with `queueSize`, one that runs every job with that `queueSize`. */
async function load(name: string, queueSize?: number): Promise<Contender> {
  let found = loaded.get(knownContender(name));
  if (!found) loaded.set(name, found = await CONTENDER_MODULES[name]());
  return queueSize === undefined ? found : withQueueSize(found, queueSize);
}

/** A contender already loaded by `load`. */
function contender(name: string): Contender {
  return loaded.get(name)!;
}

const log = (line: string) => console.log(line);

async function runCase(benchCase: BenchCase, args: Args, commit: string): Promise<CaseReport> {
  const size = { ...(args.quick ? benchCase.quick : benchCase.full) };
  if (args.rounds !== undefined) size.rounds = args.rounds;
  if (args.n !== undefined) size.n = args.n;
  const names = args.only.length === 0
    ? benchCase.contenders
    : benchCase.contenders.filter((name) => name === "sluice" || args.only.includes(name));
  const contenders = await Promise.all(names.map((name) => load(name, args.queueSize)));
  log(`\n== case ${benchCase.id}: ${benchCase.title} (N = ${size.n.toLocaleString("en-US")})`);
  const started = performance.now();
  const loadBefore = os.loadavg()[0];
  const notes = [...benchCase.notes];
  if (args.queueSize !== undefined) {
    notes.push(`sluice ran with queueSize ${args.queueSize} per stage (--queue-size), not its default.`);
  }
  let rows: Row[];
  let baseline: Row | undefined;
  /** Case 5 at the other item sizes. */
  const bySize: SizeReport[] = [];
  if (benchCase.kind === "throughput") {
    const running = await benchCase.start?.(); // case 7's server
    let results;
    try {
      results = await measureThroughput(benchCase, contenders, size, args.quick ? 0 : args.budget, log);
    } finally {
      await running?.stop();
    }
    const sluiceRate = results.find((r) => r.contender === "sluice")!.itemsPerSecond;
    for (const r of results) {
      if (r.n < size.n) {
        notes.push(
          `${r.contender} ran ${r.n.toLocaleString("en-US")} items per run, not ${
            size.n.toLocaleString("en-US")
          }: at its ` +
            `warm-up rate a run would have taken over the ${args.budget} s budget (--budget). Its items/s is over fewer items.`,
        );
      }
    }
    rows = results.map((r) => ({
      contender: r.contender,
      how: contender(r.contender).how,
      n: r.n,
      itemsPerSecond: r.itemsPerSecond,
      ratioToSluice: r.itemsPerSecond / sluiceRate,
      samples: r.samples,
    }));
  } else if (benchCase.kind === "memory") {
    const memoryRows = async (list: readonly Contender[], n: number, itemBytes?: number) => {
      const results = await measureMemory(benchCase, list, { ...size, n }, args.queueSize, SCRIPT, log, itemBytes);
      const at = itemBytes === undefined ? "" : ` at ${itemBytes / 1024} KB`;
      for (const r of results) {
        if (r.error) notes.push(`${r.contender}${at} gave no result: ${r.error}.`);
        else if (r.source !== SOURCE) {
          notes.push(`${r.contender}'s child process${at} loaded different library code (src hash ${r.source}).`);
        }
      }
      return results.map((r): Row => ({
        contender: r.contender,
        how: contender(r.contender).how,
        ...(r.error ? { error: r.error } : {}),
        peakRssAboveBaselineMiB: mib(r.peakRss - r.baselineRss),
        baselineRssMiB: mib(r.baselineRss),
        osMaxRssMiB: r.maxRss === undefined ? undefined : mib(r.maxRss),
        itemsPerSecond: r.itemsPerSecond,
        seconds: r.seconds,
      }));
    };
    rows = await memoryRows(contenders, size.n);
    if (benchCase.id === 5 && !args.quick) {
      rows = await withRepeats(rows, contenders, (pair) => memoryRows(pair, size.n));
    }
    if (benchCase.id === 5) {
      const list = contenders.filter((c) => ITEM_SIZE_CONTENDERS.includes(c.name));
      for (const item of ITEM_SIZES) {
        const n = args.quick ? item.quick : item.full;
        log(`  -- ${item.bytes / 1024} KB items, N = ${n.toLocaleString("en-US")}`);
        bySize.push({ itemBytes: item.bytes, n, rows: await memoryRows(list, n, item.bytes) });
      }
    }
  } else if (benchCase.kind === "scaling") {
    rows = scalingRows(await measureScaling(benchCase, contenders.find((c) => c.name === "sluice")!, size, log));
  } else {
    const { baseline: base, results } = await measureLatency(benchCase, contenders, await load("for_await"), size, log);
    baseline = {
      contender: "baseline (no stages)",
      how: "for await straight from the trickle source to the sink",
      p50Ms: base.p50Ms,
      p99Ms: base.p99Ms,
      maxMs: base.maxMs,
      samples: base.samples,
    };
    rows = results.map((r) => ({
      contender: r.contender,
      how: contender(r.contender).how,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      maxMs: r.maxMs,
      addedP50PerStageMs: (r.p50Ms - base.p50Ms) / benchCase.stages,
      addedP99PerStageMs: (r.p99Ms - base.p99Ms) / benchCase.stages,
      samples: r.samples,
    }));
  }
  const loadAfter = os.loadavg()[0];
  log(
    `  (${((performance.now() - started) / 1000).toFixed(1)} s; load average ${loadBefore.toFixed(2)} → ${
      loadAfter.toFixed(2)
    })`,
  );
  return {
    id: benchCase.id,
    title: benchCase.title,
    kind: benchCase.kind,
    date: new Date().toISOString(),
    commit,
    source: SOURCE,
    n: size.n,
    rounds: size.rounds,
    warmup: size.warmup,
    loadAverage: { before: round2(loadBefore), after: round2(loadAfter) },
    rows,
    ...(baseline ? { baseline } : {}),
    ...(bySize.length > 0 ? { bySize } : {}),
    ...(benchCase.excluded ? { excluded: benchCase.excluded } : {}),
    notes,
    sluiceForm,
    ...(args.queueSize === undefined ? {} : { queueSize: args.queueSize }),
    collection: benchCase.kind === "memory"
      ? "a full collection in each child, before its baseline"
      : await collectionBeforeRun(),
  };
}

/** How many children case 5 runs for each of the two contenders its target compares (the median is reported). */
const TARGET_PAIR_CHILDREN = 3;

/**
 * Case 5's target compares sluice with buffered_loop, and one child's peak
 * moves by several MiB from run to run (when the collector happens to run):
 * the two run `TARGET_PAIR_CHILDREN` children each, alternating, and each
 * row is the child with the median growth, with every child's growth beside it.
 */
async function withRepeats(
  rows: Row[],
  contenders: readonly Contender[],
  run: (pair: readonly Contender[]) => Promise<Row[]>,
): Promise<Row[]> {
  const pair = contenders.filter((c) => c.name === "sluice" || c.name === "buffered_loop");
  if (pair.length !== 2) return rows;
  const more: Row[][] = [];
  for (let i = 1; i < TARGET_PAIR_CHILDREN; i++) {
    log(`  -- sluice and buffered_loop again (${i + 1} of ${TARGET_PAIR_CHILDREN})`);
    more.push(await run(i % 2 === 1 ? [...pair].reverse() : pair));
  }
  return rows.map((row) => {
    if (!pair.some((c) => c.name === row.contender)) return row;
    const all = [row, ...more.map((m) => m.find((r) => r.contender === row.contender)!)].filter((r) => !r.error);
    if (all.length === 0) return row;
    const sorted = [...all].sort((a, b) => a.peakRssAboveBaselineMiB! - b.peakRssAboveBaselineMiB!);
    return { ...sorted[(sorted.length - 1) >> 1], peakRssSamplesMiB: all.map((r) => r.peakRssAboveBaselineMiB!) };
  });
}

/** Case 8's rows: each point's items/s, its cost per item per stage, and those relative to its sweep's first point. */
function scalingRows(results: readonly ScalingResult[]): Row[] {
  const how = contender("sluice").how;
  const ns = (r: ScalingResult) => 1e9 / (r.itemsPerSecond * r.stages);
  return results.map((r, i) => {
    const first = results.find((x) => x.sweep === r.sweep)!;
    const previous = i > 0 && results[i - 1].sweep === r.sweep ? results[i - 1] : undefined;
    const perItem = (x: ScalingResult) => 1e9 / x.itemsPerSecond;
    return {
      contender: "sluice",
      how,
      sweep: r.sweep,
      stages: r.stages,
      concurrency: r.concurrency,
      n: r.n,
      itemsPerSecond: r.itemsPerSecond,
      samples: r.samples,
      nsPerItemPerStage: ns(r),
      relativeCostPerItemPerStage: ns(r) / ns(first),
      ...(r.sweep === "stages" && previous
        ? { marginalNsPerStage: (perItem(r) - perItem(previous)) / (r.stages - previous.stages) }
        : {}),
      ...(r.sweep === "concurrency" ? { relativeThroughput: r.itemsPerSecond / first.itemsPerSecond } : {}),
    };
  });
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function commandLine(args: Args): string {
  const base = runtimeName === "node"
    ? "node --import tsx bench/main.ts"
    : runtimeName === "deno"
    ? "deno run -A --v8-flags=--expose-gc bench/main.ts"
    : "bun bench/main.ts";
  const flags = [
    ...(args.quick ? ["--quick"] : []),
    ...args.cases.flatMap((id) => ["--case", String(id)]),
    ...(args.rounds !== undefined ? ["--rounds", String(args.rounds)] : []),
    ...(args.n !== undefined ? ["--n", String(args.n)] : []),
    ...(args.queueSize !== undefined ? ["--queue-size", String(args.queueSize)] : []),
    ...(args.only.length > 0 ? ["--contenders", args.only.join(",")] : []),
    ...(args.budget !== DEFAULT_BUDGET ? ["--budget", String(args.budget)] : []),
  ];
  return [base, ...flags].join(" ");
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const table = cases(rss);
  if (args.childMemory !== undefined) {
    const benchCase = table.find((c) => c.id === args.cases[0] && c.kind === "memory");
    if (!benchCase || args.n === undefined) throw new Error("--child-memory needs --case <memory case> and --n");
    await memoryChild(benchCase, await load(args.childMemory, args.queueSize), args.n, args.itemBytes);
    return;
  }
  if (args.render) {
    const dir = args.quick ? `${RESULTS}quick/` : RESULTS;
    const report = JSON.parse(readFileSync(`${dir}${runtimeName}.json`, "utf8")) as Report;
    const { json, md } = write(dir, report);
    log(markdown(report));
    log(`rewrote ${json} and ${md}`);
    return;
  }
  for (const id of args.cases) {
    if (!table.some((c) => c.id === id)) throw new Error(`no case ${id}; the cases are 1 to ${table.length}`);
  }
  const selected = args.cases.length > 0 ? table.filter((c) => args.cases.includes(c.id)) : table;
  const commit = gitCommit();
  log(`sluice bench: ${runtimeVersion()}, ${args.quick ? "quick" : "full"} run, commit ${commit}, src hash ${SOURCE}`);
  const started = performance.now();
  const reports: CaseReport[] = [];
  for (const benchCase of selected) reports.push(await runCase(benchCase, args, commit));

  let report: Report = {
    runtime: runtimeName,
    runtimeVersion: runtimeVersion(),
    machine: machine(),
    date: new Date().toISOString(),
    commit,
    mode: args.quick ? "quick" : "full",
    command: commandLine(args),
    libraries: libraryVersions(),
    cases: reports,
  };
  const dir = args.quick ? `${RESULTS}quick/` : RESULTS;
  if (args.write) report = merge(`${dir}${runtimeName}.json`, report);
  log("");
  log(markdown(report));
  if (args.write) {
    const { json, md } = write(dir, report);
    log(`wrote ${json} and ${md}`);
  }
  log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

try {
  await main();
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
}
