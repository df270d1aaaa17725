/**
 * Option schemas (zod), checked once when a stage or pipeline is built.
 * Every failure becomes a {@linkcode ConfigError} naming the stage, the field,
 * the value given and what is allowed.
 *
 * @module
 */

import { z } from "zod";
import { ConfigError } from "./errors.ts";
import { onErrorSchema } from "./error_router.ts";

/** @internal */
export const positiveInteger = z.int({ error: "must be a positive integer" })
  .min(1, { error: "must be a positive integer" });
/** @internal */
export const nonNegativeInteger = z.int({ error: "must be a whole number, 0 or more" })
  .min(0, { error: "must be a whole number, 0 or more" });
/** @internal */
export const positiveMs = z.number({ error: "must be a finite number of milliseconds above 0" })
  .positive({ error: "must be a finite number of milliseconds above 0" });
/** @internal */
export const nonNegativeMs = z.number({ error: "must be a finite number of milliseconds, 0 or more" })
  .min(0, { error: "must be a finite number of milliseconds, 0 or more" });
const func = z.custom<(...args: never[]) => unknown>((value) => typeof value === "function", {
  error: "must be a function",
});

/** @internal */
export const backoffSchema = z.strictObject({
  initialDelayMs: nonNegativeMs.optional(),
  maxDelayMs: nonNegativeMs.optional(),
  multiplier: z.number({ error: "must be a finite number, 1 or more" })
    .min(1, { error: "must be a finite number, 1 or more" }).optional(),
  jitter: z.boolean({ error: "must be true or false" }).optional(),
}, { error: "must be an object" });

// Error strategies and flow control (issue 13).

/** @internal */
export const rateLimitSchema = z.strictObject({
  limit: positiveInteger,
  intervalMs: positiveMs,
}, { error: "must be { limit, intervalMs } or a RateLimiter" });

const rateLimiter = z.custom<unknown>(
  (value) =>
    typeof (value as { acquire?: unknown } | null)?.acquire === "function" &&
    typeof (value as { tryAcquire?: unknown }).tryAcquire === "function",
  { error: "must be { limit, intervalMs } or a RateLimiter" },
);

/** @internal */
export const circuitBreakerSchema = z.strictObject({
  failureThreshold: positiveInteger,
  windowMs: positiveMs.optional(),
  windowSize: positiveInteger.optional(),
  cooldownMs: positiveMs,
  halfOpenProbes: positiveInteger.optional(),
  drainTimeoutMs: nonNegativeMs.optional(),
}, { error: "must be an object with failureThreshold and cooldownMs" })
  .refine((options) => options.windowMs === undefined || options.windowSize === undefined, {
    error: "must give windowMs or windowSize, not both",
    path: ["windowSize"],
  })
  .refine((options) => options.windowSize === undefined || options.windowSize >= options.failureThreshold, {
    error: "must be at least failureThreshold (or the circuit could never open)",
    path: ["windowSize"],
  });

const strategyStageOptions = {
  onError: onErrorSchema.optional(),
  circuitBreaker: circuitBreakerSchema.optional(),
  rateLimit: z.union([rateLimiter, rateLimitSchema], { error: "must be { limit, intervalMs } or a RateLimiter" })
    .optional(),
};

const hooks = z.strictObject({
  onStart: func.optional(),
  onItemStart: func.optional(),
  onItemEnd: func.optional(),
  onStageError: func.optional(),
  onDrain: func.optional(),
  onEnd: func.optional(),
}, { error: "must be an object of hook functions" });

const strategyPipelineOptions = {
  onError: onErrorSchema.optional(),
  maxSkips: nonNegativeInteger.optional(),
  maxDeadLetters: nonNegativeInteger.optional(),
  hooks: hooks.optional(),
  breakpoint: func.optional(),
};

const commonStageOptions = {
  concurrency: positiveInteger.optional(),
  maxRetries: nonNegativeInteger.optional(),
  backoff: backoffSchema.optional(),
  retryIf: func.optional(),
  timeoutMs: positiveMs.optional(),
  ordered: z.boolean({ error: "must be true or false" }).optional(),
  queueSize: positiveInteger.optional(),
  ...strategyStageOptions,
};

/** `{ [taskName]: limit }`. @internal */
export const taskConcurrency = z.record(z.string(), positiveInteger, {
  error: "must be an object of task names to positive integers",
});

/** @internal */
export const stageOptionsSchema = z.strictObject({
  ...commonStageOptions,
  retryScope: z.enum(["task", "stage"], { error: 'must be "task" or "stage"' }).optional(),
  taskConcurrency: taskConcurrency.optional(),
}, { error: "must be an object" });

/** @internal */
export const batchStageOptionsSchema = z.strictObject({
  ...commonStageOptions,
  batchSize: positiveInteger,
  flushIntervalMs: positiveMs.optional(),
}, { error: "must be an object" });

/** @internal */
export const workerStageOptionsSchema = z.strictObject({
  ...commonStageOptions,
  threads: positiveInteger.optional(),
  maxBatch: positiveInteger.optional(),
  export: z.string({ error: "must be the name of an export" }).min(1, { error: "must be the name of an export" })
    .optional(),
  transfer: func.optional(),
  requireWorkers: z.boolean({ error: "must be true or false" }).optional(),
}, { error: "must be an object" });

const logger = z.custom<unknown>(
  (value) =>
    typeof value === "object" && value !== null &&
    ["debug", "info", "warn", "error"].every((level) =>
      typeof (value as Record<string, unknown>)[level] === "function"
    ),
  { error: "must have debug, info, warn and error methods" },
);

const abortSignal = z.custom<AbortSignal>(
  (value) => typeof AbortSignal !== "undefined" && value instanceof AbortSignal,
  { error: "must be an AbortSignal (pass controller.signal, not the controller)" },
);

const writableStream = z.custom<WritableStream>(
  (value) => typeof WritableStream !== "undefined" && value instanceof WritableStream,
  { error: "must be true, false, a WritableStream or a function returning one" },
);

/** @internal */
export const pipelineOptionsSchema = z.strictObject({
  name: z.string({ error: "must be a non-empty string" }).trim().min(1, { error: "must be a non-empty string" })
    .optional(),
  stages: z.array(z.unknown(), { error: "must be an array of stages" })
    .min(1, { error: "must hold at least one stage" }),
  queueSize: positiveInteger.optional(),
  deadLetterQueue: z.union([z.boolean(), writableStream, func], {
    error: "must be true, false, a WritableStream or a function returning one",
  })
    .optional(),
  logger: logger.optional(),
  onEvent: func.optional(),
  id: func.optional(),
  taskConcurrency: taskConcurrency.optional(),
  statusTracker: z.custom<unknown>(
    (value) =>
      typeof value === "object" && value !== null && typeof (value as { record?: unknown }).record === "function",
    { error: "must be a StatusTracker (or an object with a record(change) method)" },
  ).optional(),
  recentErrors: nonNegativeInteger.optional(),
  ...strategyPipelineOptions,
}, { error: "must be an object" });

/** Options of `pipeline.run()`. @internal */
export const runOptionsSchema = z.strictObject({
  signal: abortSignal.optional(),
  forceSignal: abortSignal.optional(),
  handleSignals: z.boolean({ error: "must be true or false" }).optional(),
}, { error: "must be an object" });

/**
 * Parses `value` with `schema`, or throws a ConfigError for the first problem.
 * @internal
 */
export function validate<T>(
  schema: z.ZodType<T>,
  value: unknown,
  where: { owner: string; stage?: string; root: string; hint?: string },
): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue.path.map(String);
  if (issue.code === "unrecognized_keys") {
    const fields = issue.keys.map((key) => [...path, key].join("."));
    const allowed = optionNames(schema, path);
    const given = fields.map((field, i) => `"${field}" (got ${show(valueAt(value, [...path, issue.keys[i]]))})`);
    const message = `${where.owner}: unknown option${fields.length > 1 ? "s" : ""} ${given.join(", ")}; ${
      suggestion(issue.keys[0], allowed)
    }the options${path.length ? ` of "${path.join(".")}"` : ""} are ${allowed.join(", ")}`;
    throw new ConfigError(message, { stage: where.stage, field: fields.join(", ") }, { cause: result.error });
  }
  const field = path.join(".") || where.root;
  const got = `got ${show(valueAt(value, issue.path))}`;
  const message = path.length === 0
    ? `${where.owner} options ${issue.message}${where.hint ? ` ${where.hint}` : ""}; ${got}`
    : `${where.owner}: option "${field}" ${issue.message}; ${got}`;
  throw new ConfigError(message, { stage: where.stage, field }, { cause: result.error });
}

/** The option names an object schema allows at `path`. */
function optionNames(schema: z.ZodType, path: readonly string[]): string[] {
  let current: unknown = schema;
  for (const key of path) current = (unwrap(current) as { shape?: Record<string, unknown> }).shape?.[key];
  return Object.keys((unwrap(current) as { shape?: Record<string, unknown> }).shape ?? {});
}

function unwrap(schema: unknown): unknown {
  let current = schema as { _zod?: { def: { type: string; innerType?: unknown } } } | undefined;
  while (current?._zod?.def.type === "optional") current = current._zod.def.innerType as typeof current;
  return current ?? {};
}

/** "did you mean "x"? " for a near miss, or a note for an option that belongs elsewhere, or nothing. */
function suggestion(key: string, allowed: readonly string[]): string {
  const elsewhere: Record<string, string> = {
    batchSize: "batchSize belongs to batchStage()",
    flushIntervalMs: "flushIntervalMs belongs to batchStage()",
    retryScope: "retryScope belongs to stage() with an array of tasks",
    concurrency: "concurrency is a stage option: stage(name, fn, { concurrency })",
    maxRetries: "maxRetries is a stage option: stage(name, fn, { maxRetries })",
  };
  if (!allowed.includes(key) && elsewhere[key]) return `${elsewhere[key]}; `;
  const lower = key.toLowerCase();
  const near = allowed.find((name) => {
    const other = name.toLowerCase();
    return other.startsWith(lower) || lower.startsWith(other) || editDistance(lower, other) <= 2;
  });
  return near ? `did you mean "${near}"? ` : "";
}

/** @internal */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/** The value at `path` inside `root`, or `undefined` where the path leaves the objects. @internal */
export function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** Renders a user's value for an error message. @internal */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (value === null || value === undefined) return String(value);
  if (typeof value === "function") return `a function (${value.name || "anonymous"})`;
  if (typeof value === "symbol") return value.toString();
  if (Array.isArray(value)) return `an array of ${value.length}`;
  const name = Object.getPrototypeOf(value)?.constructor?.name;
  return name && name !== "Object" ? `${/^[AEIOU]/.test(name) ? "an" : "a"} ${name}` : "an object";
}
