import { test } from "node:test";
import assert from "node:assert/strict";
import { z } from "zod";
import * as zm from "zod/mini";
import {
  type Logger,
  type LogProperties,
  PermanentError,
  Pipeline,
  type PipelineEvent,
  stage,
  type StageContext,
  TimeoutError,
} from "../mod.ts";
import { Counter, type Deferred, deferred, delay, guard, mulberry32, shuffle } from "./_helpers.ts";

const noDelay = { initialDelayMs: 0, maxDelayMs: 0, jitter: false } as const;

/** A pipeline with one stage and a recorder stage after it, collecting outputs in the order they arrive. */
function collect<T>() {
  const out: T[] = [];
  const arrived = new Counter();
  const recorder = stage("record", (value: T) => {
    out.push(value);
    arrived.increment();
    return value;
  });
  return { out, arrived, recorder };
}

// ---------------------------------------------------------------- retries

test("stage() retries a transient failure and then succeeds", async () => {
  const calls = new Map<number, number>();
  const pipeline = new Pipeline({
    name: "retry",
    stages: [
      stage("flaky", (n: number) => {
        const call = (calls.get(n) ?? 0) + 1;
        calls.set(n, call);
        if (n === 1 && call <= 2) throw new Error(`transient ${call}`);
        return n * 10;
      }, { maxRetries: 3, backoff: noDelay }),
    ],
  });
  const metrics = await pipeline.run([0, 1, 2]);
  assert.equal(calls.get(1), 3, "item 1 fails twice, succeeds on the third attempt");
  assert.equal(calls.get(0), 1);
  assert.equal(calls.get(2), 1);
  assert.equal(metrics.totalCompleted, 3);
  assert.equal(metrics.totalFailed, 0);
  assert.equal(metrics.stageMetrics.flaky.retries, 2);
  assert.equal(metrics.stageMetrics.flaky.succeeded, 3);
  assert.equal(pipeline.deadLetters.length, 0);
});

test("stage() dead-letters an item after maxRetries + 1 attempts", async () => {
  let calls = 0;
  const pipeline = new Pipeline({
    name: "exhaust",
    stages: [
      stage("always", (_n: number) => {
        calls++;
        throw new Error(`still down (call ${calls})`);
      }, { maxRetries: 2, backoff: noDelay }),
    ],
  });
  const metrics = await pipeline.run([7]);
  assert.equal(calls, 3);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(metrics.stageMetrics.always.retries, 2);
  assert.equal(metrics.stageMetrics.always.failed, 1);
  assert.equal(pipeline.deadLetters.length, 1);
  const [entry] = pipeline.deadLetters;
  assert.equal(entry.attempts, 3);
  assert.equal(entry.reason, "still down (call 3)", "the reason is the last attempt's error");
  assert.equal(entry.item, 7);
  assert.equal(entry.stage, "always");
});

test("stage() makes exactly one attempt when maxRetries is left at its default of 0", async () => {
  let calls = 0;
  const pipeline = new Pipeline({
    name: "default-retries",
    stages: [stage("once", (_n: number) => {
      calls++;
      throw new Error("nope");
    })],
  });
  const metrics = await pipeline.run([1]);
  assert.equal(calls, 1);
  assert.equal(metrics.stageMetrics.once.retries, 0);
  assert.equal(pipeline.deadLetters[0].attempts, 1);
});

test("stage() treats a thenable whose then() throws as a failed attempt, and retries it", async () => {
  let calls = 0;
  const pipeline = new Pipeline({
    name: "throwing-thenable",
    stages: [stage("s", (n: number) => {
      calls++;
      if (calls === 1 || n === 2) {
        // What plain JavaScript may return: a thenable that is broken.
        return {
          then: () => {
            throw new Error(`no then for ${n}`);
          },
        } as unknown as Promise<number>;
      }
      return n;
    }, { maxRetries: 1, backoff: { initialDelayMs: 0 } })],
  });
  const metrics = await pipeline.run([1, 2, 3]);
  assert.equal(metrics.totalCompleted, 2);
  assert.equal(metrics.stageMetrics.s.retries, 2);
  assert.deepEqual(pipeline.deadLetters.map((entry) => [entry.item, entry.reason, entry.attempts]), [
    [2, "no then for 2", 2],
  ]);
});

test("stage() does not retry a PermanentError", async () => {
  let calls = 0;
  const pipeline = new Pipeline({
    name: "permanent",
    stages: [
      stage("check", (_n: number) => {
        calls++;
        throw new PermanentError("n is not allowed");
      }, { maxRetries: 5, backoff: noDelay }),
    ],
  });
  const metrics = await pipeline.run([1]);
  assert.equal(calls, 1);
  assert.equal(metrics.stageMetrics.check.retries, 0);
  assert.equal(pipeline.deadLetters.length, 1);
  assert.equal(pipeline.deadLetters[0].attempts, 1);
  assert.equal(pipeline.deadLetters[0].reason, "n is not allowed");
  assert.equal(pipeline.deadLetters[0].error.name, "PermanentError");
});

test("stage() does not retry a zod validation error", async () => {
  let calls = 0;
  const schema = z.object({ id: z.number() });
  const pipeline = new Pipeline({
    name: "zod",
    stages: [
      stage("validate", (value: unknown) => {
        calls++;
        return schema.parse(value);
      }, { maxRetries: 5, backoff: noDelay }),
    ],
  });
  const metrics = await pipeline.run([{ id: "not a number" }, { id: 2 }]);
  assert.equal(calls, 2, "one attempt for the bad item, one for the good one");
  assert.equal(metrics.stageMetrics.validate.retries, 0);
  assert.equal(metrics.totalCompleted, 1);
  assert.equal(pipeline.deadLetters.length, 1);
  assert.equal(pipeline.deadLetters[0].attempts, 1);
  assert.equal(pipeline.deadLetters[0].error.name, "ZodError");
});

test("stage() does not retry a zod/mini validation error either", async () => {
  let calls = 0;
  const schema = zm.object({ id: zm.number() });
  const pipeline = new Pipeline({
    name: "zod-mini",
    stages: [
      stage("validate", (value: unknown) => {
        calls++;
        return zm.parse(schema, value);
      }, { maxRetries: 3, backoff: noDelay }),
    ],
  });
  const metrics = await pipeline.run([{ id: "not a number" }]);
  assert.equal(pipeline.deadLetters.length, 1);
  assert.equal(calls, 1, `a zod/mini error (name ${pipeline.deadLetters[0].error.name}) must not be retried`);
  assert.equal(metrics.stageMetrics.validate.retries, 0);
});

test("stage() asks a custom retryIf with the error and the 1-based attempt that failed", async () => {
  const asked: [string, number][] = [];
  let calls = 0;
  const pipeline = new Pipeline({
    name: "retry-if",
    stages: [
      stage("s", (_n: number) => {
        calls++;
        throw new Error(`fail ${calls}`);
      }, {
        maxRetries: 10,
        backoff: noDelay,
        retryIf: (error, attempt) => {
          asked.push([(error as Error).message, attempt]);
          return attempt < 3;
        },
      }),
    ],
  });
  const metrics = await pipeline.run([1]);
  assert.deepEqual(asked, [["fail 1", 1], ["fail 2", 2], ["fail 3", 3]]);
  assert.equal(calls, 3, "retryIf returning false on attempt 3 stops before maxRetries");
  assert.equal(metrics.stageMetrics.s.retries, 2);
  assert.equal(pipeline.deadLetters[0].attempts, 3);
});

test("stage() with a custom retryIf retries only the errors it selects", async () => {
  class Flaky extends Error {}
  const calls = new Map<string, number>();
  const pipeline = new Pipeline({
    name: "retry-if-select",
    stages: [
      stage("s", (kind: string) => {
        const call = (calls.get(kind) ?? 0) + 1;
        calls.set(kind, call);
        if (call === 1) throw kind === "flaky" ? new Flaky("flaky") : new Error("other");
        return kind;
      }, { maxRetries: 3, backoff: noDelay, retryIf: (error) => error instanceof Flaky }),
    ],
  });
  const metrics = await pipeline.run(["flaky", "other"]);
  assert.equal(calls.get("flaky"), 2);
  assert.equal(calls.get("other"), 1, "a plain Error is not retried when retryIf says no");
  assert.equal(metrics.totalCompleted, 1);
  assert.deepEqual(pipeline.deadLetters.map((entry) => entry.item), ["other"]);
});

test("stage() with a custom retryIf replaces the default, so it may retry a PermanentError", async () => {
  let calls = 0;
  const pipeline = new Pipeline({
    name: "retry-if-permanent",
    stages: [
      stage("s", (n: number) => {
        calls++;
        if (calls === 1) throw new PermanentError("permanent, but retried on request");
        return n;
      }, { maxRetries: 1, backoff: noDelay, retryIf: () => true }),
    ],
  });
  const metrics = await pipeline.run([1]);
  assert.equal(calls, 2);
  assert.equal(metrics.totalCompleted, 1);
});

test("stage() does not retry when retryIf throws, and dead-letters the original error", async () => {
  let calls = 0;
  const pipeline = new Pipeline({
    name: "retry-if-throws",
    stages: [
      stage("s", (_n: number) => {
        calls++;
        throw new Error("original");
      }, {
        maxRetries: 3,
        backoff: noDelay,
        retryIf: () => {
          throw new Error("predicate broke");
        },
      }),
    ],
  });
  const metrics = await pipeline.run([1]);
  assert.equal(calls, 1);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(pipeline.deadLetters[0].reason, "original");
});

// ---------------------------------------------------------------- timeouts

test("stage() fails an attempt that outlives timeoutMs with TimeoutError, aborts ctx.signal with it, and retries", async () => {
  const signals: AbortSignal[] = [];
  const abortedWith = deferred<unknown>();
  const pipeline = new Pipeline({
    name: "timeout",
    stages: [
      stage("slow", (n: number, ctx: StageContext) => {
        signals.push(ctx.signal);
        if (ctx.attempt === 1) {
          ctx.signal.addEventListener("abort", () => abortedWith.resolve(ctx.signal.reason), { once: true });
          return new Promise<number>(() => {}); // never settles: only the timeout ends it
        }
        return n + 1;
      }, { timeoutMs: 10, maxRetries: 1, backoff: noDelay }),
    ],
  });
  const metrics = await guard(pipeline.run([41]), "the run");
  const reason = await guard(abortedWith.promise, "the abort");
  assert.ok(reason instanceof TimeoutError, "ctx.signal is aborted with the TimeoutError");
  assert.equal(reason.name, "TimeoutError");
  assert.equal(reason.stage, "slow");
  assert.equal(reason.timeoutMs, 10);
  assert.equal(signals.length, 2);
  assert.equal(signals[0].aborted, true);
  assert.equal(signals[1].aborted, false, "the retry gets a fresh signal");
  assert.notEqual(signals[0], signals[1]);
  assert.equal(metrics.totalCompleted, 1);
  assert.equal(metrics.stageMetrics.slow.retries, 1);
});

test("stage() dead-letters an item whose every attempt times out, with a TimeoutError", async () => {
  let calls = 0;
  const pipeline = new Pipeline({
    name: "timeout-exhausted",
    stages: [
      stage("hang", (_n: number) => {
        calls++;
        return new Promise<number>(() => {});
      }, { timeoutMs: 5, maxRetries: 1, backoff: noDelay }),
    ],
  });
  const metrics = await guard(pipeline.run([1]), "the run");
  assert.equal(calls, 2);
  assert.equal(metrics.totalFailed, 1);
  const [entry] = pipeline.deadLetters;
  assert.equal(entry.attempts, 2);
  assert.equal(entry.error.name, "TimeoutError");
  assert.match(entry.reason, /timed out after 5 ms/);
});

test("stage() starts the timeout clock when the attempt starts, not while the item is queued", async () => {
  // concurrency 1: each item takes ~10 ms, well under timeoutMs; the last one
  // waits in the queue far longer than timeoutMs before it starts.
  const timeoutMs = 30;
  const runStart = performance.now();
  const queuedFor: number[] = [];
  const pipeline = new Pipeline({
    name: "timeout-clock",
    stages: [
      stage("work", async (n: number) => {
        queuedFor.push(performance.now() - runStart);
        await delay(10);
        return n;
      }, { concurrency: 1, timeoutMs, maxRetries: 0 }),
    ],
  });
  const metrics = await guard(pipeline.run([0, 1, 2, 3, 4, 5]), "the run");
  // Precondition for the test to mean anything: the last item really waited longer than timeoutMs.
  assert.ok(queuedFor[5] > timeoutMs, `the last item was queued for ${queuedFor[5]} ms`);
  assert.equal(metrics.totalFailed, 0, pipeline.deadLetters.map((entry) => entry.reason).join("; "));
  assert.equal(metrics.totalCompleted, 6);
});

test("stage() gives every retry its own timeout, not counting the backoff before it", async () => {
  const attempts: number[] = [];
  const pipeline = new Pipeline({
    name: "timeout-per-attempt",
    stages: [
      stage("s", async (n: number, ctx: StageContext) => {
        attempts.push(ctx.attempt);
        if (ctx.attempt === 1) throw new Error("fails at once");
        await delay(2);
        return n;
      }, { timeoutMs: 20, maxRetries: 1, backoff: { initialDelayMs: 30, jitter: false } }),
    ],
  });
  const metrics = await guard(pipeline.run([1]), "the run");
  assert.deepEqual(attempts, [1, 2]);
  assert.equal(metrics.totalCompleted, 1, pipeline.deadLetters.map((entry) => entry.reason).join("; "));
});

// ---------------------------------------------------------------- task arrays

test('stage() with a task array and retryScope "task" re-runs only the task that failed', async () => {
  const calls = { parse: 0, enrich: 0, format: 0 };
  const attemptsSeen: number[] = [];
  const outputs: string[] = [];
  const pipeline = new Pipeline({
    name: "task-scope",
    stages: [
      stage("fetch", [
        (n: number) => {
          calls.parse++;
          return { n };
        },
        (row: { n: number }, ctx: StageContext) => {
          calls.enrich++;
          attemptsSeen.push(ctx.attempt);
          if (ctx.attempt <= 2) throw new Error("enrich is flaky");
          return { ...row, enriched: true };
        },
        (row: { n: number; enriched: boolean }) => {
          calls.format++;
          return `${row.n}:${row.enriched}`;
        },
      ], { retryScope: "task", maxRetries: 3, backoff: noDelay }),
      stage("record", (s: string) => {
        outputs.push(s);
        return s;
      }),
    ],
  });
  const metrics = await pipeline.run([5]);
  assert.deepEqual(calls, { parse: 1, enrich: 3, format: 1 });
  assert.deepEqual(attemptsSeen, [1, 2, 3]);
  assert.deepEqual(outputs, ["5:true"]);
  assert.equal(metrics.totalCompleted, 1);
  assert.equal(metrics.stageMetrics.fetch.retries, 2);
});

test('stage() with a task array defaults to retryScope "task"', async () => {
  const calls = { first: 0, second: 0 };
  const { out, recorder } = collect<number>();
  const pipeline = new Pipeline({
    name: "task-default",
    stages: [
      stage("s", [
        (n: number) => {
          calls.first++;
          return n + 1;
        },
        (n: number, ctx: StageContext) => {
          calls.second++;
          if (ctx.attempt === 1) throw new Error("once");
          return n * 2;
        },
      ], { maxRetries: 1, backoff: noDelay }),
      recorder,
    ],
  });
  await pipeline.run([1]);
  assert.deepEqual(calls, { first: 1, second: 2 });
  assert.deepEqual(out, [4]);
});

test('stage() with a task array and retryScope "stage" re-runs the whole sequence', async () => {
  const calls = { parse: 0, enrich: 0, format: 0 };
  const parseAttempts: number[] = [];
  const outputs: string[] = [];
  const pipeline = new Pipeline({
    name: "stage-scope",
    stages: [
      stage("fetch", [
        (n: number, ctx: StageContext) => {
          calls.parse++;
          parseAttempts.push(ctx.attempt);
          return { n };
        },
        (row: { n: number }, ctx: StageContext) => {
          calls.enrich++;
          if (ctx.attempt <= 2) throw new Error("enrich is flaky");
          return { ...row, enriched: true };
        },
        (row: { n: number; enriched: boolean }) => {
          calls.format++;
          return `${row.n}:${row.enriched}`;
        },
      ], { retryScope: "stage", maxRetries: 3, backoff: noDelay }),
      stage("record", (s: string) => {
        outputs.push(s);
        return s;
      }),
    ],
  });
  const metrics = await pipeline.run([5]);
  assert.deepEqual(calls, { parse: 3, enrich: 3, format: 1 });
  assert.deepEqual(parseAttempts, [1, 2, 3]);
  assert.deepEqual(outputs, ["5:true"]);
  assert.equal(metrics.stageMetrics.fetch.retries, 2);
});

test("stage() with a task array passes each task's output to the next and dead-letters the stage input", async () => {
  const outputs: string[] = [];
  const pipeline = new Pipeline({
    name: "tasks-flow",
    stages: [
      stage("calc", [
        (n: number) => n + 1,
        async (n: number) => {
          if (n === 3) throw new PermanentError("three is bad");
          return n * 2;
        },
        (n: number) => `v${n}`,
      ]),
      stage("record", (s: string) => {
        outputs.push(s);
        return s;
      }),
    ],
  });
  const metrics = await pipeline.run([0, 1, 2]);
  assert.deepEqual(outputs, ["v2", "v4"]);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(pipeline.deadLetters[0].stage, "calc");
  assert.equal(pipeline.deadLetters[0].item, 2, "the item as it entered the stage, not the intermediate value");
});

test('stage() with retryScope "task" dead-letters after the failing task exhausts its retries', async () => {
  const calls = { first: 0, second: 0 };
  const pipeline = new Pipeline({
    name: "task-exhaust",
    stages: [
      stage("s", [
        (n: number) => {
          calls.first++;
          return n;
        },
        (_n: number) => {
          calls.second++;
          throw new Error("always");
        },
      ], { retryScope: "task", maxRetries: 2, backoff: noDelay }),
    ],
  });
  const metrics = await pipeline.run([1]);
  assert.deepEqual(calls, { first: 1, second: 3 });
  assert.equal(metrics.totalFailed, 1);
  assert.equal(metrics.stageMetrics.s.retries, 2);
  assert.equal(
    pipeline.deadLetters[0].attempts,
    4,
    "every attempt made at the stage: 1 of the first task, 3 of the second",
  );
});

// ---------------------------------------------------------------- ctx

test("stage() gives ctx a 1-based attempt, the stage name, the item id, an AbortSignal and a logger", async () => {
  const seen: { attempt: number; stage: string; itemId: string | number; aborted: boolean }[] = [];
  const pipeline = new Pipeline({
    name: "ctx",
    stages: [
      stage("inspect", (n: number, ctx: StageContext) => {
        assert.ok(ctx.signal instanceof AbortSignal);
        assert.equal(typeof ctx.logger.info, "function");
        seen.push({ attempt: ctx.attempt, stage: ctx.stage, itemId: ctx.itemId, aborted: ctx.signal.aborted });
        if (n === 1 && ctx.attempt < 3) throw new Error("again");
        return n;
      }, { maxRetries: 2, backoff: noDelay }),
    ],
  });
  await pipeline.run([0, 1]);
  assert.deepEqual(seen, [
    { attempt: 1, stage: "inspect", itemId: 0, aborted: false },
    { attempt: 1, stage: "inspect", itemId: 1, aborted: false },
    { attempt: 2, stage: "inspect", itemId: 1, aborted: false },
    { attempt: 3, stage: "inspect", itemId: 1, aborted: false },
  ]);
});

test("stage() gives ctx.itemId from the pipeline's id() option", async () => {
  const ids: (string | number)[] = [];
  const pipeline = new Pipeline({
    name: "ctx-id",
    id: (order: { key: string }) => order.key,
    stages: [
      stage("s", (order: { key: string }, ctx: StageContext) => {
        ids.push(ctx.itemId);
        return order;
      }),
    ],
  });
  await pipeline.run([{ key: "a-1" }, { key: "b-2" }]);
  assert.deepEqual(ids, ["a-1", "b-2"]);
});

test("stage() ctx.logger writes to the pipeline's logger with pipeline, stage, itemId and attempt", async () => {
  const records: { level: string; message: string; properties?: LogProperties }[] = [];
  const at = (level: string) => (message: string, properties?: LogProperties) =>
    records.push({ level, message, properties });
  const logger: Logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  const pipeline = new Pipeline({
    name: "ctx-log",
    logger,
    stages: [
      stage("s", (n: number, ctx: StageContext) => {
        ctx.logger.info("handling", { extra: n });
        return n;
      }),
    ],
  });
  await pipeline.run([9]);
  const record = records.find((r) => r.message === "handling");
  assert.ok(record, "the record reached the pipeline's logger");
  assert.equal(record.level, "info");
  assert.equal(record.properties?.pipeline, "ctx-log");
  assert.equal(record.properties?.stage, "s");
  assert.equal(record.properties?.itemId, 0);
  assert.equal(record.properties?.attempt, 1);
  assert.equal(record.properties?.extra, 9);
});

// ---------------------------------------------------------------- concurrency

test("stage() runs N workers in parallel and never more than N", async () => {
  const N = 3;
  let active = 0;
  let maxActive = 0;
  let started = 0;
  const full = deferred();
  const gate = deferred();
  const pipeline = new Pipeline({
    name: "concurrency",
    stages: [
      stage("work", async (n: number) => {
        started++;
        active++;
        maxActive = Math.max(maxActive, active);
        if (active === N) full.resolve();
        await gate.promise;
        await Promise.resolve();
        active--;
        return n;
      }, { concurrency: N }),
    ],
  });
  const done = pipeline.run(Array.from({ length: 10 }, (_, i) => i));
  try {
    await guard(full.promise, `${N} simultaneous workers`);
  } finally {
    gate.resolve();
  }
  assert.equal(active, N, `${N} workers were active at the same time`);
  assert.equal(started, N, "no further item started while all workers were busy");
  const metrics = await guard(done, "the run");
  assert.equal(maxActive, N);
  assert.equal(metrics.totalCompleted, 10);
});

test("stage() concurrency: a worker takes the next item as soon as it is free, keeping N busy", async () => {
  const N = 2;
  const gates: Deferred<void>[] = [];
  const starts = new Counter();
  let active = 0;
  let maxActive = 0;
  const pipeline = new Pipeline({
    name: "concurrency-steady",
    stages: [
      stage("work", async (n: number) => {
        const gate = deferred();
        gates[n] = gate;
        active++;
        maxActive = Math.max(maxActive, active);
        starts.increment();
        await gate.promise;
        active--;
        return n;
      }, { concurrency: N, ordered: false }),
    ],
  });
  const done = pipeline.run([0, 1, 2, 3, 4, 5]);
  await guard(starts.reaches(2), "two starts");
  assert.equal(starts.count, 2);
  // Release one at a time; each release lets exactly one more item in.
  for (let next = 2; next < 6; next++) {
    gates[next - 2].resolve();
    await guard(starts.reaches(next + 1), `start ${next + 1}`);
    assert.equal(active, N);
    assert.equal(starts.count, next + 1);
  }
  gates[4].resolve();
  gates[5].resolve();
  const metrics = await guard(done, "the run");
  assert.equal(maxActive, N);
  assert.equal(metrics.totalCompleted, 6);
});

test("stage() with the default concurrency runs one item at a time", async () => {
  let active = 0;
  let maxActive = 0;
  const pipeline = new Pipeline({
    name: "serial",
    stages: [
      stage("work", async (n: number) => {
        active++;
        maxActive = Math.max(maxActive, active);
        await Promise.resolve();
        await Promise.resolve();
        active--;
        return n;
      }),
    ],
  });
  await pipeline.run([1, 2, 3, 4, 5]);
  assert.equal(maxActive, 1);
});

// ---------------------------------------------------------------- ordering

test("stage() keeps input order by default although items finish in random order", async () => {
  const count = 12;
  const gates = Array.from({ length: count }, () => deferred());
  const allStarted = new Counter();
  const completed = new Map<number | string, Deferred<void>>(
    Array.from({ length: count }, (_, i) => [i, deferred()]),
  );
  const onEvent = (event: PipelineEvent) => {
    if (event.type === "completed" && event.stage === "work") completed.get(event.itemId)?.resolve();
  };
  const { out, recorder } = collect<number>();
  const pipeline = new Pipeline({
    name: "ordered",
    onEvent,
    stages: [
      stage("work", async (n: number) => {
        allStarted.increment();
        await gates[n].promise;
        return n * 10;
      }, { concurrency: count }),
      recorder,
    ],
  });
  const done = pipeline.run(Array.from({ length: count }, (_, i) => i));
  await guard(allStarted.reaches(count), "all items started");
  const order = shuffle(Array.from({ length: count }, (_, i) => i), mulberry32(42));
  assert.notDeepEqual(order, [...order].sort((a, b) => a - b), "the completion order really is shuffled");
  for (const i of order) {
    gates[i].resolve();
    await guard(completed.get(i)!.promise, `item ${i} completing`);
  }
  await guard(done, "the run");
  assert.deepEqual(out, Array.from({ length: count }, (_, i) => i * 10));
});

test("stage() keeps input order through several stages with seeded random delays", async () => {
  const random = mulberry32(7);
  const delays = Array.from({ length: 40 }, () => Math.floor(random() * 4));
  const { out, recorder } = collect<string>();
  const pipeline = new Pipeline({
    name: "ordered-random",
    stages: [
      stage("a", async (n: number) => {
        await delay(delays[n]);
        return n;
      }, { concurrency: 8 }),
      stage("b", async (n: number) => {
        await delay(delays[39 - n]);
        return `#${n}`;
      }, { concurrency: 5 }),
      recorder,
    ],
  });
  await pipeline.run(Array.from({ length: 40 }, (_, i) => i));
  assert.deepEqual(out, Array.from({ length: 40 }, (_, i) => `#${i}`));
});

test("stage() with ordered: false passes outputs on in completion order", async () => {
  const count = 8;
  const gates = Array.from({ length: count }, () => deferred());
  const started = new Counter();
  const { out, arrived, recorder } = collect<number>();
  const pipeline = new Pipeline({
    name: "unordered",
    stages: [
      stage("work", async (n: number) => {
        started.increment();
        await gates[n].promise;
        return n;
      }, { concurrency: count, ordered: false }),
      recorder,
    ],
  });
  const done = pipeline.run(Array.from({ length: count }, (_, i) => i));
  await guard(started.reaches(count), "all items started");
  const order = [5, 2, 7, 0, 3, 6, 1, 4];
  for (let k = 0; k < order.length; k++) {
    gates[order[k]].resolve();
    await guard(arrived.reaches(k + 1), `output ${k + 1}`);
    assert.equal(out[k], order[k], "an item leaves as soon as it is done");
  }
  await guard(done, "the run");
  assert.deepEqual(out, order);
});

test("stage() with ordered: true holds a finished item until the ones before it are done", async () => {
  const gates = [deferred(), deferred()];
  const started = new Counter();
  const finished1 = deferred();
  const { out, recorder } = collect<number>();
  const pipeline = new Pipeline({
    name: "ordered-hold",
    onEvent: (event) => {
      if (event.type === "completed" && event.stage === "work" && event.itemId === 1) finished1.resolve();
    },
    stages: [
      stage("work", async (n: number) => {
        started.increment();
        await gates[n].promise;
        return n;
      }, { concurrency: 2 }),
      recorder,
    ],
  });
  const done = pipeline.run([0, 1]);
  await guard(started.reaches(2), "both started");
  gates[1].resolve();
  await guard(finished1.promise, "item 1 finishing");
  assert.deepEqual(out, [], "item 1 waits for item 0");
  gates[0].resolve();
  await guard(done, "the run");
  assert.deepEqual(out, [0, 1]);
});

// ---------------------------------------------------------------- failure isolation

test("stage() isolates one item's failure: the others complete and keep their order", async () => {
  const { out, recorder } = collect<number>();
  const pipeline = new Pipeline({
    name: "isolation",
    stages: [
      stage("work", async (n: number) => {
        await Promise.resolve();
        if (n === 3) throw new PermanentError("three fails");
        return n;
      }, { concurrency: 4 }),
      recorder,
    ],
  });
  const metrics = await pipeline.run([0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(out, [0, 1, 2, 4, 5, 6]);
  assert.equal(metrics.totalCompleted, 6);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(metrics.stageMetrics.work.failed, 1);
  assert.equal(metrics.stageMetrics.work.succeeded, 6);
  assert.equal(metrics.stageMetrics.record.processed, 6, "the failed item never reaches the next stage");
  assert.deepEqual(pipeline.deadLetters.map((entry) => entry.itemId), [3]);
});

test("stage() keeps working on other items while one item is retrying", async () => {
  const retrying = deferred();
  const othersDone = new Counter();
  const { out, recorder } = collect<number>();
  const pipeline = new Pipeline({
    name: "isolation-retry",
    stages: [
      stage("work", async (n: number, ctx: StageContext) => {
        if (n === 0) {
          if (ctx.attempt === 1) throw new Error("first attempt fails");
          await retrying.promise; // the retry waits until the others are through
          return n;
        }
        othersDone.increment();
        if (othersDone.count === 4) retrying.resolve();
        return n;
      }, { concurrency: 2, ordered: false, maxRetries: 1, backoff: noDelay }),
      recorder,
    ],
  });
  const metrics = await guard(pipeline.run([0, 1, 2, 3, 4]), "the run");
  assert.deepEqual(out, [1, 2, 3, 4, 0]);
  assert.equal(metrics.totalCompleted, 5);
});

// ---------------------------------------------------------------- sync throws and rejections

test("stage() handles sync throws and rejected promises alike", async () => {
  const { out, recorder } = collect<number>();
  const pipeline = new Pipeline({
    name: "throws",
    stages: [
      stage("work", (n: number): number | Promise<number> => {
        if (n === 1) throw new Error("sync throw");
        if (n === 2) return Promise.reject(new Error("rejected promise"));
        if (n === 3) throw "a thrown string";
        return n;
      }),
      recorder,
    ],
  });
  const metrics = await pipeline.run([0, 1, 2, 3, 4]);
  assert.deepEqual(out, [0, 4]);
  assert.equal(metrics.totalFailed, 3);
  assert.deepEqual(
    pipeline.deadLetters.map((entry) => [entry.itemId, entry.reason]),
    [[1, "sync throw"], [2, "rejected promise"], [3, "a thrown string"]],
  );
});

test("stage() retries a sync throw like a rejection", async () => {
  let calls = 0;
  const pipeline = new Pipeline({
    name: "sync-retry",
    stages: [
      stage("work", (n: number) => {
        calls++;
        if (calls === 1) throw new Error("sync, once");
        return n;
      }, { maxRetries: 1, backoff: noDelay }),
    ],
  });
  const metrics = await pipeline.run([1]);
  assert.equal(calls, 2);
  assert.equal(metrics.totalCompleted, 1);
});
