/**
 * `npm run build`: the npm package's `dist/`.
 *
 * - `dist/mod.js`, `dist/redis.js` (`sluice/redis`) and `dist/otel.js`
 *   (`sluice/otel`): the entry points bundled by esbuild as ES modules
 *   (platform neutral, so they load in Node, Deno, Bun, workerd and browsers
 *   alike) that share one chunk of the core, with `zod` (the one dependency)
 *   and `@opentelemetry/api` (an optional peer) left as imports.
 * - `dist/worker_entry.js`: the script of a worker stage's workers, beside
 *   the shared chunk (see {@linkcode workerEntry}).
 * - `dist/mod.d.ts` and `dist/src/*.d.ts`: declarations emitted by `tsc -p
 *   tsconfig.build.json`. tsc keeps relative imports as written (`./x.ts`),
 *   which older TypeScript versions reject in a package, so they are rewritten
 *   to `./x.js`, which every `moduleResolution` maps back to `./x.d.ts`.
 *
 * Usage: node --import tsx scripts/build.ts [outDir]   (default: dist)
 *
 * Tests import {@linkcode build} and {@linkcode bundle} to build into a
 * temporary directory of their own, never touching `dist/`.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

/** The repository root. */
export const root: string = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The esbuild options of the npm bundle; tests reuse them for their own bundles. */
export const bundleOptions: esbuild.BuildOptions = {
  entryPoints: [join(root, "mod.ts")],
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  external: ["zod"],
  sourcemap: true,
  legalComments: "none",
  logLevel: "warning",
};

/** Bundles `mod.ts` into `outFile` (zod external, as in the package). */
export async function bundle(outFile: string, options: esbuild.BuildOptions = {}): Promise<void> {
  await esbuild.build({ ...bundleOptions, outfile: outFile, ...options });
}

/** Emits the declarations into `outDir` and rewrites their relative `.ts` imports to `.js`. */
export function declarations(outDir: string): void {
  const tsc = join(root, "node_modules", ".bin", "tsc");
  const result = spawnSync(tsc, ["-p", join(root, "tsconfig.build.json"), "--outDir", outDir], {
    cwd: root,
    stdio: "inherit",
  });
  if (result.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed (exit ${result.status})`);
  for (const file of readdirSync(outDir, { recursive: true, encoding: "utf8" })) {
    if (!file.endsWith(".d.ts")) continue;
    const path = join(outDir, file);
    writeFileSync(path, rewriteImports(readFileSync(path, "utf8"), path));
  }
}

const specifier = /(\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)(["'])(\.{1,2}\/[^"']*?)\.ts\2/g;

/**
 * Rewrites `./x.ts` to `./x.js` in the import and export statements of a
 * declaration file, leaving doc comments (whose examples import `../mod.ts`
 * for `deno test --doc`) as they are. Throws if a `.ts` specifier is left.
 */
export function rewriteImports(text: string, path = "(text)"): string {
  const lines = text.split("\n").map((line) => {
    const trimmed = line.trimStart();
    if (trimmed.startsWith("*") || trimmed.startsWith("/*") || trimmed.startsWith("//")) return line;
    return line.replace(
      specifier,
      (_, lead: string, quote: string, stem: string) => `${lead}${quote}${stem}.js${quote}`,
    );
  });
  lines.forEach((line, index) => {
    const trimmed = line.trimStart();
    if (!trimmed.startsWith("*") && /["']\.{1,2}\/[^"']*\.ts["']/.test(line)) {
      throw new Error(`${path}:${index + 1}: a relative .ts import is left: ${trimmed}`);
    }
  });
  return lines.join("\n");
}

/**
 * The package's entry points: `sluice` and the optional `sluice/redis` and
 * `sluice/otel`, which must share one copy of the core (one `ConfigError`
 * class, stages the core's `Pipeline` recognises).
 */
export const entryPoints: readonly string[] = [join(root, "mod.ts"), join(root, "redis.ts"), join(root, "otel.ts")];

/**
 * The script worker stages start their workers on: `dist/worker_entry.js`,
 * beside the core's chunk, which finds it at `./worker_entry.js` relative to
 * its own `import.meta.url` (src/worker_stage.ts). A bundle of one's own
 * must put it beside the code of `workerStage()` the same way.
 */
export const workerEntry: { readonly in: string; readonly out: string } = {
  in: join(root, "src", "worker_entry.ts"),
  out: "worker_entry",
};

/** Packages the optional entry points import and leave to the user (optional peer dependencies). */
const optionalPeers = ["@opentelemetry/api"];

/**
 * Builds the whole package output into `outDir` (emptied first): one module
 * per entry point, the code they share split into a chunk beside them (so
 * that `sluice/redis` stages are the core's own).
 */
export async function build(outDir: string = join(root, "dist")): Promise<void> {
  rmSync(outDir, { recursive: true, force: true });
  await esbuild.build({
    ...bundleOptions,
    entryPoints: [...entryPoints, workerEntry],
    external: [...(bundleOptions.external ?? []), ...optionalPeers],
    outdir: outDir,
    splitting: true,
  });
  declarations(outDir);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outDir = resolve(process.argv[2] ?? join(root, "dist"));
  await build(outDir);
  console.log(
    `built ${
      relative(process.cwd(), outDir) || "."
    }: mod.js, redis.js, otel.js, worker_entry.js and their declarations`,
  );
}
