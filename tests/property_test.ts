/**
 * Randomised fault schedules (issue 3, item 1): fast-check generates
 * pipelines of 1–5 stages (item and batch stages, concurrency 1–16, ordered or
 * not, queue sizes 1–64, retries 0–3, timeouts) and a fault schedule per item
 * and stage, runs them over array, generator, async-generator and pull-stream
 * sources (through `run` or `pipeline.stream()`), and checks everything
 * sluice reports against what the schedule implies (see _property_helpers.ts).
 *
 * SLUICE_PROPERTY_RUNS sets the number of cases (default 1000) and
 * SLUICE_PROPERTY_SEED replays a seed that fast-check printed.
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
        const metrics = await runHarness(c, h, h.source(itemCount(c)));
        const problems = checkRun(c, h, {
          metrics,
          expectedIngested: itemCount(c),
          forced: false,
          deadLetters: h.pipeline.deadLetters,
        });
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
