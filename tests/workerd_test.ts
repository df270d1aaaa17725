/**
 * The npm bundle in Cloudflare's workerd: a worker (tests/fixtures/workerd)
 * runs a pipeline over the request body as it streams in and streams the
 * results back, with the metrics in the last line. The worker runs without
 * Node compatibility flags, so this proves sluice needs only the web platform.
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
import { bundle } from "../scripts/build.ts";
import { bin, nodeOnly, root, run, skipBecause, start, type Started } from "./fixtures/runtimes.ts";

const fixtures = join(root, "tests", "fixtures", "workerd");
const workerd = bin("workerd");

/** Why workerd cannot run here, or false when it can. */
async function workerdMissing(): Promise<string | false> {
  if (nodeOnly) return nodeOnly;
  try {
    const version = await run(workerd, ["--version"]);
    if (version.code === 0) return false;
    return `workerd cannot start here: \`workerd --version\` exited with ${version.code}: ${version.stderr.trim()}`;
  } catch (error) {
    return `workerd cannot start here: ${(error as Error).message}`;
  }
}

const skip = skipBecause("tests/workerd_test.ts", await workerdMissing());

/** A running workerd serving the bundled worker. */
interface Worker {
  readonly url: string;
  readonly server: Started;
}

/**
 * Bundles the worker as a Worker project would: the package's own bundle
 * (built from mod.ts with the package's esbuild options) as "sluice", zod
 * bundled in. Starts workerd on 127.0.0.1 at a port of its choosing, read
 * from its control messages.
 */
async function startWorker(dir: string, fixture: WorkerFixture = defaultFixture): Promise<Worker> {
  const sluice = join(dir, "sluice.js");
  await bundle(sluice, { sourcemap: false });
  await esbuild.build({
    entryPoints: [join(fixtures, fixture.entry)],
    outfile: join(dir, "worker.js"),
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    alias: { sluice },
    nodePaths: [join(root, "node_modules")],
    logLevel: "warning",
  });
  copyFileSync(join(fixtures, fixture.config), join(dir, "config.capnp"));
  for (const module of fixture.modules ?? []) copyFileSync(join(fixtures, module), join(dir, module));
  const server = await start(
    workerd,
    ["serve", "config.capnp", "--socket-addr", "http=127.0.0.1:0", "--control-fd", "3"],
    /"event":"listen","socket":"http","port":(\d+)/,
    { cwd: dir, controlFd: true },
  );
  return { url: `http://127.0.0.1:${server.match[1]}/`, server };
}

/** Which fixture worker to run: its entry (bundled), its config, and modules copied beside it as they are. */
interface WorkerFixture {
  readonly entry: string;
  readonly config: string;
  readonly modules?: readonly string[];
}

const defaultFixture: WorkerFixture = { entry: "worker.js", config: "config.capnp" };

/** Starts a worker, runs `body` against it, and always stops workerd and removes the files. */
async function withWorker(body: (worker: Worker) => Promise<void>, fixture?: WorkerFixture): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-workerd-"));
  let worker: Worker | undefined;
  try {
    worker = await startWorker(dir, fixture);
    await body(worker);
  } catch (error) {
    if (worker && error instanceof Error) error.message += `\n--- workerd output\n${worker.server.output()}`;
    throw error;
  } finally {
    await worker?.server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A request body streamed in chunks that cut lines in two. */
function chunkedBody(text: string, chunkSize: number): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + chunkSize));
      offset += chunkSize;
    },
  });
}

interface Trailer {
  metrics: {
    totalIngested: number;
    totalCompleted: number;
    totalFailed: number;
    itemsInFlight: number;
    deadLetterCount: number;
    stageMetrics: Record<string, { succeeded: number; failed: number; retries: number }>;
  };
  deadLetters: { itemId: number; stage: string; reason: string; attempts: number }[];
}

async function post(url: string, body: ReadableStream<Uint8Array>): Promise<{ results: unknown[]; trailer: Trailer }> {
  const response = await fetch(url, { method: "POST", body, duplex: "half" } as RequestInit);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/x-ndjson");
  const lines = (await response.text()).trimEnd().split("\n").map((line) => JSON.parse(line));
  return { results: lines.slice(0, -1), trailer: lines.at(-1) };
}

test("workerd runs the bundle: a pipeline over a streamed request body streams results and metrics back", {
  skip,
}, async () => {
  await withWorker(async ({ url }) => {
    const inputs = Array.from({ length: 100 }, (_, n) => JSON.stringify({ n })).concat(['{"n":-5}', "not json"]);
    const { results, trailer } = await post(url, chunkedBody(inputs.join("\n") + "\n", 7));

    assert.deepEqual(results, Array.from({ length: 100 }, (_, n) => ({ n, square: n * n })), "in order, every one");
    const { metrics, deadLetters } = trailer;
    assert.equal(metrics.totalIngested, 102);
    assert.equal(metrics.totalCompleted, 100);
    assert.equal(metrics.totalFailed, 2);
    assert.equal(metrics.itemsInFlight, 0);
    assert.equal(metrics.deadLetterCount, 2);
    assert.equal(metrics.stageMetrics.square.retries, 10, "the first attempt of each multiple of 10 failed");
    assert.equal(metrics.stageMetrics.square.succeeded, 100);
    assert.deepEqual(
      deadLetters.map(({ itemId, stage, attempts }) => ({ itemId, stage, attempts })),
      [{ itemId: 100, stage: "validate", attempts: 1 }, { itemId: 101, stage: "parse", attempts: 1 }],
    );
    assert.equal(deadLetters[0].reason, "n must be a number >= 0: got -5");
  });
});

test("workerd: each request gets its own pipeline run, and an empty body gives zero counts", { skip }, async () => {
  await withWorker(async ({ url }) => {
    const empty = await post(url, chunkedBody("", 1));
    assert.deepEqual(empty.results, []);
    assert.equal(empty.trailer.metrics.totalIngested, 0);
    assert.equal(empty.trailer.metrics.itemsInFlight, 0);

    const [a, b] = await Promise.all([
      post(url, chunkedBody('{"n":2}\n{"n":3}\n', 5)),
      post(url, chunkedBody('{"n":4}\n', 3)),
    ]);
    assert.deepEqual(a.results, [{ n: 2, square: 4 }, { n: 3, square: 9 }]);
    assert.equal(a.trailer.metrics.totalCompleted, 2);
    assert.deepEqual(b.results, [{ n: 4, square: 16 }]);
    assert.equal(b.trailer.metrics.totalCompleted, 1);
  });
});

test("workerd: a worker stage runs its function inline, with a warning logged; requireWorkers throws a ConfigError", {
  skip,
}, async () => {
  await withWorker(async ({ url }) => {
    const response = await fetch(url);
    assert.equal(response.status, 200);
    const { outputs, completed, warnings, strict } = await response.json() as {
      outputs: number[];
      completed: number;
      warnings: { message: string; stage: string }[];
      strict: { thrown: boolean; name?: string; message?: string };
    };
    assert.deepEqual(outputs, [1, 4, 9]);
    assert.equal(completed, 3);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0].stage, "square");
    assert.match(warnings[0].message, /no workers.*inline/);
    assert.equal(strict.thrown, true);
    assert.equal(strict.name, "ConfigError");
    assert.match(strict.message ?? "", /no workers.*requireWorkers/);
  }, { entry: "worker_stage.js", config: "worker_stage.capnp", modules: ["worker_square.js"] });
});
