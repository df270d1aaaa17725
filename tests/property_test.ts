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
import {
  buildHarness,
  checkRun,
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
        const metrics = await runHarness(c, h, h.source(c.scripts.length));
        const problems = checkRun(c, h, {
          metrics,
          expectedIngested: c.scripts.length,
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
