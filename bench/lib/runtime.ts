/**
 * Which runtime this is, its version, the machine, and the few things the
 * harness needs that differ between Node, Deno and Bun: forcing a garbage
 * collection, reading the resident set size, and the command line that
 * starts this same runtime on another script.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import process from "node:process";

interface DenoGlobal {
  version: { deno: string; v8: string; typescript: string };
}
interface BunGlobal {
  version: string;
  revision: string;
  gc(force: boolean): void;
}
/** V8's `gc` (`--expose-gc`): a full collection, or a young-generation one when `minor` is true. */
type V8Gc = (minor?: boolean) => void;
const g = globalThis as { Deno?: DenoGlobal; Bun?: BunGlobal; gc?: V8Gc };

/** `node`, `deno` or `bun`. */
export const runtimeName: "node" | "deno" | "bun" = g.Deno ? "deno" : g.Bun ? "bun" : "node";

/** E.g. `Node v20.20.2 (V8 11.3)`, `Deno 2.9.5 (V8 …, TypeScript …)`, `Bun 1.4.5 (rev …)`. */
export function runtimeVersion(): string {
  if (g.Deno) return `Deno ${g.Deno.version.deno} (V8 ${g.Deno.version.v8})`;
  if (g.Bun) return `Bun ${g.Bun.version} (JavaScriptCore, rev ${g.Bun.revision.slice(0, 9)})`;
  return `Node ${process.version} (V8 ${process.versions.v8})`;
}

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly os: string;
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() || "unknown",
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

/** The git commit of the working tree (with `-dirty` if it has changes), or `unknown`. */
export function gitCommit(): string {
  try {
    const commit = execFileSync("git", ["rev-parse", "--short=12", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench"], {
      encoding: "utf8",
    }).trim();
    return dirty ? `${commit}-dirty` : commit;
  } catch {
    return "unknown";
  }
}

/**
 * A short hash of the library's code as this process loaded it (`mod.ts` and
 * `src/`): the maintainer may be editing the working tree while a suite runs,
 * and child processes load the code afresh, so every result carries it.
 */
export function sourceHash(): string {
  const root = new URL("../../", import.meta.url);
  const hash = createHash("sha256");
  const files = [
    "mod.ts",
    ...readdirSync(new URL("src/", root)).filter((f) => f.endsWith(".ts")).sort().map((f) => `src/${f}`),
  ];
  for (const file of files) {
    hash.update(file);
    hash.update(readFileSync(new URL(file, root)));
  }
  return hash.digest("hex").slice(0, 12);
}

/** A runtime's ways to force a collection. */
interface Collector {
  readonly full: () => void;
  /** A young-generation collection; undefined when the runtime gives none. */
  readonly young: (() => void) | undefined;
  /** How the report names `young`. */
  readonly youngName: string;
}

let collector: Collector | undefined | null;

async function getCollector(): Promise<Collector | null> {
  if (collector === undefined) collector = await findCollector();
  return collector;
}

/** Forces a full garbage collection when the runtime lets us; returns whether it did. */
export async function collectGarbage(): Promise<boolean> {
  const found = await getCollector();
  found?.full();
  return found !== null;
}

/**
 * Collects the young generation before a measured run (when the runtime
 * lets us), so that no run starts with the garbage of the one before it.
 *
 * Not a full collection: V8's forced full collection (`gc()`) drops the
 * hidden classes that optimized code depends on, which V8's own full
 * collections keep (`--retain-maps-for-n-gc`), so every run after one would
 * start deoptimized, a state a running program never reaches.
 */
export async function collectBeforeRun(): Promise<void> {
  (await getCollector())?.young?.();
}

/** What `collectBeforeRun` does here, as the report names it. */
export async function collectionBeforeRun(): Promise<string> {
  return (await getCollector())?.youngName ?? "none (this runtime cannot force a collection)";
}

async function findCollector(): Promise<Collector | null> {
  if (g.Bun) {
    const jscModule = "bun:jsc"; // a variable, so that Node's and Deno's type checks do not look for it
    const { edenGC } = await import(jscModule) as { edenGC: () => void };
    return { full: () => g.Bun!.gc(true), young: edenGC, youngName: "edenGC() from bun:jsc (young generation)" };
  }
  const exposed = typeof g.gc === "function";
  const gc = exposed ? g.gc! : await exposeGc();
  if (!gc) return null;
  if (g.Deno && !exposed) {
    // The `gc` that Deno makes this way runs memory-reducing full collections, whatever its argument.
    return {
      full: () => gc(),
      young: undefined,
      youngName: "none: start Deno with --v8-flags=--expose-gc (deno task bench does)",
    };
  }
  return { full: () => gc(), young: () => gc(true), youngName: "gc(true) (young generation)" };
}

async function exposeGc(): Promise<V8Gc | null> {
  try {
    // Node (and Deno's node:v8) can turn on --expose-gc at run time; a fresh context then has `gc`.
    const v8 = await import("node:v8");
    const vm = await import("node:vm");
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as unknown;
    if (typeof gc === "function") return gc as V8Gc;
  } catch {
    // No way to force a collection here; runs go on without one.
  }
  return null;
}

/** The resident set size now, in bytes. */
export function rss(): number {
  const usage = process.memoryUsage as { (): { rss: number }; rss?: () => number };
  return typeof usage.rss === "function" ? usage.rss() : usage().rss;
}

/** The process's peak resident set size so far, in bytes, when the runtime reports it. */
export function maxRss(): number | undefined {
  try {
    const kib = process.resourceUsage().maxRSS;
    return typeof kib === "number" && kib > 0 ? kib * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The executable and arguments that start this runtime on `script` with a collectable heap. */
export function selfCommand(script: string): { command: string; args: string[] } {
  if (g.Deno) return { command: process.execPath, args: ["run", "-A", "--v8-flags=--expose-gc", script] };
  if (g.Bun) return { command: process.execPath, args: [script] };
  return { command: process.execPath, args: [...process.execArgv, "--expose-gc", script] };
}
