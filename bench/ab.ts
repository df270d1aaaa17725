/**
 * A/B of sluice against another checkout, in one process: case 1's job (or
 * another throughput case) through this working tree's sluice, the other
 * checkout's sluice and p-map, interleaved, with the harness's collection
 * before each run. Ratios measured in one process are what to compare on a
 * shared machine.
 *
 *   node --import tsx bench/ab.ts --base ../base [--case 1] [--n 300000] [--rounds 7]
 *   npx deno run -A --v8-flags=--expose-gc bench/ab.ts --base ../base
 *   npx bun bench/ab.ts --base ../base
 *
 * Besides wall-clock items/s it reports items per CPU second of this process
 * (`process.cpuUsage()`, garbage collector threads included), which other
 * work on a shared machine disturbs much less.
 *
 * Node and Bun load each checkout's npm bundle (built here from its `mod.ts`),
 * Deno the TypeScript source, as `bench/main.ts` does.
 *
 * @module
 */

import { rmSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { cases } from "./cases.ts";
import { pMapContender } from "./contenders/p_map.ts";
import { sluiceOn } from "./contenders/sluice.ts";
import { median } from "./lib/harness.ts";
import type { Contender } from "./lib/job.ts";
import { collectBeforeRun, rss, runtimeName } from "./lib/runtime.ts";
import type { Sluice } from "./lib/sluice_module.ts";

const args = process.argv.slice(2);
const option = (name: string, fallback?: string): string | undefined => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : fallback;
};
const here = resolve(import.meta.dirname ?? ".", "..");
const base = option("base");
if (!base) throw new Error("usage: bench/ab.ts --base <other checkout> [--case 1] [--n 300000] [--rounds 7]");
const caseId = Number(option("case", "1"));
const n = Number(option("n", "300000"));
const rounds = Number(option("rounds", "7"));

async function load(root: string, tag: string): Promise<Sluice> {
  if (runtimeName === "deno") return await import(pathToFileURL(join(root, "mod.ts")).href) as Sluice;
  const { bundle } = await import("../scripts/build.ts");
  const file = join(here, "node_modules", ".cache", "sluice-bench", `ab-${tag}-${process.pid}.js`);
  await bundle(file, { entryPoints: [join(root, "mod.ts")] });
  process.once("exit", () => {
    for (const path of [file, `${file}.map`]) rmSync(path, { force: true });
  });
  return await import(pathToFileURL(file).href) as Sluice;
}

const benchCase = cases(rss).find((c) => c.id === caseId);
if (!benchCase || benchCase.kind !== "throughput") throw new Error(`case ${caseId} is not a throughput case`);
/** `--base-first`: load the other checkout first (on Bun the first loaded ran slower in one process). */
const baseFirst = args.includes("--base-first");
const first = await load(baseFirst ? resolve(base) : here, baseFirst ? "base" : "this");
const second = await load(baseFirst ? here : resolve(base), baseFirst ? "this" : "base");
const contenders: Contender[] = [
  sluiceOn(baseFirst ? second : first, "this"),
  sluiceOn(baseFirst ? first : second, "base"),
  pMapContender,
];
const samples = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
const cpuSamples = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
const once = async (contender: Contender, items: number): Promise<number> => {
  const run = benchCase.make(items);
  await collectBeforeRun();
  const cpu = process.cpuUsage();
  const started = performance.now();
  const outcome = await contender.run(run.job);
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  run.verify(outcome);
  cpuSamples.get(contender.name)!.push(items / ((used.user + used.system) / 1e6));
  return items / seconds;
};
for (const contender of contenders) await once(contender, Math.min(n, 100_000)); // warm-up
for (const list of cpuSamples.values()) list.length = 0;
for (let round = 0; round < rounds; round++) {
  for (let i = 0; i < contenders.length; i++) {
    const contender = contenders[(i + round) % contenders.length];
    samples.get(contender.name)!.push(await once(contender, n));
  }
}
const rate = (name: string) => median(samples.get(name)!);
const cpuRate = (name: string) => median(cpuSamples.get(name)!);
const load1 = (await import("node:os")).loadavg()[0].toFixed(2);
console.log(`${runtimeName}, case ${caseId}, n ${n}, ${rounds} rounds, load average ${load1}`);
for (const { name } of contenders) {
  console.log(
    `${name.padEnd(5)} ${(rate(name) / 1e6).toFixed(3)}M items/s  ${
      (rate(name) / rate("p_map")).toFixed(3)
    }x p-map   ` +
      `${(cpuRate(name) / 1e6).toFixed(3)}M items/CPU-s  ${(cpuRate(name) / cpuRate("p_map")).toFixed(3)}x p-map`,
  );
}
const best = (name: string) => Math.max(...cpuSamples.get(name)!);
console.log(
  `this / base: ${(rate("this") / rate("base")).toFixed(3)}x wall, ${
    (cpuRate("this") / cpuRate("base")).toFixed(3)
  }x CPU` +
    ` (best rounds: ${(best("this") / best("base")).toFixed(3)}x CPU; this ${
      (best("this") / best("p_map")).toFixed(3)
    }x p-map)`,
);
