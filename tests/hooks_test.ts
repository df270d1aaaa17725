import { test } from "node:test";
import assert from "node:assert/strict";
import { HaltError, type ItemEndInfo, Pipeline, stage } from "../mod.ts";
import { deferred, range, recordingLogger } from "./_helpers.ts";

class Bad extends Error {
  override name = "Bad";
}

test("hooks: onStart is awaited before the first item is read, onEnd after every item ended and before run settles", async () => {
  const calls: string[] = [];
  const started = deferred();
  const inStart = deferred();
  let read = 0;
  function* source() {
    for (const n of range(3)) {
      read++;
      calls.push(`read ${n}`);
      yield n;
    }
  }
  const pipeline = new Pipeline({
    name: "hooked",
    stages: [stage("s", (n: number) => n)],
    hooks: {
      onStart: async ({ pipeline }) => {
        calls.push(`start ${pipeline}`);
        inStart.resolve();
        await started.promise;
        calls.push("start done");
      },
      onItemStart: ({ itemId, item }) => void calls.push(`item start ${itemId}=${item}`),
      onItemEnd: ({ itemId, fate }) => void calls.push(`item end ${itemId} ${fate}`),
      onDrain: () => void calls.push("drain"),
      onEnd: async ({ metrics, error }) => {
        await Promise.resolve();
        calls.push(`end ${metrics.totalCompleted} ${error === undefined}`);
      },
    },
  });
  const running = pipeline.run(source());
  await inStart.promise;
  await Promise.resolve();
  assert.equal(read, 0, "no item is read before onStart settles");
  started.resolve();
  const metrics = await running;
  assert.equal(metrics.totalCompleted, 3);
  assert.equal(calls[0], "start hooked");
  assert.equal(calls[1], "start done");
  assert.equal(calls.at(-1), "end 3 true");
  for (const n of range(3)) {
    assert.ok(calls.indexOf(`read ${n}`) < calls.indexOf(`item start ${n}=${n}`));
    assert.ok(calls.indexOf(`item start ${n}=${n}`) < calls.indexOf(`item end ${n} completed`));
  }
  assert.equal(calls.filter((call) => call === "drain").length, 1);
  assert.ok(calls.indexOf("drain") > calls.indexOf("read 2"));
});

test("onItemEnd reports each item once with its fate: completed, skipped, dead-lettered", async () => {
  const ends: ItemEndInfo[] = [];
  const pipeline = new Pipeline({
    name: "fates",
    stages: [
      stage("check", (n: number) => {
        if (n % 3 === 1) throw new Bad(`bad ${n}`);
        if (n % 3 === 2) throw new Error(`failed ${n}`);
        return n;
      }, { maxRetries: 0, onError: [[Bad, "skip"]] }),
      stage("last", (n: number) => n),
    ],
    hooks: { onItemEnd: (info) => void ends.push(info) },
  });
  const metrics = await pipeline.run(range(9));
  assert.equal(ends.length, 9);
  assert.deepEqual(ends.map((end) => end.itemId).sort((a, b) => Number(a) - Number(b)), range(9));
  for (const end of ends) {
    const n = Number(end.itemId);
    const expected = n % 3 === 0 ? "completed" : n % 3 === 1 ? "skipped" : "deadLettered";
    assert.equal(end.fate, expected, `item ${n}`);
    assert.equal(end.stage, n % 3 === 0 ? "last" : "check");
    if (n % 3 !== 0) assert.ok(end.error instanceof Error);
  }
  assert.equal(metrics.totalSkipped, 3);
  assert.equal(metrics.totalFailed, 3);
});

test("a hook that throws or rejects is logged as a warning and loses no item", async () => {
  const { logger, records } = recordingLogger();
  const boom = () => {
    throw new Error("hook bug");
  };
  const rejecting = () => Promise.reject(new Error("async hook bug"));
  const pipeline = new Pipeline({
    name: "buggy hooks",
    logger,
    stages: [stage("s", (n: number) => {
      if (n === 2) throw new Bad("no");
      return n;
    }, { maxRetries: 0 })],
    hooks: {
      onStart: rejecting,
      onItemStart: boom,
      onItemEnd: rejecting,
      onStageError: boom,
      onDrain: boom,
      onEnd: boom,
    },
  });
  const metrics = await pipeline.run(range(5));
  assert.equal(metrics.totalIngested, 5);
  assert.equal(metrics.totalCompleted, 4);
  assert.equal(metrics.totalFailed, 1);
  const warned = new Set(records.filter((r) => r.level === "warn").map((r) => r.properties.hook));
  for (const hook of ["onStart", "onItemStart", "onItemEnd", "onStageError", "onDrain", "onEnd"]) {
    assert.ok(warned.has(hook), `${hook} is logged`);
  }
});

test("onEnd hears the HaltError a halted run rejects with, and its final metrics", async () => {
  let ended: { error?: unknown; completed: number } | undefined;
  const pipeline = new Pipeline({
    name: "halting",
    stages: [stage("s", (n: number) => {
      if (n === 3) throw new Bad("stop");
      return n;
    }, { onError: [[Bad, "halt"]] })],
    hooks: { onEnd: ({ error, metrics }) => void (ended = { error, completed: metrics.totalCompleted }) },
  });
  const error = await pipeline.run(range(100)).then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof HaltError);
  assert.equal(ended?.error, error);
  assert.equal(ended?.completed, error.metrics?.totalCompleted);
});

test("hooks are checked at construction: a hook that is not a function is a ConfigError naming it", () => {
  assert.throws(
    () => new Pipeline({ name: "p", stages: [stage("s", (n: number) => n)], hooks: { onEnd: 3 } as never }),
    (error: Error) => error.name === "ConfigError" && /hooks\.onEnd/.test(error.message),
  );
  assert.throws(
    () => new Pipeline({ name: "p", stages: [stage("s", (n: number) => n)], hooks: { onFinish() {} } as never }),
    (error: Error) => error.name === "ConfigError" && /onFinish/.test(error.message),
  );
});
