/**
 * Two terminals, one stream: a producer and any number of workers sharing
 * the consumer group `resizers` (start this file twice, or on two machines
 * pointed at the same Redis). Each worker runs the same two stages; Redis
 * hands each entry to one of them, and entries of a worker that dies are
 * taken over by the others after `claimIdleMs`. Ctrl-C stops a worker
 * gracefully: it finishes and acknowledges what it read, then exits.
 *
 *   terminal 1: node --import tsx examples/redis_worker.ts produce 1000
 *   terminal 1: node --import tsx examples/redis_worker.ts work
 *   terminal 2: node --import tsx examples/redis_worker.ts work
 *   then:       redis-cli XLEN images:done ; redis-cli XRANGE images:failed - +
 *
 * REDIS_URL picks the server (default redis://127.0.0.1:6379). Deno: `deno
 * run -A examples/redis_worker.ts work`; Bun: `bun examples/redis_worker.ts work`.
 *
 * @module
 */
import process from "node:process";
import { hostname } from "node:os";
import { Redis } from "ioredis";
import { consoleLogger, PermanentError, Pipeline, stage } from "../mod.ts";
import { redisDeadLetterStream, type RedisStreamEntry, redisStreamSink, redisStreamSource } from "../redis.ts";

const client = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const [mode = "work", count = "1000"] = process.argv.slice(2);

if (mode === "produce") {
  const batch = client.pipeline();
  for (let n = 0; n < Number(count); n++) batch.xadd("images", "*", "url", `https://example.com/${n}.jpg`);
  await batch.exec();
  console.log(`added ${count} entries to "images"`);
} else {
  const consumer = `${hostname()}-${process.pid}`;
  const source = redisStreamSource({
    client,
    stream: "images",
    group: "resizers",
    consumer,
    createGroup: true,
    claimIdleMs: 30_000,
  });
  const pipeline = new Pipeline({
    name: "resize",
    stages: [
      stage("fetch", async (entry: RedisStreamEntry) => {
        if (entry.fields.url.endsWith("13.jpg")) throw new PermanentError("unlucky image");
        await new Promise((resolve) => setTimeout(resolve, 5)); // stands in for the download
        return { url: entry.fields.url, bytes: 1000 + entry.fields.url.length };
      }, { concurrency: 8, maxRetries: 2 }),
      stage("resize", (image: { url: string; bytes: number }) => ({
        url: image.url,
        bytes: String(Math.round(image.bytes / 4)),
        by: consumer,
      })),
      redisStreamSink({ client, stream: "images:done", maxLen: 100_000, source }),
    ],
    deadLetterQueue: () => redisDeadLetterStream({ client, stream: "images:failed", source }),
    logger: consoleLogger({ format: "pretty", level: "info" }),
  });
  console.log(`${consumer} working; Ctrl-C to stop`);
  const metrics = await pipeline.run(source, { handleSignals: true });
  console.log(`${consumer}: ${metrics.totalCompleted} done, ${metrics.totalFailed} dead-lettered`);
}
await client.quit();
