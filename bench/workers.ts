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
 * Usage: node --import tsx bench/workers.ts [--quick] [--rounds R] [--no-write]
 *        npx deno run -A bench/workers.ts …   ·   npx bun bench/workers.ts …
 *
 * sluice is its TypeScript source here on every runtime (Node through tsx,
 * in the workers too), for workerStage and the hand-written pool alike.
 * Writes bench/results/workers-<runtime>.md unless --no-write.
 *
 * @module
 */
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { Pipeline, stage, workerStage } from "../mod.ts";
import { workerKind, workerSpawner } from "../src/runtime.ts";
import { median } from "./lib/harness.ts";
import { machine, runtimeName, runtimeVersion } from "./lib/runtime.ts";
import sha256, { cheap, work } from "./workers/sha256.ts";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const rounds = Number(args[args.indexOf("--rounds") + 1]) || (quick ? 1 : 5);
const write = !args.includes("--no-write") && !quick;
const functions = new URL("./workers/sha256.ts", import.meta.url);
const poolWorker = new URL("./workers/pool_worker.ts", import.meta.url);

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
const N = quick ? 64 : 2000;
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
      });
      return worker;
    });
    for (const worker of workers) if (next < N) worker.post([next, inputs[next++]], []);
  });
  check(outputs, "hand-written pool");
}

async function measure(contenders: Record<string, (() => Promise<void>)>, items: number) {
  const names = Object.keys(contenders);
  for (const name of names) await contenders[name](); // warm-up
  const rates: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length];
      const start = performance.now();
      await contenders[name]();
      rates[name].push(items / ((performance.now() - start) / 1000));
    }
  }
  return Object.fromEntries(names.map((name) => [name, median(rates[name])]));
}

const fmt = (rate: number) => Math.round(rate).toLocaleString("en-US");
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

log(`# Worker stage bench: ${runtimeVersion()}`);
log();
const m = machine();
log(`${m.cpu}, ${m.cores} cores, ${m.os}; load average at start ${loadavg().map((x) => x.toFixed(2)).join(", ")}`);
log(`${rounds} rounds after a warm-up, interleaved (the order rotates each round); median items/s.`);
log();
log(`## 1. CPU-bound: SHA-256 (plain JS) of 64 KB buffers, ${N} items, threads: 2`);
log();
const cpu = await measure({ inline, workerStage: viaWorkerStage, "hand-written pool": handWrittenPool }, N);
log("| contender | items/s | vs inline | workerStage vs it |");
log("|---|---:|---:|---:|");
for (const [name, rate] of Object.entries(cpu)) {
  log(`| ${name} | ${fmt(rate)} | ${ratio(rate, cpu.inline)} | ${ratio(cpu.workerStage, rate)} |`);
}
log();
log(
  `Targets: workerStage >= 1.7x inline (measured ${ratio(cpu.workerStage, cpu.inline)}); within 10% of the ` +
    `hand-written pool (measured ${ratio(cpu.workerStage, cpu["hand-written pool"])}).`,
);
log(`Load average after case 1: ${loadavg().map((x) => x.toFixed(2)).join(", ")}`);

// ---------------------------------------------------------------------------
// 2. Batching: a near-free function, maxBatch 1 … 32.

const CHEAP_N = quick ? 500 : 20_000;
const numbers = Array.from({ length: CHEAP_N }, (_, i) => i);
const cheapSum = numbers.reduce((sum, n) => sum + n + 1, 0);

function cheapRun(make: () => Pipeline<never>): () => Promise<void> {
  return async () => {
    const { outputs } = await make().collect(numbers as never);
    const sum = (outputs as number[]).reduce((a, b) => a + b, 0);
    if (sum !== cheapSum) throw new Error("batching case: wrong sum");
  };
}

const batches = [1, 2, 4, 8, 16, 32];
const cheapContenders: Record<string, () => Promise<void>> = {
  inline: cheapRun(() => new Pipeline({ name: "c", stages: [stage("cheap", cheap)] }) as never),
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
const cheapRates = await measure(cheapContenders, CHEAP_N);
log("| contender | items/s | vs maxBatch 1 |");
log("|---|---:|---:|");
for (const [name, rate] of Object.entries(cheapRates)) {
  log(`| ${name} | ${fmt(rate)} | ${ratio(rate, cheapRates["maxBatch 1"])} |`);
}

// ---------------------------------------------------------------------------
// 3. Break-even: work per item.

log();
log("## 3. Break-even: busy work per item, inline vs workerStage (threads: 2)");
log();
log("| work per item | items | inline items/s | maxBatch 1 | maxBatch 8 | maxBatch 8 vs inline |");
log("|---:|---:|---:|---:|---:|---:|");
for (const micros of [0, 10, 30, 100, 300, 1000]) {
  const n = quick ? 100 : Math.min(5_000, Math.round(1_000_000 / Math.max(micros, 100)));
  const values = Array.from({ length: n }, () => micros);
  const run = (make: () => Pipeline<never>) => async () => {
    const { outputs } = await make().collect(values as never);
    if (outputs.length !== n) throw new Error("break-even case: wrong count");
  };
  const rates = await measure({
    inline: run(() => new Pipeline({ name: "w", stages: [stage("work", work)] }) as never),
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
  }, n);
  log(
    `| ${micros} µs | ${n} | ${fmt(rates.inline)} | ${fmt(rates["maxBatch 1"])} | ${fmt(rates["maxBatch 8"])} | ` +
      `${ratio(rates["maxBatch 8"], rates.inline)} |`,
  );
}
log();
log(`Load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(", ")}`);

if (write) {
  const file = new URL(`./results/workers-${runtimeName}.md`, import.meta.url);
  writeFileSync(file, lines.join("\n") + "\n");
  console.log(`\nwrote ${file.pathname}`);
}
