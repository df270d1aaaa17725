/**
 * The memory case runs each contender in a fresh child process of the same
 * runtime, so that nothing another run left on the heap (and no earlier
 * peak) counts. The child forces a GC, takes the resident set size as its
 * baseline, samples RSS every 5 ms (and the sink samples it at every pause)
 * while the run goes, checks the result, and prints one JSON line.
 *
 * @module
 */

import { spawn } from "node:child_process";
import process from "node:process";
import type { BenchCase, Size } from "../cases.ts";
import type { Contender } from "./job.ts";
import type { Log } from "./harness.ts";
import { collectGarbage, maxRss, rss, selfCommand, sourceHash } from "./runtime.ts";

const MARK = "@@bench-memory-result ";
const ERROR_MARK = "@@bench-memory-error ";
/** A child that runs longer than this is killed and reported as timed out. */
const CHILD_TIME_LIMIT_MS = 120_000;

export interface MemoryResult {
  readonly contender: string;
  /** Set when the child crashed, failed or timed out instead of giving a result (never for a wrong result). */
  readonly error?: string;
  readonly baselineRss: number;
  /** The highest RSS sampled during the run. */
  readonly peakRss: number;
  /** The process's peak RSS as the OS reports it (includes start-up), when available. */
  readonly maxRss: number | undefined;
  readonly seconds: number;
  readonly itemsPerSecond: number;
  readonly collected: boolean;
  /** The library code the child loaded. */
  readonly source: string;
}

/** In the child: one run of `contender` over `n` items, reported on stdout. */
export async function memoryChild(
  benchCase: BenchCase,
  contender: Contender,
  n: number,
  itemBytes: number | undefined,
): Promise<void> {
  const source = sourceHash();
  const run = benchCase.make(n, undefined, itemBytes);
  const collected = await collectGarbage();
  await new Promise((resolve) => setTimeout(resolve, 20));
  await collectGarbage();
  const baselineRss = rss();
  let peak = baselineRss;
  const sampler = setInterval(() => {
    const now = rss();
    if (now > peak) peak = now;
  }, 5);
  const started = performance.now();
  let outcome;
  try {
    outcome = await contender.run(run.job);
  } catch (error) {
    report("failed", error);
    throw error;
  } finally {
    clearInterval(sampler);
  }
  const seconds = (performance.now() - started) / 1000;
  peak = Math.max(peak, rss(), run.sinkStats?.peakRss ?? 0);
  try {
    run.verify(outcome);
  } catch (error) {
    report("wrong", error);
    throw error;
  }
  const result: MemoryResult = {
    contender: contender.name,
    baselineRss,
    peakRss: peak,
    maxRss: maxRss(),
    seconds,
    itemsPerSecond: n / seconds,
    collected,
    source,
  };
  process.stdout.write(`${MARK}${JSON.stringify(result)}\n`);
}

function report(kind: "wrong" | "failed", error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  process.stdout.write(`${ERROR_MARK}${JSON.stringify({ kind, message })}\n`);
}

/**
 * In the parent: one child per contender, one after the other. A wrong
 * result fails the suite; so does any failure of sluice's child. Another
 * contender's crash (out of memory, say), failure or timeout is recorded.
 */
export async function measureMemory(
  benchCase: BenchCase,
  contenders: readonly Contender[],
  size: Size,
  queueSize: number | undefined,
  script: string,
  log: Log,
  itemBytes?: number,
): Promise<MemoryResult[]> {
  const results: MemoryResult[] = [];
  for (const contender of contenders) {
    const { command, args } = selfCommand(script);
    const childArgs = [
      ...args,
      "--child-memory",
      contender.name,
      "--case",
      String(benchCase.id),
      "--n",
      String(size.n),
      ...(queueSize === undefined ? [] : ["--queue-size", String(queueSize)]),
      ...(itemBytes === undefined ? [] : ["--item-bytes", String(itemBytes)]),
    ];
    const { output, problem } = await runChild(command, childArgs);
    const lines = output.split("\n");
    const line = lines.find((l) => l.startsWith(MARK));
    const errorLine = lines.find((l) => l.startsWith(ERROR_MARK));
    const childError = errorLine
      ? JSON.parse(errorLine.slice(ERROR_MARK.length)) as { kind: string; message: string }
      : undefined;
    if (childError?.kind === "wrong") {
      throw new Error(`case ${benchCase.id}, ${contender.name}: ${childError.message}`);
    }
    if (!line || problem) {
      const why = childError ? `failed: ${childError.message}` : (problem ?? "printed no result");
      if (contender.name === "sluice") throw new Error(`case ${benchCase.id}, sluice's child ${why}\n${output}`);
      log(`  ${contender.name}: ${why}`);
      results.push({
        contender: contender.name,
        error: why,
        baselineRss: Number.NaN,
        peakRss: Number.NaN,
        maxRss: undefined,
        seconds: Number.NaN,
        itemsPerSecond: Number.NaN,
        collected: false,
        source: "",
      });
      continue;
    }
    const result = JSON.parse(line.slice(MARK.length)) as MemoryResult;
    log(
      `  ${contender.name}: peak RSS +${mib(result.peakRss - result.baselineRss).toFixed(1)} MiB over ` +
        `${mib(result.baselineRss).toFixed(1)} MiB, ${result.seconds.toFixed(1)} s`,
    );
    results.push(result);
  }
  return results;
}

export function mib(bytes: number): number {
  return bytes / 2 ** 20;
}

/** Runs a child; `problem` says why it did not end well (exit code, signal, time limit). */
function runChild(command: string, args: string[]): Promise<{ output: string; problem?: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, CHILD_TIME_LIMIT_MS);
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (data: string) => (output += data));
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (timedOut) resolve({ output, problem: `timed out after ${CHILD_TIME_LIMIT_MS / 1000} s` });
      else if (code === 0) resolve({ output });
      else resolve({ output, problem: signal ? `was killed by ${signal}` : `exited with code ${code}` });
    });
  });
}
