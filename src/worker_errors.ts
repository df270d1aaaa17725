/**
 * Errors across the worker boundary: a worker's error sent as plain data
 * (name, message, stack, cause, own fields, permanence) and rebuilt on the
 * other side, and {@linkcode WorkerCrashedError} for items whose worker died.
 *
 * @module
 */

import { PermanentError } from "./errors.ts";

/**
 * The error an item's attempt fails with when its worker thread died under
 * it: the worker crashed (an uncaught error, `process.exit`, out of memory),
 * or was terminated because another item on it timed out. It is retried
 * like any transient failure; `cause` says what happened to the worker.
 *
 * @example Tell a crashed worker from the function's own errors
 * ```ts
 * import { WorkerCrashedError } from "../mod.ts";
 *
 * const error = new WorkerCrashedError("hash", "its worker exited with code 1", { cause: new Error("exit 1") });
 * console.assert(error.name === "WorkerCrashedError" && error.stage === "hash");
 * ```
 */
export class WorkerCrashedError extends Error {
  /** The worker stage whose worker died. */
  readonly stage: string;
  /**
   * Makes the error for an item of `stage` whose worker died.
   * @param stage The worker stage.
   * @param what What happened to the worker, as a phrase ("its worker exited with code 1").
   * @param options `cause`: the worker's error, if any.
   */
  constructor(stage: string, what: string, options?: ErrorOptions) {
    super(
      `Worker stage "${stage}": ${what} while it ran this item; the item is retried per the stage's policy ` +
        `(a worker that keeps dying points to the function: see cause)`,
      options,
    );
    this.name = "WorkerCrashedError";
    this.stage = stage;
  }
}

/** An error as plain, cloneable data. @internal */
export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly stack: string | undefined;
  /** True for `PermanentError` (by class or by name: the worker may hold another copy of sluice). */
  readonly permanent: boolean;
  readonly cause?: WireError | { readonly value: unknown };
  /** The error's own cloneable fields (`code`, `status`, …). */
  readonly fields: Readonly<Record<string, unknown>>;
}

/** How deep causes are followed; a cycle or a very long chain stops here. */
const MAX_CAUSE_DEPTH = 8;

/** `error` as data that survives `postMessage`. @internal */
export function toWireError(error: unknown, depth = 0): WireError {
  if (!(error instanceof Error)) {
    return {
      name: "Error",
      message: describe(error),
      stack: undefined,
      permanent: false,
      fields: { thrown: clonable(error) },
    };
  }
  const fields: Record<string, unknown> = {};
  for (const key of Object.keys(error)) {
    if (key === "cause" || key === "name" || key === "message" || key === "stack") continue;
    const value = clonable((error as unknown as Record<string, unknown>)[key]);
    if (value !== undefined) fields[key] = value;
  }
  const wire: WireError = {
    name: error.name,
    message: error.message,
    stack: error.stack,
    permanent: error instanceof PermanentError || error.name === "PermanentError",
    fields,
  };
  if (!("cause" in error) || depth >= MAX_CAUSE_DEPTH) return wire;
  const cause = error.cause instanceof Error ? toWireError(error.cause, depth + 1) : { value: clonable(error.cause) };
  return { ...wire, cause };
}

const standardErrors: Readonly<Record<string, ErrorConstructor>> = {
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

/**
 * The error `wire` describes, rebuilt: a `PermanentError` if it was one
 * (so it is not retried), a built-in class for built-in names, else an
 * `Error`; with the worker's name, message, stack, cause and fields.
 * @internal
 */
export function fromWireError(wire: WireError): Error {
  const cause = wire.cause === undefined
    ? undefined
    : "name" in wire.cause
    ? fromWireError(wire.cause)
    : wire.cause.value;
  const options = wire.cause === undefined ? undefined : { cause };
  const Class = wire.permanent ? PermanentError : standardErrors[wire.name] ?? Error;
  const error = new Class(wire.message, options);
  Object.assign(error, wire.fields);
  error.name = wire.name;
  if (wire.stack !== undefined) error.stack = wire.stack;
  return error;
}

/** `value` if it survives structured cloning, else its description. */
function clonable(value: unknown): unknown {
  if (value === null || typeof value !== "object" && typeof value !== "function" && typeof value !== "symbol") {
    return value;
  }
  try {
    return structuredClone(value);
  } catch {
    return describe(value);
  }
}

function describe(value: unknown): string {
  try {
    return typeof value === "string" ? value : String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
