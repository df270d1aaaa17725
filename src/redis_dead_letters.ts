/**
 * `redisDeadLetterStream()`: dead letters written to a Redis stream; with
 * `source`, in the same `MULTI` as the source entry's acknowledgement.
 *
 * @module
 */

import { z } from "zod";
import { validate } from "./config.ts";
import type { DeadLetter } from "./dead_letter.ts";
import { isRedisClient, type RedisClient, TransactionBatcher } from "./redis_client.ts";
import { RedisStreamError } from "./redis_errors.ts";
import { acknowledgeOnWrite, RedisStreamSource } from "./redis_source.ts";

/** Options of {@linkcode redisDeadLetterStream}. */
export interface RedisDeadLetterStreamOptions {
  /** A connected ioredis client. */
  readonly client: RedisClient;
  /** The stream dead letters are added to. */
  readonly stream: string;
  /**
   * The pipeline's `redisStreamSource()`: a dead-lettered entry is then
   * acknowledged in the same `MULTI` as its dead letter's write, so a crash
   * between the two cannot lose or duplicate its fate.
   */
  readonly source?: RedisStreamSource;
  /**
   * Trim the stream to about this many entries (`XADD MAXLEN ~`).
   * @default {undefined} no trimming
   */
  readonly maxLen?: number;
  /**
   * The most dead letters in one `MULTI`.
   * @default {100}
   */
  readonly batchSize?: number;
}

const positiveInteger = z.int({ error: "must be a positive integer" }).min(1, { error: "must be a positive integer" });

const dlqOptionsSchema = z.strictObject({
  client: z.custom<RedisClient>(isRedisClient, { error: "must be an ioredis client (new Redis(url))" }),
  stream: z.string({ error: "must be a non-empty string" }).min(1, { error: "must be a non-empty string" }),
  source: z.custom<RedisStreamSource>((value) => value instanceof RedisStreamSource, {
    error: "must be the pipeline's redisStreamSource()",
  }).optional(),
  maxLen: positiveInteger.optional(),
  batchSize: positiveInteger.optional(),
}, { error: "must be an object" });

/**
 * A dead letter as stream entry fields: `itemId`, `stage`, `reason`, and
 * `deadLetter`, the whole entry as JSON (read it back with
 * `DeadLetterSchema.parse(fields.deadLetter)`).
 * @internal
 */
export function deadLetterFields(entry: DeadLetter): string[] {
  let json: string;
  try {
    json = JSON.stringify(entry);
  } catch {
    json = JSON.stringify({ ...entry, item: String(entry.item) }); // a bigint or a cycle in the item
  }
  return ["itemId", String(entry.itemId), "stage", entry.stage, "reason", entry.reason, "deadLetter", json];
}

/** A dead letter to write, and the source's entry id to acknowledge with it (none for a flatMap output). */
interface Letter {
  readonly entry: DeadLetter;
  readonly ack: string | undefined;
}

/**
 * A `WritableStream<DeadLetter>` for the pipeline's `deadLetterQueue`
 * option: each dead letter becomes an entry of `stream` (fields `itemId`,
 * `stage`, `reason` and `deadLetter`, the entry as JSON). With `source`, the
 * dead-lettered stream entry is acknowledged in the same `MULTI`; writes are
 * then gathered into transactions (a write resolves once queued, `close()`
 * once all are written), since a write that never happens leaves its entry
 * unacknowledged, to be delivered again. Without `source` each write resolves
 * once written. It serves one run: pass `() => redisDeadLetterStream(…)`.
 *
 * @example Dead letters and their acknowledgement in one transaction
 * ```ts
 * import { Redis } from "ioredis";
 * import { DeadLetterSchema, PermanentError, Pipeline, stage } from "../mod.ts";
 * import { redisStreamSource, type RedisStreamEntry } from "./redis_source.ts";
 * import { redisDeadLetterStream } from "./redis_dead_letters.ts";
 *
 * const client = new Redis(process.env.SLUICE_REDIS_URL ?? "redis://127.0.0.1:6379");
 * const [input, dlq] = [`in-${crypto.randomUUID()}`, `dlq-${crypto.randomUUID()}`];
 * const id = await client.xadd(input, "*", "n", "-1");
 * const source = redisStreamSource({ client, stream: input, group: "g", consumer: "c1", createGroup: true });
 * const stop = new AbortController();
 * const pipeline = new Pipeline({
 *   name: "check",
 *   stages: [stage("check", (entry: RedisStreamEntry) => {
 *     if (Number(entry.fields.n) < 0) throw new PermanentError("negative");
 *     return entry;
 *   })],
 *   deadLetterQueue: () => redisDeadLetterStream({ client, stream: dlq, source }),
 *   onEvent: (event) => {
 *     if (event.type === "dead-lettered") stop.abort();
 *   },
 * });
 * await pipeline.run(source, { signal: stop.signal });
 * const [[, fields]] = await client.xrange(dlq, "-", "+");
 * const letter = DeadLetterSchema.parse(fields[fields.indexOf("deadLetter") + 1]);
 * console.assert(letter.itemId === id && letter.reason === "negative");
 * await client.del(input, dlq);
 * await client.quit();
 * ```
 *
 * @throws {ConfigError} when an option is invalid.
 */
export function redisDeadLetterStream(options: RedisDeadLetterStreamOptions): WritableStream<DeadLetter> {
  const resolved = validate(dlqOptionsSchema, options, { owner: "redisDeadLetterStream()", root: "options" });
  const { client, stream, maxLen } = resolved;
  const acks = resolved.source ? acknowledgeOnWrite(resolved.source, "dead-lettered") : undefined;
  const trim = maxLen === undefined ? [] : ["MAXLEN", "~", maxLen];
  const max = resolved.batchSize ?? 100;
  const batcher = new TransactionBatcher<Letter>(client, (multi, letters) => {
    const indexes = letters.map(({ entry }, i) => {
      multi.call("XADD", stream, ...trim, "*", ...deadLetterFields(entry));
      return i;
    });
    const ids = letters.flatMap(({ ack }) => ack === undefined ? [] : [ack]);
    if (acks && ids.length > 0) multi.call("XACK", acks.stream, acks.group, ...ids);
    return indexes;
  }, max);
  let failed: { error: unknown } | undefined;
  // Whether to acknowledge is decided as the entry comes: by the time the batch is sent, a linked write has told it.
  const written = (entry: DeadLetter) =>
    batcher.add({ entry, ack: acks?.owns(entry.itemId) ? entry.itemId : undefined }).then(() => {}, (error) => {
      failed ??= { error };
    });
  const check = () => {
    if (failed) {
      throw new RedisStreamError(
        `redisDeadLetterStream "${stream}": writing dead letters failed` +
          (acks ? "; their entries stay unacknowledged and will be delivered again" : ""),
        { cause: failed.error },
      );
    }
  };
  return new WritableStream<DeadLetter>({
    async write(entry) {
      check();
      const done = written(entry);
      if (!acks || batcher.size >= max) await done; // unlinked: resolve only once written
      check();
    },
    async close() {
      await batcher.idle();
      check();
    },
  });
}
