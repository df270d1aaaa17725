import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type DeadLetter,
  DeadLetterSchema,
  DeadLetterSinkError,
  PermanentError,
  Pipeline,
  serializeError,
  stage,
  type StageContext,
} from "../mod.ts";
import { Counter, deferred, guard } from "./_helpers.ts";

const noDelay = { initialDelayMs: 0, maxDelayMs: 0, jitter: false } as const;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Two stages; "charge" fails transiently once then for good on odd totals, and permanently on negative ones. */
function ordersPipeline(deadLetterQueue: boolean | WritableStream<DeadLetter>) {
  const attemptTimes = new Map<number | string, number[]>();
  const completed: number[] = [];
  const pipeline = new Pipeline({
    name: "orders",
    deadLetterQueue,
    stages: [
      stage("parse", (total: number) => ({ total, currency: "EUR" })),
      stage("charge", (order: { total: number; currency: string }, ctx: StageContext) => {
        const times = attemptTimes.get(ctx.itemId) ?? [];
        times.push(Date.now());
        attemptTimes.set(ctx.itemId, times);
        if (order.total < 0) throw new PermanentError("negative total", { cause: new RangeError("below zero") });
        if (order.total % 2 === 1) throw new Error(`gateway timeout on attempt ${ctx.attempt}`);
        completed.push(order.total);
        return order.total;
      }, { maxRetries: 2, backoff: noDelay }),
    ],
  });
  return { pipeline, attemptTimes, completed };
}

test("deadLetterQueue: true keeps every failed item in pipeline.deadLetters with every field", async () => {
  const { pipeline, attemptTimes, completed } = ordersPipeline(true);
  const before = Date.now();
  const metrics = await pipeline.run([2, 3, -4, 6]);
  const after = Date.now();
  assert.deepEqual(completed, [2, 6]);
  assert.equal(metrics.deadLetterCount, 2);
  assert.equal(pipeline.deadLetters.length, 2);
  const [transient, permanent] = [...pipeline.deadLetters].sort((a, b) => Number(a.itemId) - Number(b.itemId));

  assert.equal(transient.itemId, 1);
  assert.equal(transient.stage, "charge");
  assert.deepEqual(transient.item, { total: 3, currency: "EUR" }, "the value as it entered the failing stage");
  assert.equal(transient.reason, "gateway timeout on attempt 3");
  assert.equal(transient.error.name, "Error");
  assert.equal(transient.error.message, "gateway timeout on attempt 3");
  assert.equal(typeof transient.error.stack, "string");
  assert.match(transient.error.stack!, /gateway timeout on attempt 3/);
  assert.equal(transient.error.cause, undefined);
  assert.equal(transient.attempts, 3);

  assert.equal(permanent.itemId, 2);
  assert.equal(permanent.stage, "charge");
  assert.deepEqual(permanent.item, { total: -4, currency: "EUR" });
  assert.equal(permanent.reason, "negative total");
  assert.equal(permanent.error.name, "PermanentError");
  assert.equal(permanent.error.message, "negative total");
  const cause = permanent.error.cause as { name: string; message: string; stack?: string };
  assert.equal(cause.name, "RangeError");
  assert.equal(cause.message, "below zero");
  assert.equal(typeof cause.stack, "string");
  assert.equal(permanent.attempts, 1);

  for (const entry of [transient, permanent]) {
    assert.match(entry.firstAttemptAt, ISO);
    assert.match(entry.failedAt, ISO);
    assert.equal(new Date(entry.firstAttemptAt).toISOString(), entry.firstAttemptAt);
    const first = Date.parse(entry.firstAttemptAt);
    const failed = Date.parse(entry.failedAt);
    assert.ok(first <= failed, "firstAttemptAt <= failedAt");
    assert.ok(before <= first && failed <= after, "both lie within the run");
    const times = attemptTimes.get(entry.itemId)!;
    assert.ok(first <= times[0], "firstAttemptAt is no later than the first attempt");
    assert.ok(failed >= times[times.length - 1], "failedAt is no earlier than the last attempt");
  }
  // The entries survive JSON and read back through the schema unchanged.
  for (const entry of pipeline.deadLetters) {
    assert.deepEqual(DeadLetterSchema.parse(JSON.stringify(entry)), JSON.parse(JSON.stringify(entry)));
  }
});

test("deadLetterQueue defaults to true", async () => {
  const pipeline = new Pipeline({
    name: "default",
    stages: [stage("s", (_n: number) => {
      throw new PermanentError("no");
    })],
  });
  await pipeline.run([1, 2]);
  assert.deepEqual(pipeline.deadLetters.map((entry) => entry.item), [1, 2]);
});

test("dead letters record the stage an item failed in and its value there, for items failing in different stages", async () => {
  const pipeline = new Pipeline({
    name: "multi",
    stages: [
      stage("first", (n: number) => {
        if (n === 0) throw new PermanentError("first rejects 0");
        return `s${n}`;
      }),
      stage("second", (s: string) => {
        if (s === "s2") throw new PermanentError("second rejects s2");
        return s.length;
      }),
    ],
  });
  const metrics = await pipeline.run([0, 1, 2, 3]);
  assert.equal(metrics.totalCompleted, 2);
  const byId = new Map(pipeline.deadLetters.map((entry) => [entry.itemId, entry]));
  assert.equal(byId.get(0)?.stage, "first");
  assert.equal(byId.get(0)?.item, 0);
  assert.equal(byId.get(2)?.stage, "second");
  assert.equal(byId.get(2)?.item, "s2");
});

test("dead letters describe non-Error throws", async () => {
  const pipeline = new Pipeline({
    name: "non-error",
    stages: [stage("s", (n: number) => {
      if (n === 0) throw "plain string";
      throw { code: 42 };
    })],
  });
  await pipeline.run([0, 1]);
  const [string, object] = pipeline.deadLetters;
  assert.equal(string.reason, "plain string");
  assert.equal(string.error.name, "NonError");
  assert.equal(string.error.message, "plain string");
  assert.match(object.reason, /42/);
  assert.equal(object.error.name, "NonError");
});

test("a WritableStream dead letter queue receives every entry and is closed when the run ends", async () => {
  const received: DeadLetter[] = [];
  let closed = false;
  let writesAfterClose = 0;
  const sink = new WritableStream<DeadLetter>({
    write(entry) {
      if (closed) writesAfterClose++;
      received.push(entry);
    },
    close() {
      closed = true;
    },
  });
  const { pipeline } = ordersPipeline(sink);
  const metrics = await pipeline.run([1, 2, -3, 5, 6]);
  assert.equal(closed, true, "the sink is closed by the time run resolves");
  assert.equal(writesAfterClose, 0);
  assert.equal(metrics.deadLetterCount, 3);
  assert.deepEqual(received.map((entry) => entry.itemId).sort(), [0, 2, 3]);
  assert.deepEqual(received.find((entry) => entry.itemId === 2)?.item, { total: -3, currency: "EUR" });
  for (const entry of received) assert.deepEqual(DeadLetterSchema.parse(JSON.stringify(entry)).itemId, entry.itemId);
  assert.equal(pipeline.deadLetters.length, 0, "entries went to the sink, not to memory");
  assert.equal(sink.locked, false, "the pipeline released the sink");
});

test("a slow WritableStream dead letter queue still receives every entry before the run resolves", async () => {
  const received: (string | number)[] = [];
  const writes = new Counter();
  let closed = false;
  const sink = new WritableStream<DeadLetter>({
    async write(entry) {
      await Promise.resolve();
      await Promise.resolve();
      received.push(entry.itemId);
      writes.increment();
    },
    close() {
      closed = true;
    },
  }, { highWaterMark: 1 });
  const pipeline = new Pipeline({
    name: "slow-sink",
    deadLetterQueue: sink,
    stages: [stage("s", (n: number) => {
      if (n % 3 === 0) throw new PermanentError(`bad ${n}`);
      return n;
    })],
  });
  const metrics = await guard(pipeline.run(Array.from({ length: 30 }, (_, i) => i)), "the run");
  assert.equal(closed, true);
  assert.equal(metrics.deadLetterCount, 10);
  assert.equal(metrics.totalCompleted, 20);
  assert.deepEqual(received, [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);
});

test("a WritableStream dead letter queue is closed even when nothing failed", async () => {
  let closed = false;
  const sink = new WritableStream<DeadLetter>({
    close() {
      closed = true;
    },
  });
  const pipeline = new Pipeline({ name: "no-failures", deadLetterQueue: sink, stages: [stage("s", (n: number) => n)] });
  const metrics = await pipeline.run([1, 2, 3]);
  assert.equal(metrics.deadLetterCount, 0);
  assert.equal(closed, true);
});

test("deadLetterQueue: false keeps no entries but still counts them", async () => {
  const { pipeline } = ordersPipeline(false);
  const metrics = await pipeline.run([1, -2, 4, 5]);
  assert.equal(pipeline.deadLetters.length, 0);
  assert.equal(metrics.deadLetterCount, 3);
  assert.equal(metrics.totalFailed, 3);
  assert.equal(metrics.totalCompleted, 1);
  assert.equal(metrics.totalIngested, metrics.totalCompleted + metrics.totalFailed);
  assert.equal(pipeline.getMetrics().deadLetterCount, 3);
});

test("pipeline.deadLetters holds only the latest run's entries", async () => {
  const pipeline = new Pipeline({
    name: "rerun",
    stages: [stage("s", (n: number) => {
      if (n < 0) throw new PermanentError("negative");
      return n;
    })],
  });
  await pipeline.run([-1, -2]);
  assert.equal(pipeline.deadLetters.length, 2);
  await pipeline.run([-3, 4]);
  assert.deepEqual(pipeline.deadLetters.map((entry) => entry.item), [-3]);
});

// ---------------------------------------------------------------- DeadLetterSchema

const valid = {
  itemId: 7,
  stage: "load",
  item: { id: 7, tags: ["a"] },
  reason: "connection reset",
  error: { name: "Error", message: "connection reset", stack: "Error: connection reset\n    at x", cause: { code: 1 } },
  attempts: 3,
  firstAttemptAt: "2026-11-23T10:00:00.000Z",
  failedAt: "2026-11-23T10:00:01.500Z",
};

test("DeadLetterSchema.parse() round-trips an entry persisted as JSON", () => {
  const line = JSON.stringify(valid);
  const entry = DeadLetterSchema.parse(line);
  assert.deepEqual(entry, valid);
  assert.equal(JSON.stringify(entry), line);
  assert.deepEqual(DeadLetterSchema.parse(JSON.parse(line)), valid, "an already parsed value works too");
  assert.deepEqual(DeadLetterSchema.parse({ ...valid, itemId: "order-7" }).itemId, "order-7");
  const minimalError = { ...valid, error: { name: "Error", message: "m" } };
  assert.deepEqual(DeadLetterSchema.parse(JSON.stringify(minimalError)), minimalError, "stack and cause are optional");
});

test("DeadLetterSchema.parse() round-trips real entries, including a serialized error with a cause chain", () => {
  const error = serializeError(new Error("outer", { cause: new TypeError("inner", { cause: "root" }) }));
  const entry = { ...valid, error, reason: "outer" };
  const back = DeadLetterSchema.parse(JSON.stringify(entry));
  assert.deepEqual(back, JSON.parse(JSON.stringify(entry)));
  const cause = back.error.cause as { name: string; message: string; cause: unknown };
  assert.equal(cause.name, "TypeError");
  assert.equal(cause.cause, "root");
});

/** Asserts that parsing `value` throws a TypeError whose message names `field`. */
function rejectsNaming(value: unknown, field: string) {
  assert.throws(
    () => DeadLetterSchema.parse(value),
    (error: unknown) => {
      assert.ok(error instanceof TypeError, `a TypeError, got ${error}`);
      assert.ok(error.message.includes(`"${field}"`), `"${error.message}" names the field ${field}`);
      return true;
    },
  );
}

test("DeadLetterSchema.parse() throws a TypeError naming the bad field", () => {
  rejectsNaming(JSON.stringify({ ...valid, attempts: "three" }), "attempts");
  rejectsNaming({ ...valid, attempts: 0 }, "attempts");
  rejectsNaming({ ...valid, attempts: 1.5 }, "attempts");
  rejectsNaming({ ...valid, itemId: null }, "itemId");
  rejectsNaming({ ...valid, itemId: { id: 1 } }, "itemId");
  rejectsNaming({ ...valid, stage: 5 }, "stage");
  rejectsNaming({ ...valid, stage: "" }, "stage");
  rejectsNaming({ ...valid, reason: undefined }, "reason");
  rejectsNaming({ ...valid, firstAttemptAt: "yesterday" }, "firstAttemptAt");
  rejectsNaming({ ...valid, failedAt: 1763892000000 }, "failedAt");
  rejectsNaming({ ...valid, error: { message: "no name" } }, "error.name");
  rejectsNaming({ ...valid, error: { name: "Error", message: "m", stack: 42 } }, "error.stack");
  const { stage: _stage, ...withoutStage } = valid;
  rejectsNaming(JSON.stringify(withoutStage), "stage");
});

test("DeadLetterSchema.parse() throws a TypeError for text that is not JSON or not an object", () => {
  assert.throws(() => DeadLetterSchema.parse("{not json"), TypeError);
  assert.throws(() => DeadLetterSchema.parse("null"), TypeError);
  assert.throws(() => DeadLetterSchema.parse([1, 2]), TypeError);
});

test("DeadLetterSchema.check() returns undefined instead of throwing", () => {
  assert.equal(DeadLetterSchema.check({ ...valid, attempts: -1 }), undefined);
  assert.deepEqual(DeadLetterSchema.check(JSON.stringify(valid)), valid);
});

// ---------------------------------------------------------------- a failing sink

test("a dead letter sink that rejects writes makes run reject with DeadLetterSinkError after draining", async () => {
  const sinkError = new Error("disk full");
  const sink = new WritableStream<DeadLetter>({
    write() {
      throw sinkError;
    },
  });
  const completed: number[] = [];
  const pipeline = new Pipeline({
    name: "bad-sink",
    deadLetterQueue: sink,
    stages: [
      stage("check", (n: number) => {
        if (n % 4 === 0) throw new PermanentError(`rejected ${n}`);
        return n;
      }, { concurrency: 2 }),
      stage("done", (n: number) => {
        completed.push(n);
        return n;
      }),
    ],
  });
  const items = Array.from({ length: 20 }, (_, i) => i);
  await assert.rejects(guard(pipeline.run(items), "the run"), (error: unknown) => {
    assert.ok(error instanceof DeadLetterSinkError, `got ${error}`);
    assert.equal(error.name, "DeadLetterSinkError");
    assert.equal(error.cause, sinkError);
    assert.equal(error.unwritten, 5, "every entry the sink refused is counted");
    return true;
  });
  // The pipeline drained before rejecting: every good item completed, every bad one is kept.
  assert.deepEqual(completed, items.filter((n) => n % 4 !== 0));
  const metrics = pipeline.getMetrics();
  assert.equal(metrics.totalIngested, 20);
  assert.equal(metrics.totalCompleted, 15);
  assert.equal(metrics.totalFailed, 5);
  assert.equal(metrics.itemsInFlight, 0);
  assert.equal(metrics.deadLetterCount, 5);
  assert.deepEqual(
    pipeline.deadLetters.map((entry) => entry.item).sort((a, b) => Number(a) - Number(b)),
    [0, 4, 8, 12, 16],
    "entries the sink refused stay in pipeline.deadLetters",
  );
  for (const entry of pipeline.deadLetters) assert.match(entry.reason, /^rejected \d+$/);
});

test("a dead letter sink that fails part-way keeps only the refused entries in pipeline.deadLetters", async () => {
  const written: (string | number)[] = [];
  const sinkError = new Error("quota exceeded");
  const sink = new WritableStream<DeadLetter>({
    write(entry) {
      if (written.length === 2) throw sinkError;
      written.push(entry.itemId);
    },
  });
  const pipeline = new Pipeline({
    name: "partial-sink",
    deadLetterQueue: sink,
    stages: [stage("s", (_n: number) => {
      throw new PermanentError("bad");
    })],
  });
  await assert.rejects(guard(pipeline.run([0, 1, 2, 3, 4]), "the run"), (error: unknown) => {
    assert.ok(error instanceof DeadLetterSinkError);
    assert.equal(error.cause, sinkError);
    assert.equal(error.unwritten, 3);
    return true;
  });
  assert.deepEqual(written, [0, 1]);
  assert.deepEqual(pipeline.deadLetters.map((entry) => entry.itemId).sort(), [2, 3, 4]);
  assert.equal(pipeline.getMetrics().deadLetterCount, 5);
});

test("a dead letter sink whose last write fails asynchronously as the run ends still keeps that entry", async () => {
  const sinkError = new Error("late failure");
  const sink = new WritableStream<DeadLetter>({
    async write() {
      await Promise.resolve();
      await Promise.resolve();
      throw sinkError;
    },
  });
  const pipeline = new Pipeline({
    name: "late-sink",
    deadLetterQueue: sink,
    stages: [stage("s", (n: number) => {
      if (n === 4) throw new PermanentError("the last item fails");
      return n;
    })],
  });
  await assert.rejects(guard(pipeline.run([0, 1, 2, 3, 4]), "the run"), (error: unknown) => {
    assert.ok(error instanceof DeadLetterSinkError, `got ${error}`);
    assert.equal(error.cause, sinkError);
    assert.equal(error.unwritten, 1);
    return true;
  });
  assert.deepEqual(pipeline.deadLetters.map((entry) => entry.itemId), [4]);
  assert.equal(pipeline.getMetrics().totalCompleted, 4);
});

test("a dead letter sink whose close fails makes run reject with DeadLetterSinkError", async () => {
  const received: (string | number)[] = [];
  const closeError = new Error("flush failed");
  const sink = new WritableStream<DeadLetter>({
    write(entry) {
      received.push(entry.itemId);
    },
    close() {
      throw closeError;
    },
  });
  const done = deferred<unknown>();
  const pipeline = new Pipeline({
    name: "close-fails",
    deadLetterQueue: sink,
    stages: [stage("s", (n: number) => {
      if (n === 1) throw new PermanentError("bad");
      return n;
    })],
  });
  pipeline.run([0, 1, 2]).then(() => done.resolve(undefined), (error) => done.resolve(error));
  const error = await guard(done.promise, "the run");
  assert.ok(error instanceof DeadLetterSinkError, `got ${error}`);
  assert.equal(error.cause, closeError);
  assert.deepEqual(received, [1]);
  assert.equal(pipeline.getMetrics().totalCompleted, 2);
});
