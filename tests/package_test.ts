/**
 * The npm package as users get it: `npm pack` (which builds `dist/` through
 * `prepack`), install the tarball into a new project, and use it from Node,
 * Bun and Deno, and from TypeScript against the shipped declarations.
 *
 * This file drives every runtime itself, so it runs from the Node run of the
 * suite only; under Deno and Bun its tests report themselves skipped.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assertSucceeded, bin, type Finished, nodeOnly, root, run, skipBecause } from "./fixtures/runtimes.ts";

const skip = skipBecause("tests/package_test.ts", nodeOnly);
const fixtures = join(root, "tests", "fixtures", "package");

/** What every consumer prints: the same pipeline on every runtime gives the same result. */
const expected = {
  out: [10, 20, 30],
  totalIngested: 4,
  totalCompleted: 3,
  totalFailed: 1,
  itemsInFlight: 0,
  retries: 1,
  deadLetter: { stage: "check", reason: "n must not be negative: got -1", attempts: 1 },
};

/** The typed consumer, written into the temporary project (it imports "sluice", which only resolves there). */
const CONSUMER_TS = `// The same pipeline as consumer.mjs, typed: tsc checks it against the shipped
// declarations (and the @ts-expect-error lines must be errors), and Deno and
// Bun run it as TypeScript.
import {
  type DeadLetter,
  DeadLetterSchema,
  PermanentError,
  Pipeline,
  type PipelineMetrics,
  stage,
  type StageContext,
} from "sluice";

const out: number[] = [];
const attempts = new Map<number, number>();
const pipeline = new Pipeline({
  name: "consumer",
  stages: [
    stage("parse", (line: string) => JSON.parse(line) as { n: number }),
    stage("check", (row: { n: number }) => {
      if (row.n < 0) throw new PermanentError(\`n must not be negative: got \${row.n}\`);
      return row.n;
    }, { concurrency: 2 }),
    stage("flaky", (n: number, ctx: StageContext) => {
      const attempt = (attempts.get(n) ?? 0) + 1;
      attempts.set(n, attempt);
      if (n === 2 && attempt === 1 && !ctx.signal.aborted) throw new Error("transient failure");
      return n * 10;
    }, { maxRetries: 2, backoff: { initialDelayMs: 0 } }),
    stage("collect", (n: number) => {
      out.push(n);
      return n;
    }),
  ],
});
const metrics: PipelineMetrics = await pipeline.run(['{"n":1}', '{"n":-1}', '{"n":2}', '{"n":3}']);
const letter: DeadLetter = DeadLetterSchema.parse(JSON.stringify(pipeline.deadLetters[0]));

/** Never called: each line in it must be a type error. */
export function typeErrors(): void {
  // @ts-expect-error: the pipeline takes strings, not numbers
  void pipeline.run([1, 2]);
  new Pipeline({
    name: "mismatch",
    // @ts-expect-error: "parse" gives { n: number }, which a stage taking a string cannot take
    stages: [stage("parse", (line: string) => ({ n: line.length })), stage("upper", (s: string) => s)],
  });
  // @ts-expect-error: concurrency is a number
  stage("s", (n: number) => n, { concurrency: "2" });
}

console.log(JSON.stringify({
  out,
  totalIngested: metrics.totalIngested,
  totalCompleted: metrics.totalCompleted,
  totalFailed: metrics.totalFailed,
  itemsInFlight: metrics.itemsInFlight,
  retries: metrics.stageMetrics.flaky.retries,
  deadLetter: { stage: letter.stage, reason: letter.reason, attempts: letter.attempts },
}));
`;

interface Installed {
  /** The consumer project, with the tarball installed in its node_modules. */
  readonly app: string;
  /** The packed tarball. */
  readonly tarball: string;
  /** The paths in the tarball, without the leading `package/`. */
  readonly files: readonly string[];
  /** The tarball's package.json. */
  readonly manifest: {
    version: string;
    exports: Record<string, unknown>;
    main: string;
    types: string;
    dependencies: Record<string, string>;
  };
}

let installing: Promise<Installed> | undefined;

/** Packs and installs once, for all the tests of this file. */
function installed(): Promise<Installed> {
  return installing ??= packAndInstall();
}

/** The environment without the `npm_*` variables of an enclosing `npm test`, which would point npm at the repo. */
function cleanNpmEnv(): Record<string, undefined> {
  return Object.fromEntries(
    Object.keys(process.env).filter((key) => /^npm_/i.test(key)).map((key) => [key, undefined]),
  );
}

async function packAndInstall(): Promise<Installed> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-package-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const env = cleanNpmEnv();

  const packDir = join(dir, "pack");
  mkdirSync(packDir);
  assertSucceeded("npm pack", await run("npm", ["pack", "--pack-destination", packDir], { cwd: root, env }));
  const tarballs = readdirSync(packDir).filter((name) => name.endsWith(".tgz"));
  assert.equal(tarballs.length, 1, `npm pack made one tarball: ${tarballs.join(", ")}`);
  const tarball = join(packDir, tarballs[0]);
  const listing = await run("tar", ["-tzf", tarball]);
  assertSucceeded("tar -tzf", listing);
  const files = listing.stdout.split("\n").filter(Boolean).map((path) => path.replace(/^package\//, ""));

  const app = join(dir, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  // zod comes from npm's cache (filled by `npm ci`); the registry is asked only if it is missing there.
  const install = await run(
    "npm",
    ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock", tarball],
    { cwd: app, env },
  );
  assertSucceeded("npm install <tarball>", install);
  for (const file of ["consumer.mjs", "worker_consumer.mjs", "worker_square.mjs"]) {
    copyFileSync(join(fixtures, file), join(app, file));
  }
  writeFileSync(join(app, "consumer.ts"), CONSUMER_TS);
  for (const [file, config] of Object.entries(consumerConfigs)) {
    writeFileSync(join(app, file), JSON.stringify(config, null, 2));
  }
  const manifest = JSON.parse(readFileSync(join(app, "node_modules", "sluice", "package.json"), "utf8"));
  return { app, tarball, files, manifest };
}

/** A strict consumer configuration that checks the package's declarations too (`skipLibCheck: false`). */
function tsconfig(resolution: "NodeNext" | "Bundler", types: "dom" | "node") {
  return {
    compilerOptions: {
      target: "ES2022",
      module: resolution === "NodeNext" ? "NodeNext" : "ESNext",
      moduleResolution: resolution,
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      verbatimModuleSyntax: true,
      ...(types === "dom"
        // Pipeline implements Symbol.asyncDispose: without @types/node its type comes from ESNext.Disposable.
        ? { lib: ["ES2022", "ESNext.Disposable", "DOM", "DOM.Iterable"], types: [] }
        // A Node project without the DOM library: the web streams types come from @types/node.
        : { lib: ["ES2022"], types: ["node"], typeRoots: [join(root, "node_modules", "@types")] }),
    },
    files: ["consumer.ts"],
  };
}

/** The consumer's tsconfig files: browser-like and Node-only types, Node and bundler resolution. */
const consumerConfigs = {
  "tsconfig.json": tsconfig("NodeNext", "dom"),
  "tsconfig.node.json": tsconfig("NodeNext", "node"),
  "tsconfig.bundler.json": tsconfig("Bundler", "dom"),
};

/** The JSON line a consumer printed, after asserting it exited cleanly. */
function resultOf(what: string, finished: Finished): unknown {
  assertSucceeded(what, finished);
  const line = finished.stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`${what} printed no JSON result:\n${finished.stdout}\n${finished.stderr}`);
  }
}

test(
  "npm pack ships the built bundle, its declarations and the changelog, and no sources or tests",
  { skip },
  async () => {
    const { files, manifest } = await installed();
    for (const file of ["package.json", "dist/mod.js", "dist/mod.d.ts", "dist/src/pipeline.d.ts", "CHANGELOG.md"]) {
      assert.ok(files.includes(file), `${file} is in the tarball: ${files.join(", ")}`);
    }
    const stray = files.filter((file) =>
      /^(src|tests|scripts|examples|bench|\.ci)\//.test(file) || (file.endsWith(".ts") && !file.endsWith(".d.ts"))
    );
    assert.deepEqual(stray, [], "no sources, tests or scripts are shipped");
    const targets = [manifest.main, manifest.types, ...Object.values(manifest.exports["."] as Record<string, string>)];
    for (const target of targets) {
      assert.ok(files.includes(target.replace(/^\.\//, "")), `${target} (named in package.json) is in the tarball`);
    }
    const rootManifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
    assert.equal(manifest.version, rootManifest.version);
    assert.deepEqual(Object.keys(manifest.dependencies), ["zod"], "zod is the only runtime dependency");
  },
);

test("the tarball's sluice/redis entry point shares the core with sluice, and ioredis is an optional peer", {
  skip,
}, async () => {
  const { files, manifest } = await installed();
  for (const target of Object.values(manifest.exports["./redis"] as Record<string, string>)) {
    assert.ok(files.includes(target.replace(/^\.\//, "")), `${target} (sluice/redis) is in the tarball`);
  }
  const redis = readFileSync(join(root, "dist", "redis.js"), "utf8");
  assert.doesNotMatch(redis, /class StageEngine/, "dist/redis.js imports the core's chunk instead of a copy");
  const rootManifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  assert.equal(rootManifest.peerDependenciesMeta.ioredis.optional, true);
});

test(
  "Node imports the installed package as ESM and runs a pipeline with a retry and a dead letter",
  { skip },
  async () => {
    const { app } = await installed();
    assert.deepEqual(
      resultOf("node consumer.mjs", await run(process.execPath, ["consumer.mjs"], { cwd: app })),
      expected,
    );
  },
);

test("tsc type-checks a TypeScript consumer against the shipped .d.ts (DOM or Node types; NodeNext or Bundler)", {
  skip,
}, async () => {
  const { app } = await installed();
  for (const config of Object.keys(consumerConfigs)) {
    // The consumer's @ts-expect-error lines make tsc fail too if the declarations lose their type safety.
    assertSucceeded(`tsc -p ${config}`, await run(bin("tsc"), ["-p", config], { cwd: app }));
  }
});

test("Bun imports the installed package and runs the TypeScript consumer", { skip }, async () => {
  const { app } = await installed();
  assert.deepEqual(resultOf("bun consumer.ts", await run(bin("bun"), ["consumer.ts"], { cwd: app })), expected);
});

test("Deno imports the installed package from node_modules and runs the TypeScript consumer", { skip }, async () => {
  const { app } = await installed();
  const finished = await run(bin("deno"), ["run", "-A", "consumer.ts"], {
    cwd: app,
    env: { DENO_NO_UPDATE_CHECK: "1" },
  });
  assert.deepEqual(resultOf("deno run consumer.ts", finished), expected);
});

test("the installed package runs a worker stage on Node, Bun and Deno: dist/worker_entry.js ships beside the core", {
  skip,
}, async () => {
  const { app, files } = await installed();
  assert.ok(files.includes("dist/worker_entry.js"), "the worker script is in the tarball");
  const want = { outputs: [1, 4, 9, 16, 25], completed: 5, failed: 0 };
  const env = { DENO_NO_UPDATE_CHECK: "1" };
  const runs = {
    node: [process.execPath, ["worker_consumer.mjs"]],
    bun: [bin("bun"), ["worker_consumer.mjs"]],
    deno: [bin("deno"), ["run", "-A", "worker_consumer.mjs"]],
  } as const;
  for (const [runtime, [command, args]] of Object.entries(runs)) {
    assert.deepEqual(resultOf(`${runtime} worker_consumer.mjs`, await run(command, args, { cwd: app, env })), want);
  }
});

/** The OpenTelemetry packages the `sluice/otel` consumer installs, at the versions this repository tests with. */
function otelPackages(): string[] {
  const devDependencies = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).devDependencies;
  return ["@opentelemetry/api", "@opentelemetry/sdk-metrics", "@opentelemetry/sdk-trace-base"].map((name) =>
    `${name}@${String(devDependencies[name]).replace(/^[~^]/, "")}`
  );
}

let installingOtel: Promise<string> | undefined;

/** A second consumer project: the tarball and the OpenTelemetry API and SDK, for `sluice/otel`. */
function installedWithOtel(): Promise<string> {
  return installingOtel ??= (async () => {
    const { tarball } = await installed();
    const app = mkdtempSync(join(tmpdir(), "sluice-otel-"));
    process.once("exit", () => rmSync(app, { recursive: true, force: true }));
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "otel-consumer", private: true, type: "module" }));
    const install = await run(
      "npm",
      [
        "install",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        "--no-package-lock",
        tarball,
        ...otelPackages(),
      ],
      { cwd: app, env: cleanNpmEnv() },
    );
    assertSucceeded("npm install <tarball> @opentelemetry/*", install);
    copyFileSync(join(fixtures, "otel_consumer.mjs"), join(app, "otel_consumer.mjs"));
    return app;
  })();
}

/** What the `sluice/otel` consumer prints. */
const otelExpected = { completed: 3, instruments: 10, itemSpans: 3, oneConfigError: true };

test(
  "sluice/otel ships as its own entry point, and @opentelemetry/api is an optional peer that is not installed",
  { skip },
  async () => {
    const { app, files, manifest } = await installed();
    const otel = manifest.exports["./otel"] as Record<string, string>;
    assert.deepEqual(otel, { types: "./dist/otel.d.ts", import: "./dist/otel.js" });
    for (const target of Object.values(otel)) assert.ok(files.includes(target.slice(2)), `${target} is in the tarball`);
    const installedManifest = JSON.parse(readFileSync(join(app, "node_modules", "sluice", "package.json"), "utf8"));
    assert.ok(installedManifest.peerDependencies["@opentelemetry/api"]);
    assert.deepEqual(installedManifest.peerDependenciesMeta["@opentelemetry/api"], { optional: true });
    const present = readdirSync(join(app, "node_modules")).filter((name) => name.startsWith("@opentelemetry"));
    assert.deepEqual(present, [], "the core consumer runs (other tests) without any OpenTelemetry package");
  },
);

test("Node, Bun and Deno run the sluice/otel consumer from the installed package", { skip }, async () => {
  const app = await installedWithOtel();
  assert.deepEqual(
    resultOf("node otel_consumer.mjs", await run(process.execPath, ["otel_consumer.mjs"], { cwd: app })),
    otelExpected,
  );
  assert.deepEqual(
    resultOf("bun otel_consumer.mjs", await run(bin("bun"), ["otel_consumer.mjs"], { cwd: app })),
    otelExpected,
  );
  const deno = await run(bin("deno"), ["run", "-A", "otel_consumer.mjs"], {
    cwd: app,
    env: { DENO_NO_UPDATE_CHECK: "1" },
  });
  assert.deepEqual(resultOf("deno run otel_consumer.mjs", deno), otelExpected);
});
