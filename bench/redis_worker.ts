/**
 * One consumer process of bench/redis.ts: the 2-stage job (parse the
 * payload, then a small computation) on sluice over Redis Streams or on a
 * BullMQ Worker, with the same concurrency. Prints READY once connected,
 * waits for its `go` (BLPOP), runs until SIGINT (sluice) or SIGTERM
 * (BullMQ), then exits.
 *
 * Usage: node --import tsx bench/redis_worker.ts <sluice|bullmq> <port> <name> <concurrency>
 *
 * @module
 */
import process from "node:process";
import { Redis } from "ioredis";
import { Worker } from "bullmq";
import { Pipeline, stage } from "../mod.ts";
import { redisDeadLetterStream, type RedisStreamEntry, redisStreamSink, redisStreamSource } from "../redis.ts";

const [mode, port, name, concurrencyArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const connection = { host: "127.0.0.1", port: Number(port) };

/** The job's two steps. */
export function parse(payload: string): { id: number; values: number[] } {
  return JSON.parse(payload);
}
export function compute(job: { id: number; values: number[] }): { id: number; sum: number } {
  let sum = 0;
  for (const value of job.values) sum += Math.sqrt(value * job.id + 1);
  return { id: job.id, sum };
}

const control = new Redis(connection);
console.log("READY");
await control.blpop(`go:${name}`, 0);

if (mode === "sluice") {
  const client = new Redis(connection);
  const source = redisStreamSource({ client, stream: "jobs", group: "bench", consumer: name, batchSize: 200 });
  const pipeline = new Pipeline({
    name: "bench",
    stages: [
      stage("parse", (entry: RedisStreamEntry) => parse(entry.fields.payload), { concurrency }),
      stage("compute", (job: { id: number; values: number[] }) => {
        const { id, sum } = compute(job);
        return { id: String(id), sum: String(sum) };
      }, { concurrency }),
      redisStreamSink({ client, stream: "results", source, batchSize: 200 }),
    ],
    deadLetterQueue: () => redisDeadLetterStream({ client, stream: "dead", source }),
  });
  await pipeline.run(source, { handleSignals: true });
  await client.quit();
} else {
  const worker = new Worker("bench", async (job) => compute(parse(job.data.payload)), {
    connection,
    concurrency,
  });
  process.once("SIGTERM", () => void worker.close().then(() => process.exit(0)));
}
await control.quit();
