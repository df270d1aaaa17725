/**
 * `batchStage()`: a stage whose function takes arrays of items, flushed when
 * full, after an interval, and at the end of input or on shutdown.
 *
 * @module
 */

import { isPromiseLike, type StageContext } from "./attempt.ts";
import { batchStageOptionsSchema, show, validate } from "./config.ts";
import { ConfigError, PermanentError } from "./errors.ts";
import type { Skip } from "./skip.ts";
import { strategiesOf } from "./strategies.ts";
import { checkName, type CommonStageOptions, defineStage, retryPolicy, type Stage } from "./stage.ts";

/**
 * A batch function: takes the batch, returns one result per input (passed
 * on one by one, in order; `skip` filters that item out) or nothing (the
 * inputs pass on unchanged).
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
export function batchStage<I, O>(
  name: string,
  fn: (batch: readonly I[], ctx: StageContext) => readonly O[] | Promise<readonly O[]>,
  options: BatchStageOptions,
): Stage<I, Exclude<O, Skip>>;
/**
 * Makes a batch stage whose function returns nothing: its inputs pass on
 * unchanged, so its output type is its input type.
 *
 * @example
 * ```ts
 * import { batchStage } from "../mod.ts";
 *
 * const save = batchStage("save", async (_rows: readonly string[]) => {}, { batchSize: 50 });
 * console.assert(save.kind === "batch");
 * ```
 */
export function batchStage<I>(
  name: string,
  fn: (batch: readonly I[], ctx: StageContext) => void | Promise<void>,
  options: BatchStageOptions,
): Stage<I, I>;
export function batchStage<I, O>(name: string, fn: BatchFn<I, O>, options: BatchStageOptions): Stage<I, O> {
  checkName(name);
  if (typeof fn !== "function") {
    throw new ConfigError(
      `Stage "${name}": "fn" must be a function taking an array of items; got ${show(fn)}`,
      { stage: name, field: "fn" },
    );
  }
  const resolved = validate(batchStageOptionsSchema, options, {
    owner: `Stage "${name}"`,
    stage: name,
    root: "options",
    hint: "with at least batchSize",
  });
  return defineStage({
    name,
    kind: "batch",
    concurrency: resolved.concurrency ?? 1,
    ordered: resolved.ordered ?? true,
    queueSize: resolved.queueSize,
    batchSize: resolved.batchSize,
    flushIntervalMs: resolved.flushIntervalMs,
    policy: retryPolicy(resolved),
    strategies: strategiesOf(resolved),
    attempt(values, ctx) {
      const batch = values as I[];
      const results = fn(batch, ctx);
      return isPromiseLike(results)
        ? Promise.resolve(results).then((awaited) => checkResults(name, batch, awaited))
        : checkResults(name, batch, results);
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
