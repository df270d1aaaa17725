/**
 * sluice/redis: run a pipeline across processes and machines on Redis
 * Streams consumer groups — a source that acknowledges each entry once its
 * item's fate is final, a sink stage, and a dead letter stream, with the
 * writes and the acknowledgements in one `MULTI`. Delivery is at least once.
 * Bring your own ioredis 5 client (an optional peer dependency).
 *
 * @example
 * ```ts
 * import process from "node:process";
 * import { Redis } from "ioredis";
 * import { Pipeline, stage } from "./mod.ts";
 * import { redisDeadLetterStream, redisStreamSink, redisStreamSource, type RedisStreamEntry } from "./redis.ts";
 *
 * const client = new Redis(process.env.SLUICE_REDIS_URL ?? "redis://127.0.0.1:6379");
 * const [input, output, dlq] = ["in", "out", "dlq"].map((name) => `${name}-${crypto.randomUUID()}`);
 * await client.xadd(input, "*", "text", "hello");
 * const source = redisStreamSource({ client, stream: input, group: "upper", consumer: "c1", createGroup: true });
 * const stop = new AbortController();
 * const pipeline = new Pipeline({
 *   name: "upper",
 *   stages: [
 *     stage("upper", (entry: RedisStreamEntry) => ({ text: entry.fields.text.toUpperCase() })),
 *     redisStreamSink({ client, stream: output, source }),
 *   ],
 *   deadLetterQueue: () => redisDeadLetterStream({ client, stream: dlq, source }),
 *   onEvent: (event) => {
 *     if (event.type === "completed") stop.abort();
 *   },
 * });
 * await pipeline.run(source, { signal: stop.signal });
 * const [[, fields]] = await client.xrange(output, "-", "+");
 * console.assert(fields[1] === "HELLO");
 * await client.del(input, output, dlq);
 * await client.quit();
 * ```
 *
 * @module
 */

export { RedisStreamSource, redisStreamSource } from "./src/redis_source.ts";
export type { RedisStreamEntry, RedisStreamSourceOptions } from "./src/redis_source.ts";
export { redisStreamSink } from "./src/redis_sink.ts";
export type { RedisFields, RedisStreamSinkOptions } from "./src/redis_sink.ts";
export { redisDeadLetterStream } from "./src/redis_dead_letters.ts";
export type { RedisDeadLetterStreamOptions } from "./src/redis_dead_letters.ts";
export { PoisonMessageError, RedisStreamError } from "./src/redis_errors.ts";
export type { RedisArgument, RedisClient, RedisTransaction } from "./src/redis_client.ts";
