/**
 * metricsHandler() in Cloudflare's workerd: a worker (tests/fixtures/workerd/
 * metrics_worker.js, no Node compatibility flags) passes it to `fetch` as it
 * is; the scrape is parsed with parse-prometheus-text-format.
 *
 * Runs from the Node run of the suite only; skipped, with the reason, when
 * workerd cannot start on this machine.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as esbuild from "esbuild";
import parsePrometheusTextFormat, { type ParsedSample } from "parse-prometheus-text-format";
import { bundle } from "../scripts/build.ts";
import { bin, nodeOnly, root, run, skipBecause, start } from "./fixtures/runtimes.ts";

const fixtures = join(root, "tests", "fixtures", "workerd");
const workerd = bin("workerd");

async function workerdMissing(): Promise<string | false> {
  if (nodeOnly) return nodeOnly;
  try {
    const version = await run(workerd, ["--version"]);
    return version.code === 0 ? false : `workerd cannot start here: exited with ${version.code}: ${version.stderr}`;
  } catch (error) {
    return `workerd cannot start here: ${(error as Error).message}`;
  }
}

const skip = skipBecause("tests/prometheus_workerd_test.ts", await workerdMissing());

test("workerd serves metricsHandler() as the worker's fetch: live counters that a Prometheus parser reads", {
  skip,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-workerd-metrics-"));
  let server: Awaited<ReturnType<typeof start>> | undefined;
  try {
    const sluice = join(dir, "sluice.js");
    await bundle(sluice, { sourcemap: false });
    await esbuild.build({
      entryPoints: [join(fixtures, "metrics_worker.js")],
      outfile: join(dir, "worker.js"), // the name config.capnp embeds
      bundle: true,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      alias: { sluice },
      nodePaths: [join(root, "node_modules")],
      logLevel: "warning",
    });
    copyFileSync(join(fixtures, "config.capnp"), join(dir, "config.capnp"));
    server = await start(
      workerd,
      ["serve", "config.capnp", "--socket-addr", "http=127.0.0.1:0", "--control-fd", "3"],
      /"event":"listen","socket":"http","port":(\d+)/,
      { cwd: dir, controlFd: true },
    );
    const url = `http://127.0.0.1:${server.match[1]}`;

    const ran = await fetch(`${url}/run`, { method: "POST", body: JSON.stringify([1, 2, -3, 4]) });
    assert.equal(ran.status, 200);
    assert.equal((await ran.json()).totalCompleted, 3);

    const response = await fetch(`${url}/metrics`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const families = parsePrometheusTextFormat(await response.text());
    const value = (name: string, labels: Record<string, string>) => {
      const samples = families.filter((f) => f.name === name).flatMap((f) => f.metrics as ParsedSample[]);
      const found = samples.find((s) => JSON.stringify(s.labels) === JSON.stringify(labels));
      assert.ok(found, `no ${name} ${JSON.stringify(labels)}`);
      return Number(found.value);
    };
    assert.equal(value("sluice_items_ingested_total", { pipeline: "edge" }), 4);
    assert.equal(value("sluice_items_completed_total", { pipeline: "edge" }), 3);
    assert.equal(value("sluice_items_dead_lettered_total", { pipeline: "edge" }), 1);
    assert.equal(value("sluice_stage_items_failed_total", { pipeline: "edge", stage: "check" }), 1);
    assert.equal(value("sluice_stage_items_completed_total", { pipeline: "edge", stage: "double" }), 3);

    const post = await fetch(`${url}/metrics`, { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
  } catch (error) {
    if (server && error instanceof Error) error.message += `\n--- workerd output\n${server.output()}`;
    throw error;
  } finally {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
