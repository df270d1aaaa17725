/**
 * Case 8, the scaling curve (issue 17): sluice alone, over the CPU-trivial
 * stage of case 1 (`async x => x + 1`, ordered), at 1, 4, 16 and 64 stages
 * (concurrency 8) and at concurrency 1, 8, 64 and 512 (4 stages). Every point
 * is a "contender" of its own in the usual interleaved rounds (the order
 * rotates each round), so that all the points of one curve are measured in
 * the same process at the same time, and compared as ratios.
 *
 * The stage sweep gives each point about the same work (items × stages), so
 * that each run takes about as long. What it reports per point is the cost
 * per item per stage (1 / (items/s × stages)), relative to the 1-stage point:
 * flat is what the design wants, below 1 means fixed per-item costs (source,
 * ingest, outlet) spread over more stages, above 1 means a stage costs more
 * when there are more of them.
 *
 * @module
 */

import type { BenchCase, CaseRun, Size } from "../cases.ts";
import { format, type Log, median } from "./harness.ts";
import type { Contender, Job } from "./job.ts";
import { collectBeforeRun } from "./runtime.ts";

/** The stage counts of the stage sweep (at {@linkcode SWEEP_CONCURRENCY}). */
export const STAGE_COUNTS: readonly number[] = [1, 4, 16, 64];
/** The concurrencies of the concurrency sweep (at {@linkcode SWEEP_STAGES} stages). */
export const CONCURRENCIES: readonly number[] = [1, 8, 64, 512];
export const SWEEP_CONCURRENCY = 8;
export const SWEEP_STAGES = 4;

/** One point of a curve. */
export interface ScalingPoint {
  readonly sweep: "stages" | "concurrency";
  readonly stages: number;
  readonly concurrency: number;
  /** Items per run. */
  readonly n: number;
}

export interface ScalingResult extends ScalingPoint {
  readonly itemsPerSecond: number;
  readonly samples: readonly number[];
}

/** The points of both sweeps, with `size.n` item-stages of work per stage-sweep point and `size.n / 4` items per concurrency point. */
export function scalingPoints(size: Size): ScalingPoint[] {
  return [
    ...STAGE_COUNTS.map((stages) => ({
      sweep: "stages" as const,
      stages,
      concurrency: SWEEP_CONCURRENCY,
      n: Math.max(100, Math.round(size.n / stages)),
    })),
    ...CONCURRENCIES.map((concurrency) => ({
      sweep: "concurrency" as const,
      stages: SWEEP_STAGES,
      concurrency,
      n: Math.max(100, Math.round(size.n / SWEEP_STAGES)),
    })),
  ];
}

const inc = async (x: unknown) => (x as number) + 1;

/** `n` integers through `stages` × `async x => x + 1` at `concurrency`, ordered; checks count, sum and order. */
export function chain(n: number, stages: number, concurrency: number): CaseRun {
  let count = 0, sum = 0, outOfOrder = 0, last = -1;
  const job: Job = {
    source: function* () {
      for (let i = 0; i < n; i++) yield i;
    },
    fns: Array.from({ length: stages }, () => inc),
    concurrency,
    ordered: true,
    maxRetries: undefined,
    streaming: false,
    sink: {
      kind: "sync",
      write(value) {
        const x = value as number;
        count++;
        sum += x;
        if (x < last) outOfOrder++;
        last = x;
      },
    },
  };
  const expectedSum = (n * (n - 1)) / 2 + stages * n;
  return {
    job,
    verify(outcome) {
      if (count !== n || sum !== expectedSum || outOfOrder !== 0 || outcome.deadLettered !== 0) {
        throw new Error(
          `wrong result at ${stages} stages, concurrency ${concurrency}: ${count} of ${n} outputs, sum ${sum} ` +
            `(expected ${expectedSum}), ${outOfOrder} out of order`,
        );
      }
    },
  };
}

const label = (p: ScalingPoint) => `${p.stages} stage${p.stages === 1 ? "" : "s"}, concurrency ${p.concurrency}`;

async function runPoint(benchCase: BenchCase, contender: Contender, point: ScalingPoint, n: number): Promise<number> {
  const run = chain(n, point.stages, point.concurrency);
  await collectBeforeRun();
  const started = performance.now();
  let outcome;
  try {
    outcome = await contender.run(run.job);
  } catch (error) {
    throw new Error(`case ${benchCase.id}, ${label(point)}: the run failed: ${String(error)}`, { cause: error });
  }
  const seconds = (performance.now() - started) / 1000;
  run.verify(outcome);
  return n / seconds;
}

/** One warm-up run per point (a tenth of its items), then `size.rounds` interleaved rounds. */
export async function measureScaling(
  benchCase: BenchCase,
  sluice: Contender,
  size: Size,
  log: Log,
): Promise<ScalingResult[]> {
  const points = scalingPoints(size);
  for (const point of points) await runPoint(benchCase, sluice, point, Math.max(10, Math.round(point.n / 10)));
  log("  warmed up");
  const samples = points.map(() => [] as number[]);
  for (let round = 0; round < size.rounds; round++) {
    for (let k = 0; k < points.length; k++) {
      const i = (k + round) % points.length;
      const rate = await runPoint(benchCase, sluice, points[i], points[i].n);
      samples[i].push(rate);
      log(`  round ${round + 1}/${size.rounds} ${label(points[i])}: ${format(rate)} items/s`);
    }
  }
  return points.map((point, i) => ({ ...point, itemsPerSecond: median(samples[i]), samples: samples[i] }));
}
