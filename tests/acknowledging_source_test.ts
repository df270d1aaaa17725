/**
 * The core's AcknowledgingSource hook, without Redis: ids come from the
 * source, each item's final fate is told once (a dead letter written to a
 * stream only once written; never when the stream refused it), rejected
 * values are dead-lettered at the first stage, close() is awaited after
 * everything else, and a flatMap stage's parent is told only once every
 * item made from it has ended (at any depth), its outputs never. The
 * randomised version of the last is the "acked" mode of
 * flat_map_property_test.ts.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type AcknowledgingSource,
  type DeadLetter,
  flatMapStage,
  PermanentError,
  Pipeline,
  type PipelineEvent,
  type SettledItem,
  stage,
} from "../mod.ts";
import { deferred } from "./_helpers.ts";

interface Message {
  readonly id: string;
  readonly body: number;
}

function queueOf(messages: readonly Message[], rejected: ReadonlySet<string> = new Set()) {
  const settled: SettledItem[] = [];
  const order: string[] = [];
  const source: AcknowledgingSource<Message> = {
    async *[Symbol.asyncIterator]() {
      yield* messages;
    },
    itemId: (message) => message.id,
    settle: (items) => {
      settled.push(...items);
      order.push("settle");
    },
    close: async () => void order.push("close"),
    rejection: (message) => rejected.has(message.id) ? new Error(`refused ${message.id}`) : undefined,
  };
  return { source, settled, order };
}

const messages: Message[] = Array.from({ length: 20 }, (_, i) => ({ id: `m${i}`, body: i % 4 === 1 ? -i : i }));

function checking(deadLetterQueue?: WritableStream<DeadLetter>) {
  return new Pipeline({
    name: "acks",
    stages: [
      stage("check", (m: Message) => {
        if (m.body < 0) throw new PermanentError("negative");
        return m.body;
      }, { concurrency: 3, ordered: false }),
      stage("double", (n: number) => n * 2),
    ],
    ...(deadLetterQueue ? { deadLetterQueue } : {}),
  });
}

test("every item's fate is told once, by the source's ids; close() comes last", async () => {
  const { source, settled, order } = queueOf(messages, new Set(["m2"]));
  const pipeline = checking();
  const metrics = await pipeline.run(source);
  assert.equal(settled.length, messages.length);
  assert.equal(new Set(settled.map((item) => item.id)).size, messages.length, "each id once");
  const dead = settled.filter((item) => item.fate === "dead-lettered").map((item) => item.id).sort();
  assert.deepEqual(dead, ["m1", "m13", "m17", "m2", "m5", "m9"]);
  assert.deepEqual(pipeline.deadLetters.map((letter) => letter.itemId).sort(), dead);
  assert.equal(pipeline.deadLetters.find((letter) => letter.itemId === "m2")?.reason, "refused m2");
  assert.equal(metrics.totalCompleted, settled.filter((item) => item.fate === "completed").length);
  assert.equal(order.at(-1), "close");
  assert.equal(order.filter((step) => step === "close").length, 1);
});

test("a dead letter written to a stream is told once written; one the stream refused is never told", async () => {
  const written: DeadLetter[] = [];
  const { source, settled } = queueOf(messages);
  await checking(new WritableStream<DeadLetter>({ write: (letter) => void written.push(letter) })).run(source);
  const told = settled.filter((item) => item.fate === "dead-lettered").map((item) => item.id).sort();
  assert.deepEqual(told, written.map((letter) => letter.itemId).sort());

  const refusing = queueOf(messages);
  await assert.rejects(
    checking(new WritableStream<DeadLetter>({ write: () => Promise.reject(new Error("down")) })).run(refusing.source),
    { name: "DeadLetterSinkError" },
  );
  assert.equal(refusing.settled.filter((item) => item.fate === "dead-lettered").length, 0);
  assert.equal(refusing.settled.length, 15, "the completed ones are told all the same");
  assert.equal(refusing.order.at(-1), "close", "close() is awaited even when the run rejects");
});

test("the id option and an acknowledging source do not go together", async () => {
  const { source } = queueOf(messages);
  const pipeline = new Pipeline({ name: "ids", stages: [stage("s", (m: Message) => m)], id: (m) => m.id });
  await assert.rejects(pipeline.run(source), /the source gives its items their ids \(an AcknowledgingSource\)/);
});

/**
 * A pipeline whose last stage, "hold", keeps every item until `release` and
 * a promise that resolves once `held` items wait there and `ended` parents
 * have reached the end of the pipeline (their "expanded" or "dead-lettered"
 * event, told right after they arrive).
 */
function holding(stages: readonly unknown[], counts: { held: number; ended: number }) {
  const release = deferred();
  const ready = deferred();
  let held = 0;
  let ended = 0;
  const onEvent = (event: PipelineEvent) => {
    if (event.type === "started" && event.stage === "hold") held++;
    else if (event.type === "expanded" || event.type === "dead-lettered") ended++;
    else return;
    if (held === counts.held && ended === counts.ended) ready.resolve();
  };
  const pipeline = new Pipeline({
    name: "acks",
    stages: [
      ...stages,
      stage("hold", async (value: unknown) => {
        await release.promise;
        return value;
      }, { concurrency: 100 }),
    ] as never,
    onEvent,
  });
  return { pipeline, release: release.resolve, ready: ready.promise };
}

const few: Message[] = Array.from({ length: 4 }, (_, i) => ({ id: `m${i}`, body: i }));
const split = flatMapStage("split", (message: Message) => [message.body, message.body + 10, message.body + 20]);

test("a flatMap parent is told only once all its outputs have ended, and the outputs are not told", async () => {
  const { source, settled: told } = queueOf(few);
  const { pipeline, release, ready } = holding([split], { held: 12, ended: 4 });
  const run = pipeline.run(source as never);
  await ready; // every parent has reached the end, every output waits in "hold"
  assert.equal(told.length, 0, "no message is told while items made from it are in the pipeline");
  release();
  const metrics = await run;
  assert.equal(metrics.totalCompleted, 12);
  assert.equal(metrics.totalExpanded, 4);
  assert.deepEqual(
    told.map((item) => `${item.id}:${item.fate}`).sort(),
    ["m0:expanded", "m1:expanded", "m2:expanded", "m3:expanded"],
  );
});

test("a parent whose expansion failed midway is told dead-lettered after the outputs it made", async () => {
  const { source, settled: told } = queueOf(few.slice(0, 1));
  const breaking = flatMapStage("split", function* (message: Message) {
    yield message.body;
    throw new Error("the iterable broke");
  });
  const { pipeline, release, ready } = holding([breaking], { held: 1, ended: 1 });
  const run = pipeline.run(source as never);
  await ready;
  assert.equal(told.length, 0);
  release();
  const metrics = await run;
  assert.equal(metrics.totalCompleted, 1);
  assert.equal(metrics.totalFailed, 1);
  assert.deepEqual(told, [{ id: "m0", fate: "dead-lettered" }]);
});

test("nested flatMap stages: a message is told after its grandchildren, a parent with no outputs at once", async () => {
  const { source, settled: told } = queueOf(few.slice(0, 2));
  const again = flatMapStage("again", (n: number) => (n === 1 ? [] : [n, -n]));
  // m0 → 0, 10, 20 → six grandchildren; m1 → 1 (no outputs), 11, 21 → four.
  const { pipeline, release, ready } = holding([split, again], { held: 10, ended: 8 });
  const run = pipeline.run(source as never);
  await ready;
  assert.equal(told.length, 0);
  release();
  await run;
  assert.deepEqual(told.map((item) => `${item.id}:${item.fate}`).sort(), ["m0:expanded", "m1:expanded"]);
});
