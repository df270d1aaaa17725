/**
 * What `sluice/redis` needs of a Redis client, as a structural type that an
 * ioredis client (`new Redis(…)`, ioredis 5) satisfies, and the one
 * transaction batcher the sink and the dead letter stream share. No Redis
 * library is imported here: the user passes the client in.
 *
 * @module
 */

import { RedisStreamError } from "./redis_errors.ts";

/** An argument of a Redis command. */
export type RedisArgument = string | number;

/**
 * A queued `MULTI` transaction: commands added with `call`, sent with `exec`.
 * ioredis's `client.multi()` is one.
 */
export interface RedisTransaction {
  /** Queues a command. */
  call(command: string, ...args: RedisArgument[]): unknown;
  /** Sends `MULTI`, the commands and `EXEC`; resolves with `[error, result]` per command. */
  exec(): Promise<[Error | null, unknown][] | null>;
}

/**
 * The Redis client sluice/redis works with: an ioredis 5 client
 * (`import { Redis } from "ioredis"; new Redis(url)`), passed in by you.
 *
 * @example An ioredis client fits
 * ```ts ignore
 * import { Redis } from "ioredis";
 * import type { RedisClient } from "./redis_client.ts";
 *
 * const client: RedisClient = new Redis("redis://127.0.0.1:6379");
 * ```
 */
export interface RedisClient {
  /** The connection's state (ioredis: `wait`, `connecting`, `connect`, `ready`, `reconnecting`, `close`, `end`). */
  readonly status: string;
  /** Sends one command. */
  call(command: string, ...args: RedisArgument[]): Promise<unknown>;
  /** Starts a `MULTI` transaction. */
  multi(): RedisTransaction;
  /** A new connection with the same options (for blocking reads of its own). */
  duplicate(): RedisClient;
  /** Closes the connection once pending replies are in. */
  quit(): Promise<unknown>;
}

/** Statuses in which an ioredis client will never send a command without a `connect()`. */
const NOT_CONNECTED = new Set(["wait", "close", "end"]);

/**
 * Throws a {@linkcode RedisStreamError} unless `client` is connected or
 * connecting (ioredis queues commands meanwhile).
 * @internal
 */
export function checkConnected(client: RedisClient, owner: string): void {
  if (NOT_CONNECTED.has(client.status)) {
    throw new RedisStreamError(
      `${owner}: the Redis client is not connected (status "${client.status}"); ` +
        `call await client.connect() first (a client made with lazyConnect), or pass a client that is not closed`,
    );
  }
}

/** Whether `value` looks like a Redis client, for the option schemas. @internal */
export function isRedisClient(value: unknown): value is RedisClient {
  const client = value as Partial<RedisClient> | null;
  return typeof client === "object" && client !== null && typeof client.call === "function" &&
    typeof client.multi === "function" && typeof client.duplicate === "function";
}

/** A stream entry's fields, flattened for `XADD`. @internal */
export function flatFields(fields: Readonly<Record<string, string>>): string[] {
  const flat: string[] = [];
  for (const key in fields) flat.push(key, fields[key]);
  return flat;
}

interface Job<J> {
  readonly job: J;
  readonly resolve: (result: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Gathers jobs into `MULTI` transactions, one in flight at a time: jobs that
 * arrive while one is in flight go together in the next. `build` queues the
 * commands of a batch and returns, per job, the index of its command's reply.
 * @internal
 */
export class TransactionBatcher<J> {
  readonly #client: RedisClient;
  readonly #build: (multi: RedisTransaction, jobs: readonly J[]) => readonly number[];
  readonly #max: number;
  #queue: Job<J>[] = [];
  #running: Promise<void> | undefined;

  constructor(
    client: RedisClient,
    build: (multi: RedisTransaction, jobs: readonly J[]) => readonly number[],
    max: number,
  ) {
    this.#client = client;
    this.#build = build;
    this.#max = max;
  }

  /** Jobs queued or in flight. */
  get size(): number {
    return this.#queue.length;
  }

  /** Resolves with the job's command reply once its transaction ran; rejects with its error. */
  add(job: J): Promise<unknown> {
    const promise = new Promise<unknown>((resolve, reject) => this.#queue.push({ job, resolve, reject }));
    this.#running ??= this.#drain();
    return promise;
  }

  /** Resolves once every job added so far has been sent and answered. */
  idle(): Promise<void> {
    return this.#running ?? Promise.resolve();
  }

  async #drain(): Promise<void> {
    await Promise.resolve(); // the jobs added in this same turn join the first transaction
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#max);
      try {
        const multi = this.#client.multi();
        const indexes = this.#build(multi, batch.map((queued) => queued.job));
        const replies = await multi.exec();
        if (!replies) throw new RedisStreamError("the MULTI transaction was aborted (EXEC returned null); retry it");
        batch.forEach((queued, i) => {
          const [error, reply] = replies[indexes[i]] ?? [new RedisStreamError("no reply for a command")];
          if (error) queued.reject(error);
          else queued.resolve(reply);
        });
      } catch (error) {
        for (const queued of batch) queued.reject(error);
      }
    }
    this.#running = undefined;
  }
}
