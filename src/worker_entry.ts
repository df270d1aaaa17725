/**
 * The script every worker of a worker stage runs: it loads the user's
 * module, runs the items it is sent (up to the stage's `concurrency` at
 * once) and posts the results back, ready ones together. Not imported by
 * the library: `workerStage()` starts workers on this file's URL (in the
 * npm package, `dist/worker_entry.js`).
 *
 * @module
 */

import { connectToParent } from "./runtime.ts";
import { skip } from "./skip.ts";
import { toWireError } from "./worker_errors.ts";
import type { FromWorker, InitMessage, ToWorker, WireJob, WireResult } from "./worker_protocol.ts";
import type { WorkerContext } from "./worker_stage.ts";

type Fn = (value: unknown, ctx: WorkerContext) => unknown;

interface Loaded {
  readonly fn: Fn;
  readonly transfer: ((output: unknown) => Transferable[]) | undefined;
}

let init: InitMessage | undefined;
let loaded: Loaded | undefined;
const queue: WireJob[] = [];
let head = 0;
let running = 0;
let pumping = false;
let outbox: WireResult[] = [];
/** The milliseconds the items in the outbox took, start to settle. */
let outboxMs = 0;
let transfers: Transferable[] = [];
let flushScheduled = false;

const post = await connectToParent((data) => {
  const message = data as ToWorker;
  if (message.type === "init") return void load(message);
  for (const job of message.jobs) queue.push(job);
  pump();
}, (error) => post({ type: "uncaught", error: toWireError(error) }, []));

reportExits();

/** Makes `process.exit()` and `Deno.exit()` tell the parent first: a Deno worker that exits is otherwise silent. */
function reportExits(): void {
  const holders = [(globalThis as { process?: unknown }).process, (globalThis as { Deno?: unknown }).Deno];
  for (const holder of holders as ({ exit?: (code?: number) => never } | undefined)[]) {
    const exit = holder?.exit;
    if (!holder || typeof exit !== "function") continue;
    try {
      holder.exit = (code?: number) => {
        post({ type: "exit", code }, []);
        return exit.call(holder, code);
      };
    } catch {
      // a read-only exit: the runtime reports the exit itself
    }
  }
}

async function load(message: InitMessage): Promise<void> {
  init = message;
  try {
    const module = await import(message.module) as Record<string, unknown>;
    const fn = module[message.exportName];
    if (typeof fn !== "function") {
      const exports = Object.keys(module).filter((key) => typeof module[key] === "function");
      throw new TypeError(
        `${message.module} has no function export "${message.exportName}"; its function exports are ` +
          `${exports.length === 0 ? "none" : exports.map((key) => `"${key}"`).join(", ")}: ` +
          `export the stage function as default, or name it with the export option`,
      );
    }
    const transfer = typeof module.transfer === "function"
      ? module.transfer as (output: unknown) => Transferable[]
      : undefined;
    loaded = { fn: fn as Fn, transfer };
    post({ type: "ready" }, []);
  } catch (error) {
    send({ type: "loadFailed", error: toWireError(error) }, []);
    return;
  }
  pump();
}

/** Starts queued items while fewer than `concurrency` run. */
function pump(): void {
  if (!loaded || !init || pumping) return;
  pumping = true;
  while (running < init.concurrency && head < queue.length) {
    const job = queue[head++];
    running++;
    start(loaded.fn, init.stage, job);
  }
  if (head === queue.length) {
    queue.length = 0;
    head = 0;
  }
  pumping = false;
}

function start(fn: Fn, stage: string, job: WireJob): void {
  const began = performance.now();
  const done = (result: WireResult) => settle(result, performance.now() - began);
  let result: unknown;
  try {
    result = fn(job.value, { stage, itemId: job.itemId, attempt: job.attempt });
  } catch (error) {
    return done({ id: job.id, ok: false, error: toWireError(error) });
  }
  if (typeof (result as { then?: unknown } | null)?.then === "function") {
    Promise.resolve(result).then(
      (value) => done(succeeded(job.id, value)),
      (error) => done({ id: job.id, ok: false, error: toWireError(error) }),
    );
  } else {
    done(succeeded(job.id, result));
  }
}

function succeeded(id: number, value: unknown): WireResult {
  // `skip` is a symbol, which does not clone; the worker's copy of sluice may not be the parent's.
  if (typeof value === "symbol" && value.description === skip.description) {
    return { id, ok: true, value: undefined, skip: true };
  }
  const transfer = loaded?.transfer;
  if (transfer) {
    try {
      for (const item of transfer(value)) transfers.push(item);
    } catch (error) {
      return { id, ok: false, error: toWireError(error) };
    }
  }
  return { id, ok: true, value };
}

function settle(result: WireResult, ms: number): void {
  running--;
  outbox.push(result);
  outboxMs += ms;
  if (!flushScheduled) {
    flushScheduled = true;
    queueMicrotask(flush);
  }
  pump();
}

/** Posts the results that were ready together as one message, with the time their items took. */
function flush(): void {
  flushScheduled = false;
  const results = outbox;
  const transfer = transfers;
  const workMs = outboxMs;
  outbox = [];
  transfers = [];
  outboxMs = 0;
  send({ type: "done", results, workMs }, transfer);
}

/** Posts `message`; results that will not clone are posted one by one, the ones that still fail as errors. */
function send(message: FromWorker, transfer: Transferable[]): void {
  try {
    post(message, transfer);
  } catch (error) {
    if (message.type !== "done" || message.results.length === 1) return sendUncloneable(message, error);
    for (const result of message.results) send({ type: "done", results: [result], workMs: 0 }, []);
  }
}

function sendUncloneable(message: FromWorker, error: unknown): void {
  const id = message.type === "done" ? message.results[0].id : -1;
  const why = new Error(
    `the ${id === -1 ? "error" : "output"} could not be sent back from the worker (${(error as Error).message}): ` +
      `a worker stage's outputs must be structured-cloneable (no functions, symbols or class instances that need their methods)`,
  );
  const wire = { ...toWireError(why), permanent: true };
  post(
    id === -1
      ? { type: "loadFailed", error: wire }
      : { type: "done", results: [{ id, ok: false, error: wire }], workMs: 0 },
    [],
  );
}
