/**
 * Where case 1's time goes, by taking it apart: the same items through one
 * stage, four stages, four stages with an `onEvent` listener (case 1 as the
 * suite runs it, less the sink), four synchronous stages, and p-map's four
 * awaits, in one process, interleaved; nanoseconds of this process's CPU
 * time per item (`process.cpuUsage()`, which other work on a shared machine
 * disturbs less than the wall clock), median over the rounds.
 *
 *   node --expose-gc --import tsx bench/anatomy.ts [--n 300000] [--rounds 7]
 *   npx deno run -A --v8-flags=--expose-gc bench/anatomy.ts
 *   npx bun bench/anatomy.ts
 *   npx deno run -A --v8-flags=--expose-gc bench/anatomy.ts --only 5   # p-map and one variant
 *
 * The difference between four stages and one is the cost of three stages;
 * with and without the listener, the cost of twelve events (three per item
 * and stage). The last two variants come close to case 1 as the suite's
 * contender runs it: its listener (a `switch` that counts each type), then
 * also `collect()` (the contender also wraps each function to pass it
 * `ctx.attempt`). See "Where case 1's time goes" in bench/README.md.
 *
 * `--only 3,5` runs p-map and the variants numbered 3 and 5 (1 is the first
 * sluice variant) and nothing else: in one process the variants' different
 * listeners and calls make the engine's call sites polymorphic, which on V8
 * moves each variant's figure by 10–30% (Fifth pass, bench/README.md), so a
 * variant alone beside p-map, in a process of its own, is what case 1 sees.
 *
 * @module
 */

import process from "node:process";
import pMap from "p-map";
import { median } from "./lib/harness.ts";
import { collectBeforeRun, runtimeName } from "./lib/runtime.ts";
import { loadSluice } from "./lib/sluice_module.ts";
import { EventCounts } from "./contenders/sluice.ts";
import type { PipelineEvent } from "../mod.ts";

const { Pipeline, stage } = await loadSluice();
const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const n = option("n", 300_000);
const rounds = option("rounds", 7);

function* range(count: number): Generator<number> {
  for (let i = 0; i < count; i++) yield i;
}
const inc = async (x: number) => x + 1;
const incSync = (x: number) => x + 1;
const options = { concurrency: 8, ordered: true };

/** No listener, one that only counts, or the suite's (a count per event type). */
type Listen = "none" | "count" | "suite";

function pipeline(stages: number, fn: (x: number) => unknown, listen: Listen) {
  let events = 0;
  const list = Array.from({ length: stages }, (_, i) => stage(`s${i + 1}`, fn, options));
  let onEvent: ((event: PipelineEvent) => void) | undefined;
  if (listen === "count") onEvent = () => void events++;
  else if (listen === "suite") onEvent = new EventCounts().listener;
  return new Pipeline({
    name: "anatomy",
    stages: list as [typeof list[0], ...typeof list],
    ...(onEvent ? { onEvent } : {}),
  });
}

const variants: Record<string, () => Promise<unknown>> = {
  "p-map, 4 awaits": () => pMap(range(n), async (x: number) => await inc(await inc(await inc(await inc(x)))), options),
  "sluice, 1 stage": () => pipeline(1, inc, "none").run(range(n)),
  "sluice, 4 stages": () => pipeline(4, inc, "none").run(range(n)),
  "sluice, 4 stages, onEvent": () => pipeline(4, inc, "count").run(range(n)),
  "sluice, 4 sync stages": () => pipeline(4, incSync, "none").run(range(n)),
  "sluice, 4 stages, suite's onEvent": () => pipeline(4, inc, "suite").run(range(n)),
  "same, collect()": () => pipeline(4, inc, "suite").collect(range(n)),
};
const all = Object.keys(variants);
const onlyAt = args.indexOf("--only");
const only = onlyAt >= 0 ? (args[onlyAt + 1] ?? "").split(",").map(Number) : undefined;
if (only?.some((i) => !(i >= 1 && i < all.length))) {
  throw new Error(`--only takes variant numbers from 1 to ${all.length - 1}: got ${only.join()}`);
}
const names = all.filter((_, i) => i === 0 || !only || only.includes(i));
const samples = new Map<string, number[]>(names.map((name) => [name, []]));
for (let round = -1; round < rounds; round++) {
  for (let i = 0; i < names.length; i++) {
    const name = names[(i + Math.max(round, 0)) % names.length];
    await collectBeforeRun();
    const cpu = process.cpuUsage();
    await variants[name]();
    const used = process.cpuUsage(cpu);
    if (round >= 0) samples.get(name)!.push(((used.user + used.system) * 1000) / n); // ns per item
  }
}
console.log(`${runtimeName}: ns of CPU per item, median of ${rounds} rounds of ${n.toLocaleString("en-US")} items`);
for (const name of names) console.log(`${name.padEnd(36)} ${median(samples.get(name)!).toFixed(0).padStart(6)}`);
