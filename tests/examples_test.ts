/**
 * The runnable examples in examples/ run, on Node, Deno and Bun, and print
 * what their comments promise (the demo, examples/etl.ts, has its own tests
 * in progress_terminal_test.ts; examples/redis_worker.ts needs a Redis and is
 * run by bench/redis.ts). Started from the Node run of the suite, like the
 * other tests that start runtimes themselves.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { commandFor, nodeOnly, root, run, skipBecause } from "./fixtures/runtimes.ts";

const skip = skipBecause("tests/examples_test.ts", nodeOnly);

/** Each example and lines its output must hold. */
const examples: Record<string, RegExp[]> = {
  "examples/graph.ts": [
    /^saved 2, invalid u2$/m,
    /^dead letter u3 at combine: Join "combine": missing branch "credit"/m,
    /^conservation: ingested 4 \+ copies 3 = completed 3 \+ failed 2 \+ joined 2$/m,
    /^flowchart /m,
  ],
  "examples/yaml_config.ts": [
    /^\s+shipped\s+\(output\)\s+\| 2 items$/m,
    /^ConfigError: Config "orders" has 2 problems:/m,
  ],
  "examples/worker_stage.ts": [/^9592 primes below 100000$/m, /^7 completed, 1 dead-lettered in \d+ ms$/m],
};

for (const [file, expected] of Object.entries(examples)) {
  for (const [runtime, command] of Object.entries(commandFor)) {
    test(`${file} runs on ${runtime}`, { skip }, async () => {
      const [executable, args] = command(file);
      const result = await run(executable, args, { cwd: root, env: { NO_COLOR: "1" } });
      assert.equal(result.code, 0, `exit code ${result.code}; stderr:\n${result.stderr}`);
      for (const pattern of expected) assert.match(result.stdout, pattern);
    });
  }
}
