/**
 * `batchStage()`: a stage whose function takes arrays of items, flushed when
 * full, after an interval, and at the end of input or on shutdown.
 *
 * @module
 */

import type { StageContext } from "./attempt.ts";
import { batchStageOptionsSchema, validate } from "./config.ts";
import { ConfigError, PermanentError } from "./errors.ts";
import { withRetries } from "./retry.ts";
import { checkName, type CommonStageOptions, defineStage, retryPolicy, type Stage } from "./stage.ts";

/**
 * A batch function: takes the batch, returns one result per input (passed
 * on one by one, in order) or nothing (the inputs pass on unchanged).
 */
export type BatchFn<I, O> = (
  batch: readonly I[],
  ctx: StageContext,
) => readonly O[] | void | Promise<readonly O[] | void>;

/** Options of {@linkcode batchStage}. `concurrency` counts batches. */
export interface BatchStageOptions extends CommonStageOptions {
  /** The most items in one batch; a full batch is flushed at once. */
  readonly batchSize: number;
  /**
   * Flush a partial batch this long after its first item arrived.
   * @default {undefined} only when full, and at the end of input
   */
  readonly flushIntervalMs?: number;
}

/**
 * Makes a stage that works on batches of items. A batch that fails for good
 * dead-letters each of its items with the reason.
 *
 * @example Write rows in batches of 100, flushing at least every second
 * ```ts
 * import { batchStage, Pipeline } from "../mod.ts";
 *
 * const written: number[][] = [];
 * const load = batchStage("load", async (rows: readonly number[]) => {
 *   written.push([...rows]);
 * }, { batchSize: 100, flushIntervalMs: 1000 });
 * await new Pipeline({ name: "rows", stages: [load] }).run(Array.from({ length: 250 }, (_, i) => i));
 * console.assert(written.length === 3 && written[2].length === 50);
 * ```
 *
 * @throws {ConfigError} when the name, the function or an option is invalid.
 */
export function batchStage<I, O = I>(name: string, fn: BatchFn<I, O>, options: BatchStageOptions): Stage<I, O> {
  checkName(name);
  if (typeof fn !== "function") {
    throw new ConfigError(`Stage "${name}": "fn" must be a function taking an array`, { stage: name, field: "fn" });
  }
  const resolved = validate(batchStageOptionsSchema, options, { stage: name, what: "options" });
  const policy = retryPolicy(resolved);
  return defineStage({
    name,
    kind: "batch",
    concurrency: resolved.concurrency ?? 1,
    ordered: resolved.ordered ?? true,
    queueSize: resolved.queueSize,
    batchSize: resolved.batchSize,
    flushIntervalMs: resolved.flushIntervalMs,
    async process(values, unit) {
      const outcome = await withRetries(
        unit,
        policy,
        async (ctx) => checkResults(name, values, await fn(values as I[], ctx)),
      );
      return outcome.ok
        ? { ok: true, outputs: outcome.value, attempts: outcome.attempts }
        : { ok: false, error: outcome.error, attempts: outcome.attempts };
    },
  });
}

function checkResults(name: string, inputs: readonly unknown[], results: unknown): readonly unknown[] {
  if (results === undefined) return inputs;
  if (!Array.isArray(results)) {
    throw new PermanentError(
      `Batch stage "${name}" returned ${typeof results}; return an array with one result per input, or nothing`,
    );
  }
  if (results.length !== inputs.length) {
    throw new PermanentError(
      `Batch stage "${name}" returned ${results.length} results for a batch of ${inputs.length}; ` +
        `return exactly one result per input, in input order, or nothing to pass the inputs on`,
    );
  }
  return results;
}
