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
import { type StageStrategies, type StageStrategyOptions, strategiesOf } from "./strategies.ts";
import { isRetryable, type Outcome, type RetryPolicy, type RetryPredicate, type Unit, withRetries } from "./retry.ts";

/** A stage function: takes an item, returns (or resolves to) the output. */
export type StageFn<I, O> = (input: I, ctx: StageContext) => O | Promise<O>;

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
  /** The stage's error strategies (`onError`, `circuitBreaker`, `rateLimit`), as given. */
  readonly strategies?: StageStrategies;
  /**
   * Set by a run that routes errors: what becomes of a unit that failed for
   * good, `skip` or `deadLetter` (a halt is started from here too).
   */
  readonly settleFailure?: (unit: Unit, error: unknown, attempts: number) => "skip" | "deadLetter";
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
  tasks: readonly [StageFn<I, A>, StageFn<A, O>],
  options?: StageOptions,
): Stage<I, O>;
/** A stage running three tasks in sequence for each item. */
export function stage<I, A, B, O>(
  name: string,
  tasks: readonly [StageFn<I, A>, StageFn<A, B>, StageFn<B, O>],
  options?: StageOptions,
): Stage<I, O>;
/** A stage running four tasks in sequence for each item. */
export function stage<I, A, B, C, O>(
  name: string,
  tasks: readonly [StageFn<I, A>, StageFn<A, B>, StageFn<B, C>, StageFn<C, O>],
  options?: StageOptions,
): Stage<I, O>;
/** A stage running any number of tasks in sequence for each item (types are not checked between them). */
export function stage<I, O>(
  name: string,
  tasks: readonly StageFn<unknown, unknown>[],
  options?: StageOptions,
): Stage<I, O>;
export function stage<I, O>(
  name: string,
  fn: StageFn<I, O> | readonly StageFn<never, unknown>[],
  options: StageOptions = {},
): Stage<I, O> {
  checkName(name);
  const tasks = toTasks(name, fn);
  const resolved = validate(stageOptionsSchema, options, { owner: `Stage "${name}"`, stage: name, root: "options" });
  const policy = retryPolicy(resolved);
  const byTask = tasks.length > 1 && resolved.retryScope !== "stage";
  return defineStage({
    name,
    kind: "item",
    concurrency: resolved.concurrency ?? 1,
    ordered: resolved.ordered ?? true,
    queueSize: resolved.queueSize,
    batchSize: 1,
    flushIntervalMs: undefined,
    policy,
    attempt: tasks.length === 1 ? tasks[0] : (input, ctx) => runTasks(tasks, input, ctx),
    runTaskByTask: byTask ? (input, unit, p = policy) => runTasksRetryingEach(tasks, input, unit, p) : undefined,
    strategies: strategiesOf(resolved),
  });
}

type Task = (input: unknown, ctx: StageContext) => unknown;

/** Checks a stage name. @internal */
export function checkName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name.trim() === "") {
    throw new ConfigError(`A stage's name must be a non-empty string; got ${show(name)}`, { field: "name" });
  }
}

function toTasks(name: string, fn: unknown): Task[] {
  const tasks = Array.isArray(fn) ? fn : [fn];
  if (tasks.length === 0) {
    throw new ConfigError(`Stage "${name}": the task array is empty; give at least one function`, {
      stage: name,
      field: "fn",
    });
  }
  tasks.forEach((task, index) => {
    if (typeof task !== "function") {
      const field = Array.isArray(fn) ? `fn[${index}]` : "fn";
      throw new ConfigError(`Stage "${name}": "${field}" must be a function; got ${show(task)}`, {
        stage: name,
        field,
      });
    }
  });
  return tasks as Task[];
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

async function runTasks(tasks: readonly Task[], input: unknown, ctx: StageContext): Promise<unknown> {
  let value = input;
  for (const [index, task] of tasks.entries()) {
    // Once the attempt has timed out or been interrupted, sluice no longer
    // waits for it: the later tasks must not run (their side effects would
    // happen for an attempt already retried, or an item already dead-lettered).
    if (index > 0 && ctx.signal.aborted) throw ctx.signal.reason;
    value = await task(value, ctx);
  }
  return value;
}

async function runTasksRetryingEach(
  tasks: readonly Task[],
  input: unknown,
  unit: Unit,
  policy: RetryPolicy,
): Promise<Outcome<unknown>> {
  let value = input;
  let attempts = 0;
  for (const task of tasks) {
    const outcome = await withRetries(unit, policy, (ctx) => task(value, ctx), undefined, attempts);
    attempts += outcome.attempts;
    if (!outcome.ok) return { ok: false, error: outcome.error, attempts };
    value = outcome.value;
  }
  return { ok: true, value, attempts };
}
