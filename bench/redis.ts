/**
 * `npm run bench:redis`: throughput of a 2-stage job over Redis Streams
 * (sluice/redis: batched reads, acks and writes) with 1, 2 and 4 consumer
 * processes, against the same job on BullMQ Workers with the same
 * concurrency, against one local redis-server of its own, in one run. The
 * queue is filled first; the clock starts when the workers are told to go
 * and stops when every job is done (polled every 20 ms). Node only. Nothing
 * asserts a timing; a wrong result count fails it.
 *
 * Usage: node --import tsx bench/redis.ts [--quick] [--n 20000] [--concurrency 16]
 *
 * @module
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { Redis } from "ioredis";
import { Queue } from "bullmq";
import { startRedis } from "../tests/fixtures/redis_server.ts";
import { root } from "../tests/fixtures/runtimes.ts";

const args = process.argv.slice(2);
const option = (flag: string, fallback: number) => {
  const index = args.indexOf(flag);
  return index >= 0 ? Number(args[index + 1]) : fallback;
};
const quick = args.includes("--quick");
const n = option("--n", quick ? 500 : 20_000);
const concurrency = option("--concurrency", 16);
const processCounts = quick ? [1, 2] : [1, 2, 4];

const payload = (id: number) => JSON.stringify({ id, values: Array.from({ length: 16 }, (_, i) => i * id) });

interface Worker {
  readonly ready: Promise<void>;
  readonly exited: Promise<number | null>;
  stop(): void;
}

function startWorker(mode: string, port: number, name: string): Worker {
  const child = spawn(process.execPath, [
    "--import",
    "tsx",
    join(root, "bench", "redis_worker.ts"),
    mode,
    String(port),
    name,
    String(concurrency),
  ], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const ready = new Promise<void>((resolve) =>
    child.stdout.on("data", (data: Buffer) => {
      out += data.toString();
      if (out.includes("READY")) resolve();
    })
  );
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { ready, exited, stop: () => child.pid && process.kill(child.pid, mode === "sluice" ? "SIGINT" : "SIGTERM") };
}

async function until(done: () => Promise<boolean>): Promise<void> {
  while (!(await done())) await new Promise((resolve) => setTimeout(resolve, 20));
}

async function fill(client: Redis, mode: string): Promise<void> {
  await client.flushall();
  if (mode === "sluice") {
    for (let start = 0; start < n; start += 1000) {
      const batch = client.pipeline();
      for (let id = start; id < Math.min(n, start + 1000); id++) batch.xadd("jobs", "*", "payload", payload(id));
      await batch.exec();
    }
    await client.xgroup("CREATE", "jobs", "bench", "0");
  } else {
    const queue = new Queue("bench", { connection: client });
    for (let start = 0; start < n; start += 1000) {
      const jobs = [];
      for (let id = start; id < Math.min(n, start + 1000); id++) {
        jobs.push({ name: "job", data: { payload: payload(id) } });
      }
      await queue.addBulk(jobs);
    }
    await queue.close();
  }
}

async function measure(client: Redis, port: number, mode: string, processes: number): Promise<number> {
  await fill(client, mode);
  const workers = Array.from({ length: processes }, (_, i) => startWorker(mode, port, `w${i}`));
  await Promise.all(workers.map((worker) => worker.ready));
  const queue = mode === "bullmq" ? new Queue("bench", { connection: client }) : undefined;
  const started = performance.now();
  for (let i = 0; i < processes; i++) await client.rpush(`go:w${i}`, "1");
  await until(async () => (queue ? await queue.getCompletedCount() : await client.xlen("results")) >= n);
  const seconds = (performance.now() - started) / 1000;
  for (const worker of workers) worker.stop();
  await Promise.all(workers.map((worker) => worker.exited));
  const done = queue ? await queue.getCompletedCount() : await client.xlen("results");
  if (done !== n) throw new Error(`${mode} with ${processes} processes finished ${done} jobs of ${n}`);
  if (!queue && ((await client.xpending("jobs", "bench")) as [number])[0] !== 0) {
    throw new Error("entries left pending");
  }
  await queue?.close();
  return n / seconds;
}

const server = await startRedis();
const client = new Redis(server.port, "127.0.0.1", { maxRetriesPerRequest: null });
try {
  console.log(`2-stage job, ${n} jobs, concurrency ${concurrency} per process, Node ${process.version}`);
  console.log("| processes | sluice/redis jobs/s | BullMQ jobs/s | ratio |");
  console.log("| --- | --- | --- | --- |");
  for (const processes of processCounts) {
    const sluice = await measure(client, server.port, "sluice", processes);
    const bullmq = await measure(client, server.port, "bullmq", processes);
    console.log(`| ${processes} | ${Math.round(sluice)} | ${Math.round(bullmq)} | ${(sluice / bullmq).toFixed(2)}x |`);
  }
} finally {
  client.disconnect();
  await server.stop();
}
