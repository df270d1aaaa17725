/**
 * `stage()`: an async function (or a sequence of them) made into a pipeline
 * stage with concurrency, retries, timeouts and ordering.
 *
 * @module
 */

import { type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.ts";
import type { StageContext } from "./attempt.ts";
import { show, stageOptionsSchema, validate } from "./config.ts";
import { ConfigError } from "./errors.ts";
import type { ItemId } from "./events.ts";
import { isRetryable, type Outcome, type RetryPolicy, type RetryPredicate, type Unit } from "./retry.ts";
import {
  type ResolvedTask,
  runTasks,
  runTasksRetryingEach,
  singleTaskAttempt,
  type StageFn,
  type TaskFn,
  toTasks,
} from "./tasks.ts";
import type { RunContext } from "./run_context.ts";
import { pipelineSlotKey, stageSlotKey } from "./task_slots.ts";
import { type StageStrategies, type StageStrategyOptions, strategiesOf } from "./strategies.ts";

export type { StageFn } from "./tasks.ts";

/** Options shared by {@linkcode stage} and `batchStage`. */
export interface CommonStageOptions extends StageStrategyOptions {
  /**
   * How many items (for a batch stage: batches) the stage works on at once.
   * @default {1}
   */
  readonly concurrency?: number;
  /**
   * Retries after the first attempt.
   * @default {0}
   */
  readonly maxRetries?: number;
  /** The delay between attempts (exponential, with jitter by default). */
  readonly backoff?: BackoffOptions;
  /**
   * Whether a failed attempt is retried. The default retries everything
   * except `PermanentError` and zod validation errors.
   * @default {isRetryable}
   */
  readonly retryIf?: RetryPredicate;
  /**
   * A limit per attempt, in milliseconds, counted from the attempt's start
   * (not while queued). A timed-out attempt fails with `TimeoutError`.
   * @default {undefined} no limit
   */
  readonly timeoutMs?: number;
  /**
   * `true`: outputs leave in input order. `false`: in completion order.
   * @default {true}
   */
  readonly ordered?: boolean;
  /**
   * Items that may wait in front of this stage; overrides the pipeline's.
   * @default {the pipeline's queueSize}
   */
  readonly queueSize?: number;
}

/** Options of {@linkcode stage}. */
export interface StageOptions extends CommonStageOptions {
  /**
   * When `fn` is an array of tasks: `"task"` retries only the task that
   * failed, `"stage"` runs the whole sequence again. `maxRetries`, the
   * backoff and `timeoutMs` apply to the unit retried (each task, or the
   * sequence), and `ctx.attempt` counts that unit's attempts. The item's
   * `attempts` (in events and dead letters) counts every attempt made at
   * the stage.
   * @default {"task"}
   */
  readonly retryScope?: "task" | "stage";
  /**
   * At most this many calls of the named task at once in this stage, by
   * task name (a function's name, or the `name` of a `{ name, fn }` task);
   * the other tasks keep the stage's full concurrency. A worker waiting for
   * a slot holds none of another task's. Overrides the pipeline's
   * `taskConcurrency` for this stage.
   * @default {undefined} no limit
   */
  readonly taskConcurrency?: Readonly<Record<string, number>>;
}

/**
 * A pipeline stage, made by {@linkcode stage} or `batchStage`. Its type
 * parameters make a pipeline whose stages do not fit together a compile error.
 *
 * @typeParam I What the stage takes.
 * @typeParam O What it gives the next stage.
 */
export interface Stage<I, O> {
  /** The stage's name, unique within a pipeline. */
  readonly name: string;
  /** `item` for {@linkcode stage}, `batch` for `batchStage`. */
  readonly kind: "item" | "batch";
  /** Its concurrency, with the default filled in. */
  readonly concurrency: number;
  /** Type-level only (always undefined): what the stage takes and gives. */
  readonly types?: { readonly input: (value: I) => void; readonly output: () => O };
}

/** What the pipeline needs to run a stage. @internal */
export interface StageSpec {
  readonly name: string;
  readonly kind: "item" | "batch";
  readonly concurrency: number;
  readonly ordered: boolean;
  readonly queueSize: number | undefined;
  readonly batchSize: number;
  readonly flushIntervalMs: number | undefined;
  readonly policy: RetryPolicy;
  /**
   * One attempt: on an item's value (item stage) or a batch's values (batch
   * stage). Returns the output (item) or the outputs (batch), or a promise.
   */
  readonly attempt: (input: unknown, ctx: StageContext) => unknown;
  /**
   * For task sequences retried task by task: the whole unit, retries
   * included (`policy`: the stage's, unless a run replaces it).
   */
  readonly runTaskByTask?: (input: unknown, unit: Unit, policy?: RetryPolicy) => Promise<Outcome<unknown>>;
  /** The stage's task names (stages made by `stage()` and `flatMapStage()`). */
  readonly taskNames?: readonly string[];
  /** The stage's own task limits, by slot key. */
  readonly slotLimits?: ReadonlyMap<string, number>;
  /** The spec with the pipeline-wide limits of `names` applied to its tasks (where the stage sets none). */
  readonly withPipelineSlots?: (names: ReadonlySet<string>) => StageSpec;
  /** flatMap stages: the attempt gives an `Expansion`, which the node after the stage turns into items. */
  readonly expand?: { readonly childId: ((output: unknown, parent: ChildOf) => ItemId) | undefined };
  /** The stage's error strategies (`onError`, `circuitBreaker`, `rateLimit`), as given. */
  readonly strategies?: StageStrategies;
  /**
   * Set by a run that routes errors: what becomes of a unit that failed for
   * good, `skip` or `deadLetter` (a halt is started from here too).
   */
  readonly settleFailure?: (unit: Unit, error: unknown, attempts: number) => "skip" | "deadLetter";
  /**
   * The spec for one run, for stages that hold something per run (a worker
   * stage's threads, released with `run.onEnd`). Asked once per run, before
   * the run's strategies are applied.
   */
  readonly forRun?: (run: RunContext) => StageSpec;
}

/** Which item, and which of its outputs, a flatMap output id is made for. */
export interface ChildOf {
  /** The parent item's id. */
  readonly id: ItemId;
  /** The output's index among the parent's outputs, from 0. */
  readonly index: number;
}

const specs = new WeakMap<object, StageSpec>();

/** Makes a stage object for a spec. @internal */
export function defineStage<I, O>(spec: StageSpec): Stage<I, O> {
  const stage: Stage<I, O> = Object.freeze({ name: spec.name, kind: spec.kind, concurrency: spec.concurrency });
  specs.set(stage, spec);
  return stage;
}

/** The spec behind a stage object, or undefined for anything else. @internal */
export function specOf(value: unknown): StageSpec | undefined {
  return typeof value === "object" && value !== null ? specs.get(value) : undefined;
}

/**
 * Makes a pipeline stage from an async function, or from an array of them
 * run in sequence for each item.
 *
 * @example A stage with concurrency and retries
 * ```ts
 * import { Pipeline, stage } from "../mod.ts";
 *
 * const double = stage("double", async (n: number) => n * 2, { concurrency: 4, maxRetries: 2 });
 * const pipeline = new Pipeline({ name: "numbers", stages: [double] });
 * const metrics = await pipeline.run([1, 2, 3]);
 * console.assert(metrics.totalCompleted === 3);
 * ```
 *
 * @example A sequence of tasks, retrying only the one that failed
 * ```ts
 * import { stage } from "../mod.ts";
 *
 * const fetchAndParse = stage("fetch", [
 *   async (url: string) => `{"url":"${url}"}`,
 *   (text: string) => JSON.parse(text) as { url: string },
 * ], { maxRetries: 3, retryScope: "task" });
 * console.assert(fetchAndParse.name === "fetch");
 * ```
 *
 * @throws {ConfigError} when the name, the function or an option is invalid.
 */
export function stage<I, O>(name: string, fn: StageFn<I, O>, options?: StageOptions): Stage<I, O>;
/** A stage running two tasks in sequence for each item. */
export function stage<I, A, O>(
  name: string,
  tasks: readonly [TaskFn<I, A>, TaskFn<A, O>],
  options?: StageOptions,
): Stage<I, O>;
/** A stage running three tasks in sequence for each item. */
export function stage<I, A, B, O>(
  name: string,
  tasks: readonly [TaskFn<I, A>, TaskFn<A, B>, TaskFn<B, O>],
  options?: StageOptions,
): Stage<I, O>;
/** A stage running four tasks in sequence for each item. */
export function stage<I, A, B, C, O>(
  name: string,
  tasks: readonly [TaskFn<I, A>, TaskFn<A, B>, TaskFn<B, C>, TaskFn<C, O>],
  options?: StageOptions,
): Stage<I, O>;
/** A stage running any number of tasks in sequence for each item (types are not checked between them). */
export function stage<I, O>(
  name: string,
  tasks: readonly TaskFn<unknown, unknown>[],
  options?: StageOptions,
): Stage<I, O>;
export function stage<I, O>(
  name: string,
  fn: StageFn<I, O> | readonly TaskFn<never, unknown>[],
  options: StageOptions = {},
): Stage<I, O> {
  checkName(name);
  const tasks = toTasks(name, fn);
  const resolved = validate(stageOptionsSchema, options, { owner: `Stage "${name}"`, stage: name, root: "options" });
  const policy = retryPolicy(resolved);
  const byTask = tasks.length > 1 && resolved.retryScope !== "stage";
  const stageLimits = checkTaskLimits(name, tasks, resolved.taskConcurrency);
  const build = (limited: readonly ResolvedTask[]): StageSpec => ({
    ...itemSpecFields(name, resolved),
    policy,
    attempt: limited.length === 1 ? singleTaskAttempt(limited[0]) : (input, ctx) => runTasks(limited, input, ctx),
    runTaskByTask: byTask ? (input, unit, p = policy) => runTasksRetryingEach(limited, input, unit, p) : undefined,
    ...taskLimitFields(name, limited, stageLimits, build),
  });
  return defineStage(build(withStageSlots(name, tasks, stageLimits)));
}

/**
 * The spec fields of an item stage (`stage()`, `flatMapStage()`) that come
 * straight from its checked options, defaults filled in. @internal
 */
export function itemSpecFields(
  name: string,
  options: Parameters<typeof retryPolicy>[0] & Parameters<typeof strategiesOf>[0] & {
    concurrency?: number;
    ordered?: boolean;
    queueSize?: number;
  },
): Pick<
  StageSpec,
  "name" | "kind" | "concurrency" | "ordered" | "queueSize" | "batchSize" | "flushIntervalMs" | "policy" | "strategies"
> {
  return {
    name,
    kind: "item",
    concurrency: options.concurrency ?? 1,
    ordered: options.ordered ?? true,
    queueSize: options.queueSize,
    batchSize: 1,
    flushIntervalMs: undefined,
    policy: retryPolicy(options),
    strategies: strategiesOf(options),
  };
}

/** Checks a stage's `taskConcurrency` against its task names. @internal */
export function checkTaskLimits(
  stage: string,
  tasks: readonly ResolvedTask[],
  limits: Readonly<Record<string, number>> | undefined,
): ReadonlyMap<string, number> {
  const names = tasks.map((task) => task.name);
  for (const key of Object.keys(limits ?? {})) {
    if (!names.includes(key)) {
      throw new ConfigError(
        `Stage "${stage}": option "taskConcurrency.${key}" names no task of this stage; its tasks are ${
          names.map((n) => `"${n}"`).join(", ")
        } (a task is named by its function's name, or give it one with { name, fn })`,
        { stage, field: `taskConcurrency.${key}` },
      );
    }
  }
  return new Map(Object.entries(limits ?? {}));
}

/** The tasks with the stage's own limits keyed. @internal */
export function withStageSlots(
  stage: string,
  tasks: readonly ResolvedTask[],
  limits: ReadonlyMap<string, number>,
): ResolvedTask[] {
  return tasks.map((task) => limits.has(task.name) ? { ...task, slotKey: stageSlotKey(stage, task.name) } : task);
}

/** The StageSpec fields that let a pipeline see a stage's tasks and limit them. @internal */
export function taskLimitFields(
  stage: string,
  tasks: readonly ResolvedTask[],
  stageLimits: ReadonlyMap<string, number>,
  build: (tasks: readonly ResolvedTask[]) => StageSpec,
): Pick<StageSpec, "taskNames" | "slotLimits" | "withPipelineSlots"> {
  return {
    taskNames: tasks.map((task) => task.name),
    slotLimits: new Map([...stageLimits].map(([task, limit]) => [stageSlotKey(stage, task), limit])),
    withPipelineSlots: (names) =>
      build(
        tasks.map((task) =>
          task.slotKey === undefined && names.has(task.name) ? { ...task, slotKey: pipelineSlotKey(task.name) } : task
        ),
      ),
  };
}

/** Checks a stage name. @internal */
export function checkName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name.trim() === "") {
    throw new ConfigError(`A stage's name must be a non-empty string; got ${show(name)}`, { field: "name" });
  }
}

/** Fills in the retry defaults. @internal */
export function retryPolicy(options: {
  maxRetries?: number;
  backoff?: BackoffOptions;
  retryIf?: (...args: never[]) => unknown;
  timeoutMs?: number;
}): RetryPolicy {
  return {
    maxRetries: options.maxRetries ?? 0,
    backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
    retryIf: (options.retryIf as RetryPredicate | undefined) ?? isRetryable,
    timeoutMs: options.timeoutMs,
  };
}
