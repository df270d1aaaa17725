import { test } from "node:test";
import assert from "node:assert/strict";
import { Pipeline, stage } from "../mod.ts";
import { readableOf } from "./_helpers.ts";

function pipeline(calls: { count: number }) {
  return new Pipeline({
    name: "sources",
    stages: [stage("s", (n: number) => (calls.count++, n))],
  });
}

/** Runs `source` and checks that `run` rejects with a TypeError matching `message`, having read nothing. */
async function assertRefused(source: unknown, message: RegExp) {
  const calls = { count: 0 };
  const p = pipeline(calls);
  const running = p.run(source as Iterable<number>);
  assert.ok(running instanceof Promise, "run returns a promise, even for a bad source");
  await assert.rejects(running, (error: unknown) => {
    assert.ok(error instanceof TypeError, `expected a TypeError, got ${String(error)}`);
    assert.match(error.message, message);
    return true;
  });
  assert.equal(calls.count, 0);
  assert.equal(p.getMetrics().totalIngested, 0);
}

test("Pipeline.run(42) rejects with a TypeError naming the number given", async () => {
  await assertRefused(42, /ReadableStream, an async iterable or an iterable; got 42$/);
});

test("Pipeline.run(null) rejects with a TypeError saying it got null", async () => {
  await assertRefused(null, /got null$/);
});

test("Pipeline.run(undefined) rejects with a TypeError saying it got undefined", async () => {
  await assertRefused(undefined, /got undefined$/);
});

test("Pipeline.run({}) rejects with a TypeError saying it got an object", async () => {
  await assertRefused({}, /ReadableStream, an async iterable or an iterable; got an object$/);
});

test('Pipeline.run("text") rejects with a TypeError saying a string is not a source', async () => {
  await assertRefused("text", /must not be a string.*wrap it in an array/);
});

test("Pipeline.run() with a locked ReadableStream rejects with a TypeError saying it is locked", async () => {
  const stream = readableOf([1, 2, 3]);
  const reader = stream.getReader();
  await assertRefused(stream, /ReadableStream is locked/);
  // The stream is left as it was: still locked by its reader, nothing read.
  assert.deepEqual(await reader.read(), { done: false, value: 1 });
});

test("Pipeline.run() with other non-sources names what was given", async () => {
  await assertRefused(true, /got true$/);
  await assertRefused(Promise.resolve([1]), /got a Promise$/);
  await assertRefused(function numbers() {}, /got a function \(numbers\)$/);
  await assertRefused({ [Symbol.iterator]: 5 }, /got an object$/);
  await assertRefused(new Date(0), /got a Date$/);
});

test("Pipeline.run() with a bad source does not disturb the next run", async () => {
  const calls = { count: 0 };
  const p = pipeline(calls);
  await assert.rejects(p.run(42 as unknown as number[]), TypeError);
  const metrics = await p.run([1, 2]);
  assert.equal(metrics.totalCompleted, 2);
  assert.equal(calls.count, 2);
});
