/**
 * `npm run bench:graph`: what a graph costs against the same work done with
 * a linear pipeline, in one process, measured with the suite's harness
 * (warm-up, interleaved rounds, a young-generation collection before each
 * run, median items/s) and sluice loaded as its users load it.
 *
 * - Case G1, a 2-branch route: `route(x % 2)` → even: `async x + 1`, odd:
 *   `async x + 3`, each branch concurrency 8. The linear pipeline does the
 *   same work in two stages, `classify` and one stage that applies the
 *   branch's function.
 * - Case G2, broadcast + join: every item to `a = async x + 1` and
 *   `b = async x * 2` (concurrency 8 each) joined by id into `{ a, b }`,
 *   then `a + b`. The linear pipeline runs `a`, then `b`, then the sum, as
 *   three stages that carry `{ x, a, b }`.
 *
 * Every run's result is checked (count and sum of the outputs, conservation
 * of the graph's metrics). Nothing asserts a timing; the ratio graph/linear
 * is what to read, from one run.
 *
 * Usage: node --import tsx bench/graph.ts [--quick] [--n 200000] [--rounds 5]
 *        npx deno run -A bench/graph.ts · npx bun bench/graph.ts
 *
 * @module
 */

import process from "node:process";
import type { BenchCase, CaseRun } from "./cases.ts";
import { format, measureThroughput } from "./lib/harness.ts";
import type { Contender, Job, Outcome } from "./lib/job.ts";
import { machine, runtimeName, runtimeVersion } from "./lib/runtime.ts";
import { loadSluice, sluiceForm } from "./lib/sluice_module.ts";

const { graph, Pipeline, source, stage } = await loadSluice();

const args = process.argv.slice(2);
const option = (flag: string, fallback: number) => {
  const index = args.indexOf(flag);
  return index >= 0 ? Number(args[index + 1]) : fallback;
};
const quick = args.includes("--quick");
const n = option("--n", quick ? 2_000 : 200_000);
const rounds = option("--rounds", quick ? 1 : 5);
const CONCURRENCY = 8;

function* range(count: number): Generator<number> {
  for (let i = 0; i < count; i++) yield i;
}

/** Counts and sums the outputs; `verify` checks them against the expected. */
class Tally {
  count = 0;
  sum = 0;
  readonly write = (value: number): void => {
    this.count++;
    this.sum += value;
  };
}

const even = async (x: number) => x + 1;
const odd = async (x: number) => x + 3;
const a = async (x: number) => x + 1;
const b = async (x: number) => x * 2;

/** What the route case's outputs add up to. */
function routeSum(count: number): number {
  let sum = 0;
  for (let x = 0; x < count; x++) sum += x % 2 === 0 ? x + 1 : x + 3;
  return sum;
}

/** What the join case's outputs add up to: (x + 1) + 2x per item. */
function joinSum(count: number): number {
  return 3 * (count * (count - 1)) / 2 + count;
}

type Run = (tally: Tally, count: number) => Promise<void>;

/** A contender that ignores the suite's generic job and runs its own graph or pipeline over `range(n)`. */
function contender(name: string, how: string, run: Run, tallies: Map<Job, Tally>): Contender {
  return {
    name,
    how,
    async run(job: Job): Promise<Outcome> {
      const tally = tallies.get(job)!;
      await run(tally, (job as Job & { n: number }).n);
      return { deadLettered: 0, retries: 0 };
    },
  };
}

function benchCase(id: string, title: string, expectedSum: (count: number) => number, stages: number): {
  benchCase: BenchCase;
  tallies: Map<Job, Tally>;
} {
  const tallies = new Map<Job, Tally>();
  const size = { n, rounds, warmup: Math.min(n, quick ? 500 : 20_000) };
  return {
    tallies,
    benchCase: {
      id: 0,
      title: `${id}: ${title}`,
      kind: "throughput",
      stages,
      full: size,
      quick: size,
      contenders: ["graph", "linear"],
      notes: [],
      make(count: number): CaseRun {
        const tally = new Tally();
        const job = {
          n: count,
          source: () => range(count),
          fns: [],
          concurrency: CONCURRENCY,
          ordered: true,
          maxRetries: undefined,
          streaming: false,
          sink: { kind: "sync", write: () => {} },
        } as Job & { n: number };
        tallies.set(job, tally);
        return {
          job,
          verify() {
            if (tally.count !== count) throw new Error(`${tally.count} outputs for ${count} items`);
            if (tally.sum !== expectedSum(count)) {
              throw new Error(`outputs sum to ${tally.sum}, not ${expectedSum(count)}`);
            }
          },
        };
      },
    },
  };
}

function checkConserved(m: {
  totalIngested: number;
  totalCopies: number;
  totalCompleted: number;
  totalJoined: number;
  itemsInFlight: number;
}): void {
  if (m.totalIngested + m.totalCopies !== m.totalCompleted + m.totalJoined || m.itemsInFlight !== 0) {
    throw new Error(`the graph's metrics do not conserve items: ${JSON.stringify(m)}`);
  }
}

const options = { concurrency: CONCURRENCY };

const route = benchCase("G1", "a 2-branch route (async x + 1 | async x + 3, concurrency 8)", routeSum, 2);
const routeContenders = [
  contender("graph", "route(x % 2) → two stages, two outputs, collect()", async (tally, count) => {
    const g = graph({ name: "route", sources: { n: source<number>() } }, (builder, { n }) => {
      const { even: evens, odd: odds } = builder.route("parity", n, {
        key: (x) => (x % 2 === 0 ? "even" : "odd"),
        branches: ["even", "odd"],
      });
      return {
        even: builder.add(stage("even", even, options), evens),
        odd: builder.add(stage("odd", odd, options), odds),
      };
    });
    const { outputs, metrics } = await g.collect(range(count));
    for (const value of outputs.even) tally.write(value);
    for (const value of outputs.odd) tally.write(value);
    checkConserved(metrics);
  }, route.tallies),
  contender("linear", "Pipeline [classify, work] doing the same", async (tally, count) => {
    const pipeline = new Pipeline({
      name: "linear",
      stages: [
        stage("classify", (x: number) => ({ x, odd: x % 2 === 1 }), options),
        stage("work", ({ x, odd: isOdd }: { x: number; odd: boolean }) => (isOdd ? odd(x) : even(x)), options),
      ],
    });
    const { outputs } = await pipeline.collect(range(count));
    for (const value of outputs) tally.write(value);
  }, route.tallies),
];

const join = benchCase(
  "G2",
  "broadcast + join (async x + 1 and async x * 2, concurrency 8, joined, summed)",
  joinSum,
  3,
);
const joinContenders = [
  contender("graph", "broadcast → a, b → join → sum, collect()", async (tally, count) => {
    const g = graph({ name: "join", sources: { n: source<number>() } }, (builder, { n }) => {
      const both = builder.broadcast("both", n);
      const left = builder.add(stage("a", a, options), both);
      const right = builder.add(stage("b", b, options), both);
      const joined = builder.join("pair", { a: left, b: right });
      return { sum: builder.add(stage("sum", (p: { a: number; b: number }) => p.a + p.b, options), joined) };
    });
    const { outputs, metrics } = await g.collect(range(count));
    for (const value of outputs.sum) tally.write(value);
    checkConserved(metrics);
  }, join.tallies),
  contender("linear", "Pipeline [a, b, sum] carrying { x, a, b }", async (tally, count) => {
    const pipeline = new Pipeline({
      name: "linear",
      stages: [
        stage("a", async (x: number) => ({ x, a: await a(x) }), options),
        stage("b", async (r: { x: number; a: number }) => ({ ...r, b: await b(r.x) }), options),
        stage("sum", (r: { a: number; b: number }) => r.a + r.b, options),
      ],
    });
    const { outputs } = await pipeline.collect(range(count));
    for (const value of outputs) tally.write(value);
  }, join.tallies),
];

const log = (line: string) => console.log(line);
const m = machine();
console.log(`# graph bench: ${runtimeName} ${runtimeVersion()}, ${m.cores} × ${m.cpu}`);
console.log(`sluice: ${sluiceForm}; n = ${n.toLocaleString("en-US")}, ${rounds} round(s)\n`);
const table: string[] = ["| case | graph items/s | linear items/s | graph / linear |", "|---|---:|---:|---:|"];
for (const [{ benchCase: c }, contenders] of [[route, routeContenders], [join, joinContenders]] as const) {
  console.log(`## ${c.title}`);
  const results = await measureThroughput(c, contenders, c.full, 0, log);
  const [graphResult, linearResult] = results;
  const ratio = graphResult.itemsPerSecond / linearResult.itemsPerSecond;
  table.push(
    `| ${c.title.replace("|", "\\|")} | ${format(graphResult.itemsPerSecond)} | ${
      format(linearResult.itemsPerSecond)
    } | ${ratio.toFixed(2)} |`,
  );
  console.log("");
}
console.log(table.join("\n"));
