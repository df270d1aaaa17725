import { test } from "node:test";
import assert from "node:assert/strict";
import { consoleLogger, type Logger, PermanentError, Pipeline, silentLogger, stage } from "../mod.ts";
import { range, recordingLogger } from "./_helpers.ts";

const CONSOLE_METHODS = ["log", "info", "warn", "error", "debug", "trace"] as const;

/** Runs `body` with the console's methods replaced; returns what was written to them. */
async function captureConsole(body: () => Promise<void> | void): Promise<string[]> {
  const written: string[] = [];
  const console_ = console as unknown as Record<string, (...args: unknown[]) => void>;
  const saved = CONSOLE_METHODS.map((name) => [name, console_[name]] as const);
  for (const name of CONSOLE_METHODS) {
    console_[name] = (...args: unknown[]) => void written.push(`${name}: ${args.map(String).join(" ")}`);
  }
  try {
    await body();
  } finally {
    for (const [name, method] of saved) console_[name] = method;
  }
  return written;
}

/** A pipeline with a retry, a permanent failure, a listener that throws and a stage that logs. */
function busyPipeline(logger?: Logger) {
  return new Pipeline({
    name: "busy",
    ...(logger ? { logger } : {}),
    onEvent: () => {
      throw new Error("listener bug");
    },
    stages: [
      stage("fetch", (n: number, ctx) => {
        ctx.logger.info("fetching", { n });
        if (n === 1 && ctx.attempt === 1) throw new Error("reset");
        return n;
      }, { maxRetries: 1, backoff: { initialDelayMs: 0 } }),
      stage("check", (n: number) => {
        if (n === 2) throw new PermanentError("two is refused");
        return n;
      }),
    ],
  });
}

test("Pipeline is silent by default: nothing is written to the console, even on retries and failures", async () => {
  let metrics;
  const written = await captureConsole(async () => {
    metrics = await busyPipeline().run(range(4));
  });
  assert.deepEqual(written, []);
  assert.equal(metrics!.totalFailed, 1, "the run did retry, fail and log through ctx.logger");
});

test("silentLogger drops every record", async () => {
  const written = await captureConsole(() => {
    for (const level of ["debug", "info", "warn", "error"] as const) silentLogger[level]("x", { a: 1 });
  });
  assert.deepEqual(written, []);
});

test("log records carry pipeline, stage, itemId and attempt", async () => {
  const { logger, records } = recordingLogger();
  const metrics = await busyPipeline(logger).run(range(4));
  assert.equal(metrics.totalCompleted, 3);
  assert.ok(records.length > 0);
  for (const record of records) assert.equal(record.properties.pipeline, "busy", record.message);

  const retry = records.filter((record) => record.level === "warn" && /retry/i.test(record.message));
  assert.equal(retry.length, 1, "one record for the retry");
  assert.equal(retry[0].properties.stage, "fetch");
  assert.equal(retry[0].properties.itemId, 1);
  assert.equal(retry[0].properties.attempt, 1);

  const deadLettered = records.filter((record) => record.level === "error" && /dead/i.test(record.message));
  assert.equal(deadLettered.length, 1, "one record for the dead letter");
  assert.equal(deadLettered[0].properties.stage, "check");
  assert.equal(deadLettered[0].properties.itemId, 2);
  assert.equal(deadLettered[0].properties.attempt, 1);

  const listener = records.filter((record) => record.level === "warn" && /onEvent|listener/.test(record.message));
  assert.ok(listener.length > 0, "a throwing listener is reported through warn");
  assert.ok(
    listener.every((record) => record.properties.stage !== undefined && record.properties.itemId !== undefined),
  );
});

test("ctx.logger in a stage adds pipeline, stage, itemId and attempt to the stage's own records", async () => {
  const { logger, records } = recordingLogger();
  await busyPipeline(logger).run(range(3));
  const fetching = records.filter((record) => record.message === "fetching");
  assert.deepEqual(
    fetching.map((record) => record.properties),
    [
      { pipeline: "busy", stage: "fetch", itemId: 0, attempt: 1, n: 0 },
      { pipeline: "busy", stage: "fetch", itemId: 1, attempt: 1, n: 1 },
      { pipeline: "busy", stage: "fetch", itemId: 1, attempt: 2, n: 1 },
      { pipeline: "busy", stage: "fetch", itemId: 2, attempt: 1, n: 2 },
    ],
  );
  assert.ok(fetching.every((record) => record.level === "info"));
});

test("ctx.logger keeps the level it is called at", async () => {
  const { logger, records } = recordingLogger();
  const pipeline = new Pipeline({
    name: "levels",
    logger,
    stages: [stage("s", (n: number, ctx) => {
      ctx.logger.debug("d");
      ctx.logger.info("i");
      ctx.logger.warn("w");
      ctx.logger.error("e", { extra: true });
      return n;
    })],
  });
  await pipeline.run([7]);
  const own = records.filter((record) => ["d", "i", "w", "e"].includes(record.message));
  assert.deepEqual(own.map((record) => record.level), ["debug", "info", "warn", "error"]);
  assert.deepEqual(own[3].properties, { pipeline: "levels", stage: "s", itemId: 0, attempt: 1, extra: true });
});

test("Pipeline logs each attempt at debug level with stage, itemId and attempt (as the Logger docs say)", async () => {
  const { logger, records } = recordingLogger();
  await new Pipeline({ name: "debug", logger, stages: [stage("s", (n: number) => n)] }).run([1, 2]);
  const debug = records.filter((record) => record.level === "debug");
  for (const itemId of [0, 1]) {
    assert.ok(
      debug.some((record) =>
        record.properties.stage === "s" && record.properties.itemId === itemId &&
        record.properties.attempt === 1
      ),
      `a debug record for item ${itemId}'s attempt`,
    );
  }
});

test("a logger that throws never breaks a run", async () => {
  const throwing = () => {
    throw new Error("logger bug");
  };
  const logger: Logger = { debug: throwing, info: throwing, warn: throwing, error: throwing };
  const metrics = await busyPipeline(logger).run(range(4));
  assert.deepEqual([metrics.totalIngested, metrics.totalCompleted, metrics.totalFailed], [4, 3, 1]);
});

test("consoleLogger writes JSON lines with time, level, message and the properties", () => {
  const lines: string[] = [];
  const logger = consoleLogger({ write: (line) => lines.push(line) });
  logger.info("run finished", { pipeline: "etl", stage: "load", itemId: 3, attempt: 2 });
  logger.error("item dead-lettered", { error: new Error("boom"), big: 10n });
  assert.equal(lines.length, 2);
  const first = JSON.parse(lines[0]);
  assert.equal(first.level, "info");
  assert.equal(first.message, "run finished");
  assert.deepEqual([first.pipeline, first.stage, first.itemId, first.attempt], ["etl", "load", 3, 2]);
  assert.ok(!Number.isNaN(Date.parse(first.time)));
  const second = JSON.parse(lines[1]);
  assert.equal(second.level, "error");
  assert.deepEqual(second.error, { name: "Error", message: "boom" });
  assert.equal(second.big, "10");
  assert.ok(lines.every((line) => !line.includes("\n")), "one line per record");
});

test("consoleLogger pretty format writes LEVEL message key=value", () => {
  const lines: string[] = [];
  const logger = consoleLogger({ format: "pretty", write: (line) => lines.push(line) });
  logger.warn("attempt failed; retrying", { pipeline: "etl", itemId: 3, attempt: 1, tags: ["a"] });
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^WARN\s+attempt failed; retrying pipeline=etl itemId=3 attempt=1 tags=\["a"\]$/);
});

test("consoleLogger drops records below its level (info by default)", () => {
  const byDefault: string[] = [];
  const info = consoleLogger({ write: (line) => byDefault.push(line) });
  info.debug("d");
  info.info("i");
  info.warn("w");
  info.error("e");
  assert.deepEqual(byDefault.map((line) => JSON.parse(line).message), ["i", "w", "e"]);

  const warnOnly: string[] = [];
  const warn = consoleLogger({ level: "warn", format: "pretty", write: (line) => warnOnly.push(line) });
  warn.debug("d");
  warn.info("i");
  warn.warn("w");
  warn.error("e");
  assert.deepEqual(warnOnly.map((line) => line.split(/\s+/)[0]), ["WARN", "ERROR"]);

  const all: string[] = [];
  const debug = consoleLogger({ level: "debug", write: (line) => all.push(line) });
  debug.debug("d");
  assert.equal(all.length, 1);

  assert.throws(() => consoleLogger({ level: "verbose" as "debug" }), TypeError);
});

test("consoleLogger writes to console.error by default", async () => {
  const written = await captureConsole(() => consoleLogger().info("hello", { pipeline: "p" }));
  assert.equal(written.length, 1);
  assert.ok(written[0].startsWith("error: "));
  assert.equal(JSON.parse(written[0].slice("error: ".length)).message, "hello");
});

test("consoleLogger as a pipeline's logger writes a JSON line per record with the record's fields", async () => {
  const lines: string[] = [];
  const pipeline = busyPipeline(consoleLogger({ level: "warn", write: (line) => lines.push(line) }));
  await pipeline.run(range(4));
  const records = lines.map((line) => JSON.parse(line));
  assert.ok(records.every((record) => record.level === "warn" || record.level === "error"));
  const deadLettered = records.find((record) => record.level === "error");
  assert.deepEqual(
    [deadLettered.pipeline, deadLettered.stage, deadLettered.itemId, deadLettered.attempt],
    ["busy", "check", 2, 1],
  );
});
