/**
 * `skip`: the value a stage function returns to filter an item out.
 *
 * @module
 */

/**
 * Return it from a stage function (or put it in a batch stage's results) to
 * drop the item on purpose: it leaves the pipeline as `filtered`, counted in
 * `totalFiltered` and the stage's `filtered`, and is not a dead letter. Later
 * stages never see it. In a task array it ends the sequence: the later tasks
 * do not run. The stage's output type leaves `typeof skip` out, so the next
 * stage takes only real values.
 *
 * @example Keep the even numbers
 * ```ts
 * import { Pipeline, skip, stage } from "../mod.ts";
 *
 * const pipeline = new Pipeline({
 *   stages: [
 *     stage("even", (n: number) => n % 2 === 0 ? n : skip),
 *     stage("half", (n: number) => n / 2), // takes number, never the sentinel
 *   ],
 * });
 * const { outputs, metrics } = await pipeline.collect([1, 2, 3, 4]);
 * console.assert(outputs.join() === "1,2");
 * console.assert(metrics.totalFiltered === 2 && metrics.stageMetrics.even.filtered === 2);
 * ```
 */
export const skip: unique symbol = Symbol("sluice.skip");

/** The type of {@linkcode skip}. */
export type Skip = typeof skip;
