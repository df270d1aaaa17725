/**
 * A pipeline and a graph built from YAML: `examples/orders.yaml` names
 * processor types, their parameters, stage options and an error strategy;
 * `examples/review.yaml` is a graph (a route, a broadcast and a join) over
 * the same types. The registry below is the code behind each type. `yaml`
 * parses the files (any parser will do: fromConfig() takes a plain object,
 * so JSON works the same way).
 *
 * Prints the pipeline as an outline with live counts and as Mermaid, shows
 * the error a mistake in the file gets, then runs the graph.
 *
 * Run it with any of:
 *   node --import tsx examples/yaml_config.ts
 *   npx deno run -A examples/yaml_config.ts
 *   npx bun examples/yaml_config.ts
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { z } from "zod";
import {
  ConfigError,
  fromConfig,
  type GraphConfig,
  PermanentError,
  processor,
  type ProcessorRegistry,
} from "../mod.ts";

interface Order {
  readonly id: number;
  readonly total: number;
  readonly currency?: string;
}

/** The processor types the YAML may name, each with its parameters' schema. */
const registry = {
  json: processor({ description: "JSON.parse each line", create: () => (line: string) => JSON.parse(line) as Order }),
  require: processor({
    description: "Refuses an order whose field is missing or below min",
    parameters: z.strictObject({ field: z.enum(["id", "total"]), min: z.number() }),
    create: ({ field, min }) => (order: Order) => {
      if (!(order[field] >= min)) throw new PermanentError(`order ${order.id}: ${field} must be at least ${min}`);
      return order;
    },
  }),
  currency: processor({
    description: "Converts the total (a stand-in for a call to a rates service)",
    parameters: z.strictObject({ to: z.enum(["EUR", "GBP", "JPY"]), rate: z.number().positive() }),
    create: ({ to, rate }) => async (order: Order) => {
      await Promise.resolve();
      return { ...order, total: Math.round(order.total * rate * 100) / 100, currency: to };
    },
  }),
  threshold: processor({
    kind: "route",
    description: "Routes an order to big or small by a field",
    parameters: z.strictObject({ field: z.enum(["id", "total"]), above: z.number() }),
    create: ({ field, above }) => (order: Order) => order[field] > above ? "big" : "small",
  }),
  audit: processor({ description: "A note for the audit log", create: () => (order: Order) => `seen ${order.id}` }),
  warehouse: processor({
    kind: "batch",
    description: "Writes orders in batches (here: into an array)",
    parameters: z.strictObject({ table: z.string().min(1) }),
    create: ({ table }) => (orders: readonly Order[]) => orders.map((order) => `${table}#${order.id} ${order.total}`),
  }),
} satisfies ProcessorRegistry;

const text = readFileSync(new URL("./orders.yaml", import.meta.url), "utf8");
const pipeline = fromConfig<string, string>(parse(text), registry);

const lines = [
  '{"id":1,"total":10}',
  '{"id":2,"total":-5}',
  "not json",
  '{"id":3,"total":99.5}',
  '{"id":4,"total":0}',
];
const { outputs, metrics } = await pipeline.collect(lines);
console.log("rows:", outputs);
console.log(
  `completed ${metrics.totalCompleted}, dead-lettered ${metrics.totalFailed}, skipped ${metrics.totalSkipped}`,
);
console.log(pipeline.deadLetters.map((letter) => `dead letter: ${letter.reason}`).join("\n"));
console.log("\n" + pipeline.toOutline({ counts: true }));
console.log(pipeline.toMermaid({ counts: true }));

// A mistake in the file: the error says where, what was given and what is allowed.
const broken = text.replace("to: EUR", "to: euro").replace("type: warehouse", "type: warehose");
try {
  fromConfig(parse(broken), registry);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.log(`${error.name}: ${error.message}`);
}

// The graph: orders above 100 are checked and audited side by side, then joined.
const review = fromConfig<{ orders: Order }, { reviewed: { order: Order; note: string }; shipped: Order }>(
  parse(readFileSync(new URL("./review.yaml", import.meta.url), "utf8")) as GraphConfig,
  registry,
);
const orders = [{ id: 1, total: 250 }, { id: 2, total: 40 }, { id: 3, total: 120 }, { id: 4, total: 99 }];
const run = await review.collect(orders);
console.log("\nreviewed:", run.outputs.reviewed.map((joined) => `${joined.order.id} (${joined.note})`));
console.log("shipped:", run.outputs.shipped.map((order) => `${order.id}: ${order.total} ${order.currency}`));
console.log(review.deadLetters.map((letter) => `dead letter at ${letter.stage}: ${letter.reason}`).join("\n"));
console.log("\n" + review.toOutline({ counts: true }));
