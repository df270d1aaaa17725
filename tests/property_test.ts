/**
 * Randomised fault schedules (issue 3, item 1): fast-check generates
 * pipelines of 1–5 stages (item stages, batch stages with batchSize 1–8 and
 * sometimes flushIntervalMs, stages of two tasks retried task by task or as a
 * whole; concurrency 1–16, ordered or not, queue sizes 1–64, retries 0–3 with
 * no or tiny backoffs, sometimes timeouts and a custom retryIf) and a fault
 * schedule per item, stage and attempt (sync throw, rejection, PermanentError,
 * transient failures then success, a hang until the timeout, a slow attempt,
 * `undefined`, a batch result of the wrong length, an id() that throws). It
 * runs them over array, generator, async-generator and pull-stream sources,
 * through `run` or `pipeline.stream()`, with dead letters in memory, in a
 * (sometimes slow) sink or only counted, and checks after every run what
 * sluice reports against what the schedule implies: conservation, in-flight 0,
 * each item exactly once across outputs and dead letters, input order where
 * every stage is ordered, retries per stage, every dead letter's stage,
 * reason, error and attempts, per-item event sequences, and live metrics
 * while it runs (see _property_helpers.ts). Some pipelines run twice.
 *
 * SLUICE_PROPERTY_RUNS sets the number of cases (default 1000),
 * SLUICE_PROPERTY_SEED replays a seed that fast-check printed, and
 * SLUICE_PROPERTY_KNOWN (comma-separated tags such as `dropped-read`) ignores
 * problems tagged with a known sluice bug while it is being fixed.
 *
 * The regression tests after the property are failures it found, shrunk to
 * deterministic cases.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import fc from "fast-check";
import { Pipeline, stage } from "../mod.ts";
import {
  buildHarness,
  checkRun,
  itemCount,
  pipelineCaseArb,
  propertyParameters,
  runHarness,
  withoutKnown,
} from "./_property_helpers.ts";

const RUNS = 1000;

test(
  `randomised pipelines and fault schedules: every item completes or is dead-lettered as its schedule says (${RUNS} cases by default)`,
  {
    timeout: 300_000,
  },
  async () => {
    const parameters = propertyParameters(process.env, RUNS);
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(pipelineCaseArb(), async (c) => {
        cases++;
        const h = buildHarness(c);
        const problems: string[] = [];
        // Some pipelines run twice: a run leaves nothing behind for the next one.
        for (const run of c.twice ? ["first run", "second run"] : ["run"]) {
          if (run === "second run") h.reset();
          const metrics = await runHarness(c, h, h.source(itemCount(c)));
          const found = checkRun(c, h, {
            metrics,
            expectedIngested: itemCount(c),
            forced: false,
            deadLetters: h.pipeline.deadLetters,
          });
          problems.push(...found.map((problem) => c.twice ? `${run}: ${problem}` : problem));
        }
        assert.deepEqual(withoutKnown(problems, process.env), []);
      }),
      parameters,
    );
    assert.ok(cases >= parameters.numRuns);
  },
);

test("an item whose id() throws is counted as failed at the first stage, where its dead letter says it failed, and leaves no queue depth behind", async () => {
  const pipeline = new Pipeline({
    name: "bad-id",
    id: (n: number) => {
      if (n === 1) throw new Error("no id for 1");
      return n;
    },
    stages: [stage("s", (n: number) => n)],
  });
  const metrics = await pipeline.run([0, 1, 2]);
  assert.deepEqual(pipeline.deadLetters.map((letter) => [letter.itemId, letter.stage, letter.reason]), [[
    1,
    "s",
    "no id for 1",
  ]]);
  assert.equal(metrics.totalFailed, 1);
  const s = metrics.stageMetrics.s;
  assert.equal(
    s.queueDepth,
    0,
    "the first stage took the id failure for one of its own results: its queue depth went to 1",
  );
  assert.equal(s.failed, 1, "the dead letter names stage s, but s's failed count leaves the item out");
  assert.equal(s.processed, 3);
});

test("a sequence of tasks retried as a whole stops at the task that timed out: the abandoned attempt runs no later task", async () => {
  const calls: string[] = [];
  const pipeline = new Pipeline({
    name: "tasks-timeout",
    stages: [stage("s", [
      (n: number, ctx) => {
        calls.push(`fetch ${ctx.attempt}`);
        // The first attempt answers only once its signal aborts (the timeout), as a late reply would.
        return ctx.attempt === 1
          ? new Promise<number>((resolve) => ctx.signal.addEventListener("abort", () => resolve(n)))
          : n;
      },
      (n: number, ctx) => {
        calls.push(`write ${ctx.attempt}`);
        return n;
      },
    ], { retryScope: "stage", timeoutMs: 5, maxRetries: 1, backoff: { initialDelayMs: 0 } })],
  });
  const metrics = await pipeline.run([0]);
  assert.equal(metrics.totalCompleted, 1);
  assert.equal(metrics.stageMetrics.s.retries, 1);
  assert.deepEqual(
    calls,
    ["fetch 1", "fetch 2", "write 2"],
    "the timed-out attempt went on to its second task after sluice had given up on it and retried",
  );
});

test("events of a stage whose tasks are retried one by one count the item's attempts at the stage, as its dead letter does", async () => {
  const events: string[] = [];
  let failures = 0;
  const pipeline = new Pipeline({
    name: "task-events",
    onEvent: (event) => {
      if ("attempt" in event && !event.type.startsWith("task")) events.push(`${event.type} ${event.attempt}`);
    },
    stages: [stage("s", [
      (n: number) => n,
      (n: number) => {
        if (failures++ === 0) throw new Error("once");
        return n;
      },
    ], { retryScope: "task", maxRetries: 1, backoff: { initialDelayMs: 0 } })],
  });
  await pipeline.run([0]);
  // Task 1 took one attempt, task 2 two: three attempts at the stage, and "completed 3" says so.
  assert.deepEqual(events, ["started 1", "started 2", "retry 2", "started 3", "completed 3"]);
});
