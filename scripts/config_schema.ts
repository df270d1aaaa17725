/**
 * Writes config.schema.json, the JSON Schema of fromConfig()'s config, from
 * the zod schema (tests/graph_config_test.ts checks that it is up to date).
 *
 *   node --import tsx scripts/config_schema.ts
 */
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { configJsonSchema } from "../src/graph_config.ts";
import { root } from "../tests/fixtures/runtimes.ts";

/** The file's text: the schema with a title and an id, two-space JSON and a final newline. */
export function configSchemaText(): string {
  const schema = { ...configJsonSchema(), title: "sluice config" };
  return JSON.stringify(schema, null, 2) + "\n";
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = join(root, "config.schema.json");
  writeFileSync(file, configSchemaText());
  console.log(`wrote ${file}`);
}
