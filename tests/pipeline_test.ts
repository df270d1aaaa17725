import { test } from "node:test";
import assert from "node:assert/strict";
import { DeadLetterSchema, PermanentError, Pipeline, type PipelineEvent, stage } from "../mod.ts";
import { collect, countingSource, deferred, readableOf, type SourceKind } from "./_helpers.ts";

test("Pipeline.run() passes every item through every stage and counts it", async () => {
  const seen: number[] = [];
  const pipeline = new Pipeline({
    name: "happy",
    stages: [
      stage("double", async (n: number) => n * 2, { concurrency: 3 }),
      stage("record", (n: number) => {
        seen.push(n);
        return n;
      }),
    ],
  });
  const metrics = await pipeline.run([1, 2, 3, 4]);
  assert.deepEqual(seen, [2, 4, 6, 8]);
  assert.equal(metrics.totalIngested, 4);
  assert.equal(metrics.totalCompleted, 4);
  assert.equal(metrics.totalFailed, 0);
  assert.equal(metrics.itemsInFlight, 0);
  assert.equal(metrics.stageMetrics.double.succeeded, 4);
});

test("Pipeline.run() completes empty input cleanly with zero counts", async () => {
  const pipeline = new Pipeline({ name: "empty", stages: [stage("s", (n: number) => n)] });
  const metrics = await pipeline.run([]);
  assert.equal(metrics.totalIngested, 0);
  assert.equal(metrics.totalCompleted, 0);
  assert.equal(metrics.deadLetterCount, 0);
  assert.equal(metrics.stageMetrics.s.processed, 0);
});

// ---------------------------------------------------------------------------
// The four-stage etl pipeline.

interface Row {
  readonly id: number;
  readonly amount: number;
}

/** Rows 1‥20 as JSON lines; rows 5 and 13 have a negative amount. */
const LINES = Array.from({ length: 20 }, (_, i) => {
  const id = i + 1;
  return JSON.stringify({ id, amount: id === 5 || id === 13 ? -id : id * 10 });
});
const VALID_IDS = Array.from({ length: 20 }, (_, i) => i + 1).filter((id) => id !== 5 && id !== 13);
/** Valid rows whose first transform attempt fails. */
const FLAKY_IDS = VALID_IDS.filter((id) => id % 3 === 0);

function etl(loaded: number[] = []) {
  return new Pipeline({
    name: "etl",
    stages: [
      stage("ingest", (line: string) => JSON.parse(line) as Row, { concurrency: 1 }),
      stage("validate", async (row: Row) => {
        if (row.amount < 0) throw new PermanentError(`amount must not be negative (row ${row.id})`);
        return row;
      }, { concurrency: 4 }),
      stage("transform", async (row: Row, ctx) => {
        if (row.id % 3 === 0 && ctx.attempt === 1) throw new Error(`transient failure (row ${row.id})`);
        return { id: row.id, cents: row.amount * 100 };
      }, { concurrency: 8, maxRetries: 3, backoff: { initialDelayMs: 0 } }),
      stage("load", async (row: { id: number; cents: number }) => {
        loaded.push(row.id);
        return row.id;
      }, { concurrency: 2, maxRetries: 5 }),
    ],
    queueSize: 1000,
    deadLetterQueue: true,
  });
}

function assertEtlOutcome(pipeline: ReturnType<typeof etl>) {
  const metrics = pipeline.getMetrics();
  assert.equal(metrics.totalIngested, 20);
  assert.equal(metrics.totalCompleted, 18);
  assert.equal(metrics.totalFailed, 2);
  assert.equal(metrics.itemsInFlight, 0);
  assert.equal(metrics.deadLetterCount, 2);
  assert.deepEqual(Object.keys(metrics.stageMetrics), ["ingest", "validate", "transform", "load"]);
  const { ingest, validate, transform, load } = metrics.stageMetrics;
  assert.deepEqual([ingest.processed, ingest.succeeded, ingest.failed], [20, 20, 0]);
  assert.deepEqual([validate.processed, validate.succeeded, validate.failed], [20, 18, 2]);
  assert.deepEqual([transform.processed, transform.succeeded, transform.failed], [18, 18, 0]);
  assert.equal(transform.retries, FLAKY_IDS.length);
  assert.equal(validate.retries, 0, "a PermanentError is not retried");
  assert.deepEqual([load.processed, load.succeeded, load.failed], [18, 18, 0]);
  for (const stageMetrics of Object.values(metrics.stageMetrics)) {
    assert.equal(stageMetrics.inFlight, 0);
    assert.equal(stageMetrics.queueDepth, 0);
  }

  const letters = pipeline.deadLetters;
  assert.equal(letters.length, 2);
  assert.deepEqual(letters.map((letter) => letter.itemId), [4, 12], "default ids are sequence numbers from 0");
  for (const [letter, id] of [[letters[0], 5], [letters[1], 13]] as const) {
    assert.equal(letter.stage, "validate");
    assert.deepEqual(letter.item, { id, amount: -id }, "the item as it entered the failing stage");
    assert.equal(letter.reason, `amount must not be negative (row ${id})`);
    assert.equal(letter.error.name, "PermanentError");
    assert.equal(letter.attempts, 1);
    assert.ok(!Number.isNaN(Date.parse(letter.firstAttemptAt)));
    assert.ok(!Number.isNaN(Date.parse(letter.failedAt)));
    assert.deepEqual(DeadLetterSchema.parse(JSON.stringify(letter)).item, letter.item);
  }
}

test("Pipeline.run() runs the issue's four-stage etl pipeline: retries transients, dead-letters permanents", async () => {
  const loaded: number[] = [];
  const pipeline = etl(loaded);
  const metrics = await pipeline.run(LINES);
  assert.deepEqual(loaded, VALID_IDS, "every valid row is loaded once, in input order");
  assert.equal(metrics.totalCompleted, 18);
  assertEtlOutcome(pipeline);
});

const SOURCES: Record<
  SourceKind | "array",
  (lines: readonly string[]) => Parameters<ReturnType<typeof etl>["run"]>[0]
> = {
  array: (lines) => [...lines],
  iterable: (lines) => new Set(lines),
  generator: function* (lines) {
    yield* lines;
  },
  "async generator": async function* (lines) {
    for (const line of lines) {
      await Promise.resolve();
      yield line;
    }
  },
  ReadableStream: (lines) => readableOf(lines),
};

for (const [kind, make] of Object.entries(SOURCES)) {
  const article = /^[aeiou]/.test(kind) ? "an" : "a";
  test(`Pipeline.run() reads a source given as ${article} ${kind}`, async () => {
    const loaded: number[] = [];
    const pipeline = etl(loaded);
    const metrics = await pipeline.run(make(LINES));
    assert.deepEqual(loaded, VALID_IDS);
    assert.equal(metrics.totalIngested, 20);
    assertEtlOutcome(pipeline);
  });
}

test("Pipeline.stream() used with pipeThrough yields the last stage's outputs; failures go to the DLQ", async () => {
  const pipeline = etl();
  const pair = pipeline.stream();
  const outputs = await collect(readableOf(LINES).pipeThrough(pair));
  assert.deepEqual(outputs, VALID_IDS, "only successes come out, in input order");
  assertEtlOutcome(pipeline);
  const finished = await pair.finished;
  assert.deepEqual(finished, pipeline.getMetrics(), "finished resolves with the final metrics");
});

test("Pipeline.stream() returns a fresh pair on every call, each a run of its own", async () => {
  const pipeline = new Pipeline({ name: "inc", stages: [stage("inc", (n: number) => n + 1, { concurrency: 2 })] });
  const first = pipeline.stream();
  const second = pipeline.stream();
  assert.notEqual(first.writable, second.writable);
  const writer = second.writable.getWriter();
  const read = collect(second.readable);
  await writer.write(1);
  await writer.write(2);
  await writer.close();
  assert.deepEqual(await read, [2, 3]);
  assert.equal(pipeline.getMetrics().totalCompleted, 2);
  assert.equal(pipeline.getMetrics().itemsInFlight, 0);
});

/** A source of `0 … 4` that fails with `error` when asked for a sixth value, resolving `failing` first. */
function failingSource(kind: SourceKind, error: Error, failing: () => void) {
  const count = 5;
  switch (kind) {
    case "iterable": {
      let i = 0;
      return {
        [Symbol.iterator]: () => ({
          next: (): IteratorResult<number> => {
            if (i < count) return { done: false, value: i++ };
            failing();
            throw error;
          },
        }),
      };
    }
    case "generator":
      return (function* () {
        for (let i = 0; i < count; i++) yield i;
        failing();
        throw error;
      })();
    case "async generator":
      return (async function* () {
        for (let i = 0; i < count; i++) yield i;
        failing();
        throw error;
      })();
    case "ReadableStream": {
      let i = 0;
      return new ReadableStream<number>({
        pull(controller) {
          if (i < count) controller.enqueue(i++);
          else {
            failing();
            controller.error(error);
          }
        },
      }, { highWaterMark: 0 });
    }
  }
}

for (const kind of ["iterable", "generator", "async generator", "ReadableStream"] as const) {
  test(`Pipeline.run() rejects with the source's error after finishing what it read (${kind} source)`, async () => {
    const error = new Error(`the ${kind} broke`);
    const sourceFailed = deferred();
    const outputs: number[] = [];
    const pipeline = new Pipeline({
      name: "broken-source",
      stages: [
        // Holds every item until the source has failed, so that items are in flight when it does.
        stage("hold", async (n: number) => {
          await sourceFailed.promise;
          return n;
        }, { concurrency: 2 }),
        stage("record", (n: number) => {
          outputs.push(n * 10);
          return n;
        }),
      ],
    });
    let outputsWhenRejected = -1;
    const running = pipeline.run(failingSource(kind, error, () => sourceFailed.resolve())).catch((reason) => {
      outputsWhenRejected = outputs.length;
      throw reason;
    });
    await assert.rejects(running, (reason) => reason === error);
    assert.deepEqual(outputs, [0, 10, 20, 30, 40], "every value the source gave before failing is processed");
    assert.equal(outputsWhenRejected, 5, "run rejects only once everything read has finished");
    const metrics = pipeline.getMetrics();
    assert.equal(metrics.totalIngested, 5);
    assert.equal(metrics.totalCompleted, 5);
    assert.equal(metrics.totalFailed, 0);
    assert.equal(metrics.itemsInFlight, 0);
  });
}

test("Pipeline.run() completes empty input of every source kind with zero counts", async () => {
  for (const kind of ["iterable", "generator", "async generator", "ReadableStream"] as const) {
    let calls = 0;
    const pipeline = new Pipeline({
      name: "empty",
      stages: [stage("a", (n: number) => n), stage("b", (n: number) => (calls++, n), { concurrency: 3 })],
    });
    const { source, probe } = countingSource(kind, 0);
    const metrics = await pipeline.run(source);
    assert.equal(calls, 0, kind);
    assert.equal(probe.pulled, 0, kind);
    assert.deepEqual(
      [metrics.totalIngested, metrics.totalCompleted, metrics.totalFailed, metrics.itemsInFlight],
      [0, 0, 0, 0],
      kind,
    );
    assert.equal(metrics.deadLetterCount, 0, kind);
    assert.deepEqual(pipeline.deadLetters, [], kind);
    assert.equal(metrics.stageMetrics.b.processed, 0, kind);
  }
});

test("Pipeline.stream() over an empty source closes without output", async () => {
  const pipeline = new Pipeline({ name: "empty", stages: [stage("s", (n: number) => n)] });
  assert.deepEqual(await collect(readableOf<number>([]).pipeThrough(pipeline.stream())), []);
  assert.equal(pipeline.getMetrics().totalIngested, 0);
});

test("the id(input) option gives items their ids, seen in dead letters and events", async () => {
  const events: PipelineEvent[] = [];
  const pipeline = new Pipeline({
    name: "ids",
    id: (row: { key: string }) => `row-${row.key}`,
    onEvent: (event) => void events.push(event),
    stages: [
      stage("check", (row: { key: string }) => {
        if (row.key === "b") throw new PermanentError("b is refused");
        return row.key;
      }),
      stage("upper", (key: string) => key.toUpperCase()),
    ],
  });
  const metrics = await pipeline.run([{ key: "a" }, { key: "b" }, { key: "c" }]);
  assert.equal(metrics.totalCompleted, 2);
  assert.equal(pipeline.deadLetters.length, 1);
  assert.equal(pipeline.deadLetters[0].itemId, "row-b");
  assert.deepEqual(pipeline.deadLetters[0].item, { key: "b" });
  assert.deepEqual(
    new Set(events.map((event) => "itemId" in event ? event.itemId : undefined)),
    new Set(["row-a", "row-b", "row-c"]),
  );
  const deadLettered = events.filter((event) => event.type === "dead-lettered");
  assert.deepEqual(deadLettered.map((event) => event.itemId), ["row-b"]);
  assert.ok(events.some((event) => event.type === "completed" && event.stage === "upper" && event.itemId === "row-c"));
});

test("an id(input) that throws or returns a non-id dead-letters that item and the run goes on", async () => {
  const seen: number[] = [];
  const pipeline = new Pipeline({
    name: "bad-ids",
    id: (n: number) => {
      if (n === 2) throw new Error("no id for 2");
      return (n === 3 ? { not: "an id" } : n * 100) as number;
    },
    stages: [stage("s", (n: number) => (seen.push(n), n))],
  });
  const metrics = await pipeline.run([1, 2, 3, 4]);
  assert.deepEqual(seen, [1, 4]);
  assert.equal(metrics.totalIngested, 4);
  assert.equal(metrics.totalCompleted, 2);
  assert.equal(metrics.totalFailed, 2);
  assert.deepEqual(pipeline.deadLetters.map((letter) => letter.item), [2, 3]);
  assert.equal(pipeline.deadLetters[0].reason, "no id for 2");
  assert.equal(pipeline.deadLetters[1].error.name, "TypeError");
});
