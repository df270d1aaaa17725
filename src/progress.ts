/**
 * A live terminal view of a run: on a TTY, a bar per stage (counts, rates,
 * busy workers, queue fill) under an overall bar with an ETA, redrawn in
 * place; elsewhere (piped, or in CI) one plain line per interval. The final
 * report stays on screen.
 *
 * @module
 */

import { z } from "zod";
import { show, validate } from "./config.ts";
import { ConfigError } from "./errors.ts";
import type { PipelineMetrics } from "./metrics.ts";
import type { AnyStage, Pipeline, PipelineInput, RunOptions } from "./pipeline.ts";
import { inCI, stdoutTerminal, unrefTimer } from "./runtime.ts";
import type { PipelineSnapshot } from "./snapshot.ts";
import type { Source } from "./source.ts";

/** Where the view is written: standard output unless you give another. */
export interface ProgressOutput {
  /** Writes text as it is (the view adds its own newlines). */
  write(text: string): void;
  /**
   * True to draw the live multi-line view (with cursor movements); false for plain lines.
   * @default {false}
   */
  readonly isTTY?: boolean;
  /**
   * The width to fit lines to.
   * @default {80}
   */
  readonly columns?: number;
}

/** Options of {@linkcode progress}. */
export interface ProgressOptions {
  /**
   * How many items the run will read, for the overall bar and the ETA.
   * {@linkcode ProgressView.run} takes it from the source when it has a
   * `length` (an array) or a `size` (a Set).
   * @default {unknown: no percentage, no ETA}
   */
  readonly total?: number;
  /**
   * How often to redraw (TTY) or print a line (plain), in milliseconds.
   * @default {250}
   */
  readonly intervalMs?: number;
  /**
   * Where to write.
   * @default {standard output (Deno.stdout, process.stdout; console.log elsewhere)}
   */
  readonly output?: ProgressOutput;
  /**
   * `"live"`: the redrawn multi-line view; `"plain"`: one line per interval;
   * `"auto"`: live on a TTY unless the `CI` environment variable is set.
   * @default {"auto"}
   */
  readonly mode?: "auto" | "live" | "plain";
}

/** What {@linkcode progress} returns: the running view. */
export interface ProgressView<S extends readonly AnyStage[]> {
  /** Whether it draws the live view or plain lines. */
  readonly mode: "live" | "plain";
  /**
   * Runs the pipeline over `source` (taking `total` from its `length` or
   * `size` when not given), then stops the view, which prints the final
   * report; resolves with the final metrics.
   */
  run(source: Source<PipelineInput<S>>, options?: RunOptions): Promise<PipelineMetrics>;
  /** Stops redrawing and prints the final report (once; later calls do nothing). */
  stop(): void;
}

const optionsSchema = z.strictObject({
  total: z.int({ error: "must be a whole number, 0 or more" }).min(0, { error: "must be a whole number, 0 or more" })
    .optional(),
  intervalMs: z.number({ error: "must be a finite number of milliseconds above 0" })
    .positive({ error: "must be a finite number of milliseconds above 0" }).optional(),
  output: z.custom<ProgressOutput>(
    (value) => typeof value === "object" && value !== null && typeof (value as ProgressOutput).write === "function",
    { error: "must be an object with a write(text) method" },
  ).optional(),
  mode: z.enum(["auto", "live", "plain"], { error: 'must be "auto", "live" or "plain"' }).optional(),
}, { error: "must be an object" });

/** Rates are smoothed over about this many intervals. */
const SMOOTHING = 0.3;

/**
 * Shows a run's progress in the terminal until {@linkcode ProgressView.stop}
 * (or the end of {@linkcode ProgressView.run}). It reads
 * `pipeline.snapshot()` once per interval and adds nothing to the run itself.
 *
 * @throws {ConfigError} when an option is invalid.
 *
 * @example Watch a run (here written to a string instead of the terminal)
 * ```ts
 * import { Pipeline, progress, stage } from "../mod.ts";
 *
 * let text = "";
 * const pipeline = new Pipeline({ name: "etl", stages: [stage("double", (n: number) => n * 2)] });
 * const view = progress(pipeline, { output: { write: (chunk) => void (text += chunk) } });
 * await view.run([1, 2, 3]); // total: 3, from the array's length
 * console.assert(text.includes("etl: done"));
 * console.assert(text.includes("3 completed"));
 * ```
 */
export function progress<const S extends readonly AnyStage[]>(
  pipeline: Pipeline<S>,
  options: ProgressOptions = {},
): ProgressView<S> {
  if (typeof pipeline !== "object" || pipeline === null || typeof pipeline.snapshot !== "function") {
    throw new ConfigError(`progress(): argument "pipeline" must be a Pipeline; got ${show(pipeline)}`, {
      field: "pipeline",
    });
  }
  const resolved = validate(optionsSchema, options, { owner: "progress()", root: "progress() options" });
  const terminal = resolved.output ? undefined : stdoutTerminal();
  const output: ProgressOutput = resolved.output ?? {
    write: (text) => terminal!.write(text),
    isTTY: terminal!.isTTY,
    get columns() {
      return terminal!.columns();
    },
  };
  const requested = resolved.mode ?? "auto";
  const mode = requested === "auto" ? (output.isTTY && !inCI() ? "live" : "plain") : requested;
  return new View(pipeline, output, mode, resolved.total, resolved.intervalMs ?? 250);
}

/** The rates between two frames, smoothed. */
interface Rates {
  at: number;
  done: number;
  perSecond: number;
  stages: Map<string, { processed: number; perSecond: number }>;
}

class View<S extends readonly AnyStage[]> implements ProgressView<S> {
  readonly mode: "live" | "plain";
  readonly #pipeline: Pipeline<S>;
  readonly #output: ProgressOutput;
  #total: number | undefined;
  readonly #timer: ReturnType<typeof setInterval>;
  #rates: Rates | undefined;
  /** Lines of the live view on screen, to move back over. */
  #drawn = 0;
  #stopped = false;

  constructor(
    pipeline: Pipeline<S>,
    output: ProgressOutput,
    mode: "live" | "plain",
    total: number | undefined,
    intervalMs: number,
  ) {
    this.#pipeline = pipeline;
    this.#output = output;
    this.mode = mode;
    this.#total = total;
    if (mode === "live") this.#draw(pipeline.snapshot());
    this.#timer = setInterval(() => this.#tick(), intervalMs);
    unrefTimer(this.#timer);
  }

  async run(source: Source<PipelineInput<S>>, options?: RunOptions): Promise<PipelineMetrics> {
    this.#total ??= lengthOf(source);
    try {
      return await this.#pipeline.run(source, options);
    } finally {
      this.stop();
    }
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    const snapshot = this.#pipeline.snapshot();
    if (this.mode === "live") this.#draw(snapshot);
    else this.#output.write(plainLine(snapshot, this.#measure(snapshot), this.#total) + "\n");
    this.#output.write(finalReport(snapshot.metrics, snapshot.pipeline).join("\n") + "\n");
  }

  #tick(): void {
    const snapshot = this.#pipeline.snapshot();
    if (this.mode === "live") this.#draw(snapshot);
    else this.#output.write(plainLine(snapshot, this.#measure(snapshot), this.#total) + "\n");
  }

  #draw(snapshot: PipelineSnapshot): void {
    const width = Math.max(40, this.#output.columns ?? 80);
    const lines = liveLines(snapshot, this.#measure(snapshot), this.#total, width);
    // Back to the first line of the last frame, then each line cleared and rewritten.
    const up = this.#drawn > 0 ? `\x1b[${this.#drawn}F` : "";
    this.#output.write(up + lines.map((line) => `\x1b[2K${line}\n`).join(""));
    this.#drawn = lines.length;
  }

  /** Updates and returns the smoothed rates. */
  #measure(snapshot: PipelineSnapshot): Rates {
    const now = snapshot.metrics.durationSeconds;
    const done = snapshot.metrics.totalCompleted + snapshot.metrics.totalFailed;
    const previous = this.#rates;
    const elapsed = previous ? now - previous.at : now;
    const smooth = (count: number, before: number, rate: number | undefined) => {
      if (elapsed <= 0) return rate ?? 0;
      const current = (count - before) / elapsed;
      return rate === undefined ? current : rate + SMOOTHING * (current - rate);
    };
    const stages = new Map<string, { processed: number; perSecond: number }>();
    for (const [name, stage] of Object.entries(snapshot.metrics.stageMetrics)) {
      const before = previous?.stages.get(name);
      stages.set(name, {
        processed: stage.processed,
        perSecond: smooth(stage.processed, before?.processed ?? 0, before?.perSecond),
      });
    }
    this.#rates = { at: now, done, perSecond: smooth(done, previous?.done ?? 0, previous?.perSecond), stages };
    return this.#rates;
  }
}

function lengthOf(source: unknown): number | undefined {
  if (Array.isArray(source)) return source.length;
  const sized = source as { length?: unknown; size?: unknown } | null;
  if (typeof sized?.length === "number") return sized.length;
  if (typeof sized?.size === "number") return sized.size;
  return undefined;
}

const FULL = "█";
const EMPTY = "░";

function bar(fraction: number, width: number): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return FULL.repeat(filled) + EMPTY.repeat(width - filled);
}

function rate(perSecond: number): string {
  return `${perSecond >= 100 ? Math.round(perSecond) : perSecond.toFixed(1)}/s`;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const whole = Math.ceil(seconds);
  if (whole < 60) return `${whole}s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes}m${String(whole % 60).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}

function fit(line: string, width: number): string {
  return line.length <= width ? line : line.slice(0, Math.max(0, width - 1)) + "…";
}

/** The overall figures both views share. */
function overall(snapshot: PipelineSnapshot, rates: Rates, total: number | undefined) {
  const m = snapshot.metrics;
  const done = m.totalCompleted + m.totalFailed;
  const fraction = total ? done / total : undefined;
  const remaining = total === undefined ? undefined : Math.max(0, total - done);
  const eta = remaining === undefined ? undefined : remaining === 0 ? 0 : remaining / rates.perSecond;
  return { m, done, fraction, eta };
}

/** The live view's lines: the overall bar, then one per stage. @internal */
export function liveLines(
  snapshot: PipelineSnapshot,
  rates: Rates,
  total: number | undefined,
  width: number,
): string[] {
  const { m, done, fraction, eta } = overall(snapshot, rates, total);
  const stages = Object.entries(m.stageMetrics);
  const nameWidth = Math.max(snapshot.pipeline.length, ...stages.map(([name]) => name.length + 2));
  const head = [
    snapshot.pipeline.padEnd(nameWidth),
    fraction === undefined ? `${done} done` : `${bar(fraction, 24)} ${String(Math.floor(fraction * 100)).padStart(3)}%`,
    total === undefined ? "" : `${done}/${total}`,
    `✓ ${m.totalCompleted}`,
    `✗ ${m.totalFailed}`,
    `in flight ${m.itemsInFlight}`,
    rate(rates.perSecond),
    eta === undefined ? `${m.durationSeconds.toFixed(1)}s` : `ETA ${duration(eta)}`,
  ].filter((part) => part !== "").join("  ");
  const lines = [fit(head, width)];
  for (const [name, stage] of stages) {
    const shape = snapshot.stages[name];
    const busy = shape ? shape.workers.filter((state) => state === "busy").length : stage.inFlight;
    const queueSize = shape?.queueSize ?? 0;
    const denominator = total ?? m.totalIngested;
    const line = [
      `  ${name}`.padEnd(nameWidth),
      bar(denominator > 0 ? stage.processed / denominator : 0, 12),
      `✓ ${stage.succeeded}`.padEnd(8),
      `✗ ${stage.failed}`.padEnd(6),
      `↻ ${stage.retries}`.padEnd(6),
      rate(rates.stages.get(name)?.perSecond ?? 0).padStart(8),
      `busy ${busy}/${shape?.concurrency ?? "?"}`,
      `queue ${bar(queueSize > 0 ? stage.queueDepth / queueSize : 0, 8)} ${stage.queueDepth}/${queueSize}`,
    ].join("  ");
    lines.push(fit(line, width));
  }
  return lines;
}

/** The plain view's one line per interval. @internal */
export function plainLine(snapshot: PipelineSnapshot, rates: Rates, total: number | undefined): string {
  const { m, done, fraction, eta } = overall(snapshot, rates, total);
  const parts = [
    `[${snapshot.pipeline}] ${m.durationSeconds.toFixed(1)}s`,
    total === undefined ? `${done} done` : `${done}/${total} (${Math.floor((fraction ?? 0) * 100)}%)`,
    `completed ${m.totalCompleted}`,
    `failed ${m.totalFailed}`,
    `in flight ${m.itemsInFlight}`,
    rate(rates.perSecond),
  ];
  if (eta !== undefined) parts.push(`ETA ${duration(eta)}`);
  const stages = Object.entries(m.stageMetrics).map(([name, stage]) =>
    `${name} ${stage.processed} q${stage.queueDepth}`
  );
  return `${parts.join("  ")}  | ${stages.join("  ")}`;
}

/** The report left on screen at the end. @internal */
export function finalReport(m: PipelineMetrics, pipeline: string): string[] {
  const lines = [
    `${pipeline}: done in ${m.durationSeconds.toFixed(2)}s: ${m.totalIngested} items, ${m.totalCompleted} completed, ` +
    `${m.totalFailed} failed (${m.deadLetterCount} dead-lettered), ${rate(m.throughputPerSecond)}`,
  ];
  const stages = Object.entries(m.stageMetrics);
  const nameWidth = Math.max(5, ...stages.map(([name]) => name.length));
  const cell = (value: string | number, width = 10) => String(value).padStart(width);
  lines.push(
    `  ${"stage".padEnd(nameWidth)}${cell("completed")}${cell("failed", 8)}${cell("retries", 9)}` +
      `${cell("p50")}${cell("p95")}${cell("p99")}`,
  );
  for (const [name, stage] of stages) {
    const ms = (value: number) => cell(`${value.toFixed(1)}ms`);
    lines.push(
      `  ${name.padEnd(nameWidth)}${cell(stage.succeeded)}${cell(stage.failed, 8)}${cell(stage.retries, 9)}` +
        `${ms(stage.latency.p50)}${ms(stage.latency.p95)}${ms(stage.latency.p99)}`,
    );
  }
  return lines;
}
