import { test } from "node:test";
import assert from "node:assert/strict";
import { HaltError, type ItemEndInfo, Pipeline, stage } from "../mod.ts";
import { deferred, range, recordingLogger } from "./_helpers.ts";

class Bad extends Error {}

test("hooks run in order: onStart (awaited) before any item, onItemStart/onItemEnd per item, onDrain, then onEnd (awaited)", async () => {
  const log: string[] = [];
  const ends: ItemEndInfo[] = [];
  const started = deferred();
  const pipeline = new Pipeline({
    name: "hooked",
    hooks: {
      onStart: async ({ pipeline }) => {
        await Promise.resolve();
        log.push(`start ${pipeline}`);
        started.resolve();
      },
      onItemStart: ({ itemId, item }) => void log.push(`in ${itemId}=${item}`),
      onItemEnd: (info) => void ends.push(info),
      onDrain: () => void log.push("drain"),
      onEnd: async ({ metrics, error }) => {
        await Promise.resolve();
        log.push(`end ${metrics.totalIngested} ${error === undefined}`);
      },
    },
    stages: [
      stage("a", (n: number) => {
        log.push(`a ${n}`);
        if (n === 1) throw new Bad("skip me");
        if (n === 2) throw new Error("dead");
        return n;
      }, { onError: [[Bad, "skip"]] }),
    ],
  });
  const metrics = await pipeline.run([10, 1, 2].map((n) => n));
  assert.equal(log[0], "start hooked");
  assert.equal(log.at(-1), "end 3 true");
  assert.ok(log.indexOf("in 0=10") < log.indexOf("a 10"));
  assert.ok(log.includes("drain"));
  assert.deepEqual(ends.map(({ itemId, fate, stage }) => [itemId, fate, stage]), [
    [0, "completed", "a"],
    [1, "skipped", "a"],
    [2, "deadLettered", "a"],
  ]);
  assert.ok(ends[1].error instanceof Bad);
  assert.equal(metrics.totalCompleted, 1);
});

test("a hook that throws or rejects is logged and loses no item", async () => {
  const { logger, records } = recordingLogger();
  const boom = () => {
    throw new Error("hook broke");
  };
  const pipeline = new Pipeline({
    name: "broken-hooks",
    logger,
    hooks: {
      onStart: boom,
      onItemStart: boom,
      onItemEnd: () => Promise.reject(new Error("async hook broke")),
      onDrain: boom,
      onEnd: boom,
    },
    stages: [stage("a", (n: number) => n)],
  });
  const metrics = await pipeline.run(range(5));
  assert.equal(metrics.totalCompleted, 5);
  await new Promise((resolve) => setTimeout(resolve, 0)); // the rejected onItemEnd promises are caught a turn later
  const warned = new Set(records.filter((r) => r.level === "warn").map((r) => r.message));
  for (const hook of ["onStart", "onItemStart", "onItemEnd", "onDrain", "onEnd"]) {
    assert.ok(warned.has(`hook ${hook} threw; the run goes on`), hook);
  }
});

test("onEnd is told the error run rejects with (a HaltError)", async () => {
  let told: unknown;
  const pipeline = new Pipeline({
    name: "halted",
    hooks: { onEnd: ({ error }) => void (told = error) },
    stages: [stage("a", (_n: number) => {
      throw new Bad("stop");
    }, { onError: [[Bad, "halt"]] })],
  });
  const error = await pipeline.run([1]).catch((e: unknown) => e);
  assert.ok(error instanceof HaltError);
  assert.equal(told, error);
});
