/**
 * Option schemas (zod), checked once when a stage or pipeline is built.
 * Every failure becomes a {@linkcode ConfigError} naming the stage, the field,
 * the value given and what is allowed.
 *
 * @module
 */

import { z } from "zod";
import { ConfigError } from "./errors.ts";

const positiveInteger = z.int({ error: "must be a positive integer" })
  .min(1, { error: "must be a positive integer" });
const nonNegativeInteger = z.int({ error: "must be a whole number, 0 or more" })
  .min(0, { error: "must be a whole number, 0 or more" });
const positiveMs = z.number({ error: "must be a finite number of milliseconds above 0" })
  .positive({ error: "must be a finite number of milliseconds above 0" });
const nonNegativeMs = z.number({ error: "must be a finite number of milliseconds, 0 or more" })
  .min(0, { error: "must be a finite number of milliseconds, 0 or more" });
const func = z.custom<(...args: never[]) => unknown>((value) => typeof value === "function", {
  error: "must be a function",
});

const backoff = z.strictObject({
  initialDelayMs: nonNegativeMs.optional(),
  maxDelayMs: nonNegativeMs.optional(),
  multiplier: z.number({ error: "must be a finite number, 1 or more" })
    .min(1, { error: "must be a finite number, 1 or more" }).optional(),
  jitter: z.boolean({ error: "must be true or false" }).optional(),
}, { error: "must be an object" });

const commonStageOptions = {
  concurrency: positiveInteger.optional(),
  maxRetries: nonNegativeInteger.optional(),
  backoff: backoff.optional(),
  retryIf: func.optional(),
  timeoutMs: positiveMs.optional(),
  ordered: z.boolean({ error: "must be true or false" }).optional(),
  queueSize: positiveInteger.optional(),
};

/** @internal */
export const stageOptionsSchema = z.strictObject({
  ...commonStageOptions,
  retryScope: z.enum(["task", "stage"], { error: 'must be "task" or "stage"' }).optional(),
}, { error: "must be an object" });

/** @internal */
export const batchStageOptionsSchema = z.strictObject({
  ...commonStageOptions,
  batchSize: positiveInteger,
  flushIntervalMs: positiveMs.optional(),
}, { error: "must be an object" });

const logger = z.custom<unknown>(
  (value) =>
    typeof value === "object" && value !== null &&
    ["debug", "info", "warn", "error"].every((level) =>
      typeof (value as Record<string, unknown>)[level] === "function"
    ),
  { error: "must have debug, info, warn and error methods" },
);

const writableStream = z.custom<WritableStream>(
  (value) => typeof WritableStream !== "undefined" && value instanceof WritableStream,
  { error: "must be true, false or a WritableStream" },
);

/** @internal */
export const pipelineOptionsSchema = z.strictObject({
  name: z.string({ error: "must be a non-empty string" }).trim().min(1, { error: "must be a non-empty string" }),
  stages: z.array(z.unknown(), { error: "must be an array of stages" })
    .min(1, { error: "must hold at least one stage" }),
  queueSize: positiveInteger.optional(),
  deadLetterQueue: z.union([z.boolean(), writableStream], { error: "must be true, false or a WritableStream" })
    .optional(),
  logger: logger.optional(),
  onEvent: func.optional(),
  id: func.optional(),
}, { error: "must be an object" });

/**
 * Parses `value` with `schema`, or throws a ConfigError for the first problem.
 * @internal
 */
export function validate<T>(
  schema: z.ZodType<T>,
  value: unknown,
  where: { owner: string; stage?: string; root: string },
): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue.path.map(String);
  const field = issue.code === "unrecognized_keys"
    ? issue.keys.map((key) => [...path, key].join(".")).join(", ")
    : path.join(".") || where.root;
  const got = `got ${show(valueAt(value, issue.path))}`;
  const message = issue.code === "unrecognized_keys"
    ? `${where.owner}: unknown option${issue.keys.length > 1 ? "s" : ""} ${
      quoteAll(field.split(", "))
    }; check the spelling against the documented options`
    : path.length === 0
    ? `${where.owner} options ${issue.message}; ${got}`
    : `${where.owner}: option "${field}" ${issue.message}; ${got}`;
  throw new ConfigError(message, { stage: where.stage, field }, { cause: result.error });
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function quoteAll(keys: readonly string[]): string {
  return keys.map((key) => `"${key}"`).join(", ");
}

/** Renders a user's value for an error message. @internal */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (value === null || value === undefined) return String(value);
  if (typeof value === "function") return `a function (${value.name || "anonymous"})`;
  if (typeof value === "symbol") return value.toString();
  if (Array.isArray(value)) return `an array of ${value.length}`;
  const name = Object.getPrototypeOf(value)?.constructor?.name;
  return name && name !== "Object" ? `a ${name}` : "an object";
}
