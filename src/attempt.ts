/**
 * One attempt of a stage function: its `ctx`, its `AbortSignal`, its
 * timeout, and interruption by a forced shutdown.
 *
 * @module
 */

import { ShutdownError, TimeoutError } from "./errors.ts";
import { idFields, type Logger } from "./logger.ts";
import type { RunContext } from "./run_context.ts";

/**
 * What a stage function gets besides its input.
 *
 * @example Pass the signal on to `fetch`
 * ```ts
 * import type { StageContext } from "./attempt.ts";
 *
 * async function enrich(id: number, ctx: StageContext) {
 *   ctx.logger.debug("enriching", { attempt: ctx.attempt });
 *   if (ctx.signal.aborted) throw ctx.signal.reason;
 *   return { id };
 * }
 * ```
 */
export interface StageContext {
  /** Aborted when the attempt times out or a forced shutdown interrupts it. */
  readonly signal: AbortSignal;
  /** 1 for the first attempt, 2 for the first retry, … */
  readonly attempt: number;
  /** The stage's name. */
  readonly stage: string;
  /** The item's id; in a batch stage, the first item's id (see `itemIds`). */
  readonly itemId: string | number;
  /** Every item's id: one for an item stage, the batch for a batch stage. */
  readonly itemIds: readonly (string | number)[];
  /** The pipeline's logger, with `pipeline`, `stage`, `itemId` and `attempt` added to every record. */
  readonly logger: Logger;
}

/** Whose attempt it is: one item, or a batch. @internal */
export interface AttemptOwner {
  readonly itemIds: readonly (string | number)[];
}

/** Runs `call` as one attempt, with a timeout and interruptible by a forced shutdown. @internal */
export function runAttempt<T>(
  run: RunContext,
  stage: string,
  owner: AttemptOwner,
  attempt: number,
  timeoutMs: number | undefined,
  call: (ctx: StageContext) => T | Promise<T>,
): Promise<T> {
  if (run.forced) return Promise.reject(new ShutdownError(stage, { cause: run.forced.reason }));
  const ctx = new AttemptContext(run, stage, owner, attempt);
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = () => {
      settled = true;
      deregister();
      if (timer !== undefined) clearTimeout(timer);
    };
    const fail = (error: unknown) => {
      if (settled) return;
      finish();
      reject(error);
    };
    const deregister = run.onForce((reason) => {
      const error = new ShutdownError(stage, { cause: reason });
      ctx.abort(error);
      fail(error);
    });
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        const error = new TimeoutError(stage, timeoutMs);
        ctx.abort(error);
        fail(error);
      }, timeoutMs);
    }
    try {
      Promise.resolve(call(ctx)).then((value) => {
        if (settled) return;
        finish();
        resolve(value);
      }, fail);
    } catch (error) {
      fail(error);
    }
  });
}

/**
 * A `StageContext` whose signal and logger are made only when asked for:
 * most attempts never look at either. @internal
 */
export abstract class LazyContext implements StageContext {
  /**
   * What was made on demand; one field, so that a context that never needs it
   * stays small. Assigned in the constructor, not a field initializer: an
   * initializer is a call per context, and a stage makes one per item.
   */
  declare protected lazy: LazyParts | undefined;

  constructor() {
    this.lazy = undefined;
  }

  abstract readonly run: RunContext;
  abstract readonly stage: string;
  abstract readonly attempt: number;
  abstract readonly itemIds: readonly (string | number)[];

  get itemId(): string | number {
    return this.itemIds[0];
  }

  get signal(): AbortSignal {
    return lazySignal(this.lazy ??= {});
  }

  get logger(): Logger {
    return (this.lazy ??= {}).logger ??= contextLogger(this);
  }

  abort(reason: unknown): void {
    lazyAbort(this.lazy ??= {}, reason);
  }
}

/** What a context makes on demand (see {@linkcode LazyContext}). @internal */
export interface LazyParts {
  controller?: AbortController;
  abortedWith?: { reason: unknown };
  logger?: Logger;
}

/** A lazy context's signal, made on first use (aborted at once if the attempt already was). @internal */
export function lazySignal(lazy: LazyParts): AbortSignal {
  if (!lazy.controller) {
    lazy.controller = new AbortController();
    if (lazy.abortedWith) lazy.controller.abort(lazy.abortedWith.reason);
  }
  return lazy.controller.signal;
}

/** Aborts a lazy context's attempt: its signal now if made, or when it is. @internal */
export function lazyAbort(lazy: LazyParts, reason: unknown): void {
  lazy.abortedWith ??= { reason };
  lazy.controller?.abort(reason);
}

/** The context of one attempt made by `runAttempt`. @internal */
export class AttemptContext extends LazyContext {
  constructor(
    readonly run: RunContext,
    readonly stage: string,
    readonly owner: AttemptOwner,
    readonly attempt: number,
  ) {
    super();
  }

  get itemIds(): readonly (string | number)[] {
    return this.owner.itemIds;
  }
}

/** The logger of a context: the pipeline's, with the attempt's stage, item ids and attempt added. @internal */
export function contextLogger(ctx: StageContext & { readonly run: RunContext }): Logger {
  const fields = { stage: ctx.stage, ...idFields(ctx.itemIds), attempt: ctx.attempt };
  const at = (level: keyof Logger) => (message: string, properties?: Record<string, unknown>) =>
    ctx.run.log(level, message, { ...fields, ...properties });
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** True for promises and other thenables. @internal */
export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}
