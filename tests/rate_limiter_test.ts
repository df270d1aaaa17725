import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, Pipeline, RateLimiter, stage } from "../mod.ts";
import { FakeClock } from "./_fake_clock.ts";
import { range } from "./_helpers.ts";

/** Lets promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

test("RateLimiter starts full: a burst of up to limit, then one token per intervalMs / limit (fake clock)", () => {
  const clock = new FakeClock();
  const limiter = new RateLimiter({ limit: 4, intervalMs: 1000 }, clock);
  assert.equal(limiter.available, 4);
  for (let i = 0; i < 4; i++) assert.ok(limiter.tryAcquire());
  assert.equal(limiter.tryAcquire(), false);
  clock.advance(249);
  assert.equal(limiter.tryAcquire(), false);
  clock.advance(1);
  assert.ok(limiter.tryAcquire());
  clock.advance(10_000);
  assert.equal(limiter.available, 4, "never more than limit");
});

test("RateLimiter.acquire() waits in line and is served in order as tokens come back (fake clock)", async () => {
  const clock = new FakeClock();
  const limiter = new RateLimiter({ limit: 2, intervalMs: 100 }, clock);
  const served: number[] = [];
  const waits = range(5).map((i) => limiter.acquire().then(() => void served.push(i)));
  await settle();
  assert.deepEqual(served, [0, 1]);
  assert.equal(limiter.waiting, 3);
  assert.equal(limiter.tryAcquire(), false, "no jumping the line");
  clock.advance(50);
  await settle();
  assert.deepEqual(served, [0, 1, 2]);
  clock.advance(100);
  await settle();
  assert.deepEqual(served, [0, 1, 2, 3, 4]);
  await Promise.all(waits);
});

test("RateLimiter.acquire(signal): an abort takes the caller out of line without using a token", async () => {
  const clock = new FakeClock();
  const limiter = new RateLimiter({ limit: 1, intervalMs: 100 }, clock);
  assert.ok(limiter.tryAcquire());
  const controller = new AbortController();
  const first = limiter.acquire(controller.signal);
  const second = limiter.acquire();
  controller.abort(new Error("gave up"));
  await assert.rejects(first, /gave up/);
  clock.advance(100);
  await second;
  assert.equal(limiter.available, 0);
});

test("a stage's rateLimit admits at most limit attempts per interval; one RateLimiter shared by two stages is one budget (fake clock)", async () => {
  const clock = new FakeClock();
  const shared = new RateLimiter({ limit: 3, intervalMs: 1000 }, clock);
  const calls: string[] = [];
  const pipeline = new Pipeline({
    name: "limited",
    stages: [
      stage("a", (n: number) => (calls.push(`a${n}`), n), { rateLimit: shared, concurrency: 4 }),
      stage("b", (n: number) => (calls.push(`b${n}`), n), { rateLimit: shared, concurrency: 4 }),
    ],
  });
  const running = pipeline.run(range(4));
  for (let i = 0; i < 50; i++) await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(calls.length, 3, `a burst of 3, then none until the clock moves: ${calls.join()}`);
  let steps = 0;
  while (calls.length < 8 && steps++ < 100) {
    const before = calls.length;
    clock.advance(1000 / 3);
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 0));
    assert.ok(calls.length - before <= 1, "one token per third of the interval");
  }
  const metrics = await running;
  assert.equal(metrics.totalCompleted, 4);
  assert.equal(calls.length, 8);
});

test("rateLimit options make a new bucket per run; bad options are ConfigErrors", async () => {
  const pipeline = new Pipeline({
    name: "fresh",
    stages: [stage("s", (n: number) => n, { rateLimit: { limit: 100, intervalMs: 10 } })],
  });
  assert.equal((await pipeline.run(range(5))).totalCompleted, 5);
  assert.equal((await pipeline.run(range(5))).totalCompleted, 5);
  assert.throws(() => new RateLimiter({ limit: 0, intervalMs: 1 }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.field, "limit");
    return true;
  });
  assert.throws(() => new RateLimiter({ limit: 1, intervalMs: Infinity }), ConfigError);
});
