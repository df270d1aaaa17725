/**
 * Runs contenders of one throughput case in a loop, with nothing else in the
 * process, for a profiler; prints items/s per run (the first run is a
 * 100,000-item warm-up).
 *
 *   node --cpu-prof --import tsx bench/profile_case.ts --case 1 --contender sluice --runs 5
 *   node --prof --import tsx bench/profile_case.ts --contender sluice,p_map
 *   npx bun --cpu-prof bench/profile_case.ts --contender sluice
 *
 * @module
 */

import process from "node:process";
import { cases } from "./cases.ts";
import type { Contender } from "./lib/job.ts";
import { rss } from "./lib/runtime.ts";

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : fallback;
};
const caseId = Number(option("case", "1"));
const n = Number(option("n", "1000000"));
const runs = Number(option("runs", "3"));
const benchCase = cases(rss).find((c) => c.id === caseId);
if (!benchCase || benchCase.kind !== "throughput") throw new Error(`case ${caseId} is not a throughput case`);

const modules: Readonly<Record<string, () => Promise<Contender>>> = {
  sluice: async () => (await import("./contenders/sluice.ts")).sluice,
  p_map: async () => (await import("./contenders/p_map.ts")).pMapContender,
};
const contenders: Contender[] = [];
for (const name of option("contender", "sluice").split(",")) {
  const load = modules[name];
  if (!load) throw new Error(`unknown contender ${name}: use ${Object.keys(modules).join(", ")}`);
  contenders.push(await load());
}
for (let round = 0; round < runs; round++) {
  const items = round === 0 ? Math.min(n, 100_000) : n;
  for (const contender of contenders) {
    const run = benchCase.make(items);
    const started = performance.now();
    const outcome = await contender.run(run.job);
    const seconds = (performance.now() - started) / 1000;
    run.verify(outcome);
    console.log(`${contender.name}: ${(items / seconds / 1e6).toFixed(3)}M items/s${round === 0 ? " (warm-up)" : ""}`);
  }
}
