import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay, type BackoffOptions, ConfigError, Pipeline, type PipelineEvent, stage } from "../mod.ts";
import { guard, mulberry32 } from "./_helpers.ts";

const exact = (initialDelayMs: number, multiplier: number, maxDelayMs: number) => ({
  initialDelayMs,
  multiplier,
  maxDelayMs,
  jitter: false,
});
const delays = (policy: ReturnType<typeof exact>, retries: number) =>
  Array.from({ length: retries }, (_, i) => backoffDelay(policy, i + 1));

test("backoffDelay() gives exact exponential delays with jitter: false", () => {
  assert.deepEqual(delays(exact(100, 2, 1_000_000), 6), [100, 200, 400, 800, 1600, 3200]);
  assert.deepEqual(delays(exact(10, 3, 1_000_000), 5), [10, 30, 90, 270, 810]);
  assert.deepEqual(delays(exact(7, 1, 1_000_000), 4), [7, 7, 7, 7], "multiplier 1 keeps the delay constant");
  assert.deepEqual(delays(exact(1, 1.5, 1_000_000), 3), [1, 1.5, 2.25]);
});

test("backoffDelay() never exceeds maxDelayMs", () => {
  assert.deepEqual(delays(exact(100, 2, 500), 7), [100, 200, 400, 500, 500, 500, 500]);
  assert.deepEqual(delays(exact(100, 2, 30), 3), [30, 30, 30], "a cap below the initial delay caps every delay");
  assert.equal(backoffDelay(exact(100, 2, 30_000), 60), 30_000, "a huge exponent is still capped");
  assert.equal(backoffDelay(exact(100, 2, 30_000), 2000), 30_000, "even when the exponent overflows to Infinity");
});

test("backoffDelay() allows 0 ms delays", () => {
  assert.deepEqual(delays(exact(0, 2, 1000), 10), Array(10).fill(0));
  assert.deepEqual(delays(exact(100, 2, 0), 3), [0, 0, 0], "maxDelayMs 0 means no delay at all");
  assert.equal(backoffDelay({ ...exact(0, 2, 1000), jitter: true }, 3, () => 0.7), 0);
});

test("backoffDelay() stays 0 ms with a 0 ms initial delay however many retries", () => {
  // 2 ** 1024 is Infinity in floating point, and 0 * Infinity is NaN: the delay must still be 0.
  for (const retry of [1024, 1025, 1100, 5000]) {
    assert.equal(backoffDelay(exact(0, 2, 1000), retry), 0, `retry ${retry}`);
    assert.equal(backoffDelay({ ...exact(0, 2, 1000), jitter: true }, retry, () => 0.5), 0, `retry ${retry}, jitter`);
  }
});

test("backoffDelay() with jitter stays within [delay / 2, delay]", () => {
  const policy = { initialDelayMs: 100, multiplier: 2, maxDelayMs: 1000, jitter: true };
  assert.equal(backoffDelay(policy, 1, () => 0), 50, "random 0 gives half the delay");
  assert.equal(backoffDelay(policy, 1, () => 0.5), 75);
  assert.equal(backoffDelay(policy, 3, () => 0), 200);
  assert.equal(backoffDelay(policy, 10, () => 0), 500, "the cap applies before the jitter");
  const nearlyOne = backoffDelay(policy, 2, () => 0.999999);
  assert.ok(nearlyOne > 199.9 && nearlyOne <= 200, `${nearlyOne}`);

  const random = mulberry32(2026);
  const spread = new Set<number>();
  for (let retry = 1; retry <= 8; retry++) {
    const full = Math.min(1000, 100 * 2 ** (retry - 1));
    for (let i = 0; i < 200; i++) {
      const value = backoffDelay(policy, retry, random);
      assert.ok(value >= full / 2 && value <= full, `retry ${retry}: ${value} not in [${full / 2}, ${full}]`);
      if (retry === 1) spread.add(value);
    }
  }
  assert.ok(spread.size > 100, "jitter actually spreads the delays");
});

test("backoffDelay() with jitter uses Math.random by default and stays within bounds", () => {
  const policy = { initialDelayMs: 40, multiplier: 2, maxDelayMs: 1000, jitter: true };
  for (let i = 0; i < 100; i++) {
    const value = backoffDelay(policy, 2);
    assert.ok(value >= 40 && value <= 80, `${value}`);
  }
});

/** Runs one always-failing item through a stage and collects the retry events' delays. */
async function retryDelays(backoff: BackoffOptions | undefined, maxRetries: number): Promise<number[]> {
  const seen: number[] = [];
  const pipeline = new Pipeline({
    name: "delays",
    onEvent: (event) => {
      if (event.type === "retry") seen.push(event.delayMs);
    },
    stages: [stage("fail", (_n: number) => {
      throw new Error("down");
    }, { maxRetries, backoff })],
  });
  await guard(pipeline.run([1]), "the run");
  assert.equal(pipeline.deadLetters[0]?.attempts, maxRetries + 1);
  return seen;
}

test("stage() waits the exact backoff delays between attempts with jitter: false", async () => {
  assert.deepEqual(
    await retryDelays({ initialDelayMs: 1, multiplier: 2, maxDelayMs: 3, jitter: false }, 4),
    [1, 2, 3, 3],
  );
});

test("stage() defaults the backoff multiplier to 2", async () => {
  assert.deepEqual(await retryDelays({ initialDelayMs: 1, jitter: false }, 3), [1, 2, 4]);
});

test("stage() jitters the backoff delays by default, within [delay / 2, delay]", async () => {
  const seen = await retryDelays({ initialDelayMs: 2, maxDelayMs: 8 }, 4);
  assert.equal(seen.length, 4);
  [2, 4, 8, 8].forEach((full, i) => assert.ok(seen[i] >= full / 2 && seen[i] <= full, `${seen[i]} vs ${full}`));
});

test("stage() accepts a 0 ms backoff and retries at once", async () => {
  assert.deepEqual(await retryDelays({ initialDelayMs: 0, maxDelayMs: 0, jitter: false }, 3), [0, 0, 0]);
  assert.deepEqual(await retryDelays({ initialDelayMs: 0 }, 2), [0, 0]);
});

test("stage() defaults the first backoff delay to 100 ms with jitter on", async () => {
  // The retry event announces the delay before the wait; a forced shutdown then ends the wait at once.
  const items = 20;
  const seen: number[] = [];
  const force = new AbortController();
  const onEvent = (event: PipelineEvent) => {
    if (event.type !== "retry") return;
    seen.push(event.delayMs);
    if (seen.length === items) force.abort();
  };
  const exactPipeline = new Pipeline({
    name: "default-exact",
    onEvent,
    stages: [stage("fail", (_n: number) => {
      throw new Error("down");
    }, { maxRetries: 1, concurrency: items, backoff: { jitter: false } })],
  });
  await guard(exactPipeline.run(Array.from({ length: items }, (_, i) => i), { forceSignal: force.signal }), "run");
  assert.deepEqual(seen, Array(items).fill(100));

  seen.length = 0;
  const force2 = new AbortController();
  const jittered = new Pipeline({
    name: "default-jitter",
    onEvent: (event) => {
      if (event.type !== "retry") return;
      seen.push(event.delayMs);
      if (seen.length === items) force2.abort();
    },
    stages: [stage("fail", (_n: number) => {
      throw new Error("down");
    }, { maxRetries: 1, concurrency: items })],
  });
  await guard(jittered.run(Array.from({ length: items }, (_, i) => i), { forceSignal: force2.signal }), "run");
  assert.equal(seen.length, items);
  for (const value of seen) assert.ok(value >= 50 && value <= 100, `${value}`);
  assert.ok(new Set(seen).size > 1, "default jitter spreads the delays");
});

test("stage() rejects negative backoff delays and a multiplier below 1 with a ConfigError", () => {
  assert.throws(() => stage("s", (n: number) => n, { backoff: { initialDelayMs: -1 } }), ConfigError);
  assert.throws(() => stage("s", (n: number) => n, { backoff: { maxDelayMs: -5 } }), ConfigError);
  assert.throws(
    () => stage("s", (n: number) => n, { backoff: { multiplier: 0.5 } }),
    (error: unknown) => error instanceof ConfigError && error.field === "backoff.multiplier",
  );
});
