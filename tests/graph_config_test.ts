import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import {
  ConfigError,
  configJsonSchema,
  type DeadLetter,
  fromConfig,
  Graph,
  type GraphConfig,
  PermanentError,
  type PipelineConfig,
  processor,
  type ProcessorRegistry,
} from "../mod.ts";
import { configSchemaText } from "../scripts/config_schema.ts";
import { configSchema, graphConfigSchema, pipelineConfigSchema } from "../src/graph_config.ts";
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

/** `T` with no `readonly` anywhere, to compare with zod's types and to break configs in tests. */
type Writable<T> = unknown extends T ? T
  : T extends string | number | boolean | null | undefined ? T
  : { -readonly [K in keyof T]: Writable<T[K]> };

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
  assert.equal(error.field, "processors[2].parameters.transformation");
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
  assert.equal(error.field, "processors[0].parameters");
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

interface JsonObject {
  readonly anyOf: readonly {
    readonly additionalProperties: boolean;
    readonly required: readonly string[];
    readonly properties: Record<string, { readonly items: { anyOf?: readonly JsonType[] } & JsonType }>;
  }[];
}
interface JsonType {
  readonly properties: Record<
    string,
    { readonly description?: string; readonly const?: string } & Record<string, unknown>
  >;
}

test("configJsonSchema() describes a pipeline's config or a graph's, each field with a description for editors", () => {
  const [pipeline, graph] = (configJsonSchema() as unknown as JsonObject).anyOf;
  assert.equal(pipeline.additionalProperties, false);
  assert.deepEqual(pipeline.required, ["processors"]);
  assert.deepEqual(graph.required, ["sources", "processors", "connections", "outputs"]);
  const fields = pipeline.properties.processors.items.properties;
  assert.deepEqual(Object.keys(fields), ["name", "type", "parameters", "options"]);
  assert.ok(Object.values(fields).every((field) => typeof field.description === "string"));
  const nodeFields = graph.properties.processors.items.properties;
  assert.deepEqual(Object.keys(nodeFields), [
    "name",
    "type",
    "parameters",
    "options",
    "kind",
    "branches",
    "default",
    "timeoutMs",
  ]);
  assert.ok(configSchema.safeParse({ processors: [{ name: "p", type: "parse" }] }).success);
  assert.ok(configSchema.safeParse(ordersGraph()).success);
});

test("configJsonSchema(registry) makes type one of the registry's, with each type's parameters", () => {
  const [pipeline] = (configJsonSchema(registry) as unknown as JsonObject).anyOf;
  const types = pipeline.properties.processors.items.anyOf!;
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

test("examples/orders.yaml and review.yaml, parsed by the yaml package, are valid configs (the example runs them)", async () => {
  const { parse } = await import("yaml");
  const read = (file: string) => parse(readFileSync(join(root, "examples", file), "utf8")) as unknown;
  const orders = read("orders.yaml") as PipelineConfig;
  assert.ok(pipelineConfigSchema.safeParse(orders).success);
  assert.deepEqual(orders.processors.map((entry) => entry.type), ["json", "require", "currency", "warehouse"]);
  const review = read("review.yaml") as GraphConfig;
  assert.ok(graphConfigSchema.safeParse(review).success);
  assert.deepEqual(review.processors.map((node) => node.kind ?? "stage"), [
    "route",
    "broadcast",
    "stage",
    "stage",
    "join",
    "stage",
  ]);
});

type Order = { id: number; total: number };
const graphRegistry = {
  byTotal: processor({
    kind: "route",
    parameters: z.object({ limit: z.number() }),
    create: ({ limit }) => (order: Order) => order.total > limit ? "big" : "small",
  }),
  risk: processor({ create: () => (order: Order) => order.total / 1000 }),
  audit: processor({ create: () => (order: Order) => `audit ${order.id}` }),
  id: processor({ create: () => (order: Order) => order.id }),
  double: processor({ create: () => (n: number) => n * 2 }),
} satisfies ProcessorRegistry;

/** A route, a broadcast into two stages, and a join of them. */
function ordersGraph(): GraphConfig {
  return {
    name: "orders",
    sources: ["orders"],
    processors: [
      { name: "by total", kind: "route", type: "byTotal", parameters: { limit: 100 }, branches: ["big", "small"] },
      { name: "fan out", kind: "broadcast" },
      { name: "risk", type: "risk" },
      { name: "audit", type: "audit", options: { concurrency: 2 } },
      { name: "together", kind: "join", timeoutMs: 1000 },
      { name: "fast lane", type: "id" },
    ],
    connections: [
      { from: "orders", to: "by total" },
      { from: "by total", branch: "big", to: "fan out" },
      { from: "fan out", to: "risk" },
      { from: "fan out", to: "audit" },
      { from: "risk", to: "together" },
      { from: "audit", to: "together", as: "log" },
      { from: "by total", branch: "small", to: "fast lane" },
    ],
    outputs: { reviewed: "together", cheap: "fast lane" },
  };
}

test("fromConfig() builds a graph from a config with sources: a route, a broadcast and a join", async () => {
  const g = fromConfig<{ orders: Order }, { reviewed: { risk: number; log: string }; cheap: number }>(
    ordersGraph(),
    graphRegistry,
  );
  assert.ok(g instanceof Graph);
  const { outputs, metrics } = await g.collect(Array.from({ length: 5 }, (_, i) => ({ id: i, total: i * 40 })));
  assert.deepEqual(outputs.cheap, [0, 1, 2]);
  assert.deepEqual(
    outputs.reviewed.sort((a, b) => a.risk - b.risk),
    [{ risk: 0.12, log: "audit 3" }, { risk: 0.16, log: "audit 4" }],
  );
  assert.equal(metrics.totalIngested, 5);
  assert.deepEqual(
    g.shape().edges.map((edge) => `${edge.from}>${edge.to}${edge.label ? `[${edge.label}]` : ""}`).slice(0, 2),
    ["orders>by total", "by total>fan out[big]"],
  );
});

test("fromConfig() reports a graph's mistakes at their paths: kinds, branches, connections, inputs", () => {
  const config = structuredClone(ordersGraph()) as Writable<GraphConfig>;
  config.processors[1].type = "risk";
  config.processors[2].kind = "route";
  config.connections[1] = { ...config.connections[1], branch: "bg" };
  config.connections[3] = { ...config.connections[3], to: "adit" };
  config.connections.push({ from: "fast lane", to: "orders" });
  const error = configErrorOf(() => fromConfig(config, graphRegistry));
  assert.deepEqual(error.message.split("\n"), [
    'Config "orders" has 6 problems:',
    "  processors[1].type: belongs to stage and route nodes, not to a broadcast node",
    "  processors[2].branches: a route node needs the branch names its type may return",
    '  connections[1].branch: "bg" is not a branch of route "by total"; its branches are "big", "small"',
    '  connections[3].to: "adit" is not a source or node of the config; did you mean "audit"? ' +
    'they are "by total", "fan out", "risk", "audit", "together", "fast lane"',
    '  connections[7].to: "orders" is a source; nothing flows into a source',
    '  processors[3]: a stage node takes exactly one connection in; "audit" has 0: connect a source or node to it',
  ]);
  assert.equal(error.field, "processors[1].type");
});

test("fromConfig() reports the graph's own checks (a cycle) at the node's path, and route types used as stages", () => {
  const cycle: GraphConfig = {
    name: "loop",
    sources: ["numbers"],
    processors: [{ name: "both", kind: "merge" }, { name: "a", type: "double" }, { name: "b", type: "double" }],
    connections: [
      { from: "numbers", to: "both" },
      { from: "b", to: "both" },
      { from: "both", to: "a" },
      { from: "a", to: "b" },
    ],
    outputs: { out: "a" },
  };
  const error = configErrorOf(() => fromConfig(cycle, graphRegistry));
  assert.match(error.message, /^Config "loop": (processors\[\d\]|connections): Graph "loop".*cycle/);
  const misuse = configErrorOf(() => fromConfig({ processors: [{ name: "r", type: "byTotal" }] }, graphRegistry));
  assert.equal(misuse.message, 'Config: processors[0].type: type "byTotal" is a route type: graphs only');
});

test("PipelineConfig and GraphConfig are the zod schemas' input types, both ways (a compile-time check)", () => {
  type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
  const pipeline: Same<Writable<PipelineConfig>, z.input<typeof pipelineConfigSchema>> = true;
  const graph: Same<Writable<GraphConfig>, z.input<typeof graphConfigSchema>> = true;
  assert.ok(pipeline && graph);
});
