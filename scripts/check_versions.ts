/**
 * `npm run check:versions`: sluice has one version number, published to JSR
 * from deno.json and to npm from package.json. Fails (exit 1), saying which
 * file holds what, when deno.json, package.json and package-lock.json
 * disagree, or when CHANGELOG.md has no section for the version.
 *
 * Usage: node --import tsx scripts/check_versions.ts
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function json(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(root, file), "utf8"));
}

const versions: [string, unknown][] = [
  ["package.json", json("package.json").version],
  ["deno.json", json("deno.json").version],
];
if (existsSync(join(root, "package-lock.json"))) {
  const lock = json("package-lock.json") as { version?: unknown; packages?: Record<string, { version?: unknown }> };
  versions.push(["package-lock.json", lock.version], ['package-lock.json packages[""]', lock.packages?.[""]?.version]);
}

const problems: string[] = [];
const [, version] = versions[0];
if (typeof version !== "string" || !/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) {
  problems.push(`package.json: "version" must be a semantic version such as 1.2.3; got ${JSON.stringify(version)}`);
}
for (const [file, other] of versions.slice(1)) {
  if (other !== version) {
    problems.push(`${file} has version ${JSON.stringify(other)} but package.json has ${JSON.stringify(version)}`);
  }
}
const changelog = existsSync(join(root, "CHANGELOG.md")) ? readFileSync(join(root, "CHANGELOG.md"), "utf8") : "";
const heading = new RegExp(`^## \\[?${String(version).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\]?(\\s|$)`, "m");
if (!heading.test(changelog)) problems.push(`CHANGELOG.md has no "## [${version}]" section`);

if (problems.length > 0) {
  for (const problem of problems) console.error(`versions: ${problem}`);
  console.error("versions: keep one version in deno.json, package.json (npm version …) and CHANGELOG.md");
  process.exit(1);
}
console.log(`versions: ${version} in ${versions.map(([file]) => file).join(", ")} and CHANGELOG.md`);
