/**
 * `redisStreamSink()`: the last stage of a pipeline, writing each output as
 * an entry of a Redis stream; with `source`, in the same `MULTI` as the
 * source entry's acknowledgement.
 *
 * @module
 */

import { z } from "zod";
import { show, validate } from "./config.ts";
import { PermanentError } from "./errors.ts";
import { flatFields, isRedisClient, type RedisClient, TransactionBatcher } from "./redis_client.ts";
import { acknowledgeOnWrite, RedisStreamSource } from "./redis_source.ts";
import { type Stage, stage } from "./stage.ts";

/** A stream entry's fields, as written: every value a string. */
export type RedisFields = Readonly<Record<string, string>>;

/** Options of {@linkcode redisStreamSink}. */
export interface RedisStreamSinkOptions {
  /** A connected ioredis client. */
  readonly client: RedisClient;
  /** The stream to add entries to. */
  readonly stream: string;
  /**
   * Trim the stream to about this many entries as it grows (`XADD MAXLEN ~`).
   * @default {undefined} no trimming
   */
  readonly maxLen?: number;
  /**
   * The pipeline's `redisStreamSource()`: each item's source entry is then
   * acknowledged in the same `MULTI` as the write of its output, so an
   * output is never written twice for one delivery, nor an entry acknowledged
   * unwritten. The sink must then be the pipeline's last stage.
   */
  readonly source?: RedisStreamSource;
  /**
   * The stage's name.
   * @default {`redis:${stream}`}
   */
  readonly name?: string;
  /**
   * The most entries written in one `MULTI`; writes gather while one is in flight.
   * @default {100}
   */
  readonly batchSize?: number;
  /**
   * Retries of a failed write (a connection lost, say).
   * @default {2}
   */
  readonly maxRetries?: number;
}

const positiveInteger = z.int({ error: "must be a positive integer" }).min(1, { error: "must be a positive integer" });

const sinkOptionsSchema = z.strictObject({
  client: z.custom<RedisClient>(isRedisClient, { error: "must be an ioredis client (new Redis(url))" }),
  stream: z.string({ error: "must be a non-empty string" }).min(1, { error: "must be a non-empty string" }),
  maxLen: positiveInteger.optional(),
  source: z.custom<RedisStreamSource>((value) => value instanceof RedisStreamSource, {
    error: "must be the pipeline's redisStreamSource()",
  }).optional(),
  name: z.string({ error: "must be a non-empty string" }).min(1, { error: "must be a non-empty string" }).optional(),
  batchSize: positiveInteger.optional(),
  maxRetries: z.int({ error: "must be a whole number, 0 or more" }).min(0, {
    error: "must be a whole number, 0 or more",
  }).optional(),
}, { error: "must be an object" });

interface Write {
  readonly fields: RedisFields;
  /** The source entry to acknowledge with it. */
  readonly ack: string | undefined;
}

/**
 * A stage that writes each item (an object of string fields) as an entry of
 * `stream` with `XADD` (trimmed with `MAXLEN ~ maxLen`), and gives the new
 * entry's id. Writes are gathered into `MULTI` transactions. Put it last: an
 * item then completes once its entry is written. With `source`, the source
 * entry is acknowledged in the same transaction. A field that is not a
 * string dead-letters its item with a `PermanentError`. Stages between a
 * source on one stream and a sink on another make one step of a multi-step
 * distributed pipeline.
 *
 * @example Copy entries from one stream to another, doubled
 * ```ts
 * import { Redis } from "ioredis";
 * import { Pipeline, stage } from "../mod.ts";
 * import { redisStreamSource, type RedisStreamEntry } from "./redis_source.ts";
 * import { redisStreamSink } from "./redis_sink.ts";
 *
 * const client = new Redis(process.env.SLUICE_REDIS_URL ?? "redis://127.0.0.1:6379");
 * const [input, output] = [`in-${crypto.randomUUID()}`, `out-${crypto.randomUUID()}`];
 * for (const n of [1, 2, 3]) await client.xadd(input, "*", "n", String(n));
 * const source = redisStreamSource({ client, stream: input, group: "double", consumer: "c1", createGroup: true });
 * const stop = new AbortController();
 * let doubled = 0;
 * const pipeline = new Pipeline({
 *   name: "double",
 *   stages: [
 *     stage("double", (entry: RedisStreamEntry) => ({ n: String(Number(entry.fields.n) * 2), from: entry.id })),
 *     redisStreamSink({ client, stream: output, maxLen: 10_000, source }),
 *   ],
 *   // a graceful stop finishes what was read: stop once all three were read
 *   onEvent: (event) => {
 *     if (event.type === "completed" && event.stage === "double" && ++doubled === 3) stop.abort();
 *   },
 * });
 * await pipeline.run(source, { signal: stop.signal });
 * const written = await client.xrange(output, "-", "+");
 * console.assert(written.map((entry: [string, string[]]) => entry[1][1]).join() === "2,4,6");
 * await client.del(input, output);
 * await client.quit();
 * ```
 *
 * @throws {ConfigError} when an option is invalid.
 */
export function redisStreamSink(options: RedisStreamSinkOptions): Stage<RedisFields, string> {
  const resolved = validate(sinkOptionsSchema, options, { owner: "redisStreamSink()", root: "options" });
  const { client, stream, maxLen } = resolved;
  const name = resolved.name ?? `redis:${stream}`;
  const acks = resolved.source ? acknowledgeOnWrite(resolved.source, "completed") : undefined;
  const trim = maxLen === undefined ? [] : ["MAXLEN", "~", maxLen];
  const batcher = new TransactionBatcher<Write>(client, (multi, writes) => {
    const indexes = writes.map((write, i) => {
      multi.call("XADD", stream, ...trim, "*", ...flatFields(write.fields));
      return i;
    });
    const ids = writes.flatMap((write) => write.ack === undefined ? [] : [write.ack]);
    if (acks && ids.length > 0) multi.call("XACK", acks.stream, acks.group, ...ids);
    return indexes;
  }, resolved.batchSize ?? 100);
  return stage(name, (fields: RedisFields, ctx) => {
    checkFields(name, fields);
    const ack = acks?.owns(ctx.itemId) ? ctx.itemId : undefined;
    return batcher.add({ fields, ack }) as Promise<string>;
  }, { concurrency: resolved.batchSize ?? 100, ordered: false, maxRetries: resolved.maxRetries ?? 2 });
}

function checkFields(name: string, fields: unknown): asserts fields is RedisFields {
  if (typeof fields !== "object" || fields === null || Array.isArray(fields)) {
    throw new PermanentError(
      `Stage "${name}" writes objects of string fields as stream entries; got ${show(fields)}`,
    );
  }
  const entries = Object.entries(fields);
  if (entries.length === 0) {
    throw new PermanentError(`Stage "${name}": a stream entry needs at least one field; got {}`);
  }
  for (const [key, value] of entries) {
    if (typeof value !== "string") {
      throw new PermanentError(
        `Stage "${name}": field "${key}" is ${show(value)}; stream entry fields must be strings ` +
          `(convert it: String(value), or JSON.stringify(value) for an object)`,
      );
    }
  }
}
