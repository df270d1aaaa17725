/**
 * `workerStage()`: a stage whose function runs on worker threads, for
 * CPU-bound work (hashing, parsing, image resizing, inference) that one
 * event loop can only do one item at a time. It is a normal stage on the
 * same engine: its attempt posts the item to the run's pool of workers and
 * awaits the result, so retries, the dead letter queue, metrics, events,
 * ordering and shutdown work as for any stage.
 *
 * @module
 */

import { show, validate, workerStageOptionsSchema } from "./config.ts";
import { ConfigError, PermanentError } from "./errors.ts";
import type { ItemId } from "./events.ts";
import { cpuCount, workerKind, workerSpawner } from "./runtime.ts";
import type { RunContext } from "./run_context.ts";
import {
  checkName,
  type CommonStageOptions,
  defineStage,
  itemSpecFields,
  type Stage,
  type StageSpec,
} from "./stage.ts";
import { WorkerPool } from "./worker_pool.ts";

/** What a worker stage's function gets besides its input (it runs in another thread: no signal, no logger). */
export interface WorkerContext {
  /** The stage's name. */
  readonly stage: string;
  /** The item's id. */
  readonly itemId: ItemId;
  /** 1 for the first attempt, 2 for the first retry, … */
  readonly attempt: number;
}

/**
 * The function a worker stage's module exports: it runs in a worker, gets a
 * structured clone of the input and returns a cloneable output.
 */
export type WorkerFn<I, O> = (input: I, ctx: WorkerContext) => O | Promise<O>;

/** Options of {@linkcode workerStage}. */
export interface WorkerStageOptions<I = unknown> extends CommonStageOptions {
  /**
   * How many workers run the function.
   * @default {the number of cores minus one, at least 1}
   */
  readonly threads?: number;
  /**
   * Items running at once in each worker: above 1 only helps async
   * functions (a CPU-bound function runs one item at a time per thread).
   * @default {1}
   */
  readonly concurrency?: number;
  /**
   * The most items posted to a worker in one message when items queue up;
   * fewer are sent when the queue is short, and when items take long (a
   * message carries about 4 ms of work, measured as the stage
   * runs). 1 posts every item alone.
   * Without `timeoutMs`, a worker holds up to two messages' worth, at most
   * `2 × concurrency × maxBatch` items (the next batch waits while results
   * travel back); with it, items
   * are posted one at a time and a worker holds `concurrency`, so that the
   * limit counts only an item's own work.
   * @default {8}
   */
  readonly maxBatch?: number;
  /**
   * The module's export that is the stage function.
   * @default {"default"}
   */
  readonly export?: string;
  /**
   * The objects of an input to move to the worker instead of copying them
   * (`Transferable`s: `ArrayBuffer`s, `MessagePort`s, …). A moved buffer is empty on this side
   * afterwards: an item whose worker then dies cannot be sent again and is
   * dead-lettered. For outputs, the module may export `transfer` too.
   * @default {undefined} everything is copied
   */
  readonly transfer?: (value: I) => readonly object[];
  /**
   * Fail at construction, with a `ConfigError`, on a runtime without
   * workers, instead of running the function inline on the main thread
   * with a logged warning.
   * @default {false}
   */
  readonly requireWorkers?: boolean;
  /**
   * A limit per attempt, in milliseconds, from the item's posting to its
   * worker. A timed-out attempt fails with `TimeoutError` and its worker is
   * terminated and replaced (a CPU loop cannot see a signal); other items
   * on that worker fail with `WorkerCrashedError` and are retried.
   * @default {undefined} no limit
   */
  readonly timeoutMs?: number;
}

/** The worker script: this directory's `worker_entry.ts` from the sources, `worker_entry.js` in the npm package. */
function workerEntry(): URL {
  const here = import.meta.url;
  return new URL(here.endsWith(".ts") ? "./worker_entry.ts" : "./worker_entry.js", here);
}

/**
 * Makes a stage whose function is an export of the module at `moduleUrl`,
 * run on a pool of `threads` workers (Web module workers on Deno, Bun and
 * browsers; `node:worker_threads` on Node). Inputs and outputs are
 * structured-cloned (see `transfer` to move buffers instead); an error
 * thrown in a worker comes back with its name, message, stack and cause,
 * and a `PermanentError` stays permanent. A worker that crashes fails only
 * its items, which are retried per the stage's policy, and is replaced.
 * The workers start with a run's first item and are terminated when the
 * run ends. On a runtime without workers (workerd) the function runs inline,
 * with a warning logged, unless `requireWorkers` is set.
 *
 * @typeParam I What the stage takes (the function's input).
 * @typeParam O What it gives the next stage (the function's output).
 *
 * @example Square numbers on two worker threads
 * ```ts
 * import { Pipeline, workerStage } from "../mod.ts";
 *
 * // Any module URL works; a file is usual: new URL("./hash.ts", import.meta.url).
 * const module = "data:text/javascript,export default (n) => n * n";
 * const square = workerStage<number, number>("square", module, { threads: 2 });
 * const pipeline = new Pipeline({ name: "squares", stages: [square] });
 * const { outputs } = await pipeline.collect([1, 2, 3]);
 * console.assert(outputs.join() === "1,4,9");
 * ```
 *
 * @throws {ConfigError} when the name, the module URL or an option is
 * invalid, or `requireWorkers` is set on a runtime without workers.
 */
export function workerStage<I, O>(
  name: string,
  moduleUrl: string | URL,
  options: WorkerStageOptions<I> = {},
): Stage<I, O> {
  checkName(name);
  const module = checkModuleUrl(name, moduleUrl);
  const resolved = validate(workerStageOptionsSchema, options, {
    owner: `Worker stage "${name}"`,
    stage: name,
    root: "options",
  }) as WorkerStageOptions<I>;
  const kind = workerKind();
  if (!kind && resolved.requireWorkers) {
    throw new ConfigError(
      `Worker stage "${name}": this runtime has no workers (no Worker, no node:worker_threads) and requireWorkers is ` +
        `true: run it on Node, Deno, Bun or in a browser, or drop requireWorkers to run the function inline here`,
      { stage: name, field: "requireWorkers" },
    );
  }
  const threads = resolved.threads ?? Math.max(1, cpuCount() - 1);
  const concurrency = resolved.concurrency ?? 1;
  const exportName = resolved.export ?? "default";
  const timeoutMs = resolved.timeoutMs;
  const maxBatch = timeoutMs === undefined ? resolved.maxBatch ?? 8 : 1;
  // Without a timeout, a worker holds two messages' worth, so it has the next
  // batch while its last results travel back; with one, only what it runs.
  const window = timeoutMs === undefined ? 2 * concurrency * maxBatch : concurrency;
  const base: StageSpec = {
    // The pool times attempts itself (from posting), so the engine's policy has no timeout.
    // The engine holds twice what the workers hold: an ordered stage keeps a
    // finished item's slot until the items before it finish, and the workers
    // must not run dry meanwhile (the rest waits in the pool's queue).
    ...itemSpecFields(name, {
      ...resolved,
      concurrency: 2 * threads * window,
      timeoutMs: kind ? undefined : timeoutMs,
    }),
    attempt: () => {
      throw new Error(`Worker stage "${name}" ran outside a pipeline run: it needs the run to start its workers`);
    },
  };
  const forRun = (run: RunContext): StageSpec => {
    if (!kind) return { ...base, attempt: inlineAttempt(run, name, module, exportName) };
    const pool = new WorkerPool({
      stage: name,
      entry: workerEntry(),
      module,
      exportName,
      threads,
      concurrency,
      maxBatch,
      window,
      timeoutMs,
      transfer: resolved.transfer as ((value: unknown) => Transferable[]) | undefined,
      spawner: () => workerSpawner(kind),
    });
    run.onForce((reason) => pool.close(reason));
    run.onEnd(() => pool.close());
    return { ...base, attempt: (input, ctx) => pool.run(input, ctx.itemId, ctx.attempt) };
  };
  return defineStage({ ...base, forRun });
}

function checkModuleUrl(name: string, moduleUrl: unknown): string {
  if (moduleUrl instanceof URL) return moduleUrl.href;
  if (typeof moduleUrl === "string" && URL.canParse(moduleUrl)) return new URL(moduleUrl).href;
  if (typeof moduleUrl === "string" && moduleUrl.startsWith("/") && !moduleUrl.startsWith("//")) return moduleUrl;
  throw new ConfigError(
    `Worker stage "${name}": moduleUrl must be a URL, an absolute URL string or an absolute path, such as ` +
      `new URL("./hash.ts", import.meta.url) (a relative one would be resolved against sluice's files); ` +
      `got ${show(moduleUrl)}`,
    { stage: name, field: "moduleUrl" },
  );
}

/** No workers here: the function runs on this thread, loaded once per run, with a warning logged. */
function inlineAttempt(run: RunContext, stage: string, module: string, exportName: string): StageSpec["attempt"] {
  run.log("warn", "this runtime has no workers: the worker stage runs its function inline, on the main thread", {
    stage,
  });
  let loaded: Promise<WorkerFn<unknown, unknown>> | undefined;
  return async (input, ctx) => {
    const fn = await (loaded ??= import(module).then((exports: Record<string, unknown>) => {
      const fn = exports[exportName];
      if (typeof fn !== "function") {
        throw new PermanentError(
          `Worker stage "${stage}": ${module} has no function export "${exportName}": ` +
            `export the stage function as default, or name it with the export option`,
        );
      }
      return fn as WorkerFn<unknown, unknown>;
    }));
    return fn(input, { stage, itemId: ctx.itemId, attempt: ctx.attempt });
  };
}
