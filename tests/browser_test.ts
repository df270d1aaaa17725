/**
 * The npm bundle in a browser: a local server serves a page, the package's
 * ES module bundle and zod's own ES modules (an import map, no bundler, no
 * CDN), and headless Chromium, driven by playwright-core, runs a pipeline
 * whose stage fetches from that server, with retries and a dead letter queue.
 *
 * Runs from the Node run of the suite only; skipped, with the reason, when
 * Debian's chromium is not installed (`.ci/run` installs it).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize, sep } from "node:path";
import { bundle, workerEntry } from "../scripts/build.ts";
import { nodeOnly, root, skipBecause } from "./fixtures/runtimes.ts";
import { launchChromium, noChromium } from "./fixtures/chromium.ts";

const skip = skipBecause("tests/browser_test.ts", nodeOnly || noChromium);
const fixtures = join(root, "tests", "fixtures", "browser");
const zodDir = join(root, "node_modules", "zod");

const types: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
};

/** What tests/fixtures/browser/page.js publishes as `window.sluiceResult.result`. */
interface PageResult {
  results: string[];
  deadLetters: { itemId: number; stage: string; reason: string; attempts: number }[];
  metrics: Record<string, number>;
  runtime: { userAgent: string; hasProcess: boolean };
}

/** The page, the bundle and zod, plus `/items/:n`: 503 on the first request for multiples of 3, 404 for 7. */
function serve(sluiceBundle: string, workerEntry?: string): { server: Server; requests: Map<number, number> } {
  const requests = new Map<number, number>();
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://localhost").pathname;
    const send = (status: number, body: string | Buffer, type = "text/plain; charset=utf-8") => {
      response.writeHead(status, { "content-type": type, "cache-control": "no-store" });
      response.end(body);
    };
    const file = (filePath: string) => send(200, readFileSync(filePath), types[extname(filePath)] ?? "text/plain");
    const item = path.match(/^\/items\/(\d+)$/);
    if (item) {
      const n = Number(item[1]);
      const count = (requests.get(n) ?? 0) + 1;
      requests.set(n, count);
      if (n === 7) return send(404, "no such item");
      if (n % 3 === 0 && count === 1) return send(503, "try again");
      return send(200, JSON.stringify({ n, name: `item-${n}` }), "application/json");
    }
    if (path === "/") return file(join(fixtures, "index.html"));
    if (path === "/page.js") return file(join(fixtures, "page.js"));
    if (path === "/sluice/mod.js") return file(sluiceBundle);
    if (path === "/sluice/worker_entry.js" && workerEntry) return file(workerEntry);
    if (["/workers.html", "/workers_page.js", "/worker_square.js"].includes(path)) {
      return file(join(fixtures, path.slice(1)));
    }
    if (path.startsWith("/node_modules/zod/")) {
      const target = normalize(join(zodDir, path.slice("/node_modules/zod/".length)));
      if (target.startsWith(zodDir + sep) && target.endsWith(".js") && existsSync(target)) return file(target);
    }
    send(404, "not found");
  });
  return { server, requests };
}

/** What a test page publishes as `window.sluiceResult`. */
interface PageOutcome<R> {
  ok: boolean;
  error?: string;
  result?: R;
}

type Page = Awaited<ReturnType<Awaited<ReturnType<typeof launchChromium>>["newPage"]>>;

/**
 * Serves `server` on a free port of 127.0.0.1, opens `path` in Chromium, waits for the page's `sluiceResult` and gives
 * it to `check` with the errors the page logged and the page; then closes the browser and the server and removes `dir`.
 */
async function inChromium<R>(
  server: Server,
  dir: string,
  path: string,
  check: (outcome: PageOutcome<R>, problems: string[], page: Page) => Promise<void>,
): Promise<void> {
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  const problems: string[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const { port } = server.address() as { port: number };
    browser = await launchChromium();
    const page = await browser.newPage();
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console error: ${message.text()}`);
    });
    await page.goto(`http://127.0.0.1:${port}${path}`);
    const handle = await page.waitForFunction(() => (globalThis as { sluiceResult?: unknown }).sluiceResult, null, {
      timeout: 60_000,
    });
    await check(await handle.jsonValue() as PageOutcome<R>, problems, page);
  } finally {
    await browser?.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
}

test("Chromium runs the bundle from an import map: a pipeline with retries and a dead letter queue", {
  skip,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-browser-"));
  const sluiceBundle = join(dir, "mod.js");
  await bundle(sluiceBundle, { sourcemap: false });
  const { server, requests } = serve(sluiceBundle);
  await inChromium<PageResult>(server, dir, "/", async (outcome, problems, page) => {
    assert.ok(outcome.ok && outcome.result, `the page's pipeline failed: ${outcome.error}`);
    const { results, deadLetters, metrics, runtime } = outcome.result;

    assert.deepEqual(results, [1, 2, 3, 4, 5, 6, 8, 9, 10].map((n) => `${n}:item-${n}`));
    // Item 7 is the seventh read, so its id (a sequence number from 0) is 6.
    assert.deepEqual(deadLetters, [{ itemId: 6, stage: "fetch", reason: "item 7 does not exist", attempts: 1 }]);
    assert.deepEqual(metrics, {
      totalIngested: 10,
      totalCompleted: 9,
      totalFailed: 1,
      itemsInFlight: 0,
      deadLetterCount: 1,
      retries: 3,
    });
    assert.match(runtime.userAgent, /Chrome\//);
    assert.equal(runtime.hasProcess, false);
    // The retries really went over the network: two requests for each multiple of 3, one for the others.
    const counts = [...requests].sort(([a], [b]) => a - b).map(([n, count]) => `${n}:${count}`);
    assert.deepEqual(counts, ["1:1", "2:1", "3:2", "4:1", "5:1", "6:2", "7:1", "8:1", "9:2", "10:1"]);
    // The browser logs the 503s and the 404 as failed loads; anything else is a problem.
    assert.deepEqual(problems.filter((problem) => !/status of (404|503)/.test(problem)), []);
    const shown = JSON.parse(await page.textContent("#result") ?? "null") as PageResult;
    assert.equal(shown.metrics.totalCompleted, 9, "the page shows the result too");
  });
});

test("Chromium runs a worker stage on module workers started on the bundle's worker_entry.js", { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-browser-"));
  const sluiceBundle = join(dir, "mod.js");
  const entryBundle = join(dir, "worker_entry.js");
  await bundle(sluiceBundle, { sourcemap: false });
  // As a user's bundler must: the worker script beside the code of workerStage().
  await bundle(entryBundle, { sourcemap: false, entryPoints: [workerEntry.in] });
  const { server } = serve(sluiceBundle, entryBundle);
  await inChromium<Record<string, unknown>>(server, dir, "/workers.html", async (outcome, problems) => {
    assert.ok(outcome.ok && outcome.result, `the page's pipeline failed: ${outcome.error}`);
    assert.deepEqual(outcome.result, {
      outputs: [1, 2, 3, 4].map((n) => ({ square: n * n, inWorker: true })),
      completed: 4,
      failed: 1,
      deadLetter: { name: "PermanentError", message: "n must not be negative: got -1", attempts: 1 },
    });
    // The browser asks for /favicon.ico, which the server does not have; anything else is a problem.
    assert.deepEqual(problems.filter((problem) => !/status of 404/.test(problem)), []);
  });
});
