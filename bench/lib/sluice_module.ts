/**
 * sluice as its users load it. On Node and Bun that is the npm package's
 * `dist/mod.js`: one esbuild bundle. On Deno it is the TypeScript source, as
 * JSR serves it.
 *
 * The suite itself runs on Node through tsx, and tsx's on-the-fly transform
 * made sluice's source run 4–10% slower there than the bundle of the
 * same code (measured in one process; the other contenders come from
 * `node_modules` as plain JavaScript). Measuring the bundle compares the
 * libraries as a user would run them.
 *
 * The bundle is built when this process first loads sluice, with the same
 * options as `npm run build`, from the working tree, so it can never be
 * stale. Child processes (case 5) inherit its path through the environment
 * and load the same file. It sits under `node_modules/.cache/` so that its
 * `zod` import resolves, and it is deleted when the process that built it
 * exits.
 *
 * Nothing else in the suite imports `mod.ts` or `src/` (the cases take
 * `PermanentError` from this module too, through `job.ts`), so each process
 * holds one copy of sluice, as its users' processes do: case 5 counts the
 * heap, and a second copy made sluice's child look bigger than it is.
 *
 * @module
 */

import { rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { runtimeName } from "./runtime.ts";

/** The module sluice's public API comes from: `mod.ts`, or the bundle of it. */
export type Sluice = typeof import("../../mod.ts");

/** How this runtime's users get sluice, for the report. */
export const sluiceForm: string = runtimeName === "deno"
  ? "the TypeScript source (mod.ts), as JSR serves it"
  : "the npm package's bundle (esbuild, as `npm run build`), built from this working tree";

/** The environment variable that hands the bundle's path to child processes. */
const BUNDLE_PATH = "SLUICE_BENCH_BUNDLE";

/** Loads sluice in the form this runtime's users get. */
export async function loadSluice(): Promise<Sluice> {
  if (runtimeName === "deno") return await import("../../mod.ts");
  let file = process.env[BUNDLE_PATH];
  if (!file) {
    file = await buildBundle();
    process.env[BUNDLE_PATH] = file;
  }
  return await import(pathToFileURL(file).href) as Sluice;
}

async function buildBundle(): Promise<string> {
  const { bundle, root } = await import("../../scripts/build.ts");
  const file = join(root, "node_modules", ".cache", "sluice-bench", `mod-${process.pid}.js`);
  await bundle(file);
  process.once("exit", () => {
    for (const path of [file, `${file}.map`]) rmSync(path, { force: true });
  });
  return file;
}
