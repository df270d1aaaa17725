import { test } from "node:test";
import assert from "node:assert/strict";
import { batchStage, ConfigError, Pipeline, stage } from "../mod.ts";

const identity = (n: number) => n;

interface Case {
  /** What is wrong. */
  readonly name: string;
  /** Builds the stage or pipeline; must throw. */
  readonly build: () => unknown;
  /** The expected `error.stage` (undefined for pipeline-level options). */
  readonly stage: string | undefined;
  /** The expected `error.field`. */
  readonly field: string;
  /** What the message must also say (the value given, what is allowed). */
  readonly says?: RegExp;
  /** How the message names the field, when not by the field's own name. */
  readonly fieldWord?: string;
  /** The pipeline the message must name, for pipeline-level errors. */
  readonly pipeline?: string;
}

/** Stage options, built with `stage("parse", identity, options)`. */
const STAGE_OPTION_CASES: readonly (readonly [string, Record<string, unknown>, string, RegExp])[] = [
  ["concurrency: 0", { concurrency: 0 }, "concurrency", /positive integer; got 0/],
  ["negative concurrency", { concurrency: -2 }, "concurrency", /got -2/],
  ["concurrency: NaN", { concurrency: NaN }, "concurrency", /got NaN/],
  ["concurrency: Infinity", { concurrency: Infinity }, "concurrency", /got Infinity/],
  ["non-integer concurrency", { concurrency: 1.5 }, "concurrency", /got 1\.5/],
  ["concurrency as a string", { concurrency: "4" }, "concurrency", /got "4"/],
  ["negative maxRetries", { maxRetries: -1 }, "maxRetries", /0 or more; got -1/],
  ["non-integer maxRetries", { maxRetries: 2.5 }, "maxRetries", /got 2\.5/],
  ["maxRetries: Infinity", { maxRetries: Infinity }, "maxRetries", /got Infinity/],
  ["maxRetries: NaN", { maxRetries: NaN }, "maxRetries", /got NaN/],
  ["stage queueSize: 0", { queueSize: 0 }, "queueSize", /positive integer; got 0/],
  ["stage queueSize: NaN", { queueSize: NaN }, "queueSize", /got NaN/],
  ["timeoutMs: 0", { timeoutMs: 0 }, "timeoutMs", /above 0; got 0/],
  ["timeoutMs: Infinity", { timeoutMs: Infinity }, "timeoutMs", /got Infinity/],
  ["timeoutMs: NaN", { timeoutMs: NaN }, "timeoutMs", /got NaN/],
  ["ordered as a number", { ordered: 1 }, "ordered", /true or false; got 1/],
  ["retryIf not a function", { retryIf: true }, "retryIf", /must be a function; got true/],
  ["unknown retryScope", { retryScope: "item" }, "retryScope", /"task" or "stage"; got "item"/],
  ["backoff not an object", { backoff: 100 }, "backoff", /must be an object; got 100/],
  ["negative backoff.initialDelayMs", { backoff: { initialDelayMs: -1 } }, "backoff.initialDelayMs", /got -1/],
  ["backoff.maxDelayMs: NaN", { backoff: { maxDelayMs: NaN } }, "backoff.maxDelayMs", /got NaN/],
  ["backoff.multiplier below 1", { backoff: { multiplier: 0.5 } }, "backoff.multiplier", /1 or more; got 0\.5/],
  ["backoff.multiplier: Infinity", { backoff: { multiplier: Infinity } }, "backoff.multiplier", /got Infinity/],
  ["backoff.jitter not a boolean", { backoff: { jitter: "yes" } }, "backoff.jitter", /true or false; got "yes"/],
  ["an unknown stage option", { concurency: 4 }, "concurency", /unknown option "concurency"/],
  ["an unknown backoff option", { backoff: { initialDelay: 5 } }, "backoff.initialDelay", /"backoff\.initialDelay"/],
];

/** Pipeline options, merged over a valid `{ name: "orders", stages: [...] }`. */
const PIPELINE_OPTION_CASES: readonly (readonly [string, Record<string, unknown>, string, RegExp])[] = [
  ["pipeline queueSize: 0", { queueSize: 0 }, "queueSize", /positive integer; got 0/],
  ["pipeline queueSize: Infinity", { queueSize: Infinity }, "queueSize", /got Infinity/],
  ["non-integer pipeline queueSize", { queueSize: 2.5 }, "queueSize", /got 2\.5/],
  ["empty pipeline name", { name: "" }, "name", /non-empty string; got ""/],
  ["blank pipeline name", { name: "   " }, "name", /non-empty string/],
  ["pipeline name not a string", { name: 7 }, "name", /got 7/],
  ["empty stages array", { stages: [] }, "stages", /at least one stage/],
  ["stages not an array", { stages: "parse" }, "stages", /array of stages; got "parse"/],
  [
    "deadLetterQueue as a string",
    { deadLetterQueue: "yes" },
    "deadLetterQueue",
    /WritableStream or a function returning one; got "yes"/,
  ],
  [
    "deadLetterQueue as an array",
    { deadLetterQueue: [] },
    "deadLetterQueue",
    /WritableStream or a function returning one; got an array/,
  ],
  ["logger without methods", { logger: {} }, "logger", /debug, info, warn and error/],
  ["logger missing debug", { logger: { info() {}, warn() {}, error() {} } }, "logger", /debug, info, warn/],
  ["logger as a function", { logger: () => {} }, "logger", /debug, info, warn/],
  ["onEvent not a function", { onEvent: {} }, "onEvent", /must be a function; got an object/],
  ["id not a function", { id: "key" }, "id", /must be a function; got "key"/],
  ["an unknown pipeline option", { queueSise: 10 }, "queueSise", /unknown option "queueSise"/],
];

const CASES: Case[] = [
  ...STAGE_OPTION_CASES.map(([name, options, field, says]): Case => ({
    name,
    build: () => stage("parse", identity, options),
    stage: "parse",
    field,
    says,
  })),
  ...STAGE_OPTION_CASES.map(([name, options, field, says]): Case => ({
    name: `${name} (batch stage)`,
    build: () => batchStage("load", (rows: readonly number[]) => rows, { batchSize: 10, ...options }),
    stage: "load",
    field,
    says,
  })).filter((c) => !c.name.includes("retryScope")),
  {
    name: "batchSize: 0",
    build: () => batchStage("load", (rows: readonly number[]) => rows, { batchSize: 0 }),
    stage: "load",
    field: "batchSize",
    says: /positive integer; got 0/,
  },
  {
    name: "missing batchSize",
    build: () => batchStage("load", (rows: readonly number[]) => rows, {} as { batchSize: number }),
    stage: "load",
    field: "batchSize",
  },
  {
    name: "flushIntervalMs: 0",
    build: () => batchStage("load", (rows: readonly number[]) => rows, { batchSize: 2, flushIntervalMs: 0 }),
    stage: "load",
    field: "flushIntervalMs",
    says: /got 0/,
  },
  {
    name: "a non-function stage fn",
    build: () => stage("parse", 42 as unknown as typeof identity),
    stage: "parse",
    field: "fn",
    says: /must be a function; got 42/,
  },
  {
    name: "a non-function batch stage fn",
    build: () => batchStage("load", null as unknown as () => void, { batchSize: 2 }),
    stage: "load",
    field: "fn",
    says: /must be a function/,
  },
  {
    name: "an empty task array",
    build: () => stage("parse", [] as unknown as typeof identity),
    stage: "parse",
    field: "fn",
    fieldWord: "task array",
    says: /task array is empty/,
  },
  {
    name: "a non-function task",
    build: () => stage("parse", [identity, "next"] as unknown as typeof identity),
    stage: "parse",
    field: "fn[1]",
    says: /got "next"/,
  },
  {
    name: "an empty stage name",
    build: () => stage("", identity),
    stage: undefined,
    field: "name",
    says: /non-empty string; got ""/,
  },
  {
    name: "a blank batch stage name",
    build: () => batchStage("  ", (rows: readonly number[]) => rows, { batchSize: 1 }),
    stage: undefined,
    field: "name",
    says: /non-empty string/,
  },
  {
    name: "stage options not an object",
    build: () => stage("parse", identity, 3 as unknown as object),
    stage: "parse",
    field: "options",
    says: /must be an object; got 3/,
  },
  ...PIPELINE_OPTION_CASES.map(([name, options, field, says]): Case => ({
    name,
    build: () => new Pipeline({ name: "orders", stages: [stage("parse", identity)], ...options } as never),
    stage: undefined,
    field,
    says,
    pipeline: field === "name" ? undefined : "orders",
  })),
  {
    name: "duplicate stage names",
    build: () => new Pipeline({ name: "orders", stages: [stage("parse", identity), stage("parse", identity)] }),
    stage: "parse",
    field: "name",
    says: /Pipeline "orders": two stages are named "parse"/,
    pipeline: "orders",
  },
  {
    name: "a plain function in stages",
    build: () => new Pipeline({ name: "orders", stages: [stage("parse", identity), identity] as never }),
    stage: undefined,
    field: "stages[1]",
    says: /Pipeline "orders": stages\[1\] is not a stage; got a function \(identity\): wrap the function with stage/,
    pipeline: "orders",
  },
  {
    name: "a look-alike object in stages",
    build: () => new Pipeline({ name: "orders", stages: [{ name: "parse", kind: "item", concurrency: 1 }] as never }),
    stage: undefined,
    field: "stages[0]",
    says: /stages\[0\] is not a stage; got an object/,
    pipeline: "orders",
  },
  {
    name: "pipeline options not an object",
    build: () => new Pipeline(null as never),
    stage: undefined,
    field: "Pipeline options",
    says: /must be an object; got null/,
  },
];

for (const c of CASES) {
  test(`ConfigError for ${c.name}: names the stage and the field`, () => {
    let thrown: unknown;
    try {
      c.build();
    } catch (error) {
      thrown = error;
    }
    assert.ok(thrown !== undefined, "it must throw");
    assert.ok(thrown instanceof ConfigError, `expected a ConfigError, got ${String(thrown)}`);
    assert.ok(thrown instanceof Error);
    assert.equal(thrown.name, "ConfigError");
    assert.equal(thrown.stage, c.stage, "error.stage");
    assert.equal(thrown.field, c.field, "error.field");
    if (c.stage !== undefined) assert.ok(thrown.message.includes(`"${c.stage}"`), `message names the stage`);
    const fieldName = c.fieldWord ?? c.field.split(".").at(-1)!;
    assert.ok(thrown.message.includes(fieldName), `message names the field: ${thrown.message}`);
    if (c.pipeline !== undefined) assert.ok(thrown.message.includes(`"${c.pipeline}"`), "message names the pipeline");
    if (c.says) assert.match(thrown.message, c.says);
  });
}

test("ConfigError for a stage option is thrown by stage(), before any pipeline exists", () => {
  assert.throws(() => stage("parse", identity, { concurrency: 0 }), ConfigError);
});

test("ConfigError keeps the validation error as its cause for option errors", () => {
  try {
    stage("parse", identity, { maxRetries: -1 });
    assert.fail("it must throw");
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    assert.ok(error.cause !== undefined);
  }
});

test("valid options at their limits are accepted", () => {
  const s = stage("parse", identity, {
    concurrency: 1,
    maxRetries: 0,
    queueSize: 1,
    timeoutMs: 0.5,
    ordered: false,
    retryScope: "stage",
    retryIf: () => false,
    backoff: { initialDelayMs: 0, maxDelayMs: 0, multiplier: 1, jitter: false },
  });
  assert.equal(s.name, "parse");
  assert.equal(s.concurrency, 1);
  const b = batchStage("load", (rows: readonly number[]) => rows, { batchSize: 1, flushIntervalMs: 1 });
  const pipeline = new Pipeline({
    name: "orders",
    stages: [s, b],
    queueSize: 1,
    deadLetterQueue: new WritableStream(),
    logger: console,
    onEvent: () => {},
    id: (n: number) => n,
  });
  assert.equal(pipeline.name, "orders");
});
