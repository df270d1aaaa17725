/**
 * The bad-input catalogue (issue 3, item 5): every configuration mistake in
 * scripts/error_catalogue.ts gives a `ConfigError` or a `TypeError` whose
 * message names the field, shows the value given and says what is allowed.
 * Rows that tests/config_test.ts or tests/source_test.ts already check are
 * not repeated here. The last test keeps docs/errors.md equal to what the
 * catalogue prints, so the document cannot drift from the code.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../mod.ts";
import { markdown, MISTAKES, normalize, observe, shortfalls } from "../scripts/error_catalogue.ts";
import { root, runtime } from "./fixtures/runtimes.ts";

for (const mistake of MISTAKES.filter((row) => !row.alsoIn)) {
  const expect = mistake.expect;
  const title = "accepted" in expect
    ? `${mistake.place}: ${mistake.mistake}: ${expect.accepted}`
    : `${mistake.place}: ${mistake.mistake}: a ${
      expect.classes.join(" or ")
    } naming ${expect.field}, the value and what is allowed`;
  test(title, async () => {
    const observed = await observe(mistake);
    const problems = shortfalls(mistake, observed);
    assert.deepEqual(
      problems,
      [],
      `${mistake.code}\n  gave ${observed.how} ${observed.className}: ${observed.message}\n  missing: ${
        problems.join("; ")
      }`,
    );
    if (observed.error instanceof ConfigError && !("accepted" in expect)) {
      assert.ok(observed.error.field.length > 0, "ConfigError.field is set");
      if (expect.field !== "task array") {
        assert.ok(
          observed.error.field.split(", ").includes(expect.field),
          `ConfigError.field is ${observed.error.field}, expected ${expect.field}`,
        );
      }
    }
  });
}

test("the catalogue covers every place a mistake can be made, with each mistake once", () => {
  const places = new Set(MISTAKES.map((mistake) => mistake.place));
  assert.deepEqual(
    [...places].sort(),
    [
      "batchStage()",
      "flatMapStage()",
      "new Pipeline()",
      "new StatusTracker()",
      "pipeline.run()",
      "pipeline.stream()",
      "stage()",
      // Observability export (issue 16).
      "instrument()",
      "metricsHandler()",
      "pipeline.subscribe()",
      "progress()",
      "toPrometheus()",
      // Graphs (issue 18): rendering and declarative config.
      "fromConfig()",
      "pipeline.toMermaid()",
      "toMermaid()",
      // Graphs (issue 18): the graph builder.
      "graph()",
      "graph.run()",
      // Worker stages (issue 14).
      "workerStage()",
    ].sort(),
  );
  const keys = MISTAKES.map((mistake) => `${mistake.place} ${mistake.mistake}`);
  assert.equal(new Set(keys).size, keys.length, "no mistake is listed twice");
});

test("docs/errors.md is what scripts/error_catalogue.ts prints (regenerate it with --write)", {
  skip: runtime === "node" ? false : "docs/errors.md is generated on Node; runtime error messages differ elsewhere",
}, async () => {
  const written = normalize(readFileSync(join(root, "docs", "errors.md"), "utf8"));
  const generated = normalize(await markdown());
  assert.equal(
    written,
    generated,
    "docs/errors.md is out of date: run node --import tsx scripts/error_catalogue.ts --write",
  );
});
