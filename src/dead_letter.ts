/**
 * Dead letters: what sluice records about an item that failed for good, and
 * a schema to read persisted entries back.
 *
 * @module
 */

import { z } from "zod";
import type { ItemId } from "./events.ts";

/** An error reduced to plain data, so that it survives JSON. */
export interface SerializedError {
  /** The error's `name`, such as `TypeError` (`NonError` for thrown non-errors). */
  readonly name: string;
  /** The error's message. */
  readonly message: string;
  /** The stack trace, where the runtime gave one. */
  readonly stack?: string;
  /** The `cause`, serialized the same way if it is an error. */
  readonly cause?: unknown;
}

/**
 * A dead letter queue entry: an item that failed in a stage for good.
 *
 * @typeParam T The item's type as it entered the failing stage.
 */
export interface DeadLetter<T = unknown> {
  /** The item's id. */
  readonly itemId: ItemId;
  /** The stage it failed in. */
  readonly stage: string;
  /** The value as it entered the failing stage: replay it from there. */
  readonly item: T;
  /** The error's message. */
  readonly reason: string;
  /** The error itself, as plain data. */
  readonly error: SerializedError;
  /** How many attempts were made (1 when not retried). */
  readonly attempts: number;
  /** When the first attempt started (ISO 8601). */
  readonly firstAttemptAt: string;
  /** When the item was given up on (ISO 8601). */
  readonly failedAt: string;
}

const isoDate = z.iso.datetime({ offset: true, error: "must be an ISO 8601 date-time string" });

const serializedError = z.object({
  name: z.string({ error: "must be a string" }),
  message: z.string({ error: "must be a string" }),
  stack: z.string({ error: "must be a string" }).optional(),
  cause: z.unknown().optional(),
});

const deadLetterSchema = z.object({
  itemId: z.union([z.string(), z.number()], { error: "must be a string or a number" }),
  stage: z.string({ error: "must be a string" }).min(1, { error: "must not be empty" }),
  item: z.unknown(),
  reason: z.string({ error: "must be a string" }),
  error: serializedError,
  attempts: z.int({ error: "must be an integer" }).min(1, { error: "must be at least 1" }),
  firstAttemptAt: isoDate,
  failedAt: isoDate,
});

/**
 * Reads dead letters back from JSON, checking every field.
 *
 * @example Read back an entry persisted as a JSON line
 * ```ts
 * import { DeadLetterSchema } from "./dead_letter.ts";
 *
 * const line = JSON.stringify({
 *   itemId: 7, stage: "load", item: { id: 7 }, reason: "connection reset",
 *   error: { name: "Error", message: "connection reset" }, attempts: 3,
 *   firstAttemptAt: "2026-11-23T10:00:00.000Z", failedAt: "2026-11-23T10:00:01.500Z",
 * });
 * const entry = DeadLetterSchema.parse(line);
 * console.assert(entry.attempts === 3);
 *
 * try {
 *   DeadLetterSchema.parse({ ...JSON.parse(line), attempts: "three" });
 * } catch (error) {
 *   console.assert((error as Error).message.includes("attempts"));
 * }
 * ```
 */
export const DeadLetterSchema: {
  /**
   * Parses a JSON string or an already parsed value into a {@linkcode DeadLetter}.
   * @throws {TypeError} naming the first bad field, with the zod error as `cause`.
   */
  parse(json: unknown): DeadLetter;
  /** Like `parse`, but returns `undefined` instead of throwing. */
  check(json: unknown): DeadLetter | undefined;
} = {
  parse(json) {
    const value = typeof json === "string" ? parseJson(json) : json;
    const result = deadLetterSchema.safeParse(value);
    if (result.success) return result.data as DeadLetter;
    const issue = result.error.issues[0];
    const field = issue.path.length ? issue.path.join(".") : "(the entry)";
    throw new TypeError(`Invalid dead letter: field "${field}" ${issue.message}`, { cause: result.error });
  },
  check(json) {
    try {
      return this.parse(json);
    } catch {
      return undefined;
    }
  },
};

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TypeError(`Invalid dead letter: not JSON (${(error as Error).message})`, { cause: error });
  }
}

/**
 * Turns anything thrown into plain data: `name`, `message`, `stack` and a
 * `cause` chain (itself serialized).
 *
 * @example
 * ```ts
 * import { serializeError } from "./dead_letter.ts";
 *
 * const data = serializeError(new Error("outer", { cause: new Error("inner") }));
 * console.assert((data.cause as { message: string }).message === "inner");
 * ```
 */
export function serializeError(error: unknown, depth = 0): SerializedError {
  if (error instanceof Error) {
    const data: { name: string; message: string; stack?: string; cause?: unknown } = {
      name: error.name,
      message: error.message,
    };
    if (error.stack !== undefined) data.stack = error.stack;
    if (error.cause !== undefined) {
      data.cause = depth < 8 ? serializeCause(error.cause, depth + 1) : String(error.cause);
    }
    return data;
  }
  return { name: "NonError", message: describeThrown(error) };
}

function serializeCause(cause: unknown, depth: number): unknown {
  if (cause instanceof Error) return serializeError(cause, depth);
  try {
    return JSON.parse(JSON.stringify(cause) ?? "null");
  } catch {
    return String(cause);
  }
}

/** The message of anything thrown, including non-errors. */
export function describeThrown(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "string") return error;
  try {
    return `Non-error thrown: ${JSON.stringify(error)}`;
  } catch {
    return `Non-error thrown: ${String(error)}`;
  }
}
