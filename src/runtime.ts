/**
 * Runtime-specific bits, found by feature detection, so that `src/` stays
 * edge-safe: on a runtime without them (browsers, workers at the edge) each
 * falls back to a web-platform equivalent or does nothing.
 *
 * @module
 */

// ---------------------------------------------------------------------------
// The terminal: is standard output a TTY, how wide is it, writing to it, and
// environment variables (CI). Used by the progress view (src/progress.ts).

/** Standard output as the progress view sees it. @internal */
export interface Terminal {
  /** Writes text as it is (no newline added). */
  write(text: string): void;
  /** True when standard output is a terminal. */
  readonly isTTY: boolean;
  /** The terminal's width in columns, when known. */
  columns(): number | undefined;
}

interface DenoStdout {
  writeSync(bytes: Uint8Array): number;
  isTerminal?(): boolean;
}

interface DenoLike {
  stdout?: DenoStdout;
  consoleSize?(): { columns: number; rows: number };
  env?: { get(name: string): string | undefined };
}

interface NodeStdout {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

interface ProcessLike {
  stdout?: NodeStdout;
  env?: Record<string, string | undefined>;
}

function deno(): DenoLike | undefined {
  return (globalThis as { Deno?: DenoLike }).Deno;
}

function nodeProcess(): ProcessLike | undefined {
  return (globalThis as { process?: ProcessLike }).process;
}

/**
 * This runtime's standard output: Deno's `Deno.stdout`, Node's and Bun's
 * `process.stdout`, or, elsewhere, `console.log` line by line (never a TTY).
 * @internal
 */
export function stdoutTerminal(): Terminal {
  const denoStdout = deno()?.stdout;
  if (denoStdout && typeof denoStdout.writeSync === "function") {
    const encoder = new TextEncoder();
    return {
      write(text) {
        let bytes = encoder.encode(text);
        while (bytes.length > 0) bytes = bytes.subarray(denoStdout.writeSync(bytes));
      },
      isTTY: denoStdout.isTerminal?.() ?? false,
      columns() {
        try {
          return deno()?.consoleSize?.().columns;
        } catch {
          return undefined; // not a terminal
        }
      },
    };
  }
  const stdout = nodeProcess()?.stdout;
  if (stdout && typeof stdout.write === "function") {
    return {
      write: (text) => void stdout.write(text),
      isTTY: stdout.isTTY === true,
      columns: () => stdout.columns,
    };
  }
  let pending = "";
  return {
    write(text) {
      const lines = (pending + text).split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) console.log(line);
    },
    isTTY: false,
    columns: () => undefined,
  };
}

/** An environment variable, or `undefined` where there are none (or no permission to read them). @internal */
export function environmentVariable(name: string): string | undefined {
  try {
    const denoEnv = deno()?.env;
    if (denoEnv) return denoEnv.get(name);
    return nodeProcess()?.env?.[name];
  } catch {
    return undefined; // Deno without --allow-env
  }
}

/** True when running in CI: `CI` is set to anything but `""`, `0` or `false`. @internal */
export function inCI(): boolean {
  const value = environmentVariable("CI");
  return value !== undefined && value !== "" && value !== "0" && value.toLowerCase() !== "false";
}

/**
 * Lets the process exit while `timer` is pending (Node's and Bun's
 * `unref()`, Deno's `Deno.unrefTimer`); does nothing elsewhere.
 * @internal
 */
export function unrefTimer(timer: ReturnType<typeof setInterval>): void {
  const unref = (timer as { unref?: () => void }).unref;
  if (typeof unref === "function") return unref.call(timer);
  const denoUnref = (deno() as { unrefTimer?: (id: number) => void } | undefined)?.unrefTimer;
  if (typeof denoUnref === "function" && typeof timer === "number") denoUnref(timer);
}
