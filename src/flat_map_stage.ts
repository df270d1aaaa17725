/**
 * `flatMapStage()`: a stage whose function turns one input into zero or
 * more outputs (an array, an iterable or an async iterable), each of which
 * goes on as an item of its own.
 *
 * @module
 */

import type { StageContext } from "./attempt.ts";
import { show, stageOptionsSchema, validate } from "./config.ts";
import { ConfigError, PermanentError } from "./errors.ts";
import type { ItemId } from "./events.ts";
import {
  checkName,
  checkTaskLimits,
  type ChildOf,
  type CommonStageOptions,
  defineStage,
  itemSpecFields,
  type Stage,
  type StageSpec,
  taskLimitFields,
  withStageSlots,
} from "./stage.ts";
import { type ResolvedTask, singleTaskAttempt, toTasks } from "./tasks.ts";

/** What a flatMap function may return for one input. */
export type FlatMapResult<O> = readonly O[] | Iterable<O> | AsyncIterable<O>;

/** Options of {@linkcode flatMapStage}. */
export interface FlatMapStageOptions<O> extends CommonStageOptions {
  /**
   * Gives each output its id, from the output and its parent's id and index.
   * @default {`${parent.id}.${parent.index}`: "7.0", "7.1", …}
   */
  readonly id?: (output: O, parent: ChildOf) => ItemId;
  /** At most this many calls of `fn` at once, by its name, as for `stage()`. */
  readonly taskConcurrency?: Readonly<Record<string, number>>;
}

/** A flatMap call's result on its way to the node that expands it. @internal */
export class Expansion {
  constructor(readonly input: unknown, readonly outputs: unknown) {}
}

/**
 * Makes a stage that gives zero or more outputs per input. `fn` returns an
 * array, an iterable or an async iterable (or a promise of one); every
 * output becomes an item with an id derived from its parent's (`"7.0"`,
 * `"7.1"`, …, or the `id` option's). Retries, timeouts and `concurrency`
 * apply to the call of `fn`; the outputs are then read in order, one parent
 * at a time, only as fast as the next stage has room: an async iterable
 * that yields many items is pulled as room allows, never read ahead.
 *
 * Accounting, so that every item has exactly one fate: each output is a new
 * item, counted in `totalIngested` (and the stage's `spawned`) when it is
 * made; the parent leaves the pipeline as `expanded` (`totalExpanded`, the
 * stage's `expanded` and `succeeded`), also when it gave no outputs. So at
 * the end of a run
 * `totalIngested === totalCompleted + totalFailed + totalFiltered + totalSkipped + totalExpanded`.
 * If reading the outputs fails part way (the iterable throws, or a forced
 * shutdown interrupts it), the outputs already made go on, and the parent
 * is dead-lettered with the error instead of expanded (it is not retried:
 * that would make its outputs twice).
 *
 * @example Split lines into words
 * ```ts
 * import { flatMapStage, Pipeline, stage } from "../mod.ts";
 *
 * const pipeline = new Pipeline({
 *   stages: [
 *     flatMapStage("words", (line: string) => line.split(" ")),
 *     stage("upper", (word: string) => word.toUpperCase()),
 *   ],
 * });
 * const { outputs, metrics } = await pipeline.collect(["a b", "c"]);
 * console.assert(outputs.join() === "A,B,C");
 * console.assert(metrics.totalIngested === 5 && metrics.totalExpanded === 2 && metrics.totalCompleted === 3);
 * ```
 *
 * @example Page through an API lazily
 * ```ts
 * import { flatMapStage, Pipeline } from "../mod.ts";
 *
 * async function* pages(query: string) {
 *   for (let page = 0; page < 3; page++) yield `${query}#${page}`;
 * }
 * const seen: string[] = [];
 * const pipeline = new Pipeline({ stages: [flatMapStage("pages", pages)], onEvent: (e) => {
 *   if (e.type === "queued" && e.stage === "pages") seen.push(String(e.itemId));
 * } });
 * const { outputs } = await pipeline.collect(["q"]);
 * console.assert(outputs.join() === "q#0,q#1,q#2" && seen.join() === "0");
 * ```
 *
 * @throws {ConfigError} when the name, the function or an option is invalid.
 */
export function flatMapStage<I, O>(
  name: string,
  fn: (input: I, ctx: StageContext) => FlatMapResult<O> | Promise<FlatMapResult<O>>,
  options: FlatMapStageOptions<O> = {},
): Stage<I, O> {
  checkName(name);
  if (typeof fn !== "function") {
    throw new ConfigError(`Stage "${name}": "fn" must be a function; got ${show(fn)}`, { stage: name, field: "fn" });
  }
  const plain = typeof options === "object" && options !== null && !Array.isArray(options);
  const { id, ...rest } = (plain ? options : {}) as FlatMapStageOptions<O>;
  if (id !== undefined && typeof id !== "function") {
    throw new ConfigError(`Stage "${name}": option "id" must be a function; got ${show(id)}`, {
      stage: name,
      field: "id",
    });
  }
  const resolved = validate(stageOptionsSchema.omit({ retryScope: true }), plain ? rest : options, {
    owner: `Stage "${name}"`,
    stage: name,
    root: "options",
  });
  const tasks = toTasks(name, fn);
  const stageLimits = checkTaskLimits(name, tasks, resolved.taskConcurrency);
  const build = (limited: readonly ResolvedTask[]): StageSpec => {
    const call = singleTaskAttempt(limited[0]);
    return {
      ...itemSpecFields(name, resolved),
      attempt: (input, ctx) => {
        const result = call(input, ctx);
        return result instanceof Promise
          ? result.then((outputs) => expansion(name, input, outputs))
          : expansion(name, input, result);
      },
      expand: { childId: id as ((output: unknown, parent: ChildOf) => ItemId) | undefined },
      ...taskLimitFields(name, limited, stageLimits, build),
    };
  };
  return defineStage(build(withStageSlots(name, tasks, stageLimits)));
}

function expansion(stage: string, input: unknown, outputs: unknown): Expansion {
  const candidate = outputs as { [Symbol.iterator]?: unknown; [Symbol.asyncIterator]?: unknown } | null;
  if (
    typeof outputs === "string" || candidate === null || typeof candidate !== "object" ||
    (typeof candidate[Symbol.iterator] !== "function" && typeof candidate[Symbol.asyncIterator] !== "function")
  ) {
    throw new PermanentError(
      `flatMap stage "${stage}" returned ${show(outputs)}; return an array, an iterable or an async iterable ` +
        `of outputs (an empty array for none)`,
    );
  }
  return new Expansion(input, outputs);
}
