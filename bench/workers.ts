/**
 * The worker stage bench (issue 14), on whichever runtime runs it:
 *
 * 1. CPU-bound: SHA-256 (plain JS) of 64 KB buffers through `workerStage`
 *    with `threads: 2`, the same function inline in a `stage()`, and a
 *    hand-written pool of 2 workers (one item in flight per worker, raw
 *    `postMessage`), interleaved in one process. Every run's digests are
 *    checked. Worker start-up is inside each timed run, for both.
 * 2. Batching: a near-free function through `workerStage` with `maxBatch`
 *    1 … 32, against inline: what per-message overhead costs and how much
 *    batching buys back.
 * 3. Break-even: busy work of 0 … 1000 µs per item, inline against
 *    `workerStage` (threads 2) with `maxBatch` 1 and 8: the work per item
 *    above which a worker stage pays.
 *
 * Every worker stage run starts its workers, which costs a lot on Node from
 * the sources (tsx compiles the TypeScript in each worker). So each case
 * also times a 1-item worker run ("start-up") in the same rounds and
 * reports, besides whole runs, a steady state with that start-up taken out.
 *
 * Usage: node --import tsx bench/workers.ts [--quick] [--rounds R] [--case N] [--source] [--no-write]
 *        npx deno run -A bench/workers.ts …   ·   npx bun bench/workers.ts …
 *
 * sluice is measured as its users load it (see `loadSluice()`; `--source`
 * measures the sources everywhere): the sources on
 * Deno, an npm-style build on Node and Bun; the hand-written pool runs the
 * same function module, started the same way.
 * Writes bench/results/workers-<runtime>.md unless --no-write.
 *
 * @module
 */
import { rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { median } from "./lib/harness.ts";
import { machine, runtimeName, runtimeVersion } from "./lib/runtime.ts";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const rounds = Number(args[args.indexOf("--rounds") + 1]) || (quick ? 1 : 5);
/** `--case N` (repeatable): only those cases; the results file is then not written. */
const selected = args.flatMap((arg, i) => arg === "--case" ? [Number(args[i + 1])] : []);
const write = !args.includes("--no-write") && !quick && selected.length === 0;

type Sluice = typeof import("../mod.ts");
type Runtime = typeof import("../src/runtime.ts");
type Functions = typeof import("./workers/sha256.ts");

/** What is measured, in the form this runtime's users get it, and the function module's URL for the workers. */
interface Loaded {
  readonly sluice: Sluice;
  readonly runtime: Runtime;
  readonly fns: Functions;
  readonly functions: URL;
  readonly poolWorker: URL;
  readonly form: string;
}

/**
 * Deno: the TypeScript sources, as JSR serves them. Node and Bun: an npm-style
 * build (esbuild, the package's options, `worker_entry.js` beside the core's
 * chunk) of this working tree, with the function modules built to JavaScript
 * beside it, so no worker compiles TypeScript at start-up.
 */
async function loadSluice(): Promise<Loaded> {
  const here = (path: string) => new URL(path, import.meta.url);
  if (runtimeName === "deno" || args.includes("--source")) {
    return {
      sluice: await import("../mod.ts"),
      runtime: await import("../src/runtime.ts"),
      fns: await import("./workers/sha256.ts"),
      functions: here("./workers/sha256.ts"),
      poolWorker: here("./workers/pool_worker.ts"),
      form: "the TypeScript sources (mod.ts), as JSR serves them",
    };
  }
  const { bundleOptions, root, workerEntry } = await import("../scripts/build.ts");
  const esbuild = await import("esbuild");
  const out = join(root, "node_modules", ".cache", "sluice-bench-workers", String(process.pid));
  process.once("exit", () => rmSync(out, { recursive: true, force: true }));
  await esbuild.build({
    ...bundleOptions,
    entryPoints: [
      { in: join(root, "mod.ts"), out: "mod" },
      workerEntry,
      { in: join(root, "src", "runtime.ts"), out: "runtime" },
      { in: join(root, "bench", "workers", "sha256.ts"), out: "sha256" },
      { in: join(root, "bench", "workers", "pool_worker.ts"), out: "pool_worker" },
    ],
    outdir: out,
    splitting: true,
    sourcemap: false,
  });
  const at = (file: string) => pathToFileURL(join(out, file));
  return {
    sluice: await import(at("mod.js").href) as Sluice,
    runtime: await import(at("runtime.js").href) as Runtime,
    fns: await import(at("sha256.js").href) as Functions,
    functions: at("sha256.js"),
    poolWorker: at("pool_worker.js"),
    form: "an npm-style build of this working tree (esbuild, worker_entry.js beside the core), functions built to JS",
  };
}

const loaded = await loadSluice();
const { Pipeline, stage, workerStage } = loaded.sluice;
const { workerKind, workerSpawner } = loaded.runtime;
const { default: sha256, cheap, work } = loaded.fns;
const { functions, poolWorker } = loaded;

const lines: string[] = [];
const log = (line = "") => {
  lines.push(line);
  console.log(line);
};

// ---------------------------------------------------------------------------
// 1. CPU-bound: SHA-256 of 64 KB buffers.

const BUFFER_BYTES = 64 * 1024;
const buffers = Array.from(
  { length: 16 },
  (_, b) => new Uint8Array(BUFFER_BYTES).map((_, i) => (i * 31 + b * 7) & 255).buffer,
);
const digests = buffers.map((buffer) => sha256(buffer));
// 8,000 items: a run of 2 to 4 s. Each run starts fresh workers, whose JIT starts cold while the inline stage's is
// hot from the rounds before; at 2,000 items (under a second) that per-run cost was 5-10% of a worker run.
const N = quick ? 64 : 8000;
const inputs = Array.from({ length: N }, (_, i) => buffers[i % buffers.length]);

function check(outputs: readonly string[], what: string): void {
  if (outputs.length !== N) throw new Error(`${what}: ${outputs.length} outputs, expected ${N}`);
  outputs.forEach((digest, i) => {
    if (digest !== digests[i % buffers.length]) throw new Error(`${what}: wrong digest for item ${i}`);
  });
}

async function inline(): Promise<void> {
  const pipeline = new Pipeline({ name: "inline", stages: [stage("sha256", (buffer: ArrayBuffer) => sha256(buffer))] });
  check((await pipeline.collect(inputs)).outputs, "inline");
}

async function viaWorkerStage(): Promise<void> {
  const pipeline = new Pipeline({
    name: "workers",
    stages: [workerStage<ArrayBuffer, string>("sha256", functions, { threads: 2 })],
  });
  check((await pipeline.collect(inputs)).outputs, "workerStage");
}

/** Two workers, each sent the next buffer as soon as it posts a digest back. */
async function handWrittenPool(): Promise<void> {
  const spawn = await workerSpawner(workerKind()!);
  const outputs: string[] = new Array(N);
  let next = 0;
  let done = 0;
  await new Promise<void>((resolve, reject) => {
    const workers = Array.from({ length: 2 }, () => {
      const worker = spawn(poolWorker, {
        message(data) {
          const [id, digest] = data as [number, string];
          outputs[id] = digest;
          if (++done === N) {
            for (const w of workers) w.terminate();
            resolve();
          } else if (next < N) {
            worker.post([next, inputs[next++]], []);
          }
        },
        crash: reject,
      }, runtimeName === "deno");
      return worker;
    });
    for (const worker of workers) if (next < N) worker.post([next, inputs[next++]], []);
  });
  check(outputs, "hand-written pool");
}

/** Median seconds per run of each contender, interleaved after a warm-up (the order rotates each round). */
async function measureSeconds(contenders: Record<string, () => Promise<void>>): Promise<Record<string, number>> {
  const names = Object.keys(contenders);
  for (const name of names) await contenders[name](); // warm-up
  const seconds: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length];
      const start = performance.now();
      await contenders[name]();
      seconds[name].push((performance.now() - start) / 1000);
    }
  }
  return Object.fromEntries(names.map((name) => [name, median(seconds[name])]));
}

/**
 * A worker stage run that starts its two workers and sends them one item:
 * the start-up every worker run pays (loading the modules; on Node from the
 * sources, tsx compiling the TypeScript in each worker).
 */
async function startUp(): Promise<void> {
  const pipeline = new Pipeline({
    name: "start-up",
    stages: [workerStage<number, number>("cheap", functions, { threads: 2, export: "cheap" })],
  });
  if ((await pipeline.collect([1])).outputs[0] !== 2) throw new Error("start-up run: wrong output");
}

/** Whole-run and steady-state items/s: steady takes the median start-up out of the runs named in `workers`. */
function rates(
  seconds: Record<string, number>,
  items: number,
  workers: readonly string[],
): { whole: Record<string, number>; steady: Record<string, number> } {
  const start = seconds["start-up"];
  const names = Object.keys(seconds).filter((name) => name !== "start-up");
  const whole = Object.fromEntries(names.map((name) => [name, items / seconds[name]]));
  const steady = Object.fromEntries(
    names.map((
      name,
    ) => [name, items / (workers.includes(name) ? Math.max(seconds[name] - start, 0.001) : seconds[name])]),
  );
  return { whole, steady };
}

const fmt = (rate: number) => Math.round(rate).toLocaleString("en-US");
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
const load = () => loadavg().map((x) => x.toFixed(2)).join(", ");

log(`# Worker stage bench: ${runtimeVersion()}`);
log();
const m = machine();
log(`${m.cpu}, ${m.cores} cores, ${m.os}; load average at start ${load()}`);
log(`sluice: ${loaded.form}.`);
log(`${rounds} rounds after a warm-up, interleaved (the order rotates each round); medians.`);
log("Whole run: items / the run's time, worker start-up included. Steady: the median start-up (a 1-item worker");
log("stage run, measured in the same rounds) taken out of the worker runs' time.");
log();
/** Case 1. */
async function cpuBound(): Promise<void> {
  log(`## 1. CPU-bound: SHA-256 (plain JS) of 64 KB buffers, ${N} items, threads: 2`);
  log();
  const cpuSeconds = await measureSeconds({
    inline,
    workerStage: viaWorkerStage,
    "hand-written pool": handWrittenPool,
    "start-up": startUp,
  });
  const cpu = rates(cpuSeconds, N, ["workerStage", "hand-written pool"]);
  log(`Start-up: ${Math.round(cpuSeconds["start-up"] * 1000)} ms.`);
  log();
  log("| contender | whole run items/s | vs inline | steady items/s | vs inline | workerStage vs it (steady) |");
  log("|---|---:|---:|---:|---:|---:|");
  for (const name of Object.keys(cpu.whole)) {
    log(
      `| ${name} | ${fmt(cpu.whole[name])} | ${ratio(cpu.whole[name], cpu.whole.inline)} | ${
        fmt(cpu.steady[name])
      } | ` +
        `${ratio(cpu.steady[name], cpu.steady.inline)} | ${ratio(cpu.steady.workerStage, cpu.steady[name])} |`,
    );
  }
  log();
  log(
    `Targets: workerStage >= 1.7x inline (measured ${ratio(cpu.whole.workerStage, cpu.whole.inline)} whole, ` +
      `${ratio(cpu.steady.workerStage, cpu.steady.inline)} steady); within 10% of the hand-written pool (measured ` +
      `${ratio(cpu.whole.workerStage, cpu.whole["hand-written pool"])} whole, ` +
      `${ratio(cpu.steady.workerStage, cpu.steady["hand-written pool"])} steady).`,
  );
  log(`Load average after case 1: ${load()}`);
}

// ---------------------------------------------------------------------------
// 2. Batching: a near-free function, maxBatch 1 … 32.

async function batching(): Promise<void> {
  const CHEAP_N = quick ? 500 : 20_000;
  const numbers = Array.from({ length: CHEAP_N }, (_, i) => i);
  const cheapSum = numbers.reduce((sum, n) => sum + n + 1, 0);

  function cheapRun(make: () => InstanceType<Sluice["Pipeline"]>): () => Promise<void> {
    return async () => {
      const { outputs } = await make().collect(numbers as never);
      const sum = (outputs as number[]).reduce((a, b) => a + b, 0);
      if (sum !== cheapSum) throw new Error("batching case: wrong sum");
    };
  }

  const batches = [1, 2, 4, 8, 16, 32];
  const cheapContenders: Record<string, () => Promise<void>> = {
    inline: cheapRun(() => new Pipeline({ name: "c", stages: [stage("cheap", cheap)] }) as never),
    "start-up": startUp,
  };
  for (const maxBatch of batches) {
    cheapContenders[`maxBatch ${maxBatch}`] = cheapRun(() =>
      new Pipeline({
        name: "c",
        stages: [workerStage<number, number>("cheap", functions, { threads: 2, export: "cheap", maxBatch })],
      }) as never
    );
  }
  log();
  log(`## 2. Batching: n => n + 1 (no work), ${CHEAP_N} items, threads: 2`);
  log();
  const cheapSeconds = await measureSeconds(cheapContenders);
  const cheapRates = rates(cheapSeconds, CHEAP_N, batches.map((b) => `maxBatch ${b}`));
  log(`Start-up: ${Math.round(cheapSeconds["start-up"] * 1000)} ms.`);
  log();
  log("| contender | whole run items/s | steady items/s | steady vs maxBatch 1 |");
  log("|---|---:|---:|---:|");
  for (const name of Object.keys(cheapRates.whole)) {
    log(
      `| ${name} | ${fmt(cheapRates.whole[name])} | ${fmt(cheapRates.steady[name])} | ` +
        `${ratio(cheapRates.steady[name], cheapRates.steady["maxBatch 1"])} |`,
    );
  }
  log(`Load average after case 2: ${load()}`);
}

// ---------------------------------------------------------------------------
// 3. Break-even: work per item.

async function breakEven(): Promise<void> {
  log();
  log("## 3. Break-even: busy work per item, inline vs workerStage (threads: 2), steady items/s");
  log();
  log("| work per item | items | inline | maxBatch 1 | maxBatch 8 | maxBatch 8 vs inline | start-up |");
  log("|---:|---:|---:|---:|---:|---:|---:|");
  for (const micros of [0, 10, 30, 100, 300, 1000]) {
    const n = quick ? 100 : Math.min(5_000, Math.round(1_000_000 / Math.max(micros, 100)));
    const values = Array.from({ length: n }, () => micros);
    const run = (make: () => InstanceType<Sluice["Pipeline"]>) => async () => {
      const { outputs } = await make().collect(values as never);
      if (outputs.length !== n) throw new Error("break-even case: wrong count");
    };
    const seconds = await measureSeconds({
      inline: run(() => new Pipeline({ name: "w", stages: [stage("work", work)] }) as never),
      "start-up": startUp,
      "maxBatch 1": run(() =>
        new Pipeline({
          name: "w",
          stages: [workerStage<number, number>("work", functions, { threads: 2, export: "work", maxBatch: 1 })],
        }) as never
      ),
      "maxBatch 8": run(() =>
        new Pipeline({
          name: "w",
          stages: [workerStage<number, number>("work", functions, { threads: 2, export: "work" })],
        }) as never
      ),
    });
    const { steady } = rates(seconds, n, ["maxBatch 1", "maxBatch 8"]);
    log(
      `| ${micros} µs | ${n} | ${fmt(steady.inline)} | ${fmt(steady["maxBatch 1"])} | ${fmt(steady["maxBatch 8"])} | ` +
        `${ratio(steady["maxBatch 8"], steady.inline)} | ${Math.round(seconds["start-up"] * 1000)} ms |`,
    );
  }
}

const cases = [cpuBound, batching, breakEven];
for (const [index, run] of cases.entries()) if (selected.length === 0 || selected.includes(index + 1)) await run();
log();
log(`Load average at the end: ${load()}`);

if (write) {
  const file = new URL(`./results/workers-${runtimeName}.md`, import.meta.url);
  writeFileSync(file, lines.join("\n") + "\n");
  console.log(`\nwrote ${file.pathname}`);
}
