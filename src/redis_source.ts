/**
 * `redisStreamSource()`: a Redis Streams consumer group as a pipeline source
 * that acknowledges each entry only once its item's fate is final.
 *
 * @module
 */

import { z } from "zod";
import { validate } from "./config.ts";
import type { ItemId } from "./events.ts";
import { checkConnected, isRedisClient, type RedisClient } from "./redis_client.ts";
import { PoisonMessageError, RedisStreamError } from "./redis_errors.ts";
import type { AcknowledgingSource, Fate, SettledItem } from "./source.ts";

/** A stream entry as the first stage gets it. */
export interface RedisStreamEntry {
  /** The entry's id (`1700000000000-0`): the item's id, in events and dead letters. */
  readonly id: string;
  /** Its fields. */
  readonly fields: Readonly<Record<string, string>>;
}

/** Options of {@linkcode redisStreamSource}. */
export interface RedisStreamSourceOptions {
  /**
   * A connected ioredis client. Acknowledgements go through it; the source
   * makes a connection of its own for its blocking reads with
   * `client.duplicate()` and closes that one when the run ends.
   */
  readonly client: RedisClient;
  /** The stream's key. */
  readonly stream: string;
  /** The consumer group. */
  readonly group: string;
  /** This consumer's name in the group: unique per process (say, host and pid). */
  readonly consumer: string;
  /**
   * The most entries one `XREADGROUP` or `XAUTOCLAIM` asks for.
   * @default {100}
   */
  readonly batchSize?: number;
  /**
   * How long one read blocks waiting for entries; a shutdown takes at most this long to be heard.
   * @default {1000}
   */
  readonly blockMs?: number;
  /**
   * Entries pending this long on any consumer (one that died, say) are taken
   * over with `XAUTOCLAIM`. Keep it well above the longest time an item
   * spends in the pipeline, or live consumers' entries are taken too.
   * @default {60000}
   */
  readonly claimIdleMs?: number;
  /**
   * An entry delivered more often than this is dead-lettered with a
   * `PoisonMessageError` instead of being run again.
   * @default {5}
   */
  readonly maxDeliveries?: number;
  /**
   * Create the group (from the stream's start, `0`) and the stream
   * (`MKSTREAM`) if missing. Without it a missing stream or group is an error.
   * @default {false}
   */
  readonly createGroup?: boolean;
}

const positiveInteger = z.int({ error: "must be a positive integer" }).min(1, { error: "must be a positive integer" });
const name = z.string({ error: "must be a non-empty string" }).min(1, { error: "must be a non-empty string" });
const client = z.custom<RedisClient>(isRedisClient, { error: "must be an ioredis client (new Redis(url))" });

const sourceOptionsSchema = z.strictObject({
  client,
  stream: name,
  group: name,
  consumer: name,
  batchSize: positiveInteger.optional(),
  blockMs: positiveInteger.optional(),
  claimIdleMs: positiveInteger.optional(),
  maxDeliveries: positiveInteger.optional(),
  createGroup: z.boolean({ error: "must be true or false" }).optional(),
}, { error: "must be an object" });

/** The fates a sink or dead letter stream acknowledges itself, in the same `MULTI` as its write. */
const ackedOnWrite = new WeakMap<RedisStreamSource, Set<Fate>>();

/** Whether an id is one of the source's entries in the pipeline (a flatMap stage's output's is not). */
const handedOut = new WeakMap<RedisStreamSource, (id: string) => boolean>();

/**
 * Makes the writer acknowledge the source's entries of `fate` itself (in
 * the `MULTI` of its write); returns where to acknowledge them, and whether
 * an item id is an entry of the source's (only those are acknowledged: a
 * flatMap stage's outputs carry ids of their own, and one that is not a
 * stream id would fail the whole `XACK`).
 * @internal
 */
export function acknowledgeOnWrite(
  source: RedisStreamSource,
  fate: Fate,
): { stream: string; group: string; owns: (id: ItemId) => id is string } {
  if (!(source instanceof RedisStreamSource)) {
    throw new TypeError(`option "source" must be a redisStreamSource(); got ${typeof source}`);
  }
  ackedOnWrite.get(source)?.add(fate);
  const holds = handedOut.get(source)!;
  return {
    stream: source.stream,
    group: source.group,
    owns: (id): id is string => typeof id === "string" && holds(id),
  };
}

/** The most ids in one `XACK`. */
const ACK_BATCH = 1000;

/**
 * A Redis Streams consumer group read as a pipeline source; made by
 * {@linkcode redisStreamSource}. It serves one run.
 */
export class RedisStreamSource implements AcknowledgingSource<RedisStreamEntry> {
  /** The stream's key. */
  readonly stream: string;
  /** The consumer group. */
  readonly group: string;
  /** This consumer's name. */
  readonly consumer: string;
  readonly #client: RedisClient;
  readonly #batchSize: number;
  readonly #blockMs: number;
  readonly #claimIdleMs: number;
  readonly #maxDeliveries: number;
  readonly #createGroup: boolean;
  #reader: RedisClient | undefined;
  #iterated = false;
  #stopped = false;
  /** Entries read from Redis, not yet handed to the pipeline. */
  #buffer: RedisStreamEntry[] = [];
  /** Ids handed to the pipeline whose fate is not final yet. */
  readonly #inFlight = new Set<string>();
  /**
   * Ids settled lately, in two generations turned at most once a second: an
   * entry settled but whose acknowledgement (here, or in a writer's MULTI)
   * is not in yet must not be claimed back and run again.
   */
  #settled: [Set<string>, Set<string>] = [new Set(), new Set()];
  #settledSince = performance.now();
  /** Claimed entries delivered too often: id to deliveries. */
  readonly #poison = new Map<string, number>();
  /** The read or claim in progress. */
  #filling: Promise<void> | undefined;
  #claimCursor = "0-0";
  #lastClaimScan = Number.NEGATIVE_INFINITY;
  #toAck: string[] = [];
  #acking: Promise<void> | undefined;
  #ackError: { error: unknown } | undefined;

  /** Use {@linkcode redisStreamSource}. */
  constructor(options: RedisStreamSourceOptions) {
    const resolved = validate(sourceOptionsSchema, options, { owner: "redisStreamSource()", root: "options" });
    this.#client = resolved.client;
    this.stream = resolved.stream;
    this.group = resolved.group;
    this.consumer = resolved.consumer;
    this.#batchSize = resolved.batchSize ?? 100;
    this.#blockMs = resolved.blockMs ?? 1000;
    this.#claimIdleMs = resolved.claimIdleMs ?? 60_000;
    this.#maxDeliveries = resolved.maxDeliveries ?? 5;
    this.#createGroup = resolved.createGroup ?? false;
    ackedOnWrite.set(this, new Set());
    handedOut.set(this, (id) => this.#inFlight.has(id));
  }

  /** The entry id is the item id. */
  itemId(entry: RedisStreamEntry): ItemId {
    return entry.id;
  }

  /** A claimed entry delivered more than `maxDeliveries` times is dead-lettered instead of run. */
  rejection(entry: RedisStreamEntry): PoisonMessageError | undefined {
    const deliveries = this.#poison.get(entry.id);
    if (deliveries === undefined) return undefined;
    this.#poison.delete(entry.id);
    return new PoisonMessageError(this.stream, entry.id, deliveries, this.#maxDeliveries);
  }

  /** Acknowledges (in batches) the entries whose fate is final and that no writer acknowledged already. */
  settle(items: readonly SettledItem[]): void {
    const acked = ackedOnWrite.get(this)!;
    for (const { id, fate } of items) {
      // Only entries this source handed out are acknowledged: a flatMap
      // stage's outputs carry ids derived from their entry's ("…-0.1"),
      // and the entry itself settles as "expanded".
      if (!this.#inFlight.delete(id as string)) continue;
      this.#settled[0].add(id as string);
      if (!acked.has(fate)) this.#toAck.push(id as string);
    }
    if (this.#toAck.length > 0) this.#acking ??= this.#flushAcks();
  }

  /**
   * Ends the run: waits for the read in progress, hands entries read but
   * never started back to the group (claimable at once), sends the last
   * acknowledgements and closes the source's own connection.
   * @throws {RedisStreamError} when an acknowledgement failed (those entries will be delivered again).
   */
  async close(): Promise<void> {
    this.#stopped = true;
    await this.#filling?.catch(() => {});
    try {
      await this.#release(this.#buffer.splice(0));
      while (this.#acking) await this.#acking;
    } finally {
      await this.#reader?.quit().catch(() => {});
    }
    if (this.#ackError) {
      throw new RedisStreamError(
        `redisStreamSource "${this.stream}": acknowledging entries failed; they stay pending and will be ` +
          `delivered again (claimed after claimIdleMs)`,
        { cause: this.#ackError.error },
      );
    }
  }

  /** Reads the stream: entries taken over from dead consumers first, then new ones. */
  [Symbol.asyncIterator](): AsyncIterator<RedisStreamEntry> {
    if (this.#iterated) {
      throw new TypeError(`redisStreamSource "${this.stream}" serves one run; make a new one for each run`);
    }
    this.#iterated = true;
    return {
      next: () => this.#next(),
      return: () => {
        this.#stopped = true; // the read in progress ends within blockMs; close() waits for it
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  async #next(): Promise<IteratorResult<RedisStreamEntry>> {
    if (!this.#reader) await this.#start();
    while (this.#buffer.length === 0) {
      if (this.#stopped) return { done: true, value: undefined };
      this.#filling = this.#fill();
      await this.#filling;
    }
    const entry = this.#buffer.shift()!;
    this.#inFlight.add(entry.id);
    return { done: false, value: entry };
  }

  /** Checks the client, the stream and the group, and opens the reading connection. */
  async #start(): Promise<void> {
    const owner = `redisStreamSource "${this.stream}"`;
    checkConnected(this.#client, owner);
    if (this.#createGroup) {
      await this.#client.call("XGROUP", "CREATE", this.stream, this.group, "0", "MKSTREAM").catch((error) => {
        if (!String(error?.message).startsWith("BUSYGROUP")) throw error;
      });
    } else {
      await this.#checkGroup(owner);
    }
    this.#reader = this.#client.duplicate();
  }

  async #checkGroup(owner: string): Promise<void> {
    let groups: unknown;
    try {
      groups = await this.#client.call("XINFO", "GROUPS", this.stream);
    } catch (error) {
      if (!/no such key/i.test(String((error as Error)?.message))) throw error;
      throw new RedisStreamError(
        `${owner}: the stream "${this.stream}" does not exist; add entries to it first, or pass createGroup: true ` +
          `to create it with the group`,
        { cause: error },
      );
    }
    const names = (groups as unknown[][]).map((fields) => fields[fields.indexOf("name") + 1]);
    if (!names.includes(this.group)) {
      throw new RedisStreamError(
        `${owner}: the consumer group "${this.group}" does not exist (the stream has ${
          names.length === 0 ? "no groups" : `groups ${names.map((n) => `"${n}"`).join(", ")}`
        }); create it with XGROUP CREATE ${this.stream} ${this.group} 0, or pass createGroup: true`,
      );
    }
  }

  /** One claim (when due) or one blocking read into the buffer. */
  async #fill(): Promise<void> {
    const reader = this.#reader!;
    if (performance.now() - this.#lastClaimScan >= this.#claimIdleMs / 2) {
      const claimed = await this.#claim(reader);
      if (this.#stopped) return this.#release(claimed);
      this.#buffer.push(...claimed);
      if (claimed.length > 0 || this.#claimCursor !== "0-0") return;
    }
    const reply = await reader.call(
      "XREADGROUP",
      "GROUP",
      this.group,
      this.consumer,
      "COUNT",
      this.#batchSize,
      "BLOCK",
      this.#blockMs,
      "STREAMS",
      this.stream,
      ">",
    ).catch((error) => this.#readFailed(error));
    const entries = reply ? parseEntries((reply as [string, unknown[]][])[0][1]) : [];
    if (this.#stopped) return this.#release(entries);
    this.#buffer.push(...entries);
  }

  #readFailed(error: unknown): never {
    if (/NOGROUP/.test(String((error as Error)?.message))) {
      throw new RedisStreamError(
        `redisStreamSource "${this.stream}": the stream or the group "${this.group}" was deleted while reading`,
        { cause: error },
      );
    }
    throw error;
  }

  /** Takes over entries idle longer than claimIdleMs, noting those delivered too often. */
  async #claim(reader: RedisClient): Promise<RedisStreamEntry[]> {
    const reply = await reader.call(
      "XAUTOCLAIM",
      this.stream,
      this.group,
      this.consumer,
      this.#claimIdleMs,
      this.#claimCursor,
      "COUNT",
      this.#batchSize,
    ).catch((error) => this.#readFailed(error)) as [string, unknown[]];
    this.#claimCursor = reply[0];
    const now = performance.now();
    if (this.#claimCursor === "0-0") this.#lastClaimScan = now;
    const waiting = new Set(this.#buffer.map((entry) => entry.id));
    const [recent, older] = this.#settled;
    // An entry of ours still in the pipeline (slower than claimIdleMs), or settled and
    // being acknowledged, is not run twice here.
    const claimed = parseEntries(reply[1]).filter((entry) =>
      !this.#inFlight.has(entry.id) && !waiting.has(entry.id) && !recent.has(entry.id) && !older.has(entry.id)
    );
    if (now - this.#settledSince >= 1000) {
      this.#settled = [new Set(), recent];
      this.#settledSince = now;
    }
    if (claimed.length > 0) await this.#noteDeliveries(reader, claimed);
    return claimed;
  }

  async #noteDeliveries(reader: RedisClient, claimed: readonly RedisStreamEntry[]): Promise<void> {
    const count = claimed.length + this.#inFlight.size + this.#buffer.length;
    const pending = await reader.call(
      "XPENDING",
      this.stream,
      this.group,
      claimed[0].id,
      claimed[claimed.length - 1].id,
      count,
      this.consumer,
    ) as [string, string, number, number][];
    const deliveries = new Map(pending.map(([id, , , times]) => [id, times]));
    for (const entry of claimed) {
      const times = deliveries.get(entry.id) ?? 0;
      if (times > this.#maxDeliveries) this.#poison.set(entry.id, times);
    }
  }

  /**
   * Hands entries read but never started back to the group: claimed by this
   * consumer with their idle time set to claimIdleMs (JUSTID leaves their
   * delivery count), so any consumer's next XAUTOCLAIM takes them at once.
   */
  async #release(entries: readonly RedisStreamEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const ids = entries.map((entry) => entry.id);
    await this.#client.call(
      "XCLAIM",
      this.stream,
      this.group,
      this.consumer,
      0,
      ...ids,
      "IDLE",
      this.#claimIdleMs,
      "JUSTID",
    ).catch(() => {}); // if this fails they are claimed after claimIdleMs all the same
  }

  async #flushAcks(): Promise<void> {
    await Promise.resolve(); // the fates settled in this same turn go in one XACK
    while (this.#toAck.length > 0) {
      const ids = this.#toAck.splice(0, ACK_BATCH);
      try {
        await this.#client.call("XACK", this.stream, this.group, ...ids);
      } catch (error) {
        this.#ackError ??= { error };
      }
    }
    this.#acking = undefined;
  }
}

function parseEntries(raw: unknown[]): RedisStreamEntry[] {
  const entries: RedisStreamEntry[] = [];
  for (const item of raw as ([string, string[] | null] | null)[]) {
    if (!item || !item[1]) continue; // deleted while pending
    const [id, flat] = item;
    const fields: Record<string, string> = {};
    for (let i = 0; i < flat.length; i += 2) fields[flat[i]] = flat[i + 1];
    entries.push({ id, fields });
  }
  return entries;
}

/**
 * A Redis Streams consumer group as a pipeline source, read with
 * `XREADGROUP`. An entry is acknowledged (`XACK`) only once its item's fate
 * is final: it completed the last stage, was filtered or skipped, or was
 * written to the dead letter queue. Entries pending longer than
 * `claimIdleMs` on a consumer that died are taken over (`XAUTOCLAIM`); one
 * delivered more than `maxDeliveries` times is dead-lettered with a
 * {@linkcode PoisonMessageError}. Delivery is at least once.
 *
 * @example Two entries through a pipeline, acknowledged when done
 * ```ts
 * import { Redis } from "ioredis";
 * import { Pipeline, stage } from "../mod.ts";
 * import { redisStreamSource } from "./redis_source.ts";
 *
 * const client = new Redis(process.env.SLUICE_REDIS_URL ?? "redis://127.0.0.1:6379");
 * const stream = `orders-${crypto.randomUUID()}`;
 * await client.xadd(stream, "*", "total", "5");
 * await client.xadd(stream, "*", "total", "7");
 * const source = redisStreamSource({ client, stream, group: "billing", consumer: "c1", createGroup: true });
 * const stop = new AbortController();
 * let sum = 0;
 * const pipeline = new Pipeline({
 *   name: "billing",
 *   stages: [stage("add", (entry: { fields: Readonly<Record<string, string>> }) => (sum += Number(entry.fields.total)))],
 *   onEvent: (event) => {
 *     if (event.type === "completed" && sum === 12) stop.abort();
 *   },
 * });
 * await pipeline.run(source, { signal: stop.signal });
 * const pending = await client.xpending(stream, "billing") as [number];
 * console.assert(sum === 12 && pending[0] === 0);
 * await client.del(stream);
 * await client.quit();
 * ```
 *
 * @throws {ConfigError} when an option is invalid.
 */
export function redisStreamSource(options: RedisStreamSourceOptions): RedisStreamSource {
  return new RedisStreamSource(options);
}
