/**
 * Runtime-specific bits, found by feature detection, so that `src/` stays
 * edge-safe: on a runtime without them (browsers, workers at the edge) each
 * falls back to a web-platform equivalent or does nothing. This is the one
 * module that knows about Node, Deno and Bun: the terminal, environment
 * variables, timers, process signals, the core count and worker threads.
 * Node's own modules are loaded here with dynamic imports only when used.
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

// ---------------------------------------------------------------------------
// Process signals: SIGINT/SIGTERM for `handleSignals: true` (src/pipeline.ts).

/** The signals a run with `handleSignals: true` listens for. */
export const SHUTDOWN_SIGNALS = ["SIGINT", "SIGTERM"] as const;

type SignalName = (typeof SHUTDOWN_SIGNALS)[number];

interface DenoSignals {
  addSignalListener(signal: SignalName, handler: () => void): void;
  removeSignalListener(signal: SignalName, handler: () => void): void;
  build?: { os?: string };
}

interface ProcessSignals {
  on(signal: SignalName, handler: () => void): unknown;
  off(signal: SignalName, handler: () => void): unknown;
  platform?: string;
}

/**
 * Calls `handler` with the signal's name and how many shutdown signals have
 * arrived so far; returns a function that removes the listeners.
 * @internal
 */
export function onShutdownSignals(handler: (signal: SignalName, count: number) => void): () => void {
  let count = 0;
  const listeners = SHUTDOWN_SIGNALS.map((signal) => [signal, () => handler(signal, ++count)] as const);
  const denoSignals = deno() as DenoSignals | undefined;
  if (denoSignals?.addSignalListener) {
    const supported = listeners.filter(([signal]) => denoSignals.build?.os !== "windows" || signal === "SIGINT");
    for (const [signal, listener] of supported) denoSignals.addSignalListener(signal, listener);
    return () => {
      for (const [signal, listener] of supported) denoSignals.removeSignalListener(signal, listener);
    };
  }
  const process = nodeProcess() as ProcessSignals | undefined;
  if (typeof process?.on === "function" && typeof process.off === "function") {
    for (const [signal, listener] of listeners) process.on(signal, listener);
    return () => {
      for (const [signal, listener] of listeners) process.off(signal, listener);
    };
  }
  return () => {};
}

// ---------------------------------------------------------------------------
// The core count and worker threads, for `workerStage()` (src/worker_pool.ts).

interface NavigatorLike {
  hardwareConcurrency?: number;
}

interface NodeReport {
  getReport?(): { header?: { cpus?: readonly unknown[] } };
}

/**
 * The number of logical cores: `navigator.hardwareConcurrency` (Deno, Bun,
 * browsers, Node 21+), Node 20's diagnostic report, or 1 when unknown.
 * @internal
 */
export function cpuCount(): number {
  const cores = (globalThis as { navigator?: NavigatorLike }).navigator?.hardwareConcurrency;
  if (typeof cores === "number" && cores >= 1) return cores;
  try {
    const report = (nodeProcess() as { report?: NodeReport } | undefined)?.report?.getReport?.();
    const cpus = report?.header?.cpus?.length;
    if (typeof cpus === "number" && cpus >= 1) return cpus;
  } catch {
    // no report on this runtime
  }
  return 1;
}

/**
 * How this runtime runs workers: `"web"` module workers (Deno, Bun,
 * browsers), `"node"` for `node:worker_threads`, or `undefined` where there
 * are none (workerd and other edge runtimes).
 * @internal
 */
export type WorkerKind = "web" | "node";

/** @internal */
export function workerKind(): WorkerKind | undefined {
  if (typeof (globalThis as { Worker?: unknown }).Worker === "function") return "web";
  // workerd's process object claims a Node version too, but has no engine
  // versions (and no worker_threads): real Node names its V8.
  const versions = (nodeProcess() as { versions?: { node?: string; v8?: string } } | undefined)?.versions;
  return typeof versions?.node === "string" && typeof versions.v8 === "string" && versions.v8 !== ""
    ? "node"
    : undefined;
}

/** What a worker tells the thread that started it. @internal */
export interface WorkerEvents {
  /** A message the worker posted. */
  message(data: unknown): void;
  /** The worker died on its own: an uncaught error, `process.exit`, out of memory, or a message that would not clone. */
  crash(error: Error): void;
}

/** A running worker, seen from the thread that started it. @internal */
export interface WorkerThread {
  /** Posts `message`, moving the `transfer` objects instead of copying them. */
  post(message: unknown, transfer: Transferable[]): void;
  /** Stops the worker at once; no event is delivered after this. */
  terminate(): void;
}

/**
 * Starts a worker running the module at `url`; `typescript`: it will load
 * TypeScript modules (which Node needs tsx registered in the worker for).
 * @internal
 */
export type SpawnWorker = (url: URL, events: WorkerEvents, typescript?: boolean) => WorkerThread;

/** A module specifier kept out of bundlers' sight, so that web bundles never try to resolve it. */
const NODE_WORKER_THREADS = ["node", "worker_threads"].join(":");

interface NodeWorker {
  on(event: "message", listener: (data: unknown) => void): unknown;
  on(event: "error" | "messageerror", listener: (error: Error) => void): unknown;
  on(event: "exit", listener: (code: number) => void): unknown;
  postMessage(message: unknown, transfer: readonly Transferable[]): void;
  terminate(): unknown;
}

interface NodeWorkerThreads {
  Worker: new (
    script: URL | string,
    options?: { eval?: boolean; workerData?: unknown; execArgv?: readonly string[] },
  ) => NodeWorker;
  parentPort: {
    on(event: "message", listener: (data: unknown) => void): unknown;
    postMessage(message: unknown, transfer: readonly Transferable[]): void;
  } | null;
}

/**
 * The way to start workers here: Web module workers, or Node's
 * `worker_threads` (imported on first use). Rejects where there are none.
 * @internal
 */
export async function workerSpawner(kind: WorkerKind): Promise<SpawnWorker> {
  if (kind === "web") return spawnWebWorker;
  const threads = await import(NODE_WORKER_THREADS) as NodeWorkerThreads;
  const args = (nodeProcess() as { execArgv?: readonly string[] } | undefined)?.execArgv ?? [];
  const kept = withoutTsx(args);
  const usesTsx = kept.length < args.length;
  const tsx = usesTsx ? tsxInWorkers() : undefined;
  const execArgv = usesTsx ? kept : undefined;
  return (url, events, typescript = true) =>
    typescript && !tsx
      ? spawnNodeWorker(threads, url, { events }) // Node 22+ applies the inherited --import tsx in the worker
      : spawnNodeWorker(threads, url, { events, tsx: typescript ? tsx : undefined, execArgv });
}

/**
 * Node before 22 does not give workers the module hooks of the parent's
 * `--import` (nodejs/node#47747), so a process running TypeScript through
 * tsx (`node --import tsx`) could not load a `.ts` module in a worker. For
 * such a process (the caller has seen tsx's flag), the URL of tsx's
 * registration API, which the worker calls first; undefined on Node 22+.
 */
function tsxInWorkers(): string | undefined {
  const major = Number((nodeProcess() as { versions?: { node?: string } } | undefined)?.versions?.node?.split(".")[0]);
  if (!(major < 22)) return undefined;
  try {
    return import.meta.resolve("tsx/esm/api");
  } catch {
    return undefined;
  }
}

/**
 * How many of `args`, from `i`, are a flag that loads tsx (`--import tsx`,
 * `--import=tsx`, `--loader tsx/esm`, …): 2, 1, or 0 for another flag.
 */
function tsxFlagLength(args: readonly string[], i: number): number {
  const flag = /^--(import|loader|experimental-loader)(=|$)/.exec(args[i]);
  if (!flag) return 0;
  const joined = flag[2] === "=";
  const value = joined ? args[i].slice(flag[0].length) : args[i + 1] ?? "";
  return /(^|\/)tsx(\/esm)?$/.test(value) ? (joined ? 1 : 2) : 0;
}

/**
 * The parent's `execArgv` without its tsx flags: a worker that loads only
 * JavaScript (or registers tsx itself) would otherwise load tsx's hooks
 * again, which on Node 20 took ~60 ms per worker start.
 */
function withoutTsx(args: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const length = tsxFlagLength(args, i);
    if (length === 0) kept.push(args[i]);
    else i += length - 1;
  }
  return kept;
}

/** Node's worker script: registers tsx if asked (see tsxInWorkers), then imports the entry. */
const NODE_BOOTSTRAP = `const { workerData } = require("node:worker_threads");
(workerData.tsx ? import(workerData.tsx).then((api) => api.register()) : Promise.resolve())
  .then(() => import(workerData.entry));`;

function spawnWebWorker(url: URL, events: WorkerEvents): WorkerThread {
  const worker = new Worker(url, { type: "module" });
  const { crash, message, thread } = liveUntilEnded(worker, events);
  worker.addEventListener("message", (event) => message(event.data));
  worker.addEventListener("error", (event) => {
    event.preventDefault(); // Deno: an uncaught error in a worker must not end the process
    crash(event.error instanceof Error ? event.error : new Error(event.message || "uncaught error in the worker"));
  });
  worker.addEventListener("messageerror", () => crash(new Error("a message from the worker could not be cloned")));
  // Bun: the worker called process.exit().
  worker.addEventListener("close", (event) => {
    const code = (event as Event & { code?: number }).code;
    crash(new Error(`the worker exited${code === undefined ? "" : ` with code ${code}`}`));
  });
  return thread;
}

/** How a Node worker starts: tsx's registration API to call first, and the `execArgv` to use instead of the parent's. */
interface NodeSpawn {
  readonly events: WorkerEvents;
  readonly tsx?: string | undefined;
  readonly execArgv?: readonly string[] | undefined;
}

function spawnNodeWorker(threads: NodeWorkerThreads, url: URL, { events, tsx, execArgv }: NodeSpawn): WorkerThread {
  const worker = tsx
    ? newNodeWorker(threads, NODE_BOOTSTRAP, { eval: true, workerData: { entry: url.href, tsx } }, execArgv)
    : newNodeWorker(threads, url, {}, execArgv);
  const { crash, message, thread } = liveUntilEnded(worker, events);
  worker.on("message", message);
  worker.on("error", crash);
  worker.on("messageerror", crash);
  worker.on("exit", (code) => crash(new Error(`the worker exited with code ${code}`)));
  return thread;
}

/**
 * A Node worker with `execArgv` if given, else the parent's. Node refuses
 * some of the parent's flags when they are given explicitly (V8's, such as
 * `--max-old-space-size`, which apply to the whole process): then the
 * worker inherits them all, tsx's too.
 */
function newNodeWorker(
  threads: NodeWorkerThreads,
  script: URL | string,
  options: { eval?: boolean; workerData?: unknown },
  execArgv: readonly string[] | undefined,
): NodeWorker {
  if (execArgv) {
    try {
      return new threads.Worker(script, { ...options, execArgv });
    } catch (error) {
      if ((error as { code?: unknown }).code !== "ERR_WORKER_INVALID_EXEC_ARGV") throw error;
    }
  }
  return new threads.Worker(script, options);
}

/**
 * A worker's messages and its one crash, passed on to `events` until it
 * crashes or is terminated; after that it is silent (a terminated worker's
 * exit is not a crash).
 */
function liveUntilEnded(
  worker: { postMessage(message: unknown, transfer: Transferable[]): void; terminate(): unknown },
  events: WorkerEvents,
): { crash: (error: Error) => void; message: (data: unknown) => void; thread: WorkerThread } {
  let live = true;
  return {
    crash(error) {
      if (!live) return;
      live = false;
      worker.terminate();
      events.crash(error);
    },
    message(data) {
      if (live) events.message(data);
    },
    thread: {
      post: (message, transfer) => worker.postMessage(message, transfer),
      terminate() {
        live = false;
        worker.terminate();
      },
    },
  };
}

interface WorkerScope {
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
  addEventListener(type: "error", listener: (event: ErrorEvent) => void): void;
  addEventListener(type: "unhandledrejection", listener: (event: PromiseRejectionEvent) => void): void;
  postMessage(message: unknown, transfer: Transferable[]): void;
}

/** Posts a message to the thread that started this worker. @internal */
export type PostToParent = (message: unknown, transfer: Transferable[]) => void;

/**
 * From inside a worker: listens to the thread that started it (a Web
 * worker's global scope, at once, so no early message is missed; or Node's
 * `parentPort`) and gives the way to post back. In a Web worker an uncaught
 * error or unhandled rejection goes to `uncaught` and counts as handled
 * (Deno would print it as "Uncaught (in worker)"); Node tells the parent's
 * `Worker` itself, quietly.
 * @internal
 */
export async function connectToParent(
  listener: (data: unknown) => void,
  uncaught?: (error: unknown) => void,
): Promise<PostToParent> {
  const scope = globalThis as unknown as Partial<WorkerScope>;
  if (typeof scope.postMessage === "function" && typeof scope.addEventListener === "function") {
    const web = scope as WorkerScope;
    web.addEventListener("message", (event) => listener(event.data));
    if (uncaught) {
      web.addEventListener("error", (event) => {
        event.preventDefault();
        uncaught(event.error ?? new Error(event.message || "uncaught error in the worker"));
      });
      web.addEventListener("unhandledrejection", (event) => {
        event.preventDefault();
        uncaught(event.reason);
      });
    }
    return (message, transfer) => web.postMessage(message, transfer);
  }
  const port = (await import(NODE_WORKER_THREADS) as NodeWorkerThreads).parentPort;
  if (!port) throw new Error("sluice's worker entry was loaded outside a worker: give it to workerStage() only");
  port.on("message", listener);
  return (message, transfer) => port.postMessage(message, transfer);
}
