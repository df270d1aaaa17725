/**
 * Results: `bench/results/<runtime>.json` (everything, samples included) and
 * `bench/results/<runtime>.md` (the tables the README shows), plus the same
 * markdown on stdout. A run of some cases only (`--case`) replaces those
 * cases in the existing files and keeps the others, each with its own date
 * and commit.
 *
 * @module
 */

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { CaseKind } from "../cases.ts";
import type { Machine } from "./runtime.ts";
import { format } from "./harness.ts";
import { type Curve, scalingSvg } from "./svg.ts";

export interface Row {
  readonly contender: string;
  readonly how: string;
  /** Throughput cases: items per measured run (the case's N unless the time budget cut it). */
  readonly n?: number;
  /** Throughput cases: median items/s. */
  readonly itemsPerSecond?: number;
  /** Throughput cases: this contender's items/s ÷ sluice's (above 1: faster than sluice). */
  readonly ratioToSluice?: number;
  readonly samples?: readonly number[];
  /** Memory case: why the child gave no result. */
  readonly error?: string;
  /** Memory case, MiB. */
  readonly peakRssAboveBaselineMiB?: number;
  readonly baselineRssMiB?: number;
  readonly osMaxRssMiB?: number;
  /** Memory case, when the contender ran in several children: each child's growth (the row is the median one). */
  readonly peakRssSamplesMiB?: readonly number[];
  readonly seconds?: number;
  /** Scaling case: the point. */
  readonly sweep?: "stages" | "concurrency";
  readonly stages?: number;
  readonly concurrency?: number;
  /** Scaling case: 1 / (items/s × stages), in ns, and relative to the sweep's first point. */
  readonly nsPerItemPerStage?: number;
  readonly relativeCostPerItemPerStage?: number;
  /** Scaling case, stage sweep: ns per item that each stage added since the previous point. */
  readonly marginalNsPerStage?: number;
  /** Scaling case, concurrency sweep: items/s relative to concurrency 1. */
  readonly relativeThroughput?: number;
  /** Latency case, ms. */
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  readonly maxMs?: number;
  readonly addedP50PerStageMs?: number;
  readonly addedP99PerStageMs?: number;
}

/** Case 5 at one more item size (for information). */
export interface SizeReport {
  readonly itemBytes: number;
  readonly n: number;
  readonly rows: readonly Row[];
}

export interface CaseReport {
  readonly id: number;
  readonly title: string;
  readonly kind: CaseKind;
  readonly date: string;
  readonly commit: string;
  /** A hash of mod.ts and src/ as loaded (tells runs on a dirty working tree apart). */
  readonly source: string;
  readonly n: number;
  readonly rounds: number;
  readonly warmup: number;
  /** The 1-minute load average when the case started and ended: other work on the machine skews timings. */
  readonly loadAverage: { readonly before: number; readonly after: number };
  readonly rows: readonly Row[];
  readonly baseline?: Row;
  /** Case 5: the same at larger items, with fewer contenders. */
  readonly bySize?: readonly SizeReport[];
  readonly excluded?: Readonly<Record<string, string>>;
  readonly notes: readonly string[];
  /** How sluice was loaded: as this runtime's users get it (reports before it was recorded lack it). */
  readonly sluiceForm?: string;
  /** The garbage collection forced before each run (reports before it was recorded lack it). */
  readonly collection?: string;
  /** sluice's queueSize per stage, when it was not the default (`--queue-size`). */
  readonly queueSize?: number;
}

export interface Report {
  readonly runtime: string;
  readonly runtimeVersion: string;
  readonly machine: Machine;
  readonly date: string;
  readonly commit: string;
  readonly mode: "full" | "quick";
  readonly command: string;
  readonly libraries: Readonly<Record<string, string>>;
  readonly cases: readonly CaseReport[];
}

export interface Target {
  readonly target: string;
  readonly measured: string;
  /** Undefined when the case ran with a setting the target is not about (`--queue-size`). */
  readonly met: boolean | undefined;
}

/** The issues' targets (#4, and #17 for case 1) that the report's cases can answer. Reported, never asserted. */
export function targets(report: Report): Target[] {
  const out: Target[] = [];
  const byCase = new Map(report.cases.map((c) => [c.id, c]));
  const row = (id: number, name: string) => byCase.get(id)?.rows.find((r) => r.contender === name);
  const ratio = (id: number, name: string) => {
    const sluice = row(id, "sluice")?.itemsPerSecond, other = row(id, name)?.itemsPerSecond;
    return sluice !== undefined && other !== undefined ? sluice / other : undefined;
  };
  /** Says so when the contender compared with ran fewer items than the case's N (time budget). */
  const caveat = (id: number, name: string) => {
    const n = row(id, name)?.n, caseN = byCase.get(id)?.n;
    return n !== undefined && caseN !== undefined && n < caseN
      ? ` (${name} ran ${n.toLocaleString("en-US")} items)`
      : "";
  };
  /** Case `id`'s target, judged only when the case ran with sluice's default queueSize. */
  const push = (
    id: number,
    target: string,
    value: number | undefined,
    ok: (v: number) => boolean,
    unit: string,
    note = "",
  ) => {
    const queueSize = byCase.get(id)?.queueSize;
    if (queueSize !== undefined) {
      out.push({
        target,
        measured: `not judged: sluice ran with queueSize ${queueSize}, not the default`,
        met: undefined,
      });
    } else if (value !== undefined && Number.isFinite(value)) {
      const sign = unit === " MiB" && target.includes("+") && value >= 0 ? "+" : "";
      out.push({ target, measured: `${sign}${value.toFixed(unit === "x" ? 3 : 2)}${unit}${note}`, met: ok(value) });
    }
  };
  // Issue #17 raised case 1's target from issue #4's 0.5x.
  push(1, "case 1: sluice ≥ 0.9x p-map", ratio(1, "p_map"), (v) => v >= 0.9, "x", caveat(1, "p_map"));
  push(1, "case 1: sluice ≥ 10x Effect", ratio(1, "effect"), (v) => v >= 10, "x", caveat(1, "effect"));
  push(4, "case 4: sluice ≥ 10x Effect", ratio(4, "effect"), (v) => v >= 10, "x", caveat(4, "effect"));
  push(3, "case 3: sluice ≥ 0.95x worker pool", ratio(3, "worker_pool"), (v) => v >= 0.95, "x");
  push(
    7,
    "case 7: sluice ≥ 0.95x worker pool, fetch from a local server (issue 17)",
    ratio(7, "worker_pool"),
    (v) => v >= 0.95,
    "x",
  );
  const growth = (name: string) => row(5, name)?.peakRssAboveBaselineMiB;
  const sluiceGrowth = growth("sluice"), floorGrowth = growth("buffered_loop");
  push(
    5,
    "case 5: sluice peak RSS growth ≤ buffered_loop's + 10 MiB (issue 17)",
    sluiceGrowth !== undefined && floorGrowth !== undefined ? sluiceGrowth - floorGrowth : undefined,
    (v) => v <= 10,
    " MiB",
    sluiceGrowth !== undefined
      ? ` (sluice +${sluiceGrowth.toFixed(1)}, buffered_loop +${floorGrowth!.toFixed(1)})`
      : "",
  );
  push(
    6,
    "case 6: sluice p99 added latency ≤ 1 ms per stage",
    row(6, "sluice")?.addedP99PerStageMs,
    (v) => v <= 1,
    " ms",
  );
  return out;
}

export function libraryVersions(): Record<string, string> {
  const versions: Record<string, string> = {};
  for (const name of ["effect", "p-map", "p-retry"]) {
    try {
      const url = new URL(`../../node_modules/${name}/package.json`, import.meta.url);
      versions[name] = (JSON.parse(readFileSync(url, "utf8")) as { version: string }).version;
    } catch {
      versions[name] = "unknown";
    }
  }
  return versions;
}

/** Replaces `fresh`'s cases in the report at `path` (if it is from the same runtime and mode) and returns the merge. */
export function merge(path: string, fresh: Report): Report {
  if (!existsSync(path)) return fresh;
  let old: Report;
  try {
    old = JSON.parse(readFileSync(path, "utf8")) as Report;
  } catch {
    return fresh;
  }
  if (old.runtime !== fresh.runtime || old.mode !== fresh.mode) return fresh;
  const ids = new Set(fresh.cases.map((c) => c.id));
  const cases = [...old.cases.filter((c) => !ids.has(c.id)), ...fresh.cases].sort((a, b) => a.id - b.id);
  return { ...fresh, cases };
}

export function write(dir: string, report: Report): { json: string; md: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, `${report.runtime}.json`);
  const md = join(dir, `${report.runtime}.md`);
  mkdirSync(dirname(json), { recursive: true });
  writeFileSync(json, JSON.stringify({ ...report, targets: targets(report) }, null, 2) + "\n");
  writeFileSync(md, markdown(report));
  const curves = scalingCurves(dir, report);
  if (curves.length > 0) writeFileSync(join(dir, "scaling.svg"), scalingSvg(curves));
  return { json, md };
}

/** Case 8 of this report and of the other runtimes' reports in `dir`, for the plot. */
function scalingCurves(dir: string, report: Report): Curve[] {
  const curves: Curve[] = [];
  for (const runtime of ["node", "deno", "bun"]) {
    let r: Report | undefined = runtime === report.runtime ? report : undefined;
    const path = join(dir, `${runtime}.json`);
    if (!r && existsSync(path)) {
      try {
        r = JSON.parse(readFileSync(path, "utf8")) as Report;
      } catch {
        r = undefined;
      }
    }
    const c = r?.cases.find((x) => x.id === 8 && x.kind === "scaling");
    if (!r || !c) continue;
    curves.push({
      runtime: r.runtimeVersion,
      date: c.date,
      load: Math.max(c.loadAverage.before, c.loadAverage.after),
      stages: c.rows.filter((x) => x.sweep === "stages").map((x) => [x.stages!, x.relativeCostPerItemPerStage!]),
      concurrency: c.rows.filter((x) => x.sweep === "concurrency").map((x) => [x.concurrency!, x.relativeThroughput!]),
    });
  }
  return curves;
}

const num = (value: number | undefined, digits = 3) => (value === undefined ? "–" : value.toFixed(digits));
const ratio = (value: number | undefined) => (value === undefined ? "–" : `${value.toFixed(value >= 10 ? 1 : 2)}x`);

/** One value of `field` for all the cases, or each value with the cases it holds for. */
function byCase(cases: readonly CaseReport[], field: (c: CaseReport) => string | undefined): string {
  const values = new Map<string, number[]>(); // value -> the cases that have it
  for (const c of cases) {
    const value = field(c) ?? "not recorded";
    values.set(value, [...values.get(value) ?? [], c.id]);
  }
  return [...values].map(([value, ids]) => values.size > 1 ? `${value} (case ${ids.join(", ")})` : value).join("; ");
}

/** Case 8: both sweeps. */
function scalingTable(c: CaseReport): string[] {
  const stages = c.rows.filter((r) => r.sweep === "stages");
  const concurrency = c.rows.filter((r) => r.sweep === "concurrency");
  const relative = (v: number | undefined) => (v === undefined ? "–" : `${v.toFixed(2)}x`);
  return [
    `Stages (concurrency ${stages[0]?.concurrency ?? "–"}):`,
    "",
    "| stages | items per run | items/s (median) | ns per item per stage | relative to 1 stage | marginal ns per added stage | rounds (items/s) |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ...stages.map((r) =>
      `| ${r.stages} | ${(r.n ?? 0).toLocaleString("en-US")} | ${format(r.itemsPerSecond!)} | ${
        num(r.nsPerItemPerStage, 0)
      } | ${relative(r.relativeCostPerItemPerStage)} | ${num(r.marginalNsPerStage, 0)} | ${
        (r.samples ?? []).map(format).join(", ")
      } |`
    ),
    "",
    `Concurrency (${concurrency[0]?.stages ?? "–"} stages):`,
    "",
    "| concurrency | items per run | items/s (median) | relative to concurrency 1 | ns per item per stage | rounds (items/s) |",
    "| ---: | ---: | ---: | ---: | ---: | --- |",
    ...concurrency.map((r) =>
      `| ${r.concurrency} | ${(r.n ?? 0).toLocaleString("en-US")} | ${format(r.itemsPerSecond!)} | ${
        relative(r.relativeThroughput)
      } | ${num(r.nsPerItemPerStage, 0)} | ${(r.samples ?? []).map(format).join(", ")} |`
    ),
  ];
}

/** Case 5 at every item size: each contender's growth, and sluice's minus buffered_loop's. */
function sizeTable(c: CaseReport): string[] {
  const sizes = [{ itemBytes: 1024, n: c.n, rows: c.rows }, ...(c.bySize ?? [])];
  const names = (c.bySize?.[0]?.rows ?? []).map((r) => r.contender);
  const growth = (rows: readonly Row[], name: string) => {
    const r = rows.find((x) => x.contender === name);
    return r && !r.error ? r.peakRssAboveBaselineMiB : undefined;
  };
  const lines = [
    "Peak RSS growth by item size (for information; N smaller at larger items, always well above the items held):",
    "",
    `| item size | N | ${names.join(" | ")} | sluice − buffered_loop |`,
    `| --- | ---: | ${names.map(() => "---:").join(" | ")} | ---: |`,
  ];
  for (const size of sizes) {
    const sluice = growth(size.rows, "sluice"), floor = growth(size.rows, "buffered_loop");
    const delta = sluice !== undefined && floor !== undefined ? sluice - floor : undefined;
    lines.push(
      `| ${size.itemBytes / 1024} KB | ${size.n.toLocaleString("en-US")} | ${
        names.map((name) => `${num(growth(size.rows, name), 1)} MiB`).join(" | ")
      } | ${delta === undefined ? "–" : `${delta >= 0 ? "+" : ""}${delta.toFixed(1)} MiB`} |`,
    );
  }
  return lines;
}

export function markdown(report: Report): string {
  const lines: string[] = [];
  const m = report.machine;
  lines.push(
    `# sluice benchmarks: ${report.runtime}${report.mode === "quick" ? " (--quick: tiny N, not results)" : ""}`,
  );
  lines.push("");
  lines.push(`- Runtime: ${report.runtimeVersion}`);
  lines.push(`- Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, ${m.os}`);
  lines.push(`- Date: ${report.date}, commit ${report.commit}`);
  lines.push(`- Contenders: ${Object.entries(report.libraries).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  lines.push(`- sluice: ${byCase(report.cases, (c) => c.sluiceForm)}`);
  lines.push(`- Before each run: ${byCase(report.cases, (c) => c.collection)}`);
  lines.push(`- Command: \`${report.command}\``);
  lines.push("");
  lines.push(
    "Ratio to sluice = the contender's items/s ÷ sluice's items/s in the same process (above 1x: faster than sluice).",
  );
  for (const c of report.cases) {
    lines.push("");
    lines.push(`## Case ${c.id}: ${c.title}`);
    lines.push("");
    const sizes = c.kind === "memory"
      ? `N = ${c.n.toLocaleString("en-US")}, one fresh child process per contender`
      : c.kind === "scaling"
      ? `${c.n.toLocaleString("en-US")} item-stages per point of the stage sweep, ${c.rounds} interleaved round${
        c.rounds === 1 ? "" : "s"
      } after a warm-up of a tenth of each point`
      : `N = ${c.n.toLocaleString("en-US")} per run, ${c.rounds} interleaved round${c.rounds === 1 ? "" : "s"} ` +
        `after a warm-up of ${c.warmup.toLocaleString("en-US")}`;
    lines.push(
      `${sizes}; ${c.date}, commit ${c.commit} (src hash ${c.source}); load average ${c.loadAverage.before} → ${c.loadAverage.after} ` +
        `on ${m.cores} cores${
          Math.max(c.loadAverage.before, c.loadAverage.after) > m.cores / 2 ? " (busy machine: timings are noisy)" : ""
        }.`,
    );
    lines.push("");
    if (c.kind === "throughput") {
      lines.push("| contender | items/s (median) | ratio to sluice | items per run | rounds (items/s) |");
      lines.push("| --- | ---: | ---: | ---: | --- |");
      for (const r of c.rows) {
        const n = r.n ?? c.n;
        lines.push(
          `| ${r.contender} | ${format(r.itemsPerSecond!)} | ${ratio(r.ratioToSluice)} | ${n.toLocaleString("en-US")}${
            n < c.n ? " (budget)" : ""
          } | ${(r.samples ?? []).map(format).join(", ")} |`,
        );
      }
    } else if (c.kind === "memory") {
      lines.push("| contender | peak RSS above baseline | baseline RSS | items/s | seconds |");
      lines.push("| --- | ---: | ---: | ---: | ---: |");
      for (const r of c.rows) {
        if (r.error) {
          lines.push(`| ${r.contender} | no result: ${r.error} | – | – | – |`);
          continue;
        }
        const children = r.peakRssSamplesMiB
          ? ` (median of ${r.peakRssSamplesMiB.length}: ${r.peakRssSamplesMiB.map((v) => v.toFixed(1)).join(", ")})`
          : "";
        lines.push(
          `| ${r.contender} | ${num(r.peakRssAboveBaselineMiB, 1)} MiB${children} | ${num(r.baselineRssMiB, 1)} MiB | ${
            format(r.itemsPerSecond!)
          } | ${num(r.seconds, 1)} |`,
        );
      }
      if (c.bySize) lines.push("", ...sizeTable(c));
    } else if (c.kind === "scaling") {
      lines.push(...scalingTable(c));
    } else {
      lines.push("| contender | p50 | p99 | max | added p50 / stage | added p99 / stage |");
      lines.push("| --- | ---: | ---: | ---: | ---: | ---: |");
      for (const r of [...(c.baseline ? [c.baseline] : []), ...c.rows]) {
        lines.push(
          `| ${r.contender} | ${num(r.p50Ms)} ms | ${num(r.p99Ms)} ms | ${num(r.maxMs)} ms | ${
            r.addedP50PerStageMs === undefined ? "–" : `${num(r.addedP50PerStageMs)} ms`
          } | ${r.addedP99PerStageMs === undefined ? "–" : `${num(r.addedP99PerStageMs)} ms`} |`,
        );
      }
    }
    lines.push("");
    for (const [name, why] of Object.entries(c.excluded ?? {})) lines.push(`- Not run: ${name}: ${why}`);
    for (const note of c.notes) lines.push(`- ${note}`);
  }
  const met = targets(report);
  if (met.length > 0) {
    lines.push("");
    lines.push("## Targets of issues #4 and #17 (reported, not asserted)");
    lines.push("");
    lines.push("| target | measured | met |");
    lines.push("| --- | ---: | :---: |");
    for (const t of met) {
      lines.push(`| ${t.target} | ${t.measured} | ${t.met === undefined ? "–" : t.met ? "yes" : "no"} |`);
    }
  }
  lines.push("");
  lines.push("## How each contender runs the job");
  lines.push("");
  const seen = new Set<string>();
  for (const c of report.cases) {
    for (const r of c.rows) {
      if (seen.has(r.contender)) continue;
      seen.add(r.contender);
      lines.push(`- ${r.contender}: \`${r.how}\``);
    }
  }
  return lines.join("\n") + "\n";
}
