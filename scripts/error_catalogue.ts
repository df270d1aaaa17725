/**
 * The bad-input catalogue (issue 3, item 5): every configuration mistake a
 * user can make, what sluice throws for it, and the message, taken from
 * running the code. `tests/bad_input_test.ts` checks each message against
 * the contract (it names the field and the value given and says what is
 * allowed) and that `docs/errors.md` is this script's output, so the
 * document cannot drift from the code.
 *
 * Usage:
 *   node --import tsx scripts/error_catalogue.ts            print the markdown
 *   node --import tsx scripts/error_catalogue.ts --write    write docs/errors.md
 *
 * @module
 */

import {
  batchStage,
  flatMapStage,
  fromConfig,
  graph,
  metricsHandler,
  Pipeline,
  processor,
  progress,
  source as graphSource,
  stage,
  StatusTracker,
  toMermaid,
  toPrometheus,
  workerStage,
} from "../mod.ts";
import type { GraphBuilder, Handle } from "../mod.ts";
import { z } from "zod";
import { PoisonMessageError } from "../redis.ts";
import { instrument } from "../otel.ts";

/** Where the mistake is made. */
export type Place =
  | "stage()"
  | "batchStage()"
  | "new Pipeline()"
  | "pipeline.run()"
  | "pipeline.stream()"
  | "flatMapStage()"
  | "new StatusTracker()"
  // Observability export (issue 16).
  | "pipeline.subscribe()"
  | "toPrometheus()"
  | "metricsHandler()"
  | "progress()"
  | "instrument()"
  // Graphs (issue 18): rendering and declarative config.
  | "toMermaid()"
  | "pipeline.toMermaid()"
  | "fromConfig()"
  // Graphs (issue 18): the graph builder.
  | "graph()"
  | "graph.run()"
  // Worker stages (issue 14).
  | "workerStage()";

/** What the message must contain. */
export interface Expectation {
  /** The error classes the contract allows. */
  readonly classes: readonly ("ConfigError" | "TypeError")[];
  /** The field, as the message names it (`backoff.multiplier`, `stages[1]`, `source`). */
  readonly field: string;
  /** The value given, as the message shows it: `got <value>` unless a RegExp. */
  readonly value: string | RegExp;
  /** What the message must say is allowed. */
  readonly allowed: RegExp;
}

/** One mistake. */
export interface Mistake {
  readonly place: Place;
  /** The mistake in words. */
  readonly mistake: string;
  /** The offending call, as code. */
  readonly code: string;
  /** Makes the mistake: throws, rejects, or (for `accepted` rows) returns how it went. */
  readonly attempt: () => unknown;
  /** What the error must say; `accepted` for inputs that are not errors. */
  readonly expect: Expectation | { readonly accepted: string };
  /** A test elsewhere already checks this row's message: bad_input_test.ts does not repeat it. */
  readonly alsoIn?: string;
}

/** What happened when a mistake was made. */
export interface Observed {
  /** `thrown`: threw synchronously; `rejected`: the promise rejected; `returned`: no error. */
  readonly how: "thrown" | "rejected" | "returned";
  /** The error's class name (`name`), or `-`. */
  readonly className: string;
  /** The error's message, or a description of what was returned. */
  readonly message: string;
  /** The thrown value itself. */
  readonly error: unknown;
  /** What `attempt` returned (resolved), for accepted inputs. */
  readonly value?: unknown;
}

// ---------------------------------------------------------------------------
// Building blocks.

const identity = (n: number) => n;
const passRows = (rows: readonly number[]) => rows;
const parse = () => stage("parse", identity);

/** Code to show as it is, in {@linkcode lit}. */
class Raw {
  constructor(readonly text: string) {}
}

/** Source text for a value, as a user would have written it. */
function lit(value: unknown): string {
  if (value instanceof Raw) return value.text;
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return value === identity || value === passRows ? "fn" : "() => {}";
  if (value === null || typeof value !== "object") return String(value);
  if (Array.isArray(value)) return `[${value.map(lit).join(", ")}]`;
  const name = Object.getPrototypeOf(value)?.constructor?.name;
  if (name && name !== "Object") return `new ${name}()`;
  const entries = Object.entries(value).map(([key, inner]) => `${key}: ${lit(inner)}`);
  return entries.length === 0 ? "{}" : `{ ${entries.join(", ")} }`;
}

/** How a value should appear after `got`. */
function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (value === null || typeof value !== "object") return String(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  const name = Object.getPrototypeOf(value)?.constructor?.name;
  return name && name !== "Object" ? `a ${name}` : "an object";
}

const CONFIG = ["ConfigError"] as const;
const EITHER = ["ConfigError", "TypeError"] as const;

const positiveInteger = /positive integer/;
const wholeNumber = /whole number, 0 or more/;
const msAbove0 = /milliseconds above 0/;
const ms0OrMore = /milliseconds, 0 or more/;
const trueOrFalse = /true or false/;
const aFunction = /must be a function/;
const anObject = /must be an object/;
const anAction = /"retry", "deadLetter", "skip", "halt", \{ halt: "force" \} or a function/;
const aMatcher = /error class, a predicate function or an error name/;
const sourceKinds = /ReadableStream, an async iterable or an iterable/;
const deadLetterTargets = /true, false,? (or )?a WritableStream/;
/** An unknown option: the message must list the options there are. */
const listing = (...names: string[]) => new RegExp(names.map((name) => `(?=[^]*\\b${name}\\b)`).join(""));
const STAGE_OPTIONS = listing("concurrency", "maxRetries", "backoff", "retryIf", "timeoutMs", "ordered", "queueSize");
const BACKOFF_OPTIONS = listing("initialDelayMs", "maxDelayMs", "multiplier", "jitter");
const PIPELINE_OPTIONS = listing("name", "stages", "queueSize", "deadLetterQueue", "logger", "onEvent", "id");
const RUN_OPTIONS = listing("signal", "forceSignal", "handleSignals");

function stageOption(
  mistake: string,
  options: Record<string, unknown>,
  field: string,
  allowed: RegExp,
  extra: Partial<Mistake> = {},
): Mistake {
  const value = field.split(".").reduce<unknown>((at, key) => (at as Record<string, unknown>)?.[key], options);
  return {
    place: "stage()",
    mistake,
    code: `stage("parse", fn, ${lit(options)})`,
    attempt: () => stage("parse", identity, options),
    expect: { classes: CONFIG, field, value: `got ${shown(value)}`, allowed },
    ...extra,
  };
}

function batchOption(
  mistake: string,
  options: Record<string, unknown>,
  field: string,
  allowed: RegExp,
  extra: Partial<Mistake> = {},
): Mistake {
  const value = field.split(".").reduce<unknown>((at, key) => (at as Record<string, unknown>)?.[key], options);
  return {
    place: "batchStage()",
    mistake,
    code: `batchStage("load", fn, ${lit(options)})`,
    attempt: () => batchStage("load", passRows, options as { batchSize: number }),
    expect: { classes: CONFIG, field, value: `got ${shown(value)}`, allowed },
    ...extra,
  };
}

function pipelineOption(
  mistake: string,
  options: Record<string, unknown>,
  field: string,
  allowed: RegExp,
  extra: Partial<Mistake> = {},
): Mistake {
  const value = field.split(".").reduce<unknown>((at, key) => (at as Record<string, unknown>)?.[key], options);
  return {
    place: "new Pipeline()",
    mistake,
    code: `new Pipeline(${lit({ name: "orders", stages: new Raw("[parse]"), ...options })})`,
    attempt: () => new Pipeline({ name: "orders", stages: [parse()], ...options } as never),
    expect: { classes: CONFIG, field, value: `got ${shown(value)}`, allowed },
    ...extra,
  };
}

function runOption(
  mistake: string,
  code: string,
  options: unknown,
  field: string,
  value: string | RegExp,
  allowed: RegExp,
): Mistake {
  return {
    place: "pipeline.run()",
    mistake,
    code,
    attempt: () => new Pipeline({ name: "orders", stages: [parse()] }).run([1, 2], options as never),
    expect: { classes: EITHER, field, value, allowed },
  };
}

function source(mistake: string, code: string, make: () => unknown, value: string | RegExp, allowed = sourceKinds) {
  return {
    place: "pipeline.run()",
    mistake,
    code,
    attempt: () => new Pipeline({ name: "orders", stages: [parse()] }).run(make() as never),
    expect: { classes: ["TypeError"], field: "source", value, allowed },
  } satisfies Mistake;
}

const CONFIG_TEST = "tests/config_test.ts";
const SOURCE_TEST = "tests/source_test.ts";

// ---------------------------------------------------------------------------
// The catalogue.

/** Every mistake, in the order of the document. */
export const MISTAKES: readonly Mistake[] = [
  // stage(): the name and the function.
  {
    place: "stage()",
    mistake: "the name is empty",
    code: `stage("", fn)`,
    attempt: () => stage("", identity),
    expect: { classes: CONFIG, field: "name", value: `got ""`, allowed: /non-empty string/ },
    alsoIn: CONFIG_TEST,
  },
  {
    place: "stage()",
    mistake: "the name is not a string",
    code: `stage(42, fn)`,
    attempt: () => stage(42 as unknown as string, identity),
    expect: { classes: CONFIG, field: "name", value: "got 42", allowed: /non-empty string/ },
  },
  {
    place: "stage()",
    mistake: "the name is missing (the function given first)",
    code: `stage(fn)`,
    attempt: () => (stage as unknown as (fn: unknown) => unknown)(identity),
    expect: { classes: CONFIG, field: "name", value: "got a function", allowed: /non-empty string/ },
  },
  {
    place: "stage()",
    mistake: "the name is null",
    code: `stage(null, fn)`,
    attempt: () => stage(null as unknown as string, identity),
    expect: { classes: CONFIG, field: "name", value: "got null", allowed: /non-empty string/ },
  },
  {
    place: "stage()",
    mistake: "the function is missing",
    code: `stage("parse")`,
    attempt: () => (stage as unknown as (name: string) => unknown)("parse"),
    expect: { classes: CONFIG, field: "fn", value: "got undefined", allowed: aFunction },
  },
  {
    place: "stage()",
    mistake: "the function is not a function",
    code: `stage("parse", 42)`,
    attempt: () => stage("parse", 42 as unknown as typeof identity),
    expect: { classes: CONFIG, field: "fn", value: "got 42", allowed: aFunction },
    alsoIn: CONFIG_TEST,
  },
  {
    place: "stage()",
    mistake: "a promise instead of a function (the function was called)",
    code: `stage("parse", load())`,
    attempt: () => stage("parse", Promise.resolve(1) as unknown as typeof identity),
    expect: { classes: CONFIG, field: "fn", value: "got a Promise", allowed: aFunction },
  },
  {
    place: "stage()",
    mistake: "an object with a method instead of a function",
    code: `stage("parse", { transform(x) {} })`,
    attempt: () => stage("parse", { transform: identity } as unknown as typeof identity),
    expect: { classes: CONFIG, field: "fn", value: "got an object", allowed: aFunction },
  },
  {
    place: "stage()",
    mistake: "an empty task array",
    code: `stage("parse", [])`,
    attempt: () => stage("parse", [] as unknown as typeof identity),
    expect: { classes: CONFIG, field: "task array", value: /empty/, allowed: /at least one function/ },
    alsoIn: CONFIG_TEST,
  },
  {
    place: "stage()",
    mistake: "a task that is not a function",
    code: `stage("parse", [fn, null])`,
    attempt: () => stage("parse", [identity, null] as unknown as typeof identity),
    expect: { classes: CONFIG, field: "fn[1]", value: "got null", allowed: aFunction },
  },
  {
    place: "stage()",
    mistake: "options that are not an object",
    code: `stage("parse", fn, 4)`,
    attempt: () => stage("parse", identity, 4 as unknown as object),
    expect: { classes: CONFIG, field: "options", value: "got 4", allowed: anObject },
    alsoIn: CONFIG_TEST,
  },
  {
    place: "stage()",
    mistake: "options given as an array",
    code: `stage("parse", fn, [])`,
    attempt: () => stage("parse", identity, [] as unknown as object),
    expect: { classes: CONFIG, field: "options", value: "got an array of 0", allowed: anObject },
  },
  {
    place: "stage()",
    mistake: "options given as a string",
    code: `stage("parse", fn, "fast")`,
    attempt: () => stage("parse", identity, "fast" as unknown as object),
    expect: { classes: CONFIG, field: "options", value: `got "fast"`, allowed: anObject },
  },

  // stage(): concurrency.
  stageOption("concurrency is 0", { concurrency: 0 }, "concurrency", positiveInteger, { alsoIn: CONFIG_TEST }),
  stageOption("concurrency is negative", { concurrency: -2 }, "concurrency", positiveInteger, { alsoIn: CONFIG_TEST }),
  stageOption("concurrency is NaN", { concurrency: NaN }, "concurrency", positiveInteger, { alsoIn: CONFIG_TEST }),
  stageOption("concurrency is Infinity", { concurrency: Infinity }, "concurrency", positiveInteger, {
    alsoIn: CONFIG_TEST,
  }),
  stageOption("concurrency is -Infinity", { concurrency: -Infinity }, "concurrency", positiveInteger),
  stageOption("concurrency is a fraction", { concurrency: 1.5 }, "concurrency", positiveInteger, {
    alsoIn: CONFIG_TEST,
  }),
  stageOption("concurrency is a string", { concurrency: "4" }, "concurrency", positiveInteger, {
    alsoIn: CONFIG_TEST,
  }),
  stageOption("concurrency is a bigint", { concurrency: 4n }, "concurrency", positiveInteger),
  stageOption("concurrency is null", { concurrency: null }, "concurrency", positiveInteger),
  stageOption("concurrency is a boolean", { concurrency: true }, "concurrency", positiveInteger),

  // stage(): maxRetries.
  stageOption("maxRetries is negative", { maxRetries: -1 }, "maxRetries", wholeNumber, { alsoIn: CONFIG_TEST }),
  stageOption("maxRetries is a fraction", { maxRetries: 2.5 }, "maxRetries", wholeNumber, { alsoIn: CONFIG_TEST }),
  stageOption("maxRetries is NaN", { maxRetries: NaN }, "maxRetries", wholeNumber, { alsoIn: CONFIG_TEST }),
  stageOption("maxRetries is Infinity", { maxRetries: Infinity }, "maxRetries", wholeNumber, { alsoIn: CONFIG_TEST }),
  stageOption("maxRetries is -Infinity", { maxRetries: -Infinity }, "maxRetries", wholeNumber),
  stageOption("maxRetries is a string", { maxRetries: "3" }, "maxRetries", wholeNumber),
  stageOption("maxRetries is null", { maxRetries: null }, "maxRetries", wholeNumber),

  // stage(): queueSize.
  stageOption("queueSize is 0", { queueSize: 0 }, "queueSize", positiveInteger, { alsoIn: CONFIG_TEST }),
  stageOption("queueSize is negative", { queueSize: -5 }, "queueSize", positiveInteger),
  stageOption("queueSize is NaN", { queueSize: NaN }, "queueSize", positiveInteger, { alsoIn: CONFIG_TEST }),
  stageOption("queueSize is Infinity", { queueSize: Infinity }, "queueSize", positiveInteger),
  stageOption("queueSize is a fraction", { queueSize: 2.5 }, "queueSize", positiveInteger),
  stageOption("queueSize is a string", { queueSize: "100" }, "queueSize", positiveInteger),

  // stage(): timeoutMs.
  stageOption("timeoutMs is 0", { timeoutMs: 0 }, "timeoutMs", msAbove0, { alsoIn: CONFIG_TEST }),
  stageOption("timeoutMs is negative", { timeoutMs: -1 }, "timeoutMs", msAbove0),
  stageOption("timeoutMs is NaN", { timeoutMs: NaN }, "timeoutMs", msAbove0, { alsoIn: CONFIG_TEST }),
  stageOption("timeoutMs is Infinity (leave it out for no limit)", { timeoutMs: Infinity }, "timeoutMs", msAbove0, {
    alsoIn: CONFIG_TEST,
  }),
  stageOption("timeoutMs is a string", { timeoutMs: "1000" }, "timeoutMs", msAbove0),
  stageOption("timeoutMs is null", { timeoutMs: null }, "timeoutMs", msAbove0),

  // stage(): ordered, retryIf, retryScope.
  stageOption("ordered is a number", { ordered: 1 }, "ordered", trueOrFalse, { alsoIn: CONFIG_TEST }),
  stageOption(`ordered is the string "false"`, { ordered: "false" }, "ordered", trueOrFalse),
  stageOption("ordered is null", { ordered: null }, "ordered", trueOrFalse),
  stageOption("retryIf is not a function", { retryIf: true }, "retryIf", aFunction, { alsoIn: CONFIG_TEST }),
  stageOption("retryIf is an error class name", { retryIf: "PermanentError" }, "retryIf", aFunction),
  stageOption("retryIf is null", { retryIf: null }, "retryIf", aFunction),
  // Error strategies and flow control (issue 13).
  stageOption("onError is not a list of rules", { onError: "skip" }, "onError", /array of \[matcher, action\] pairs/),
  stageOption("an onError rule is not a pair", { onError: [[TypeError]] }, "onError.0", /\[matcher, action\] pair/),
  stageOption("an onError matcher is a number", { onError: [[42, "skip"]] }, "onError.0.0", aMatcher),
  stageOption("an onError action is unknown", { onError: [["TypeError", "explode"]] }, "onError.0.1", anAction),
  stageOption(
    "circuitBreaker.failureThreshold is negative",
    { circuitBreaker: { failureThreshold: -1, cooldownMs: 1000 } },
    "circuitBreaker.failureThreshold",
    positiveInteger,
  ),
  stageOption(
    "circuitBreaker.cooldownMs is missing",
    { circuitBreaker: { failureThreshold: 5 } },
    "circuitBreaker.cooldownMs",
    msAbove0,
  ),
  stageOption(
    "circuitBreaker.windowSize is below failureThreshold",
    { circuitBreaker: { failureThreshold: 5, windowSize: 2, cooldownMs: 1000 } },
    "circuitBreaker.windowSize",
    /at least failureThreshold/,
  ),
  stageOption(
    "circuitBreaker has both windowMs and windowSize",
    { circuitBreaker: { failureThreshold: 5, windowMs: 1000, windowSize: 10, cooldownMs: 1000 } },
    "circuitBreaker.windowSize",
    /windowMs or windowSize, not both/,
  ),
  stageOption(
    "rateLimit.limit is 0",
    { rateLimit: { limit: 0, intervalMs: 1000 } },
    "rateLimit.limit",
    positiveInteger,
  ),
  stageOption("rateLimit is a number", { rateLimit: 100 }, "rateLimit", /\{ limit, intervalMs \} or a RateLimiter/),
  stageOption("retryScope is unknown", { retryScope: "item" }, "retryScope", /"task" or "stage"/, {
    alsoIn: CONFIG_TEST,
  }),
  stageOption("retryScope in the wrong case", { retryScope: "STAGE" }, "retryScope", /"task" or "stage"/),
  stageOption("retryScope is null", { retryScope: null }, "retryScope", /"task" or "stage"/),

  // stage(): backoff.
  stageOption("backoff is a number", { backoff: 100 }, "backoff", anObject, { alsoIn: CONFIG_TEST }),
  stageOption("backoff is a string", { backoff: "exponential" }, "backoff", anObject),
  stageOption("backoff is null", { backoff: null }, "backoff", anObject),
  stageOption("backoff is an array", { backoff: [100, 200] }, "backoff", anObject),
  stageOption(
    "backoff.initialDelayMs is negative",
    { backoff: { initialDelayMs: -1 } },
    "backoff.initialDelayMs",
    ms0OrMore,
    {
      alsoIn: CONFIG_TEST,
    },
  ),
  stageOption(
    "backoff.initialDelayMs is a string",
    { backoff: { initialDelayMs: "100" } },
    "backoff.initialDelayMs",
    ms0OrMore,
  ),
  stageOption(
    "backoff.initialDelayMs is Infinity",
    { backoff: { initialDelayMs: Infinity } },
    "backoff.initialDelayMs",
    ms0OrMore,
  ),
  stageOption("backoff.maxDelayMs is NaN", { backoff: { maxDelayMs: NaN } }, "backoff.maxDelayMs", ms0OrMore, {
    alsoIn: CONFIG_TEST,
  }),
  stageOption("backoff.maxDelayMs is negative", { backoff: { maxDelayMs: -1 } }, "backoff.maxDelayMs", ms0OrMore),
  stageOption(
    "backoff.maxDelayMs is Infinity (leave it out)",
    { backoff: { maxDelayMs: Infinity } },
    "backoff.maxDelayMs",
    ms0OrMore,
  ),
  stageOption("backoff.multiplier is below 1", { backoff: { multiplier: 0.5 } }, "backoff.multiplier", /1 or more/, {
    alsoIn: CONFIG_TEST,
  }),
  stageOption("backoff.multiplier is 0", { backoff: { multiplier: 0 } }, "backoff.multiplier", /1 or more/),
  stageOption("backoff.multiplier is NaN", { backoff: { multiplier: NaN } }, "backoff.multiplier", /1 or more/),
  stageOption(
    "backoff.multiplier is Infinity",
    { backoff: { multiplier: Infinity } },
    "backoff.multiplier",
    /1 or more/,
    {
      alsoIn: CONFIG_TEST,
    },
  ),
  stageOption("backoff.multiplier is a string", { backoff: { multiplier: "2" } }, "backoff.multiplier", /1 or more/),
  stageOption("backoff.jitter is a string", { backoff: { jitter: "yes" } }, "backoff.jitter", trueOrFalse, {
    alsoIn: CONFIG_TEST,
  }),
  stageOption("backoff.jitter is a number", { backoff: { jitter: 1 } }, "backoff.jitter", trueOrFalse),
  stageOption("backoff.jitter is null", { backoff: { jitter: null } }, "backoff.jitter", trueOrFalse),

  // stage(): unknown options.
  stageOption("a misspelt option", { concurency: 4 }, "concurency", STAGE_OPTIONS, { alsoIn: CONFIG_TEST }),
  stageOption("two unknown options", { retries: 3, timeout: 1000 }, "retries", STAGE_OPTIONS),
  stageOption("batchSize on stage() (it belongs to batchStage())", { batchSize: 10 }, "batchSize", STAGE_OPTIONS),
  stageOption("flushIntervalMs on stage()", { flushIntervalMs: 100 }, "flushIntervalMs", STAGE_OPTIONS),
  stageOption("an unknown backoff option", { backoff: { delay: 100 } }, "backoff.delay", BACKOFF_OPTIONS),
  stageOption("a misspelt backoff option", { backoff: { initialDelay: 5 } }, "backoff.initialDelay", BACKOFF_OPTIONS, {
    alsoIn: CONFIG_TEST,
  }),

  // batchStage().
  {
    place: "batchStage()",
    mistake: "the options (and batchSize) are missing",
    code: `batchStage("load", fn)`,
    attempt: () => (batchStage as unknown as (name: string, fn: unknown) => unknown)("load", passRows),
    expect: { classes: CONFIG, field: "options", value: "got undefined", allowed: /batchSize/ },
  },
  batchOption("batchSize is missing", {}, "batchSize", positiveInteger, { alsoIn: CONFIG_TEST }),
  batchOption("batchSize is 0", { batchSize: 0 }, "batchSize", positiveInteger, { alsoIn: CONFIG_TEST }),
  batchOption("batchSize is negative", { batchSize: -1 }, "batchSize", positiveInteger),
  batchOption("batchSize is a fraction", { batchSize: 1.5 }, "batchSize", positiveInteger),
  batchOption("batchSize is NaN", { batchSize: NaN }, "batchSize", positiveInteger),
  batchOption("batchSize is Infinity", { batchSize: Infinity }, "batchSize", positiveInteger),
  batchOption("batchSize is a string", { batchSize: "10" }, "batchSize", positiveInteger),
  batchOption("batchSize is null", { batchSize: null }, "batchSize", positiveInteger),
  batchOption("flushIntervalMs is 0", { batchSize: 10, flushIntervalMs: 0 }, "flushIntervalMs", msAbove0, {
    alsoIn: CONFIG_TEST,
  }),
  batchOption("flushIntervalMs is negative", { batchSize: 10, flushIntervalMs: -5 }, "flushIntervalMs", msAbove0),
  batchOption("flushIntervalMs is NaN", { batchSize: 10, flushIntervalMs: NaN }, "flushIntervalMs", msAbove0),
  batchOption("flushIntervalMs is Infinity", { batchSize: 10, flushIntervalMs: Infinity }, "flushIntervalMs", msAbove0),
  batchOption("flushIntervalMs is a string", { batchSize: 10, flushIntervalMs: "100" }, "flushIntervalMs", msAbove0),
  batchOption(
    "retryScope on batchStage() (only stage() runs task arrays)",
    { batchSize: 10, retryScope: "task" },
    "retryScope",
    listing("batchSize", "flushIntervalMs", "concurrency"),
  ),
  {
    place: "batchStage()",
    mistake: "the function is not a function",
    code: `batchStage("load", "insert", { batchSize: 10 })`,
    attempt: () => batchStage("load", "insert" as unknown as typeof passRows, { batchSize: 10 }),
    expect: { classes: CONFIG, field: "fn", value: `got "insert"`, allowed: aFunction },
  },
  {
    place: "batchStage()",
    mistake: "the function is missing",
    code: `batchStage("load", { batchSize: 10 })`,
    attempt: () =>
      (batchStage as unknown as (name: string, fn: unknown, options?: unknown) => unknown)("load", { batchSize: 10 }),
    expect: { classes: CONFIG, field: "fn", value: "got an object", allowed: aFunction },
  },
  {
    place: "batchStage()",
    mistake: "the name is blank",
    code: `batchStage("  ", fn, { batchSize: 10 })`,
    attempt: () => batchStage("  ", passRows, { batchSize: 10 }),
    expect: { classes: CONFIG, field: "name", value: `got "  "`, allowed: /non-empty string/ },
    alsoIn: CONFIG_TEST,
  },

  // new Pipeline(): the options object, name and stages.
  {
    place: "new Pipeline()",
    mistake: "no options",
    code: `new Pipeline()`,
    attempt: () => new (Pipeline as unknown as new () => unknown)(),
    expect: { classes: CONFIG, field: "Pipeline options", value: "got undefined", allowed: anObject },
  },
  {
    place: "new Pipeline()",
    mistake: "options are null",
    code: `new Pipeline(null)`,
    attempt: () => new Pipeline(null as never),
    expect: { classes: CONFIG, field: "Pipeline options", value: "got null", allowed: anObject },
    alsoIn: CONFIG_TEST,
  },
  {
    place: "new Pipeline()",
    mistake: "the stages given directly instead of options",
    code: `new Pipeline([parse])`,
    attempt: () => new Pipeline([parse()] as never),
    expect: { classes: CONFIG, field: "Pipeline options", value: "got an array of 1", allowed: anObject },
  },
  {
    place: "new Pipeline()",
    mistake: "the name given instead of options",
    code: `new Pipeline("orders")`,
    attempt: () => new Pipeline("orders" as never),
    expect: { classes: CONFIG, field: "Pipeline options", value: `got "orders"`, allowed: anObject },
  },
  {
    place: "new Pipeline()",
    mistake: 'the name is missing (not an error: it defaults to "pipeline")',
    code: `new Pipeline({ stages: [parse] })`,
    attempt: () => `builds "${new Pipeline({ stages: [parse()] }).name}"`,
    expect: { accepted: `builds "pipeline"` },
  },
  pipelineOption("the name is empty", { name: "" }, "name", /non-empty string/, { alsoIn: CONFIG_TEST }),
  pipelineOption("the name is not a string", { name: 7 }, "name", /non-empty string/, { alsoIn: CONFIG_TEST }),
  pipelineOption("the name is null", { name: null }, "name", /non-empty string/),
  {
    place: "new Pipeline()",
    mistake: "the stages are missing",
    code: `new Pipeline({ name: "orders" })`,
    attempt: () => new Pipeline({ name: "orders" } as never),
    expect: { classes: CONFIG, field: "stages", value: "got undefined", allowed: /array of stages/ },
  },
  pipelineOption("no stages", { stages: [] }, "stages", /at least one stage/, { alsoIn: CONFIG_TEST }),
  pipelineOption("the stages are null", { stages: null }, "stages", /array of stages/),
  {
    place: "new Pipeline()",
    mistake: "one stage not in an array",
    code: `new Pipeline({ name: "orders", stages: parse })`,
    attempt: () => new Pipeline({ name: "orders", stages: parse() } as never),
    expect: { classes: CONFIG, field: "stages", value: /got (a stage|an object)/, allowed: /array of stages/ },
  },
  {
    place: "new Pipeline()",
    mistake: "a plain function among the stages",
    code: `new Pipeline({ name: "orders", stages: [parse, fn] })`,
    attempt: () => new Pipeline({ name: "orders", stages: [parse(), identity] } as never),
    expect: { classes: CONFIG, field: "stages[1]", value: "got a function", allowed: /stage\(/ },
    alsoIn: CONFIG_TEST,
  },
  {
    place: "new Pipeline()",
    mistake: "a null among the stages",
    code: `new Pipeline({ name: "orders", stages: [parse, null] })`,
    attempt: () => new Pipeline({ name: "orders", stages: [parse(), null] } as never),
    expect: { classes: CONFIG, field: "stages[1]", value: "got null", allowed: /stage\(\) or batchStage\(\)/ },
  },
  {
    place: "new Pipeline()",
    mistake: "a stage's name among the stages",
    code: `new Pipeline({ name: "orders", stages: ["parse"] })`,
    attempt: () => new Pipeline({ name: "orders", stages: ["parse"] } as never),
    expect: { classes: CONFIG, field: "stages[0]", value: `got "parse"`, allowed: /stage\(\) or batchStage\(\)/ },
  },
  {
    place: "new Pipeline()",
    mistake: "a nested array of stages",
    code: `new Pipeline({ name: "orders", stages: [[parse, load]] })`,
    attempt: () => new Pipeline({ name: "orders", stages: [[parse(), stage("load", identity)]] } as never),
    expect: { classes: CONFIG, field: "stages[0]", value: "got an array of 2", allowed: /stage\(\) or batchStage\(\)/ },
  },
  {
    place: "new Pipeline()",
    mistake: "a look-alike object among the stages",
    code: `new Pipeline({ name: "orders", stages: [{ name: "parse", kind: "item", concurrency: 1 }] })`,
    attempt: () => new Pipeline({ name: "orders", stages: [{ name: "parse", kind: "item", concurrency: 1 }] } as never),
    expect: { classes: CONFIG, field: "stages[0]", value: "got an object", allowed: /stage\(\) or batchStage\(\)/ },
    alsoIn: CONFIG_TEST,
  },
  {
    place: "new Pipeline()",
    mistake: "two stages with one name",
    code: `new Pipeline({ name: "orders", stages: [stage("parse", a), stage("parse", b)] })`,
    attempt: () => new Pipeline({ name: "orders", stages: [parse(), parse()] }),
    expect: { classes: CONFIG, field: "name", value: `"parse"`, allowed: /unique/ },
    alsoIn: CONFIG_TEST,
  },
  {
    place: "new Pipeline()",
    mistake: "the same stage object twice",
    code: `new Pipeline({ name: "orders", stages: [parse, parse] })`,
    attempt: () => {
      const once = parse();
      return new Pipeline({ name: "orders", stages: [once, once] });
    },
    expect: { classes: CONFIG, field: "name", value: `"parse"`, allowed: /unique/ },
  },

  // new Pipeline(): the other options.
  pipelineOption("queueSize is 0", { queueSize: 0 }, "queueSize", positiveInteger, { alsoIn: CONFIG_TEST }),
  pipelineOption("queueSize is negative", { queueSize: -1 }, "queueSize", positiveInteger),
  pipelineOption("queueSize is NaN", { queueSize: NaN }, "queueSize", positiveInteger),
  pipelineOption("queueSize is Infinity", { queueSize: Infinity }, "queueSize", positiveInteger, {
    alsoIn: CONFIG_TEST,
  }),
  pipelineOption("queueSize is a fraction", { queueSize: 2.5 }, "queueSize", positiveInteger, { alsoIn: CONFIG_TEST }),
  pipelineOption("queueSize is a string", { queueSize: "1000" }, "queueSize", positiveInteger),
  pipelineOption("queueSize is null", { queueSize: null }, "queueSize", positiveInteger),
  pipelineOption(
    "deadLetterQueue is a string",
    { deadLetterQueue: "yes" },
    "deadLetterQueue",
    deadLetterTargets,
    {
      alsoIn: CONFIG_TEST,
    },
  ),
  pipelineOption(
    "deadLetterQueue is an array",
    { deadLetterQueue: [] },
    "deadLetterQueue",
    deadLetterTargets,
    {
      alsoIn: CONFIG_TEST,
    },
  ),
  pipelineOption(
    "deadLetterQueue is null",
    { deadLetterQueue: null },
    "deadLetterQueue",
    deadLetterTargets,
  ),
  pipelineOption("deadLetterQueue is 1", { deadLetterQueue: 1 }, "deadLetterQueue", deadLetterTargets),
  pipelineOption(
    "deadLetterQueue is an object with write()",
    { deadLetterQueue: { write() {} } },
    "deadLetterQueue",
    deadLetterTargets,
    { code: `new Pipeline({ name: "orders", stages: [parse], deadLetterQueue: { write() {} } })` },
  ),
  pipelineOption(
    "deadLetterQueue is a ReadableStream",
    { deadLetterQueue: new ReadableStream() },
    "deadLetterQueue",
    deadLetterTargets,
  ),
  pipelineOption(
    "deadLetterQueue is a TransformStream (not its .writable)",
    { deadLetterQueue: new TransformStream() },
    "deadLetterQueue",
    deadLetterTargets,
  ),
  pipelineOption("logger is an empty object", { logger: {} }, "logger", /debug, info, warn and error/, {
    alsoIn: CONFIG_TEST,
  }),
  pipelineOption("logger is null", { logger: null }, "logger", /debug, info, warn and error/),
  pipelineOption(`logger is the string "console"`, { logger: "console" }, "logger", /debug, info, warn and error/),
  pipelineOption("logger is true", { logger: true }, "logger", /debug, info, warn and error/),
  pipelineOption(
    "logger.debug is not a function",
    { logger: { debug: "verbose", info() {}, warn() {}, error() {} } },
    "logger",
    /debug, info, warn and error/,
    { code: `new Pipeline({ name: "orders", stages: [parse], logger: { debug: "verbose", info() {}, … } })` },
  ),
  pipelineOption("logger is a function", { logger: () => {} }, "logger", /debug, info, warn and error/, {
    alsoIn: CONFIG_TEST,
  }),
  pipelineOption("onEvent is an object", { onEvent: {} }, "onEvent", aFunction, { alsoIn: CONFIG_TEST }),
  pipelineOption("onEvent is null", { onEvent: null }, "onEvent", aFunction),
  pipelineOption("onEvent is a string", { onEvent: "log" }, "onEvent", aFunction),
  pipelineOption("id is a property name", { id: "key" }, "id", aFunction, { alsoIn: CONFIG_TEST }),
  pipelineOption("id is null", { id: null }, "id", aFunction),
  pipelineOption("id is a number", { id: 5 }, "id", aFunction),
  // Error strategies and flow control (issue 13).
  pipelineOption("onError names an unknown action", { onError: [["TypeError", "ignore"]] }, "onError.0.1", anAction),
  pipelineOption("maxSkips is negative", { maxSkips: -1 }, "maxSkips", wholeNumber),
  pipelineOption("maxDeadLetters is a fraction", { maxDeadLetters: 2.5 }, "maxDeadLetters", wholeNumber),
  pipelineOption("a hook is not a function", { hooks: { onEnd: "log" } }, "hooks.onEnd", aFunction),
  pipelineOption("breakpoint is not a function", { breakpoint: true }, "breakpoint", aFunction),
  pipelineOption("a misspelt option", { queueSise: 10 }, "queueSise", PIPELINE_OPTIONS, { alsoIn: CONFIG_TEST }),
  pipelineOption("a stage option on the pipeline", { concurrency: 4 }, "concurrency", PIPELINE_OPTIONS),
  pipelineOption("deadLetters instead of deadLetterQueue", { deadLetters: true }, "deadLetters", PIPELINE_OPTIONS),

  // The pipeline's id() at run time: each item it fails for is dead-lettered.
  {
    place: "pipeline.run()",
    mistake: "id() is async (returns a Promise): each item is dead-lettered with this error",
    code: `new Pipeline({ …, id: async (row) => row.key }).run(rows)`,
    attempt: async () => {
      const id = (async (n: number) => `k${n}`) as unknown as (n: number) => string; // the types forbid it; JS does not
      const pipeline = new Pipeline({ name: "orders", stages: [parse()], id });
      await pipeline.run([1]);
      // Not thrown: the item is dead-lettered with this error.
      const letter = pipeline.deadLetters[0];
      throw Object.assign(new Error(letter.reason), { name: letter.error.name });
    },
    expect: { classes: ["TypeError"], field: "id()", value: "got a Promise", allowed: /string or a number/ },
  },

  // pipeline.run(): the source.
  { ...source("a number", "pipeline.run(42)", () => 42, "got 42"), alsoIn: SOURCE_TEST },
  { ...source("null", "pipeline.run(null)", () => null, "got null"), alsoIn: SOURCE_TEST },
  { ...source("a string", `pipeline.run("text")`, () => "text", /string/, /wrap it in an array/), alsoIn: SOURCE_TEST },
  source("a WritableStream", "pipeline.run(new WritableStream())", () => new WritableStream(), "got a WritableStream"),
  source(
    "a TransformStream (not its .readable)",
    "pipeline.run(new TransformStream())",
    () => new TransformStream(),
    "got a TransformStream",
  ),
  source(
    "an iterator that is not iterable",
    "pipeline.run({ next() {…} })",
    () => ({ next: () => ({ done: true, value: undefined }) }),
    "got an object",
  ),
  {
    ...source("a Promise of an array", "pipeline.run(fetchRows())", () => Promise.resolve([1]), "got a Promise"),
    alsoIn: SOURCE_TEST,
  },
  {
    ...source(
      "a locked ReadableStream",
      "pipeline.run(stream) while a reader holds it",
      () => {
        const stream = new ReadableStream();
        stream.getReader();
        return stream;
      },
      /locked/,
      /nobody else reads|tee\(\)/,
    ),
    alsoIn: SOURCE_TEST,
  },
  {
    place: "pipeline.run()",
    mistake: "a ReadableStream an earlier run read to its end",
    code: "await pipeline.run(stream); await pipeline.run(stream)",
    attempt: async () => {
      const pipeline = new Pipeline({ name: "orders", stages: [parse()] });
      const stream = new ReadableStream<number>({
        start(controller) {
          controller.enqueue(1);
          controller.close();
        },
      });
      await pipeline.run(stream);
      return pipeline.run(stream);
    },
    expect: {
      classes: ["TypeError"],
      field: "source",
      value: /locked|closed|read/,
      allowed: /nobody else reads|tee\(\)|new/,
    },
  },
  {
    place: "pipeline.run()",
    mistake: "a ReadableStream that is already closed (not an error: an empty source)",
    code: "pipeline.run(closedStream)",
    attempt: () => {
      const stream = new ReadableStream({
        start(controller) {
          controller.close();
        },
      });
      return new Pipeline({ name: "orders", stages: [parse()] }).run(stream).then((metrics) =>
        `resolves: ${metrics.totalIngested} items`
      );
    },
    expect: { accepted: "resolves: 0 items" },
  },
  {
    place: "pipeline.run()",
    mistake: "a generator an earlier run used up (not an error: an empty source)",
    code: "await pipeline.run(rows); await pipeline.run(rows)",
    attempt: async () => {
      const pipeline = new Pipeline({ name: "orders", stages: [parse()] });
      const rows = (function* () {
        yield 1;
      })();
      await pipeline.run(rows);
      const metrics = await pipeline.run(rows);
      return `resolves: ${metrics.totalIngested} items`;
    },
    expect: { accepted: "resolves: 0 items" },
  },

  // Issue 12: task limits, task names, status trackers, flatMap stages.
  {
    place: "stage()",
    mistake: "a taskConcurrency name that is no task of the stage",
    code: `stage("parse", [fn, load], { taskConcurrency: { fetch: 2 } })`,
    attempt: () =>
      stage("parse", [identity, function load(n: number) {
        return n;
      }], { taskConcurrency: { fetch: 2 } }),
    expect: { classes: CONFIG, field: "taskConcurrency.fetch", value: /taskConcurrency\.fetch/, allowed: /"load"/ },
  },
  stageOption(
    "a task limit of 0",
    { taskConcurrency: { identity: 0 } },
    "taskConcurrency.identity",
    positiveInteger,
  ),
  {
    place: "stage()",
    mistake: "a { name, fn } task with an empty name",
    code: `stage("parse", [fn, { name: "", fn }])`,
    attempt: () => stage("parse", [identity, { name: "", fn: identity }]),
    expect: { classes: CONFIG, field: "fn[1].name", value: `got ""`, allowed: /non-empty string/ },
  },
  {
    place: "new Pipeline()",
    mistake: "a taskConcurrency name that is no task of any stage",
    code: `new Pipeline({ stages: [parse], taskConcurrency: { fetch: 2 } })`,
    attempt: () => new Pipeline({ stages: [parse()], taskConcurrency: { fetch: 2 } }),
    expect: { classes: CONFIG, field: "taskConcurrency.fetch", value: /taskConcurrency\.fetch/, allowed: /"identity"/ },
  },
  pipelineOption(
    "a statusTracker without a record method",
    { statusTracker: {} },
    "statusTracker",
    /must be a StatusTracker/,
  ),
  {
    place: "flatMapStage()",
    mistake: "the function is not a function",
    code: `flatMapStage("split", 42)`,
    attempt: () => flatMapStage("split", 42 as never),
    expect: { classes: CONFIG, field: "fn", value: "got 42", allowed: aFunction },
  },
  {
    place: "flatMapStage()",
    mistake: "id is not a function",
    code: `flatMapStage("split", fn, { id: "key" })`,
    attempt: () => flatMapStage("split", (n: number) => [n], { id: "key" as never }),
    expect: { classes: CONFIG, field: "id", value: `got "key"`, allowed: aFunction },
  },
  {
    place: "flatMapStage()",
    mistake: "retryScope (a flatMap stage has one function)",
    code: `flatMapStage("split", fn, { retryScope: "task" })`,
    attempt: () => flatMapStage("split", (n: number) => [n], { retryScope: "task" } as never),
    expect: { classes: CONFIG, field: "retryScope", value: `got "task"`, allowed: /concurrency/ },
  },
  {
    place: "new StatusTracker()",
    mistake: "maxItems is 0",
    code: `new StatusTracker({ maxItems: 0 })`,
    attempt: () => new StatusTracker({ maxItems: 0 }),
    expect: { classes: CONFIG, field: "maxItems", value: "got 0", allowed: positiveInteger },
  },
  {
    place: "new StatusTracker()",
    mistake: "historyLimit is a fraction",
    code: `new StatusTracker({ historyLimit: 1.5 })`,
    attempt: () => new StatusTracker({ historyLimit: 1.5 }),
    expect: { classes: CONFIG, field: "historyLimit", value: "got 1.5", allowed: positiveInteger },
  },
  {
    place: "new StatusTracker()",
    mistake: "onStatusChange is not a function",
    code: `new StatusTracker({ onStatusChange: "log" })`,
    attempt: () => new StatusTracker({ onStatusChange: "log" as never }),
    expect: { classes: CONFIG, field: "onStatusChange", value: `got "log"`, allowed: aFunction },
  },

  // pipeline.run(): the run options.
  runOption("options that are not an object", "pipeline.run(rows, 5)", 5, "options", "got 5", anObject),
  runOption("options are null", "pipeline.run(rows, null)", null, "options", "got null", anObject),
  runOption(
    "signal is an AbortController (not its .signal)",
    "pipeline.run(rows, { signal: controller })",
    { signal: new AbortController() },
    "signal",
    "got an AbortController",
    /AbortSignal/,
  ),
  runOption(
    "signal is true",
    "pipeline.run(rows, { signal: true })",
    { signal: true },
    "signal",
    "got true",
    /AbortSignal/,
  ),
  runOption(
    "forceSignal is a string",
    `pipeline.run(rows, { forceSignal: "now" })`,
    { forceSignal: "now" },
    "forceSignal",
    `got "now"`,
    /AbortSignal/,
  ),
  runOption(
    "handleSignals is a string",
    `pipeline.run(rows, { handleSignals: "yes" })`,
    { handleSignals: "yes" },
    "handleSignals",
    `got "yes"`,
    trueOrFalse,
  ),
  runOption(
    "an unknown run option",
    "pipeline.run(rows, { timeout: 5000 })",
    { timeout: 5000 },
    "timeout",
    "got 5000",
    RUN_OPTIONS,
  ),
  runOption(
    "a misspelt run option",
    "pipeline.run(rows, { handleSignal: true })",
    { handleSignal: true },
    "handleSignal",
    "got true",
    RUN_OPTIONS,
  ),

  // The dead letter stream at run time.
  {
    place: "pipeline.run()",
    mistake: "a deadLetterQueue stream someone else holds a writer on",
    code: "sink.getWriter(); new Pipeline({ …, deadLetterQueue: sink }).run(rows)",
    attempt: () => {
      const sink = new WritableStream();
      sink.getWriter();
      return new Pipeline({ name: "orders", stages: [parse()], deadLetterQueue: sink }).run([1]);
    },
    expect: {
      classes: EITHER,
      field: "deadLetterQueue",
      value: /locked/,
      allowed: /nobody else|release|unlocked|its own/,
    },
  },
  {
    place: "pipeline.run()",
    mistake: "a deadLetterQueue stream that is already closed (say, by an earlier run)",
    code: "await pipeline.run(rows); await pipeline.run(rows) // deadLetterQueue: a WritableStream",
    attempt: async () => {
      const pipeline = new Pipeline({ name: "orders", stages: [parse()], deadLetterQueue: new WritableStream() });
      await pipeline.run([1]);
      return pipeline.run([1]); // no item fails: on Node 20 a write to a closed stream ends the process
    },
    expect: { classes: EITHER, field: "deadLetterQueue", value: /closed/, allowed: /new|fresh|open/ },
  },
  {
    place: "pipeline.stream()",
    mistake: "a second run while one is in progress, with a deadLetterQueue stream",
    code: "pipeline.stream(); pipeline.stream() // deadLetterQueue: a WritableStream",
    attempt: () => {
      const pipeline = new Pipeline({ name: "orders", stages: [parse()], deadLetterQueue: new WritableStream() });
      const first = pipeline.stream();
      try {
        return pipeline.stream();
      } finally {
        first.readable.cancel().catch(() => {});
        first.writable.abort().catch(() => {});
      }
    },
    expect: {
      classes: EITHER,
      field: "deadLetterQueue",
      value: /in use|locked|another run/,
      allowed: /one run|at a time|true|new/,
    },
  },
  // Observability export (issue 16).
  pipelineOption("recentErrors is negative", { recentErrors: -1 }, "recentErrors", wholeNumber),
  pipelineOption("recentErrors is a fraction", { recentErrors: 2.5 }, "recentErrors", wholeNumber),
  {
    place: "pipeline.subscribe()",
    mistake: "a listener that is not a function",
    code: `pipeline.subscribe("log")`,
    attempt: () => new Pipeline({ name: "orders", stages: [parse()] }).subscribe("log" as never),
    expect: { classes: EITHER, field: "subscribe()", value: `got "log"`, allowed: /a function/ },
  },
  ...observabilityRows(),
  ...renderAndConfigRows(),
  ...graphRows(),
  ...workerStageRows(),
];

/** Worker stages (issue 14): the module URL and the options of `workerStage()`. */
function workerStageRows(): Mistake[] {
  const url = "https://example.com/hash.js";
  const option = (mistake: string, options: Record<string, unknown>, field: string, allowed: RegExp): Mistake => ({
    place: "workerStage()",
    mistake,
    code: `workerStage("hash", url, ${lit(options)})`,
    attempt: () => workerStage("hash", url, options),
    expect: { classes: CONFIG, field, value: `got ${shown(options[field])}`, allowed },
  });
  return [
    {
      place: "workerStage()",
      mistake: "a relative module URL (it would resolve against sluice's files)",
      code: `workerStage("hash", "./hash.ts")`,
      attempt: () => workerStage("hash", "./hash.ts"),
      expect: {
        classes: CONFIG,
        field: "moduleUrl",
        value: `got "./hash.ts"`,
        allowed: /absolute URL|import\.meta\.url/,
      },
    },
    option("threads is 0", { threads: 0 }, "threads", positiveInteger),
    option("maxBatch is a fraction", { maxBatch: 2.5 }, "maxBatch", positiveInteger),
    option("export is empty", { export: "" }, "export", /name of an export/),
    option("transfer is not a function", { transfer: [] }, "transfer", /function/),
    option("requireWorkers is not a boolean", { requireWorkers: "yes" }, "requireWorkers", /true or false/),
  ];
}

/** The places of the observability export's mistakes, in the order docs/errors.md lists them. */
const OBSERVABILITY_PLACES: readonly Place[] = [
  "pipeline.subscribe()",
  "toPrometheus()",
  "metricsHandler()",
  "progress()",
  "instrument()",
];

function observabilityRows(): Mistake[] {
  const orders = () => new Pipeline({ name: "orders", stages: [parse()] });
  const prometheus = (
    mistake: string,
    options: Record<string, unknown>,
    field: string,
    value: string,
    allowed: RegExp,
  ) =>
    ({
      place: "toPrometheus()",
      mistake,
      code: `toPrometheus(pipeline, ${lit(options)})`,
      attempt: () => toPrometheus(orders(), options as never),
      expect: { classes: CONFIG, field, value, allowed },
    }) satisfies Mistake;
  const view = (mistake: string, options: Record<string, unknown>, field: string, allowed: RegExp) =>
    ({
      place: "progress()",
      mistake,
      code: `progress(pipeline, ${lit(options)})`,
      attempt: () => progress(orders(), options as never),
      expect: { classes: CONFIG, field, value: `got ${shown(options[field])}`, allowed },
    }) satisfies Mistake;
  const tracer = { startSpan() {} };
  const otel = (
    mistake: string,
    code: string,
    options: Record<string, unknown>,
    field: string,
    value: string | RegExp,
    allowed: RegExp,
  ) =>
    ({
      place: "instrument()",
      mistake,
      code,
      attempt: () => instrument(orders(), options as never),
      expect: { classes: CONFIG, field, value, allowed },
    }) satisfies Mistake;
  const letters = /letters, digits, _ and :/;
  return [
    prometheus("a prefix starting with a digit", { prefix: "1app_" }, "prefix", `got "1app_"`, letters),
    prometheus("a prefix with a dash", { prefix: "my-app_" }, "prefix", `got "my-app_"`, letters),
    prometheus(
      "a label name with a dash",
      { labels: { "my-label": "x" } },
      "labels",
      `"my-label"`,
      /letters, digits and _/,
    ),
    prometheus("a label sluice sets itself", { labels: { stage: "x" } }, "labels", `"stage"`, /which sluice sets/),
    prometheus(
      "a label value that is not a string",
      { labels: { instance: 3 } },
      "labels.instance",
      "got 3",
      /a string/,
    ),
    prometheus("labels as an array", { labels: ["a"] }, "labels", "got an array of 1", /an object of label names/),
    prometheus("a misspelt option", { prefx: "app_" }, "prefx", `"prefx"`, /the options are prefix, labels/),
    {
      place: "toPrometheus()",
      mistake: "options are null",
      code: "toPrometheus(pipeline, null)",
      attempt: () => toPrometheus(orders(), null as never),
      expect: { classes: CONFIG, field: "options", value: "got null", allowed: /must be an object/ },
    },
    {
      place: "toPrometheus()",
      mistake: "two pipelines with one name",
      code: 'toPrometheus([orders, orders2]) // both named "orders"',
      attempt: () => toPrometheus([orders(), orders()]),
      expect: { classes: CONFIG, field: "pipelines", value: `"orders"`, allowed: /its own name|set labels/ },
    },
    {
      place: "toPrometheus()",
      mistake: "something that is not a pipeline or its metrics",
      code: "toPrometheus(42)",
      attempt: () => toPrometheus(42 as never),
      expect: { classes: EITHER, field: "toPrometheus()", value: "got 42", allowed: /a Pipeline, its metrics/ },
    },
    {
      place: "metricsHandler()",
      mistake: "a null among the pipelines",
      code: "metricsHandler([null])",
      attempt: () => metricsHandler([null as never]),
      expect: { classes: CONFIG, field: "pipelines[0]", value: /got/, allowed: /must be a Pipeline/ },
    },
    {
      place: "metricsHandler()",
      mistake: "an invalid prefix",
      code: `metricsHandler([pipeline], { prefix: "a b" })`,
      attempt: () => metricsHandler([orders()], { prefix: "a b" }),
      expect: { classes: CONFIG, field: "prefix", value: `got "a b"`, allowed: letters },
    },
    {
      place: "progress()",
      mistake: "not a pipeline",
      code: "progress({})",
      attempt: () => progress({} as never),
      expect: { classes: CONFIG, field: "pipeline", value: "got an object", allowed: /must be a Pipeline/ },
    },
    view("intervalMs is 0", { intervalMs: 0 }, "intervalMs", msAbove0),
    view("total is negative", { total: -1 }, "total", wholeNumber),
    view("an unknown mode", { mode: "fancy" }, "mode", /"auto", "live" or "plain"/),
    view("output without write()", { output: {} }, "output", /a write\(text\) method/),
    {
      place: "progress()",
      mistake: "interval instead of intervalMs",
      code: "progress(pipeline, { interval: 500 })",
      attempt: () => progress(orders(), { interval: 500 } as never),
      expect: { classes: CONFIG, field: "interval", value: "got 500", allowed: /did you mean "intervalMs"/ },
    },
    otel(
      "neither a meter nor a tracer",
      "instrument(pipeline, {})",
      {},
      "meter",
      /pipeline "orders"/,
      /give a meter, a tracer or both/,
    ),
    otel(
      "a meter that is not one",
      "instrument(pipeline, { meter: {} })",
      { meter: {} },
      "meter",
      "got an object",
      /OpenTelemetry Meter/,
    ),
    otel(
      "the tracer's name instead of a tracer",
      `instrument(pipeline, { tracer: "sluice" })`,
      { tracer: "sluice" },
      "tracer",
      `got "sluice"`,
      /OpenTelemetry Tracer/,
    ),
    otel(
      "spans is a string",
      `instrument(pipeline, { tracer, spans: "yes" })`,
      { tracer, spans: "yes" },
      "spans",
      `got "yes"`,
      trueOrFalse,
    ),
    otel(
      "latencyBuckets not increasing",
      "instrument(pipeline, { tracer, latencyBuckets: [2, 1] })",
      { tracer, latencyBuckets: [2, 1] },
      "latencyBuckets",
      "got [2,1]",
      /increasing numbers of seconds/,
    ),
    otel(
      "a misspelt option",
      "instrument(pipeline, { metre: meter })",
      { metre: {} },
      "metre",
      `"metre"`,
      /the options are meter, tracer, spans, latencyBuckets/,
    ),
    {
      place: "instrument()",
      mistake: "not a pipeline",
      code: "instrument(null, { meter })",
      attempt: () => instrument(null as never, { tracer: tracer as never }),
      expect: { classes: CONFIG, field: "pipeline", value: "got null", allowed: /must be a Pipeline/ },
    },
  ];
}

/** The places of the graph builder's mistakes (issue 18), in the order docs/errors.md lists them. */
const GRAPH_PLACES: readonly Place[] = ["graph()", "graph.run()"];

function graphRows(): Mistake[] {
  type Body = (b: GraphBuilder, n: Handle<number>) => Record<string, Handle<unknown>>;
  const make = (options: Record<string, unknown>, body: Body = (_b, n) => ({ n })) =>
    graph(
      { name: "g", sources: { n: graphSource<number>() }, ...options } as never,
      (b, sources: Record<string, Handle<unknown>>) => body(b, sources.n as Handle<number>),
    );
  const option = (mistake: string, options: Record<string, unknown>, field: string, got: string, allowed: RegExp) =>
    ({
      place: "graph()",
      mistake,
      code: `graph(${lit({ name: "g", sources: new Raw("{ n: source() }"), ...options })}, build)`,
      attempt: () => make(options),
      expect: { classes: CONFIG, field, value: got, allowed },
    }) satisfies Mistake;
  const fanned = (options: unknown): Body => (b, n) => {
    const fan = b.broadcast("fan", n);
    const a = b.add(stage("a", identity), fan);
    const c = b.add(stage("c", identity), fan);
    return { out: b.join("j", { a, c }, options as never) };
  };
  const twoSources = () =>
    graph({ name: "g", sources: { a: graphSource<number>(), b: graphSource<number>() } }, (b, { a, b: second }) => ({
      all: b.merge("all", [a, second]),
    }));
  return [
    option("queueSize is 0", { queueSize: 0 }, "queueSize", "got 0", positiveInteger),
    option("a misspelt option", { queuesize: 10 }, "queuesize", "(got 10)", /did you mean "queueSize"\?/),
    option("no sources", { sources: {} }, "sources", "got an object", /at least one source/),
    option("maxDeadLetters is -1", { maxDeadLetters: -1 }, "maxDeadLetters", "got -1", /whole number, 0 or more/),
    option(
      "a misspelt hook",
      { hooks: { onStageFailure: () => {} } },
      "hooks.onStageFailure",
      "got a function",
      /the options of "hooks" are onStart, .*onStageError/,
    ),
    option(
      "a Pipeline-only option (taskConcurrency)",
      { taskConcurrency: { fetch: 2 } },
      "taskConcurrency",
      "(got an object)",
      /give each stage its own taskConcurrency/,
    ),
    option(
      "a Pipeline-only option (recentErrors)",
      { recentErrors: 5 },
      "recentErrors",
      "(got 5)",
      /graphs have no snapshot\(\)/,
    ),
    {
      place: "graph()",
      mistake: "a join's timeoutMs is 0",
      code: `b.join("j", { a, c }, { timeoutMs: 0 })`,
      attempt: () => make({}, fanned({ timeoutMs: 0 })),
      expect: { classes: CONFIG, field: "timeoutMs", value: "got 0", allowed: msAbove0 },
    },
    {
      place: "graph()",
      mistake: "a misspelt join option",
      code: `b.join("j", { a, c }, { timeout: 50 })`,
      attempt: () => make({}, fanned({ timeout: 50 })),
      expect: { classes: CONFIG, field: "timeout", value: "(got 50)", allowed: /did you mean "timeoutMs"\?/ },
    },
    {
      place: "graph()",
      mistake: "a tap's whenFull is unknown",
      code: `b.tap(n, fn, { whenFull: "block" })`,
      attempt: () =>
        make({}, (b, n) => {
          b.tap(n, () => {}, { whenFull: "block" as never });
          return { n };
        }),
      expect: { classes: CONFIG, field: "whenFull", value: `got "block"`, allowed: /"drop" or "sample"/ },
    },
    {
      place: "graph()",
      mistake: "a tap's bufferSize is 0",
      code: `b.tap(n, fn, { bufferSize: 0 })`,
      attempt: () =>
        make({}, (b, n) => {
          b.tap(n, () => {}, { bufferSize: 0 });
          return { n };
        }),
      expect: { classes: CONFIG, field: "bufferSize", value: "got 0", allowed: positiveInteger },
    },
    {
      place: "graph.run()",
      mistake: "a missing source",
      code: `graph({ sources: { a: source(), b: source() } }, build).run({ a: [1] })`,
      attempt: () => twoSources().run({ a: [1] } as never),
      expect: { classes: EITHER, field: 'source "b"', value: /is missing/, allowed: /pass every source by name/ },
    },
    {
      place: "graph.run()",
      mistake: "one source alone for a graph of two",
      code: `graph({ sources: { a: source(), b: source() } }, build).run([1])`,
      attempt: () => twoSources().run([1] as never),
      expect: { classes: EITHER, field: "sources", value: /has 2 sources/, allowed: /pass them by name/ },
    },
  ];
}

/** The places of issue 18's rendering and config mistakes, in the order docs/errors.md lists them. */
const RENDER_AND_CONFIG_PLACES: readonly Place[] = ["toMermaid()", "pipeline.toMermaid()", "fromConfig()"];

function renderAndConfigRows(): Mistake[] {
  const shape = { name: "g", nodes: [{ name: "a", kind: "stage" as const }], edges: [] };
  const registry = {
    json: processor({ create: () => (line: string) => JSON.parse(line) as unknown }),
    change: processor({
      parameters: z.object({ transformation: z.enum(["upper", "lower"]) }),
      create: () => (s: string) => s.toUpperCase(),
    }),
    load: processor({ kind: "batch", create: () => (rows: readonly string[]) => rows }),
  };
  const config = (
    mistake: string,
    code: string,
    value: unknown,
    field: string,
    got: string | RegExp,
    allowed: RegExp,
  ) =>
    ({
      place: "fromConfig()",
      mistake,
      code,
      attempt: () => fromConfig(value as never, registry),
      expect: { classes: CONFIG, field, value: got, allowed },
    }) satisfies Mistake;
  const json = { name: "p", type: "json" };
  return [
    {
      place: "toMermaid()",
      mistake: "an edge to a node the shape lacks",
      code: `toMermaid({ name: "g", nodes: [{ name: "a", kind: "stage" }], edges: [{ from: "a", to: "b" }] })`,
      attempt: () => toMermaid({ ...shape, edges: [{ from: "a", to: "b" }] }),
      expect: { classes: CONFIG, field: "edges[0].to", value: `is "b"`, allowed: /the nodes are "a"/ },
    },
    {
      place: "toMermaid()",
      mistake: "an unknown direction",
      code: `toMermaid(shape, { direction: "up" })`,
      attempt: () => toMermaid(shape, { direction: "up" as never }),
      expect: { classes: CONFIG, field: "direction", value: `got "up"`, allowed: /"LR", "RL", "TB" or "BT"/ },
    },
    {
      place: "pipeline.toMermaid()",
      mistake: "counts is not a boolean",
      code: `pipeline.toMermaid({ counts: "yes" })`,
      attempt: () => new Pipeline({ name: "p", stages: [parse()] }).toMermaid({ counts: "yes" as never }),
      expect: { classes: CONFIG, field: "counts", value: `got "yes"`, allowed: /true or false/ },
    },
    config(
      "a parameter outside its enum",
      `fromConfig({ processors: [{ name: "c", type: "change", parameters: { transformation: "title" } }] }, registry)`,
      { processors: [{ name: "c", type: "change", parameters: { transformation: "title" } }] },
      "processors[0].parameters.transformation",
      `got "title"`,
      /expected one of "upper", "lower"/,
    ),
    config(
      "an unknown processor type",
      `fromConfig({ processors: [{ name: "p", type: "jsn" }] }, registry)`,
      { processors: [{ ...json, type: "jsn" }] },
      "processors[0].type",
      `"jsn"`,
      /did you mean "json"\? the registry has "json", "change", "load"/,
    ),
    config(
      "a misspelt key",
      `fromConfig({ processors: [{ name: "p", type: "json", paramters: {} }] }, registry)`,
      { processors: [{ ...json, paramters: {} }] },
      "processors[0]",
      `"paramters"`,
      /did you mean "parameters"\? the keys are name, type, parameters, options/,
    ),
    config(
      "a bad stage option",
      `fromConfig({ processors: [{ name: "p", type: "json", options: { concurrency: 0 } }] }, registry)`,
      { processors: [{ ...json, options: { concurrency: 0 } }] },
      "processors[0].options.concurrency",
      "got 0",
      /positive integer/,
    ),
    config(
      "a batch type without batchSize",
      `fromConfig({ processors: [{ name: "l", type: "load" }] }, registry)`,
      { processors: [{ name: "l", type: "load" }] },
      "processors[0].options.batchSize",
      /batch type "load"/,
      /is required/,
    ),
    config(
      "an unknown error action",
      `fromConfig({ processors: [{ name: "p", type: "json", options: { onError: [["SyntaxError", "ignore"]] } }] }, registry)`,
      { processors: [{ ...json, options: { onError: [["SyntaxError", "ignore"]] } }] },
      "processors[0].options.onError[0][1]",
      `got "ignore"`,
      /"retry", "deadLetter", "skip", "halt"/,
    ),
    config(
      "a connection to an unknown node",
      `fromConfig({ sources: ["s"], processors: [{ name: "p", type: "json" }], connections: [{ from: "s", to: "q" }], outputs: { out: "p" } }, registry)`,
      { sources: ["s"], processors: [json], connections: [{ from: "s", to: "q" }], outputs: { out: "p" } },
      "connections[0].to",
      `"q"`,
      /they are "p"/,
    ),
  ];
}

// ---------------------------------------------------------------------------
// Running the catalogue.

/** Makes the mistake and reports what happened. */
export async function observe(mistake: Mistake): Promise<Observed> {
  let result: unknown;
  try {
    result = mistake.attempt();
  } catch (error) {
    return describe("thrown", error);
  }
  try {
    const value = await result;
    return {
      how: "returned",
      className: "-",
      message: typeof value === "string" ? value : "no error",
      error: undefined,
      value,
    };
  } catch (error) {
    return describe(result instanceof Promise ? "rejected" : "thrown", error);
  }
}

function describe(how: "thrown" | "rejected", error: unknown): Observed {
  const className = error instanceof Error ? error.name : typeof error;
  const message = error instanceof Error ? error.message : String(error);
  return { how, className, message, error };
}

/** What is missing from an observed error, measured against the contract; empty when it meets it. */
export function shortfalls(mistake: Mistake, observed: Observed): string[] {
  const expect = mistake.expect;
  if ("accepted" in expect) {
    return observed.how === "returned" && observed.message === expect.accepted
      ? []
      : [`expected ${expect.accepted}; got ${observed.how} ${observed.className}: ${observed.message}`];
  }
  if (observed.how === "returned") return [`expected a ${expect.classes.join(" or ")}; nothing was thrown`];
  const problems: string[] = [];
  if (!(expect.classes as readonly string[]).includes(observed.className)) {
    problems.push(`a ${expect.classes.join(" or ")}, not a ${observed.className}`);
  }
  const message = observed.message;
  if (!message.includes(expect.field)) problems.push(`the field (${expect.field})`);
  const value = expect.value;
  if (typeof value === "string" ? !message.includes(value) : !value.test(message)) {
    problems.push(`the value given (${value})`);
  }
  if (!expect.allowed.test(message)) problems.push(`what is allowed (${pattern(expect.allowed)})`);
  return problems;
}

/** A pattern for a message: a {@linkcode listing} as its names, others as written. */
function pattern(re: RegExp): string {
  const names = [...re.source.matchAll(/\\b(\w+)\\b/g)].map((match) => match[1]);
  return re.source.startsWith("(?=") ? `the options there are: ${names.join(", ")}` : String(re);
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

function code(text: string): string {
  const fence = text.includes("`") ? "``" : "`";
  return `${fence}${cell(text)}${fence}`;
}

/** The catalogue as markdown: one table per place. */
export async function markdown(): Promise<string> {
  const lines = [
    "# Error catalogue",
    "",
    "<!-- Generated by `node --import tsx scripts/error_catalogue.ts --write`: do not edit by hand. -->",
    "<!-- tests/bad_input_test.ts fails when this file and the code disagree. -->",
    "",
    "Every configuration mistake sluice knows of, what it throws and the message it gives, taken from",
    "running the code. Stage and pipeline options are checked when the stage or pipeline is built and",
    "throw a `ConfigError` (with `error.field` and `error.stage`); sources and run options are checked",
    "when `run()` is called and reject with a `TypeError`. Every `stage()` option row applies to",
    "`batchStage()` as well. `fn` stands for any stage function and `parse` for any stage.",
    "",
  ];
  const places: Place[] = [
    "stage()",
    "batchStage()",
    "new Pipeline()",
    "pipeline.run()",
    "pipeline.stream()",
    "flatMapStage()",
    "new StatusTracker()",
    ...OBSERVABILITY_PLACES,
    ...RENDER_AND_CONFIG_PLACES,
    ...GRAPH_PLACES,
    "workerStage()",
  ];
  for (const place of places) {
    const rows = MISTAKES.filter((mistake) => mistake.place === place);
    if (rows.length === 0) continue;
    lines.push(`## ${place}`, "", "| Mistake | Code | Error | Message |", "| --- | --- | --- | --- |");
    for (const mistake of rows) {
      const observed = await observe(mistake);
      const error = observed.how === "returned"
        ? "none"
        : `${observed.className} (${observed.how === "rejected" ? "rejects" : "throws"})`;
      lines.push(`| ${cell(mistake.mistake)} | ${code(mistake.code)} | ${error} | ${code(observed.message)} |`);
    }
    lines.push("");
  }
  lines.push(...redisErrors());
  return lines.join("\n");
}

/**
 * The errors of `sluice/redis`, which need a server to happen: described
 * here, their messages checked by tests/redis_test.ts.
 */
function redisErrors(): string[] {
  const poison = new PoisonMessageError("orders", "1700000000000-0", 6, 5);
  return [
    "## sluice/redis",
    "",
    "Options of `redisStreamSource()`, `redisStreamSink()` and `redisDeadLetterStream()` are checked when they are",
    "called and throw a `ConfigError` naming the field, like the options above. At run time (tests/redis_test.ts checks",
    "these messages against a real server):",
    "",
    "| Error | When | What it says |",
    "| --- | --- | --- |",
    "| `RedisStreamError` (rejects `run()`) | the client is not connected (ioredis `lazyConnect`, or closed) | " +
    '`the Redis client is not connected (status "wait"); call await client.connect() first …` |',
    "| `RedisStreamError` (rejects `run()`) | the stream does not exist | " +
    '`the stream "…" does not exist; add entries to it first, or pass createGroup: true …` |',
    "| `RedisStreamError` (rejects `run()`) | the consumer group does not exist | " +
    '`the consumer group "…" does not exist (…); create it with XGROUP CREATE …, or pass createGroup: true` |',
    "| `PermanentError` (a dead letter) | `redisStreamSink()` got a field that is not a string | " +
    '`field "n" is 0; stream entry fields must be strings (convert it: String(value), …)` |',
    `| \`${poison.name}\` (a dead letter) | an entry was delivered more than \`maxDeliveries\` times | \`${poison.message}\` |`,
    "",
  ];
}

/**
 * The markdown with formatting evened out (paragraphs on one line, table
 * cells trimmed), so that `deno fmt`'s wrapping and column padding do not
 * count as a difference.
 */
export function normalize(text: string): string {
  const blocks: string[] = [];
  let paragraph: string[] = [];
  const endParagraph = () => {
    if (paragraph.length > 0) blocks.push(paragraph.join(" ").replace(/\s+/g, " ").trim());
    paragraph = [];
  };
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (trimmed.startsWith("|")) {
      endParagraph();
      const cells = trimmed.slice(1, trimmed.endsWith("|") ? -1 : undefined).split(/(?<!\\)\|/)
        .map((cell) => cell.trim().replace(/^-+$/, "---"));
      blocks.push(`| ${cells.join(" | ")} |`);
    } else if (trimmed === "" || trimmed.startsWith("#") || trimmed.startsWith("<!--")) {
      endParagraph();
      if (trimmed !== "") blocks.push(trimmed);
    } else {
      paragraph.push(trimmed);
    }
  }
  endParagraph();
  return blocks.join("\n");
}

/** Runs as a script: prints the markdown, or writes docs/errors.md (then `deno fmt`s it) with `--write`. */
async function main(args: readonly string[]): Promise<void> {
  const text = await markdown();
  if (!args.includes("--write")) {
    console.log(text);
    return;
  }
  const { existsSync, writeFileSync } = await import("node:fs");
  const { spawnSync } = await import("node:child_process");
  const { fileURLToPath } = await import("node:url");
  const target = fileURLToPath(new URL("../docs/errors.md", import.meta.url));
  writeFileSync(target, text);
  const deno = fileURLToPath(new URL("../node_modules/.bin/deno", import.meta.url));
  if (existsSync(deno)) spawnSync(deno, ["fmt", "--quiet", target], { stdio: "inherit" });
  else console.log("format it with: npx deno fmt docs/errors.md");
  console.log(`wrote ${target}`);
}

/** True when this module is the program being run (Node, Deno and Bun), not an import. */
async function isMain(): Promise<boolean> {
  const meta = import.meta as ImportMeta & { main?: boolean };
  if (typeof meta.main === "boolean") return meta.main;
  const argv = (globalThis as { process?: { argv: string[] } }).process?.argv ?? [];
  if (!argv[1]) return false;
  const { pathToFileURL } = await import("node:url");
  const { realpathSync } = await import("node:fs");
  try {
    return pathToFileURL(realpathSync(argv[1])).href === import.meta.url;
  } catch {
    return false;
  }
}

if (await isMain()) {
  const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
    (globalThis as { process?: { argv: string[] } }).process?.argv.slice(2) ?? [];
  await main(args);
}
