/**
 * sluice through its public API only: `new Pipeline({ name, stages: [stage(...)…] })`
 * and `pipeline.collect(source)` or `pipeline.run(source)`, with metrics, an
 * `onEvent` listener that counts every event, and the in-memory dead letter
 * queue all on.
 *
 * Sinks, in the idiom that matches p-map's contender: when the job's outputs
 * may be collected and then sunk (a cheap synchronous sink, not streaming),
 * `pipeline.collect(source)` and then the sink, as `pMap` then the sink; when
 * they must reach the sink as they are made, `run()` with the sink inside the
 * last stage; a slow asynchronous sink is a stage of its own with concurrency 1.
 *
 * @module
 */

import type { PipelineEvent, PipelineMetrics, Stage } from "../../mod.ts";
import type { Contender, Job, Outcome } from "../lib/job.ts";
import { loadSluice, type Sluice } from "../lib/sluice_module.ts";

type AnyStage = Stage<unknown, unknown>;

/** Counts every event by type, as a cheap listener would (`bench/anatomy.ts` prices it). */
export class EventCounts {
  queued = 0;
  started = 0;
  retry = 0;
  completed = 0;
  failed = 0;
  deadLettered = 0;
  readonly listener = (event: PipelineEvent): void => {
    switch (event.type) {
      case "queued":
        this.queued++;
        break;
      case "started":
        this.started++;
        break;
      case "retry":
        this.retry++;
        break;
      case "completed":
        this.completed++;
        break;
      case "failed":
        this.failed++;
        break;
      case "dead-lettered":
        this.deadLettered++;
        break;
    }
  };
}

/** The contender on a given build of sluice (`bench/ab.ts` runs two side by side). */
export function sluiceOn({ Pipeline, stage }: Sluice, name = "sluice"): Contender {
  return {
    name,
    how:
      "new Pipeline({ stages: [stage(fn, { concurrency, ordered })…], onEvent }).collect(source) then sink the outputs; run(source) with the sink in the last stage when streaming",
    run: (job) => runJob(job, Pipeline, stage),
  };
}

export const sluice: Contender = sluiceOn(await loadSluice());

async function runJob(job: Job, Pipeline: Sluice["Pipeline"], stage: Sluice["stage"]): Promise<Outcome> {
  const retryOptions = job.maxRetries === undefined ? {} : {
    maxRetries: job.maxRetries,
    backoff: { initialDelayMs: 0 },
  };
  const options = { concurrency: job.concurrency, ordered: job.ordered, ...retryOptions };
  const last = job.fns.length - 1;
  const sink = job.sink;
  const stages: [AnyStage, ...AnyStage[]] = [
    stageFor(stage, job, 0, options),
    ...job.fns.slice(1).map((_, i) => stageFor(stage, job, i + 1, options)),
  ];
  const placement = sinkPlacement(job);
  if (placement === "own stage") stages.push(stage("sink", (value: unknown) => sink.write(value)));
  else if (last < 0) throw new Error("a sluice pipeline needs at least one stage");

  const events = new EventCounts();
  const queueSize = job.queueSize === undefined ? {} : { queueSize: job.queueSize };
  const pipeline = new Pipeline({ name: "bench", stages, onEvent: events.listener, ...queueSize });
  let metrics: PipelineMetrics;
  if (placement === "after") {
    const collected = await pipeline.collect(job.source());
    for (const value of collected.outputs) sink.write(value);
    metrics = collected.metrics;
  } else {
    metrics = await pipeline.run(job.source());
  }
  check(metrics, events, pipeline.deadLetters.length);
  let retries = 0;
  for (const name in metrics.stageMetrics) retries += metrics.stageMetrics[name].retries;
  return { deadLettered: metrics.deadLetterCount, retries, ingested: metrics.totalIngested };
}

/**
 * Where the job's sink goes: `after` the run, over `collect()`'s outputs (a
 * cheap sink whose outputs may be collected, as `pMap` then the sink); in the
 * `last stage` (a cheap sink that must see outputs as they are made); or its
 * `own stage` with concurrency 1 (a slow asynchronous sink).
 */
function sinkPlacement(job: Job): "after" | "last stage" | "own stage" {
  if (job.sink.kind === "async") return "own stage";
  return job.streaming ? "last stage" : "after";
}

/**
 * sluice with `ordered: true` whatever the job says: case 7 runs sluice as
 * the pool and p-map run (results leave as they complete) and this beside
 * it, to show what keeping input order costs when latencies vary.
 */
export const sluiceOrdered: Contender = {
  name: "sluice_ordered",
  how: "the same, with ordered: true (sluice's default)",
  run: (job) => sluice.run({ ...job, ordered: true }),
};

function stageFor(
  stage: Sluice["stage"],
  job: Job,
  index: number,
  options: { concurrency: number; ordered: boolean; maxRetries?: number; backoff?: { initialDelayMs: number } },
): AnyStage {
  const fn = job.fns[index];
  const sink = job.sink;
  const name = `s${index + 1}`;
  if (index === job.fns.length - 1 && sinkPlacement(job) === "last stage") {
    return stage(name, async (value: unknown, ctx) => {
      const output = await fn(value, ctx.attempt);
      sink.write(output);
      return output;
    }, options);
  }
  return stage(name, (value: unknown, ctx) => fn(value, ctx.attempt), options);
}

/** The conservation invariant, and the events agreeing with the metrics. Throws if anything is off. */
function check(metrics: PipelineMetrics, events: EventCounts, deadLetters: number): void {
  const fail = (what: string) => {
    throw new Error(`sluice: ${what}; metrics ${JSON.stringify(metrics)}; events ${JSON.stringify(events)}`);
  };
  if (metrics.totalIngested !== metrics.totalCompleted + metrics.totalFailed) {
    fail("ingested !== completed + failed");
  }
  if (metrics.itemsInFlight !== 0) fail("items still in flight after run()");
  if (metrics.deadLetterCount !== metrics.totalFailed) fail("deadLetterCount !== totalFailed");
  if (deadLetters !== metrics.deadLetterCount) fail(`pipeline.deadLetters holds ${deadLetters}`);
  let succeeded = 0, failed = 0, retries = 0, processed = 0;
  for (const name in metrics.stageMetrics) {
    const stageMetrics = metrics.stageMetrics[name];
    succeeded += stageMetrics.succeeded;
    failed += stageMetrics.failed;
    retries += stageMetrics.retries;
    processed += stageMetrics.processed;
    if (stageMetrics.inFlight !== 0 || stageMetrics.queueDepth !== 0) fail(`stage ${name} not empty after run()`);
  }
  if (failed !== metrics.totalFailed) fail("stage failures do not add up to totalFailed");
  if (events.completed !== succeeded) fail("completed events !== stage successes");
  if (events.failed !== failed) fail("failed events !== stage failures");
  if (events.retry !== retries) fail("retry events !== stage retries");
  if (events.deadLettered !== metrics.deadLetterCount) fail("dead-lettered events !== deadLetterCount");
  if (events.queued !== processed) fail("queued events !== items processed by the stages");
  if (events.started !== processed + retries) fail("started events !== attempts");
}
