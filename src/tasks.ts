/**
 * The tasks of a stage: their names (the function's name, or `{ name, fn }`),
 * running them in sequence for each item, their task-level events, and
 * their concurrency limits (`taskConcurrency`).
 *
 * Pay for what you use: a task with no limit, in a stage with one task or
 * no event listener, is called directly, as before.
 *
 * @module
 */

import type { StageContext } from "./attempt.ts";
import { show } from "./config.ts";
import { serializeError } from "./dead_letter.ts";
import { ConfigError } from "./errors.ts";
import type { Outcome, RetryPolicy, Unit } from "./retry.ts";
import { withRetries } from "./retry.ts";
import { type Skip, skip } from "./skip.ts";
import type { TaskSlots } from "./task_slots.ts";

/** A stage function: takes an item, returns (or resolves to) the output, or {@linkcode skip} to filter the item out. */
export type StageFn<I, O> = (input: I, ctx: StageContext) => O | Skip | Promise<O | Skip>;

/**
 * A task with a name of its own, for task events and `taskConcurrency`
 * (an arrow function written inline has no name).
 *
 * @example
 * ```ts
 * import { type NamedTask, stage } from "../mod.ts";
 *
 * const fetchData: NamedTask<string, number> = { name: "fetchData", fn: async (url: string) => url.length };
 * const s = stage("load", [fetchData, (n: number) => n * 2], { taskConcurrency: { fetchData: 2 } });
 * console.assert(s.name === "load");
 * ```
 */
export interface NamedTask<I, O> {
  /** The task's name: non-empty. */
  readonly name: string;
  /** What it does. */
  readonly fn: StageFn<I, O>;
}

/** One task of a stage's task array: a function (named by its `name`) or a {@linkcode NamedTask}. */
export type TaskFn<I, O> = StageFn<I, O> | NamedTask<I, O>;

/** @internal */
export type Task = (input: unknown, ctx: StageContext) => unknown;

/** A task with its name and, if it is limited, the key of its slots in `run.taskSlots`. @internal */
export interface ResolvedTask {
  readonly name: string;
  readonly index: number;
  readonly fn: Task;
  readonly slotKey: string | undefined;
}

/** Checks and names the tasks given to `stage()`. @internal */
export function toTasks(stage: string, fn: unknown): ResolvedTask[] {
  const given = Array.isArray(fn) ? fn : [fn];
  if (given.length === 0) {
    throw new ConfigError(`Stage "${stage}": the task array is empty; give at least one function`, {
      stage,
      field: "fn",
    });
  }
  return given.map((task, index) => {
    const field = Array.isArray(fn) ? `fn[${index}]` : "fn";
    if (typeof task === "function") {
      return { name: task.name || `${stage}[${index}]`, index, fn: task as Task, slotKey: undefined };
    }
    if (Array.isArray(fn) && typeof task === "object" && task !== null && "fn" in task) {
      const named = task as { name?: unknown; fn?: unknown };
      if (typeof named.name !== "string" || named.name.trim() === "") {
        throw new ConfigError(
          `Stage "${stage}": "${field}.name" must be a non-empty string; got ${show(named.name)}`,
          { stage, field: `${field}.name` },
        );
      }
      if (typeof named.fn !== "function") {
        throw new ConfigError(`Stage "${stage}": "${field}.fn" must be a function; got ${show(named.fn)}`, {
          stage,
          field: `${field}.fn`,
        });
      }
      return { name: named.name, index, fn: named.fn as Task, slotKey: undefined };
    }
    const also = Array.isArray(fn) ? " or a { name, fn } task" : "";
    throw new ConfigError(`Stage "${stage}": "${field}" must be a function${also}; got ${show(task)}`, {
      stage,
      field,
    });
  });
}

/** The unit an attempt's context belongs to: the inline attempt's group, or a retry's owner. */
function unitOf(ctx: StageContext): Unit {
  return (ctx as { owner?: Unit }).owner ?? (ctx as unknown as Unit);
}

type TaskEventType = "taskStarted" | "taskCompleted" | "taskRetry" | "taskFailed";

function emitTask(
  unit: Unit,
  task: ResolvedTask,
  type: TaskEventType,
  attempt: number,
  durationMs?: number,
  error?: unknown,
): void {
  const base = {
    itemId: unit.itemIds[0],
    stage: unit.stage,
    taskName: task.name,
    taskIndex: task.index,
    worker: unit.worker,
    attempt,
    timestamp: Date.now(),
  };
  if (type === "taskStarted") unit.run.emit({ type, ...base });
  else if (type === "taskCompleted") unit.run.emit({ type, ...base, durationMs: durationMs! });
  else unit.run.emit({ type, ...base, durationMs: durationMs!, error: serializeError(error) });
}

/** How one call went, for the task-scope events emitted after `withRetries` decides. */
interface CallRecord {
  durationMs: number;
}

/**
 * Calls a task: directly when nothing watches or limits it, else waiting
 * for a slot and reporting task events. `failedEvent`: emit `taskFailed`
 * when the call throws (stage scope); with task scope the caller does,
 * once it knows whether the call will be retried.
 */
function callTask(
  task: ResolvedTask,
  value: unknown,
  ctx: StageContext,
  announce: boolean,
  failedEvent: boolean,
  record?: CallRecord,
): unknown {
  if (task.slotKey === undefined && !announce) return task.fn(value, ctx);
  const unit = unitOf(ctx);
  const slots = task.slotKey === undefined ? undefined : unit.run.taskSlots?.get(task.slotKey);
  const events = announce && unit.run.hasListener;
  if (!slots && !events) return task.fn(value, ctx);
  return callObserved(task, value, ctx, unit, slots, events, failedEvent, record);
}

async function callObserved(
  task: ResolvedTask,
  value: unknown,
  ctx: StageContext,
  unit: Unit,
  slots: TaskSlots | undefined,
  events: boolean,
  failedEvent: boolean,
  record: CallRecord | undefined,
): Promise<unknown> {
  const startedAt = performance.now();
  if (events) emitTask(unit, task, "taskStarted", ctx.attempt);
  let release: (() => void) | undefined;
  try {
    if (slots) {
      const signal = ctx.signal;
      const wait = slots.acquire(signal);
      if (wait) await wait;
      // An abandoned call (timed out, or interrupted by a forced shutdown)
      // gives its slot back at once: sluice no longer waits for it.
      let held = true;
      release = () => {
        if (!held) return;
        held = false;
        signal.removeEventListener("abort", release!);
        slots.release();
      };
      signal.addEventListener("abort", release, { once: true });
    }
    const result = await task.fn(value, ctx);
    if (events) emitTask(unit, task, "taskCompleted", ctx.attempt, performance.now() - startedAt);
    return result;
  } catch (error) {
    const durationMs = performance.now() - startedAt;
    if (record) record.durationMs = durationMs;
    if (events && failedEvent) emitTask(unit, task, "taskFailed", ctx.attempt, durationMs, error);
    throw error;
  } finally {
    release?.();
  }
}

/** A stage's single task as its attempt: the function itself unless it is limited. @internal */
export function singleTaskAttempt(task: ResolvedTask): Task {
  if (task.slotKey === undefined) return task.fn;
  return (input, ctx) => callTask(task, input, ctx, false, false);
}

/** The tasks in sequence as one attempt (`retryScope: "stage"`); `skip` ends the sequence. @internal */
export async function runTasks(tasks: readonly ResolvedTask[], input: unknown, ctx: StageContext): Promise<unknown> {
  let value = input;
  for (const task of tasks) {
    // Once the attempt has timed out or been interrupted, sluice no longer
    // waits for it: the later tasks must not run (their side effects would
    // happen for an attempt already retried, or an item already dead-lettered).
    if (task.index > 0 && ctx.signal.aborted) throw ctx.signal.reason;
    value = await callTask(task, value, ctx, true, true);
    if (value === skip) return skip;
  }
  return value;
}

/** The tasks in sequence, each retried on its own (`retryScope: "task"`); `skip` ends the sequence. @internal */
export async function runTasksRetryingEach(
  tasks: readonly ResolvedTask[],
  input: unknown,
  unit: Unit,
  policy: RetryPolicy,
): Promise<Outcome<unknown>> {
  let value = input;
  let attempts = 0;
  const events = unit.run.hasListener;
  for (const task of tasks) {
    const record: CallRecord = { durationMs: 0 };
    const onRetry = events
      ? (error: unknown, attempt: number, durationMs: number) =>
        emitTask(unit, task, "taskRetry", attempt, durationMs, error)
      : undefined;
    const outcome = await withRetries(
      unit,
      policy,
      (ctx) => callTask(task, value, ctx, true, false, record),
      undefined,
      attempts,
      onRetry,
    );
    attempts += outcome.attempts;
    if (!outcome.ok) {
      if (events) emitTask(unit, task, "taskFailed", outcome.attempts, record.durationMs, outcome.error);
      return { ok: false, error: outcome.error, attempts };
    }
    value = outcome.value;
    if (value === skip) break;
  }
  return { ok: true, value, attempts };
}
