/**
 * Every code block in the JSDoc of `mod.ts` and `src/` runs, on every
 * runtime: each becomes a module (its relative imports pointed at the
 * sources) that is imported here with `console.assert` made to throw, so a
 * false assertion in an example fails its test. Under Node a last test also
 * runs `deno test --doc`, which type-checks the examples as well.
 *
 * A block fenced as ```ts ignore is skipped, as `deno test --doc` does.
 * Examples that import ioredis (sluice/redis) get a redis-server of this
 * file's own, started for the first of them, at `SLUICE_REDIS_URL`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { assertSucceeded, bin, nodeOnly, root, run, skipBecause } from "./fixtures/runtimes.ts";
import { type RedisServer, startRedis } from "./fixtures/redis_server.ts";

/** One fenced code block from a doc comment. */
interface Example {
  /** `src/pipeline.ts:109`: the file and the line of the opening fence. */
  readonly where: string;
  /** What it documents and its `@example` title, for the test name. */
  readonly label: string;
  readonly code: string;
  readonly ignored: boolean;
}

const RUNNABLE = new Set(["ts", "typescript", "js", "javascript", "mts", "mjs"]);

/** The files whose doc comments are checked: the entry point and every module under src/. */
function documentedFiles(): string[] {
  const sources = readdirSync(join(root, "src"))
    .filter((name) => name.endsWith(".ts") && !name.endsWith("_test.ts"))
    .sort()
    .map((name) => join(root, "src", name));
  return [join(root, "mod.ts"), join(root, "redis.ts"), ...sources];
}

/** The code blocks in the `/** … *\/` comments of `file`, with their import specifiers made absolute. */
function examplesIn(file: string): Example[] {
  const lines = readFileSync(file, "utf8").split("\n");
  const examples: Example[] = [];
  let inComment = false;
  let commentStart = 0;
  let title = "";
  let fence: { start: number; info: string; title: string; body: string[] } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!inComment) {
      if (/^\s*\/\*\*/.test(line) && !line.includes("*/")) {
        inComment = true;
        commentStart = i;
      }
      continue;
    }
    if (/\*\/\s*$/.test(line) && !fence) {
      inComment = false;
      title = "";
      continue;
    }
    const text = line.replace(/^\s*\* ?/, "");
    if (fence) {
      if (/^```\s*$/.test(text)) {
        const language = fence.info.split(/\s+/)[0];
        if (RUNNABLE.has(language)) {
          const where = `${relative(root, file)}:${fence.start + 1}`;
          examples.push({
            where,
            label: [documentedSymbol(lines, commentStart, i), fence.title].filter(Boolean).join(": "),
            code: absoluteImports(fence.body.join("\n"), file),
            ignored: /\bignore\b/.test(fence.info),
          });
        }
        fence = undefined;
      } else fence.body.push(text);
      continue;
    }
    const opening = text.match(/^```(.*)$/);
    if (opening) fence = { start: i, info: opening[1].trim(), title, body: [] };
    const example = text.match(/^@example\s*(.*)$/);
    if (example) title = example[1].trim();
  }
  return examples;
}

/**
 * What the comment starting at line `start` documents (`from` is a line in
 * it): the function, class, constant or method declared after it, or "module".
 */
function documentedSymbol(lines: readonly string[], start: number, from: number): string {
  let i = from;
  while (i < lines.length && !lines[i].includes("*/")) i++;
  if (lines.slice(start, i + 1).some((line) => /^\s*\*\s*@module\b/.test(line))) return "module";
  for (let j = i + 1; j < lines.length; j++) {
    const line = lines[j].trim();
    if (line === "" || line.startsWith("@")) continue;
    const declared = line.match(
      /^(?:export\s+)?(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?:function\*?|class|const|let|interface|type)\s+([\w$]+)/,
    );
    if (declared) return declared[1];
    const member = line.match(/^(?:static\s+)?(?:readonly\s+)?(?:async\s+)?(?:get\s+|set\s+)?(#?[\w$]+)\s*[(<:]/);
    return member ? member[1] : "";
  }
  return "";
}

/** Points the relative specifiers of imports (static and dynamic) at the documented file's directory. */
function absoluteImports(code: string, file: string): string {
  const base = pathToFileURL(file);
  return code.replace(
    /(\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)(["'])(\.{1,2}\/[^"']+)\2/gm,
    (_, lead: string, quote: string, specifier: string) => `${lead}${quote}${new URL(specifier, base).href}${quote}`,
  );
}

const examples = documentedFiles().flatMap(examplesIn);

/**
 * Imports the example as a module (from a directory of its own, removed
 * afterwards), with `console.assert` throwing on a false condition meanwhile.
 */
async function runExample(example: Example): Promise<void> {
  if (needsRedis(example)) await redis();
  // Inside the repository (.tmp/ is ignored), so that packages such as ioredis resolve from node_modules.
  mkdirSync(join(root, ".tmp"), { recursive: true });
  const dir = mkdtempSync(join(root, ".tmp", "docs-"));
  const file = join(dir, "example.mts");
  writeFileSync(file, `${example.code}\n\nexport {};\n`);
  const original = console.assert;
  console.assert = (condition?: unknown, ...data: unknown[]) => {
    if (!condition) {
      throw new assert.AssertionError({ message: `console.assert failed in ${example.where}: ${data.join(" ")}` });
    }
  };
  try {
    await import(pathToFileURL(file).href);
  } finally {
    console.assert = original;
    rmSync(dir, { recursive: true, force: true });
  }
}

function needsRedis(example: Example): boolean {
  return /from "ioredis"/.test(example.code);
}

let server: Promise<RedisServer> | undefined;

/** The examples' redis-server, started once, its URL in `SLUICE_REDIS_URL`. */
async function redis(): Promise<string> {
  server ??= startRedis().then((started) => {
    process.env.SLUICE_REDIS_URL = started.url;
    return started;
  });
  return (await server).url;
}

test("the doc comments hold examples to run", () => {
  assert.ok(examples.length > 0, "no code blocks found in the doc comments of mod.ts and src/");
  assert.ok(examples.some((example) => example.where.startsWith("mod.ts:")), "mod.ts has a module example");
});

examples.forEach((example) => {
  test(`@example ${example.where} ${example.label}`.trim(), {
    skip: example.ignored ? "fenced as ```ts ignore" : false,
  }, () => runExample(example));
});

test("deno test --doc type-checks and runs every example", {
  skip: skipBecause("tests/docs_test.ts (its deno test --doc test)", nodeOnly),
}, async () => {
  const preload = join(root, "tests", "fixtures", "docs", "assert_throws.ts");
  const finished = await run(bin("deno"), ["test", "-A", "--doc", "--preload", preload, "mod.ts", "redis.ts", "src/"], {
    cwd: root,
    env: { DENO_NO_UPDATE_CHECK: "1", SLUICE_REDIS_URL: await redis() },
  });
  assertSucceeded("deno test --doc", finished);
  const summary = finished.stdout.match(/(\d+) passed \| (\d+) failed/);
  assert.ok(summary, `deno printed its summary:\n${finished.stdout}`);
  const runnable = examples.filter((example) => !example.ignored).length;
  assert.equal(Number(summary[1]), runnable, "deno ran as many examples as this file found");
});

test("the examples' redis-server stops", async () => {
  if (server) await (await server).stop();
});
