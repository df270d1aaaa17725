/**
 * A CPU-bound stage on worker threads: counting primes for a list of limits
 * runs on `threads` workers, while the stages around it stay on the main
 * thread. A bad input is dead-lettered with the worker's PermanentError.
 *
 *   node --import tsx examples/worker_stage.ts
 *   npx deno run -A examples/worker_stage.ts
 *   npx bun examples/worker_stage.ts
 *
 * @module
 */
import { Pipeline, stage, workerStage } from "../mod.ts";

const limits = [200_000, 300_000, 250_000, -1, 400_000, 150_000, 350_000, 100_000];

const pipeline = new Pipeline({
  name: "primes",
  deadLetterQueue: true,
  stages: [
    stage("parse", (text: string) => Number(text)),
    workerStage<number, { limit: number; primes: number }>("count", new URL("./primes.ts", import.meta.url), {
      threads: 2,
      maxRetries: 1,
      timeoutMs: 30_000,
    }),
    stage("format", ({ limit, primes }: { limit: number; primes: number }) => `${primes} primes below ${limit}`),
  ],
});

const started = performance.now();
const { outputs, metrics } = await pipeline.collect(limits.map(String));
for (const line of outputs) console.log(line);
for (const letter of pipeline.deadLetters) console.log(`dead letter: ${letter.error.name}: ${letter.reason}`);
console.log(
  `${metrics.totalCompleted} completed, ${metrics.totalFailed} dead-lettered in ${
    Math.round(performance.now() - started)
  } ms`,
);
