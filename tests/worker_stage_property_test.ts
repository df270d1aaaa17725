/**
 * Randomised: items with random faults (a transient error, a permanent one,
 * a crash of their worker, a skip) through a worker stage with random
 * threads, batching, retries and ordering. Every item ends exactly once, in
 * the fate its fault allows, and conservation holds.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Pipeline, workerStage } from "../mod.ts";
import type { Chaos } from "./fixtures/worker_functions.ts";
import { propertyParameters } from "./_property_helpers.ts";

const functions = new URL("./fixtures/worker_functions.ts", import.meta.url);
const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};

const kinds: Chaos[] = ["ok", "permanent", "transient", "crash", "skip"];

test("workerStage(): every item ends once, in a fate its fault allows, and conservation holds", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.constantFrom(...kinds), { minLength: 1, maxLength: 24 }),
      fc.record({
        threads: fc.integer({ min: 1, max: 2 }),
        maxBatch: fc.integer({ min: 1, max: 4 }),
        maxRetries: fc.integer({ min: 0, max: 3 }),
        ordered: fc.boolean(),
      }),
      async (faults, options) => {
        const pipeline = new Pipeline({
          name: "chaos",
          id: (input: { n: number }) => input.n,
          stages: [workerStage<{ n: number; kind: Chaos }, number>("chaos", functions, {
            ...options,
            export: "chaos",
            backoff: { initialDelayMs: 0, maxDelayMs: 0, jitter: false },
          })],
        });
        const inputs = faults.map((kind, n) => ({ n, kind }));
        const { outputs, metrics } = await pipeline.collect(inputs);
        assert.equal(metrics.totalIngested, inputs.length);
        assert.equal(metrics.totalIngested, metrics.totalCompleted + metrics.totalFailed + metrics.totalFiltered);
        assert.equal(metrics.itemsInFlight, 0);
        const crashes = faults.filter((kind) => kind === "crash").length;
        const completed = outputs.map((output) => output / 10);
        const failed = pipeline.deadLetters.map((letter) => letter.itemId as number);
        const filtered = faults.flatMap((kind, n) => kind === "skip" ? [n] : []);
        // Each item once: completed, dead-lettered, or else filtered (only a skip item can be).
        assert.equal(new Set([...completed, ...failed]).size, completed.length + failed.length);
        const rest = faults.flatMap((_, n) => completed.includes(n) || failed.includes(n) ? [] : [n]);
        for (const n of rest) assert.equal(faults[n], "skip", `item ${n} (${faults[n]}) has no fate`);
        assert.equal(metrics.totalFiltered, rest.length);
        if (options.ordered) assert.deepEqual(completed, [...completed].sort((a, b) => a - b));
        for (const letter of pipeline.deadLetters) {
          const kind = faults[letter.itemId as number];
          const allowed = kind === "permanent"
            ? ["PermanentError", "WorkerCrashedError"]
            : kind === "transient"
            ? ["TypeError", "WorkerCrashedError"]
            : ["WorkerCrashedError"];
          assert.ok(
            allowed.includes(letter.error.name),
            `item ${letter.itemId} (${kind}) failed with ${letter.error.name}`,
          );
        }
        for (const n of completed) assert.ok(!["permanent", "skip"].includes(faults[n]), `item ${n} completed`);
        if (crashes === 0) {
          // No worker dies: the fates follow from the faults alone.
          const expectFailed = faults.flatMap((kind, n) =>
            kind === "permanent" || (kind === "transient" && options.maxRetries === 0) ? [n] : []
          );
          assert.deepEqual([...failed].sort((a, b) => a - b), expectFailed);
          assert.deepEqual(rest, filtered);
          for (const letter of pipeline.deadLetters) {
            if (faults[letter.itemId as number] === "permanent") assert.equal(letter.attempts, 1);
          }
        } else if (options.maxRetries === 0) {
          for (const [n, kind] of faults.entries()) if (kind === "crash") assert.ok(failed.includes(n));
        }
      },
    ),
    propertyParameters(env, 8),
  );
});
