/**
 * The messages between a worker stage's pool (src/worker_pool.ts) and its
 * workers (src/worker_entry.ts). Everything in them is structured-cloned.
 *
 * @module
 */

import type { ItemId } from "./events.ts";
import type { WireError } from "./worker_errors.ts";

/** First message to a new worker: what to load and how many items to run at once. @internal */
export interface InitMessage {
  readonly type: "init";
  readonly stage: string;
  /** The user's module, as an absolute URL. */
  readonly module: string;
  /** The export that is the stage function. */
  readonly exportName: string;
  readonly concurrency: number;
}

/** One item for a worker. @internal */
export interface WireJob {
  /** The pool's number for this attempt. */
  readonly id: number;
  readonly value: unknown;
  readonly itemId: ItemId;
  readonly attempt: number;
}

/** Items for a worker to run (one message, one or more items). @internal */
export interface RunMessage {
  readonly type: "run";
  readonly jobs: readonly WireJob[];
}

/** @internal */
export type ToWorker = InitMessage | RunMessage;

/** How one item went. @internal */
export type WireResult =
  | { readonly id: number; readonly ok: true; readonly value: unknown; readonly skip?: true }
  | { readonly id: number; readonly ok: false; readonly error: WireError };

/** Results that were ready together. @internal */
export interface DoneMessage {
  readonly type: "done";
  readonly results: readonly WireResult[];
  /** How long their items took in all, start to settle, in milliseconds: what batching adapts to. */
  readonly workMs: number;
}

/** The module did not load, or its export is not a function: no item can run on this worker. @internal */
export interface LoadFailedMessage {
  readonly type: "loadFailed";
  readonly error: WireError;
}

/** The module loaded: the worker runs items from now on. @internal */
export interface ReadyMessage {
  readonly type: "ready";
}

/**
 * The function called `process.exit()` or `Deno.exit()`: sent just before
 * the worker stops (Deno tells the parent nothing when a worker exits).
 * @internal
 */
export interface ExitMessage {
  readonly type: "exit";
  readonly code: number | undefined;
}

/**
 * An error nothing caught, or a rejection nothing handled, in a Web worker:
 * the worker goes on, but what it was running may never settle, so the
 * parent replaces it as it would a crashed one.
 * @internal
 */
export interface UncaughtMessage {
  readonly type: "uncaught";
  readonly error: WireError;
}

/** @internal */
export type FromWorker = ReadyMessage | DoneMessage | LoadFailedMessage | ExitMessage | UncaughtMessage;
