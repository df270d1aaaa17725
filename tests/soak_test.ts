/**
 * The soak script (scripts/soak.ts) with a small N, as CI runs it: 200,000
 * items through four stages with 1% failures on this test's own runtime,
 * with a GC hook so that the heap it keeps is measured. It must exit 0:
 * every item accounted for and the heap flat over the second half. The full
 * 10,000,000-item run (which also checks the RSS slope) is run by hand:
 *
 *   node --expose-gc --import tsx scripts/soak.ts
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { root, run, runtime } from "./fixtures/runtimes.ts";

const ITEMS = 200_000;

function soakCommand(): [string, string[]] {
  const execPath = (globalThis as { process: { execPath: string } }).process.execPath;
  const script = join(root, "scripts", "soak.ts");
  const options = ["--items", String(ITEMS), "--sample-ms", "100", "--gc-every", "1"];
  switch (runtime) {
    case "deno":
      return [execPath, ["run", "-A", "--v8-flags=--expose-gc", script, ...options]];
    case "bun":
      return [execPath, [script, ...options]];
    case "node":
      return [execPath, ["--expose-gc", "--import", "tsx", script, ...options]];
  }
}

test(`the soak script passes with ${ITEMS} items on ${runtime}: every item accounted for, the heap flat`, async () => {
  const [command, args] = soakCommand();
  const result = await run(command, args, { cwd: root });
  const output = `--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
  assert.equal(result.code, 0, `the soak exited with ${result.code ?? result.signal}\n${output}`);
  assert.match(result.stdout, /^soak passed$/m, output);
  assert.match(result.stdout, new RegExp(`ingested ${ITEMS} = completed \\d+ \\+ failed \\d+`), output);
  assert.match(result.stdout, /heap growth after full GCs over the second half/, "the heap was checked");
  assert.doesNotMatch(result.stdout, /FAIL/, output);
});
