import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import {
  ConfigError,
  configJsonSchema,
  configSchema,
  type DeadLetter,
  fromConfig,
  PermanentError,
  type PipelineConfig,
  processor,
  type ProcessorRegistry,
} from "../mod.ts";
import { configSchemaText } from "../scripts/config_schema.ts";
import { root } from "./fixtures/runtimes.ts";

const registry = {
  parse: processor({
    description: "JSON.parse each line",
    create: () => (line: string) => JSON.parse(line) as unknown,
  }),
  change: processor({
    description: "Changes a string's case",
    parameters: z.strictObject({ transformation: z.enum(["upper", "lower"]), times: z.int().min(1).default(1) }),
    create: ({ transformation, times }) => (s: string) =>
      (transformation === "upper" ? s.toUpperCase() : s.toLowerCase()).repeat(times),
  }),
  words: processor({ kind: "flatMap", create: () => (s: string) => s.split(" ") }),
  load: processor({
    kind: "batch",
    parameters: z.object({ into: z.string() }),
    create: ({ into }) => (rows: readonly string[]) => rows.map((row) => `${into}:${row}`),
  }),
  refuse: processor({
    create: () => (s: string) => {
      if (s.startsWith("!")) throw new PermanentError(`refused ${s}`);
      return s;
    },
  }),
} satisfies ProcessorRegistry;

/** The ConfigError `fn` throws. */
function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `a ConfigError, not ${error}`);
    assert.equal(error.name, "ConfigError");
    return error;
  }
  assert.fail("no error thrown");
}

test("fromConfig() builds a pipeline of registered processors: stage, flatMap and batch kinds, with their options", async () => {
  const config: PipelineConfig = {
    name: "words",
    processors: [
      { name: "parse", type: "parse", options: { onError: [["SyntaxError", "skip"]] } },
      { name: "split", type: "words" },
      { name: "shout", type: "change", parameters: { transformation: "upper" }, options: { concurrency: 2 } },
      { name: "load", type: "load", parameters: { into: "t" }, options: { batchSize: 2 } },
    ],
  };
  const pipeline = fromConfig<string, string>(config, registry);
  assert.equal(pipeline.name, "words");
  const { outputs, metrics } = await pipeline.collect(['"a b"', "{", '"c"']);
  assert.deepEqual(outputs, ["t:A", "t:B", "t:C"]);
  assert.equal(metrics.totalSkipped, 1);
  assert.equal(metrics.totalExpanded, 2);
  assert.deepEqual(Object.keys(metrics.stageMetrics), ["parse", "split", "shout", "load"]);
  assert.equal(
    pipeline.toOutline().split("\n")[4],
    "  shout   (stage)   → load",
    "the built pipeline draws like any other",
  );
});

test("fromConfig() applies the error strategy: retries, pipeline onError rules and run limits from the config", async () => {
  const pipeline = fromConfig<string, string>({
    processors: [{ name: "refuse", type: "refuse", options: { maxRetries: 2, backoff: { initialDelayMs: 0 } } }],
    options: { onError: [["PermanentError", "skip"]], maxSkips: 5 },
  }, registry);
  const { outputs, metrics } = await pipeline.collect(["a", "!b", "c"]);
  assert.deepEqual(outputs, ["a", "c"]);
  assert.equal(metrics.totalSkipped, 1);
  assert.equal(metrics.stageMetrics.refuse.retries, 0, "a PermanentError is not retried");
});

test("fromConfig() takes the options that are code from its third argument", async () => {
  const letters: DeadLetter[] = [];
  const pipeline = fromConfig<string, string>({ processors: [{ name: "refuse", type: "refuse" }] }, registry, {
    deadLetterQueue: new WritableStream({ write: (entry) => void letters.push(entry) }),
  });
  await pipeline.run(["!x", "y"]);
  assert.deepEqual(letters.map((letter) => [letter.stage, letter.reason]), [["refuse", "refused !x"]]);
});

test("fromConfig() reports a bad parameter at its path, in words: expected one of …", () => {
  const error = configErrorOf(() =>
    fromConfig({
      name: "etl",
      processors: [
        { name: "a", type: "parse" },
        { name: "b", type: "parse" },
        { name: "c", type: "change", parameters: { transformation: "title" } },
      ],
    }, registry)
  );
  assert.equal(
    error.message,
    'Config "etl": processors[2].parameters.transformation: expected one of "upper", "lower"; got "title"',
  );
  assert.equal(error.field, "processors.2.parameters.transformation");
});

test("fromConfig() names an unknown type with the known ones, and a near miss", () => {
  const error = configErrorOf(() => fromConfig({ processors: [{ name: "c", type: "chnage" }] }, registry));
  assert.equal(
    error.message,
    'Config: processors[0].type: unknown processor type "chnage"; did you mean "change"? ' +
      'the registry has "parse", "change", "words", "load", "refuse"',
  );
  const inherited = configErrorOf(() => fromConfig({ processors: [{ name: "c", type: "toString" }] }, registry));
  assert.match(inherited.message, /unknown processor type "toString"/, "only the registry's own keys are types");
});

test("fromConfig() lists every problem it finds in one ConfigError, each at its path", () => {
  const error = configErrorOf(() =>
    fromConfig({
      processors: [
        { name: "a", type: "change", parameters: { transformation: "upper", tims: 2 } },
        { name: "a", type: "load", parameters: {} },
        { name: "b", type: "parse", options: { batchSize: 10 } },
      ],
    }, registry)
  );
  assert.equal(
    error.message,
    [
      "Config has 5 problems:",
      '  processors[0].parameters: unknown key "tims"; did you mean "times"? the keys are transformation, times',
      '  processors[1].options.batchSize: is required by batch type "load"',
      "  processors[1].parameters.into: invalid input: expected string, received undefined; got undefined",
      '  processors[2].options.batchSize: belongs to batch types only, and "parse" is a stage type; got 10',
      `  processors[1].name: "a" is processors[0]'s name too; names must be unique`,
    ].join("\n"),
  );
  assert.equal(error.field, "processors.0.parameters");
});

test("fromConfig() checks the config's shape first: unknown keys, bad options, bad error rules", () => {
  const error = configErrorOf(() =>
    fromConfig({
      processors: [
        { name: "p", type: "parse", paramters: {} },
        { name: "q", type: "parse", options: { concurrency: 0, onError: [["SyntaxError", "explode"]] } },
      ],
      options: { queueSize: 1.5 },
    } as unknown as PipelineConfig, registry)
  );
  assert.deepEqual(error.message.split("\n").slice(1), [
    '  processors[0]: unknown key "paramters"; did you mean "parameters"? the keys are name, type, parameters, options',
    "  processors[1].options.concurrency: must be a positive integer; got 0",
    '  processors[1].options.onError[0][1]: must be "retry", "deadLetter", "skip", "halt" or { halt: "graceful" | "force" }; got "explode"',
    "  options.queueSize: must be a positive integer; got 1.5",
  ]);
  assert.equal(
    configErrorOf(() => fromConfig(null as unknown as PipelineConfig, registry)).message,
    "Config must be an object with processors; got null",
  );
  assert.equal(
    configErrorOf(() => fromConfig({ processors: [] }, registry)).message,
    "Config: processors: must hold at least one processor; got an array of 0",
  );
});

test("fromConfig() reports a registry mistake, and a create() that throws, as ConfigErrors", () => {
  assert.match(
    configErrorOf(() => fromConfig({ processors: [{ name: "p", type: "p" }] }, { p: { create: 1 } } as never)).message,
    /^fromConfig: registry\["p"\]\.create must be a function/,
  );
  assert.match(
    configErrorOf(() => fromConfig({ processors: [{ name: "p", type: "p" }] }, [] as never)).message,
    /the registry must be an object of processor types by name; got an array of 0/,
  );
  const failing = {
    broken: processor({
      create: () => {
        throw new Error("no connection string");
      },
    }),
  };
  const error = configErrorOf(() => fromConfig({ processors: [{ name: "b", type: "broken" }] }, failing));
  assert.equal(error.message, 'Config: processors[0]: type "broken" could not be made: no connection string');
});

test("configJsonSchema() accepts what configSchema accepts and describes each field for editors", () => {
  const schema = configJsonSchema() as {
    properties: { processors: { items: { properties: Record<string, { description?: string }> } } };
    additionalProperties: boolean;
  };
  assert.equal(schema.additionalProperties, false);
  const fields = schema.properties.processors.items.properties;
  assert.deepEqual(Object.keys(fields), ["name", "type", "parameters", "options"]);
  assert.ok(Object.values(fields).every((field) => typeof field.description === "string"));
  assert.ok(configSchema.safeParse({ processors: [{ name: "p", type: "parse" }] }).success);
});

test("configJsonSchema(registry) makes type one of the registry's, with each type's parameters", () => {
  const schema = configJsonSchema(registry) as {
    properties: { processors: { items: { anyOf: { properties: Record<string, Record<string, unknown>> }[] } } };
  };
  const types = schema.properties.processors.items.anyOf;
  assert.deepEqual(types.map((type) => type.properties.type.const), ["parse", "change", "words", "load", "refuse"]);
  const change = types[1].properties;
  assert.equal(change.type.description, "Changes a string's case");
  assert.deepEqual((change.parameters as { properties: { transformation: unknown } }).properties.transformation, {
    type: "string",
    enum: ["upper", "lower"],
  });
});

test("config.schema.json is configJsonSchema()'s output (run scripts/config_schema.ts after changing the schema)", () => {
  const committed = readFileSync(join(root, "config.schema.json"), "utf8");
  assert.equal(committed, configSchemaText());
});

test("examples/orders.yaml, parsed by the yaml package, is a valid config (the example runs it)", async () => {
  const { parse } = await import("yaml");
  const config = parse(readFileSync(join(root, "examples", "orders.yaml"), "utf8")) as PipelineConfig;
  assert.ok(configSchema.safeParse(config).success);
  assert.deepEqual(config.processors.map((entry) => entry.type), ["json", "require", "currency", "warehouse"]);
});
