/**
 * The core's AcknowledgingSource hook, without Redis: ids come from the
 * source, each item's final fate is told once (a dead letter written to a
 * stream only once written; never when the stream refused it), rejected
 * values are dead-lettered at the first stage, and close() is awaited after
 * everything else.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type AcknowledgingSource,
  type DeadLetter,
  PermanentError,
  Pipeline,
  type SettledItem,
  stage,
} from "../mod.ts";

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
