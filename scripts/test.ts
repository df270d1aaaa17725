/**
 * `npm test`: type-check, lint, format check, doc lint, then the one test suite under
 * Node, Deno and Bun. Prints each runtime's result and ends with one line,
 * `N passed, N failed`, adding them all up (a failed check counts as a
 * failure). Exits non-zero if anything failed.
 *
 * Usage: node --import tsx scripts/test.ts [--only node|deno|bun] [--skip-checks] [test files…]
 */
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

interface Result {
  readonly name: string;
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
}

const args = process.argv.slice(2);
const only = valueOf("--only");
const skipChecks = args.includes("--skip-checks");
const files = args.filter((arg, i) => !arg.startsWith("--") && args[i - 1] !== "--only");
const testFiles = files.length > 0 ? files : findTests("tests");
const bin = (name: string) => join("node_modules", ".bin", name);

function valueOf(flag: string): string | undefined {
  const index = args.indexOf(flag);
  return index >= 0 ? args[index + 1] : undefined;
}

function findTests(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith("_test.ts"))
    .map((entry) => join(entry.parentPath ?? dir, entry.name))
    .sort();
}

/** Runs a command with output passed through and also captured. */
function run(command: string, commandArgs: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, commandArgs, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" },
    });
    let output = "";
    const collect = (stream: NodeJS.WritableStream) => (data: Buffer) => {
      output += data.toString();
      stream.write(data);
    };
    child.stdout.on("data", collect(process.stdout));
    child.stderr.on("data", collect(process.stderr));
    child.on("error", (error) => {
      output += String(error);
      resolve({ code: 127, output });
    });
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

function count(output: string, pattern: RegExp): number {
  const match = output.match(pattern);
  return match ? Number(match[1]) : 0;
}

async function check(name: string, command: string, commandArgs: string[]): Promise<Result> {
  console.log(`\n== ${name}: ${command} ${commandArgs.join(" ")}`);
  const { code } = await run(command, commandArgs);
  return { name, passed: code === 0 ? 1 : 0, failed: code === 0 ? 0 : 1, skipped: 0 };
}

/** A runtime's result; a run that exits non-zero with no failure counted still counts as one failure. */
function verdict(name: string, code: number, passed: number, failed: number, skipped: number): Result {
  if (code !== 0 && failed === 0) failed = 1;
  if (code === 0 && passed === 0 && failed === 0) failed = 1; // ran no test: that is a failure too
  return { name, passed, failed, skipped };
}

async function node(): Promise<Result> {
  console.log(`\n== node ${process.version}`);
  const { code, output } = await run(process.execPath, [
    "--import",
    "tsx",
    "--test",
    "--test-reporter=spec",
    ...testFiles,
  ]);
  return verdict(
    "node",
    code,
    count(output, /ℹ pass (\d+)/),
    count(output, /ℹ fail (\d+)/),
    count(output, /ℹ skipped (\d+)/),
  );
}

async function deno(): Promise<Result> {
  console.log("\n== deno");
  const { code, output } = await run(bin("deno"), ["test", "-A", "--no-check", ...testFiles]);
  const summary = output.split("\n").reverse().find((line) => /\d+ passed/.test(line)) ?? "";
  return verdict(
    "deno",
    code,
    count(summary, /(\d+) passed/),
    count(summary, /(\d+) failed/),
    count(summary, /(\d+) ignored/),
  );
}

async function bun(): Promise<Result> {
  console.log("\n== bun");
  const { code, output } = await run(bin("bun"), ["test", ...testFiles.map((file) => `./${file}`)]);
  return verdict(
    "bun",
    code,
    count(output, /^\s*(\d+) pass$/m),
    count(output, /^\s*(\d+) fail$/m),
    count(output, /^\s*(\d+) skip$/m),
  );
}

const results: Result[] = [];
if (!skipChecks && !only) {
  results.push(await check("type-check", bin("tsc"), ["-p", "."]));
  results.push(await check("lint", bin("deno"), ["lint"]));
  results.push(await check("format", bin("deno"), ["fmt", "--check"]));
  // Every export documented, and no public type that references one not exported (JSR's score reads the same).
  results.push(await check("doc-lint", bin("deno"), ["doc", "--lint", "mod.ts", "redis.ts", "otel.ts"]));
  results.push(await check("versions", process.execPath, ["--import", "tsx", "scripts/check_versions.ts"]));
}
const runtimes = { node, deno, bun };
for (const [name, runtime] of Object.entries(runtimes)) {
  if (!only || only === name) results.push(await runtime());
}

console.log("\n== summary");
for (const result of results) {
  console.log(
    `${result.name}: ${result.passed} passed, ${result.failed} failed${
      result.skipped ? `, ${result.skipped} skipped` : ""
    }`,
  );
}
const passed = results.reduce((sum, result) => sum + result.passed, 0);
const failed = results.reduce((sum, result) => sum + result.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
