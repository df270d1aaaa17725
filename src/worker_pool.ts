/**
 * The threads of one worker stage in one run: `threads` workers, each with
 * up to `window` items posted to it, fed from one queue. When the queue is
 * deep, several items go in one message (up to `maxBatch`), so per-message
 * overhead does not dominate cheap functions. A worker that dies fails only
 * the items it held and is replaced; a timed-out item terminates its worker
 * (a CPU loop cannot see a signal); `close()` terminates them all.
 *
 * @module
 */

import { PermanentError, ShutdownError, TimeoutError } from "./errors.ts";
import type { ItemId } from "./events.ts";
import { Fifo } from "./fifo.ts";
import { skip } from "./skip.ts";
import type { SpawnWorker, WorkerThread } from "./runtime.ts";
import { fromWireError, WorkerCrashedError } from "./worker_errors.ts";
import type { FromWorker, InitMessage, WireJob } from "./worker_protocol.ts";

/**
 * The work one message should carry, in milliseconds: far above the cost of
 * posting it and receiving its results (30-60 µs of the parent's CPU time per
 * message on Deno, measured; at 1 ms, bench/workers.ts case 1 ran 4-7% slower).
 */
const BATCH_WORK_MS = 4;

/** What a pool is made from, checked and resolved by `workerStage()`. @internal */
export interface PoolOptions {
  readonly stage: string;
  /** The worker script (src/worker_entry.ts, or dist/worker_entry.js). */
  readonly entry: URL;
  /** The user's module and its export. */
  readonly module: string;
  readonly exportName: string;
  readonly threads: number;
  /** Items running at once in one worker. */
  readonly concurrency: number;
  /** The most items in one message. */
  readonly maxBatch: number;
  /** The most items posted to one worker and not yet back, with `timeoutMs` (without, twice the current batch size). */
  readonly window: number;
  readonly timeoutMs: number | undefined;
  readonly transfer: ((value: unknown) => Transferable[]) | undefined;
  /** How workers are started here (resolved on first use). */
  readonly spawner: () => Promise<SpawnWorker>;
}

interface Job {
  readonly id: number;
  readonly value: unknown;
  readonly itemId: ItemId;
  readonly attempt: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** One worker and the items posted to it. */
class Thread {
  readonly jobs = new Map<number, Job>();
  /** True once the worker has loaded the module. */
  ready = false;
  /** Set once started (the worker's events need the thread first). */
  worker!: WorkerThread;
}

/** @internal */
export class WorkerPool {
  readonly #options: PoolOptions;
  readonly #queue = new Fifo<Job>();
  readonly #threads: Thread[] = [];
  #spawn: SpawnWorker | undefined;
  #starting = false;
  /** Set once no item can run: the module did not load, workers could not start, or the pool closed. */
  #broken: (() => Error) | undefined;
  #dispatchScheduled = false;
  #nextId = 0;
  /** Milliseconds an item has taken in a worker, on average (recent items weigh most); undefined until known. */
  #itemMs: number | undefined;

  /** True when the worker loads TypeScript: the entry (from the sources) or the user's module. */
  readonly #typescript: boolean;

  constructor(options: PoolOptions) {
    this.#options = options;
    this.#typescript = [options.entry.pathname, options.module].some((path) => /\.[cm]?tsx?([?#]|$)/.test(path));
  }

  /** Runs one attempt of an item on a worker; settles with the function's result or error. */
  run(value: unknown, itemId: ItemId, attempt: number): Promise<unknown> {
    if (this.#broken) return Promise.reject(this.#broken());
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, value, itemId, attempt, resolve, reject, timer: undefined });
      this.#scheduleDispatch();
    });
  }

  /** Terminates every worker; items still held fail with a `ShutdownError` caused by `reason`. */
  close(reason: unknown = "the run ended"): void {
    if (!this.#broken) this.#broken = () => new ShutdownError(this.#options.stage, { cause: reason });
    this.#failEverything(this.#broken);
  }

  #scheduleDispatch(): void {
    if (this.#dispatchScheduled) return;
    this.#dispatchScheduled = true;
    // After the microtasks already queued: results that settled together
    // free their stage's workers, which post the next items before this runs.
    queueMicrotask(() => {
      this.#dispatchScheduled = false;
      this.#dispatch();
    });
  }

  #dispatch(): void {
    if (this.#broken) return this.#failEverything(this.#broken);
    if (!this.#spawn) return this.#start();
    while (this.#threads.length < this.#options.threads) {
      if (!this.#addThread()) return;
    }
    const batch = this.#batchSize();
    const window = this.#options.timeoutMs === undefined ? 2 * this.#options.concurrency * batch : this.#options.window;
    while (this.#queue.length > 0) {
      const thread = this.#leastLoaded();
      const room = thread ? window - thread.jobs.size : 0;
      if (!thread || room <= 0) return; // a worker's "ready" or results dispatch again
      const share = Math.ceil(this.#queue.length / this.#threads.length);
      this.#post(thread, this.#queue.take(Math.min(batch, room, share)));
    }
  }

  /**
   * Items per message: enough for about {@linkcode BATCH_WORK_MS} of work,
   * from the time items have taken so far (all of `maxBatch` until known).
   * An item that takes that long or more goes alone: batching it would
   * save nothing and leave one worker idle while another holds a batch.
   */
  #batchSize(): number {
    const { maxBatch, concurrency } = this.#options;
    if (this.#itemMs === undefined || maxBatch === 1) return maxBatch;
    const perItem = this.#itemMs / concurrency;
    return Math.max(1, Math.min(maxBatch, Math.ceil(BATCH_WORK_MS / Math.max(perItem, 1e-3))));
  }

  /** Folds a message's work time into the running average per item. */
  #learn(items: number, workMs: number): void {
    if (items === 0) return;
    const sample = workMs / items;
    this.#itemMs = this.#itemMs === undefined ? sample : 0.8 * this.#itemMs + 0.2 * sample;
  }

  /**
   * The ready worker with the fewest items. Items go only to workers that
   * have loaded the module, so that start-up counts in no item's timeout.
   */
  #leastLoaded(): Thread | undefined {
    let best: Thread | undefined;
    for (const thread of this.#threads) {
      if (thread.ready && (!best || thread.jobs.size < best.jobs.size)) best = thread;
    }
    return best;
  }

  /** Resolves how workers start (Node imports `worker_threads`), then dispatches. */
  #start(): void {
    if (this.#starting) return;
    this.#starting = true;
    this.#options.spawner().then(
      (spawn) => {
        this.#spawn = spawn;
        this.#dispatch();
      },
      (error) => this.#cannotRun(`cannot start workers here (${(error as Error).message})`, error),
    );
  }

  /** Starts one worker; false (and the pool broken) when that is impossible. */
  #addThread(): boolean {
    const options = this.#options;
    const init: InitMessage = {
      type: "init",
      stage: options.stage,
      module: options.module,
      exportName: options.exportName,
      concurrency: options.concurrency,
    };
    try {
      const thread = new Thread();
      thread.worker = this.#spawn!(options.entry, {
        message: (data) => this.#received(thread, data as FromWorker),
        crash: (error) => this.#crashed(thread, error),
      }, this.#typescript);
      thread.worker.post(init, []);
      this.#threads.push(thread);
      return true;
    } catch (error) {
      this.#cannotRun(`cannot start a worker on ${options.entry.href} (${(error as Error).message})`, error);
      return false;
    }
  }

  #post(thread: Thread, jobs: Job[]): void {
    const transfer: Transferable[] = [];
    const posted: Job[] = [];
    const wire: WireJob[] = [];
    for (const job of jobs) {
      if (this.#options.transfer) {
        try {
          for (const item of this.#options.transfer(job.value)) transfer.push(item);
        } catch (error) {
          job.reject(error);
          continue;
        }
      }
      posted.push(job);
      wire.push({ id: job.id, value: job.value, itemId: job.itemId, attempt: job.attempt });
    }
    if (posted.length === 0) return;
    try {
      thread.worker.post({ type: "run", jobs: wire }, transfer);
    } catch (error) {
      if (posted.length > 1) {
        for (const job of posted) this.#post(thread, [job]); // find the one that does not clone
        return;
      }
      posted[0].reject(this.#unsendable(error));
      return;
    }
    const timeoutMs = this.#options.timeoutMs;
    for (const job of posted) {
      thread.jobs.set(job.id, job);
      if (timeoutMs !== undefined) job.timer = setTimeout(() => this.#timedOut(thread, job, timeoutMs), timeoutMs);
    }
  }

  #unsendable(error: unknown): PermanentError {
    return new PermanentError(
      `Worker stage "${this.#options.stage}": the input could not be sent to a worker (${(error as Error).message}): ` +
        `inputs must be structured-cloneable, and an ArrayBuffer moved by the transfer option cannot be sent again ` +
        `(a retry after its worker died or timed out)`,
      { cause: error },
    );
  }

  /** A worker died on its own; one that dies before loading the module means none can run. */
  #crashed(thread: Thread, error: Error): void {
    if (!thread.ready) return this.#cannotRun(`could not start a worker (${error.message})`, error);
    this.#lost(thread, `its worker crashed (${error.message})`, error);
  }

  #received(thread: Thread, message: FromWorker): void {
    if (message.type === "ready") {
      thread.ready = true;
      return this.#scheduleDispatch();
    }
    if (message.type === "exit") {
      thread.worker.terminate();
      return this.#crashed(thread, new Error(`the worker exited with code ${message.code ?? 0}`));
    }
    if (message.type === "uncaught") {
      thread.worker.terminate();
      return this.#crashed(thread, fromWireError(message.error));
    }
    if (message.type === "loadFailed") {
      const error = fromWireError(message.error);
      return this.#cannotRun(`could not load its function from ${this.#options.module}: ${error.message}`, error);
    }
    this.#learn(message.results.length, message.workMs);
    for (const result of message.results) {
      const job = thread.jobs.get(result.id);
      if (!job) continue;
      thread.jobs.delete(result.id);
      if (job.timer !== undefined) clearTimeout(job.timer);
      if (result.ok) job.resolve(result.skip ? skip : result.value);
      else job.reject(fromWireError(result.error));
    }
    this.#scheduleDispatch();
  }

  #timedOut(thread: Thread, job: Job, timeoutMs: number): void {
    thread.jobs.delete(job.id);
    job.reject(new TimeoutError(this.#options.stage, timeoutMs));
    thread.worker.terminate();
    this.#lost(thread, `its worker was terminated because item ${String(job.itemId)} on it timed out`, undefined);
  }

  /** A worker is gone: its items fail (to be retried per the stage's policy) and, unless the pool is done, it is replaced. */
  #lost(thread: Thread, what: string, cause: unknown): void {
    const index = this.#threads.indexOf(thread);
    if (index === -1) return;
    this.#threads.splice(index, 1);
    for (const job of thread.jobs.values()) {
      if (job.timer !== undefined) clearTimeout(job.timer);
      job.reject(new WorkerCrashedError(this.#options.stage, what, cause === undefined ? undefined : { cause }));
    }
    thread.jobs.clear();
    this.#scheduleDispatch();
  }

  /** No item can run on this pool: every item held, and every later one, fails permanently. */
  #cannotRun(what: string, cause: unknown): void {
    const stage = this.#options.stage;
    this.#broken ??= () =>
      new PermanentError(
        `Worker stage "${stage}" ${what}: check the module URL (an absolute URL, ` +
          `new URL("./file.ts", import.meta.url)) and the export option`,
        { cause },
      );
    this.#failEverything(this.#broken);
  }

  #failEverything(error: () => Error): void {
    for (const thread of this.#threads.splice(0)) {
      thread.worker.terminate();
      for (const job of thread.jobs.values()) {
        if (job.timer !== undefined) clearTimeout(job.timer);
        job.reject(error());
      }
    }
    for (const job of this.#queue.take(this.#queue.length)) job.reject(error());
  }
}
