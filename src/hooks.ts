/**
 * Lifecycle hooks: the pipeline's `hooks` option. A hook that throws (or
 * rejects) is logged as a warning and the run goes on; no item is lost to it.
 *
 * | hook           | called                                                      | awaited |
 * | -------------- | ----------------------------------------------------------- | ------- |
 * | `onStart`      | once per run, before the first item is read                 | yes     |
 * | `onItemStart`  | per item, as it is read from the source (ingested)          | no      |
 * | `onItemEnd`    | per item, as it leaves the pipeline, with its fate          | no      |
 * | `onStageError` | per failed attempt, with the action error routing chose     | no      |
 * | `onDrain`      | once per run, when no more items will be read               | no      |
 * | `onEnd`        | once per run, after every item has ended, before `run` settles | yes  |
 *
 * @module
 */

import type { ItemId } from "./events.ts";
import type { PipelineMetrics } from "./metrics.ts";
import type { RunContext } from "./run_context.ts";
import { isPromiseLike } from "./attempt.ts";

/** How an item left the pipeline. */
export type ItemFate = "completed" | "deadLettered" | "filtered" | "skipped" | "expanded";

/** What `onItemEnd` is told. */
export interface ItemEndInfo {
  /** The item's id. */
  readonly itemId: ItemId;
  /** How it left. */
  readonly fate: ItemFate;
  /** The stage it left in (the last stage for a completed item). */
  readonly stage: string;
  /** The error, for dead-lettered and skipped items. */
  readonly error?: unknown;
}

/** What `onStageError` is told about a failed attempt. */
export interface StageErrorInfo {
  /** The stage. */
  readonly stage: string;
  /** The item's id (a batch: its first item's). */
  readonly itemId: ItemId;
  /** Every item's id: one for an item stage, the batch for a batch stage. */
  readonly itemIds: readonly ItemId[];
  /** The attempt that failed, 1-based. */
  readonly attempt: number;
  /** The error. */
  readonly error: unknown;
  /** What error routing does about it. */
  readonly action: "retry" | "deadLetter" | "skip" | "halt" | "halt (force)";
}

/** What `onEnd` is told. */
export interface RunEndInfo {
  /** The pipeline's name. */
  readonly pipeline: string;
  /** The final metrics. */
  readonly metrics: PipelineMetrics;
  /** What `run` rejects with, if it does (a `HaltError`, the source's error, …). */
  readonly error?: unknown;
}

/**
 * The pipeline's `hooks` option; each hook is optional and may be async.
 *
 * @example Trace items and report the end of a run
 * ```ts
 * import { Pipeline, type PipelineHooks, stage } from "../mod.ts";
 *
 * const fates: string[] = [];
 * const hooks: PipelineHooks = {
 *   onItemEnd: ({ itemId, fate }) => void fates.push(`${itemId}:${fate}`),
 *   onEnd: async ({ metrics }) => console.assert(metrics.totalCompleted === 2),
 * };
 * await new Pipeline({ name: "p", stages: [stage("s", (n: number) => n)], hooks }).run([1, 2]);
 * console.assert(fates.join() === "0:completed,1:completed");
 * ```
 */
export interface PipelineHooks {
  /** Before the first item is read; awaited. */
  readonly onStart?: (info: { readonly pipeline: string }) => void | Promise<void>;
  /** As each item is read from the source; not awaited. */
  readonly onItemStart?: (info: { readonly itemId: ItemId; readonly item: unknown }) => void | Promise<void>;
  /** As each item leaves the pipeline; not awaited. */
  readonly onItemEnd?: (info: ItemEndInfo) => void | Promise<void>;
  /** For each failed attempt (not interruptions by a shutdown); not awaited. */
  readonly onStageError?: (info: StageErrorInfo) => void | Promise<void>;
  /** When no more items will be read (the source ended, or a stop or halt); not awaited. */
  readonly onDrain?: (info: { readonly pipeline: string }) => void | Promise<void>;
  /** After every item has ended, before `run` resolves or rejects; awaited. */
  readonly onEnd?: (info: RunEndInfo) => void | Promise<void>;
}

/**
 * Calls a hook; a throw or rejection is logged. Returns the hook's promise
 * (never rejecting) for the hooks that are awaited. @internal
 */
export function callHook<A>(
  run: RunContext,
  name: keyof PipelineHooks,
  hook: ((arg: A) => void | Promise<void>) | undefined,
  arg: A,
): Promise<void> | undefined {
  if (!hook) return undefined;
  const failed = (error: unknown) => {
    run.log("warn", `hook ${name} threw; the run goes on`, { hook: name, error });
  };
  try {
    const result: unknown = hook(arg);
    if (isPromiseLike(result)) return Promise.resolve(result).then(() => {}, failed);
  } catch (error) {
    failed(error);
  }
  return undefined;
}
