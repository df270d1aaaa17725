/**
 * An acknowledging source and flatMap stages: a message is told only once
 * every item made from it has ended, at any depth, whatever its own fate;
 * the items made from it are not told (the source did not hand them out).
 * The randomised version is the "acked" mode of flat_map_property_test.ts.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type AcknowledgingSource,
  flatMapStage,
  Pipeline,
  type PipelineEvent,
  type SettledItem,
  stage,
} from "../mod.ts";

interface Message {
  readonly id: string;
  readonly body: number;
}

function queueOf(messages: readonly Message[]) {
  const told: SettledItem[] = [];
  const source: AcknowledgingSource<Message> = {
    async *[Symbol.asyncIterator]() {
      yield* messages;
    },
    itemId: (message) => message.id,
    settle: (items) => void told.push(...items),
    close: async () => {},
  };
  return { source, told };
}

/** A promise and its resolve. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

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

const messages: Message[] = Array.from({ length: 4 }, (_, i) => ({ id: `m${i}`, body: i }));
const split = flatMapStage("split", (message: Message) => [message.body, message.body + 10, message.body + 20]);

test("a flatMap parent is told only once all its outputs have ended, and the outputs are not told", async () => {
  const { source, told } = queueOf(messages);
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
  const { source, told } = queueOf(messages.slice(0, 1));
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
  const { source, told } = queueOf(messages.slice(0, 2));
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
