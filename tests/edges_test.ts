/**
 * Faulty edges (issue 3, item 3): sources that fail or never end, dead letter
 * sinks that fail or crawl, a `stream()` consumer that walks away, and
 * `onEvent` and logger callbacks that throw. Whatever the edge does, every
 * item read is accounted for (completed or dead-lettered), nothing hangs, and
 * the error the user must see reaches them.
 *
 * Synchronised on promises only; `guard` turns a hang into a failure.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  type DeadLetter,
  DeadLetterSinkError,
  type Logger,
  PermanentError,
  Pipeline,
  type PipelineEvent,
  type PipelineMetrics,
  ShutdownError,
  stage,
} from "../mod.ts";
import { deferred, Gate, guard, range } from "./_helpers.ts";
import { root, run, runtime } from "./fixtures/runtimes.ts";

// ---------------------------------------------------------------------------
// Helpers.

/** Checks the end-of-run contract: everything ingested completed or was dead-lettered. */
function assertConserved(metrics: PipelineMetrics, what = "metrics"): void {
  assert.equal(metrics.itemsInFlight, 0, `${what}: nothing in flight`);
  assert.equal(
    metrics.totalIngested,
    metrics.totalCompleted + metrics.totalFailed,
    `${what}: ingested = completed + failed`,
  );
  assert.equal(metrics.deadLetterCount, metrics.totalFailed, `${what}: every failure is dead-lettered`);
  for (const [name, stageMetrics] of Object.entries(metrics.stageMetrics)) {
    assert.equal(stageMetrics.inFlight, 0, `${what}: stage ${name} has nothing in flight`);
    assert.equal(stageMetrics.queueDepth, 0, `${what}: stage ${name} has nothing queued`);
  }
}

// ---------------------------------------------------------------------------
// A source that throws on its first, a middle and its last item.

type FailingKind = "sync iterable" | "async generator" | "ReadableStream";

/**
 * A source of `0 … length - 1` that throws `error` instead of giving item
 * `failAt`. `pulled` counts the items it gave; `asked` counts requests.
 */
function failingSource(kind: FailingKind, length: number, failAt: number, error: unknown) {
  const probe = { pulled: 0, asked: 0 };
  const next = (): IteratorResult<number> => {
    probe.asked++;
    if (probe.pulled === failAt) throw error;
    if (probe.pulled >= length) return { done: true, value: undefined };
    return { done: false, value: probe.pulled++ };
  };
  switch (kind) {
    case "sync iterable":
      return { probe, source: { [Symbol.iterator]: () => ({ next }) } as Iterable<number> };
    case "async generator":
      return {
        probe,
        source: (async function* () {
          for (let item = next(); !item.done; item = next()) {
            await Promise.resolve();
            yield item.value;
          }
        })(),
      };
    case "ReadableStream":
      return {
        probe,
        source: new ReadableStream<number>({
          pull(controller) {
            let item: IteratorResult<number>;
            try {
              item = next();
            } catch (thrown) {
              controller.error(thrown);
              return;
            }
            if (item.done) controller.close();
            else controller.enqueue(item.value);
          },
        }, { highWaterMark: 0 }),
      };
  }
}

const LENGTH = 7;
const POSITIONS = [["first", 0], ["middle", 3], ["last", LENGTH - 1]] as const;

for (const kind of ["sync iterable", "async generator", "ReadableStream"] as const) {
  for (const [position, failAt] of POSITIONS) {
    const article = kind.startsWith("a") ? "an" : "a";
    test(`${article} ${kind} source that throws on its ${position} item: what was read finishes, then run rejects with that error`, async () => {
      const error = new Error(`${kind} broke at item ${failAt}`);
      const { source, probe } = failingSource(kind, LENGTH, failAt, error);
      const finished: number[] = [];
      const sinkEntries: DeadLetter[] = [];
      let sinkClosed = false;
      const sink = new WritableStream<DeadLetter>({
        write(entry) {
          sinkEntries.push(entry);
        },
        close() {
          sinkClosed = true;
        },
      });
      const pipeline = new Pipeline({
        name: "failing-source",
        queueSize: 2,
        deadLetterQueue: sink,
        stages: [
          stage("check", async (n: number) => {
            if (n === 1) throw new PermanentError("item 1 is bad"); // a failure among the items read
            return n;
          }, { concurrency: 2 }),
          stage("finish", async (n: number) => {
            await Promise.resolve();
            finished.push(n);
            return n;
          }),
        ],
      });
      let finishedWhenRejected = -1;
      const running = pipeline.run(source).then(
        () => assert.fail("run must reject with the source's error"),
        (reason) => {
          finishedWhenRejected = finished.length;
          return reason;
        },
      );
      const reason = await guard(running, "run to reject");
      assert.equal(reason, error, "run rejects with the source's own error");

      const read = range(failAt);
      assert.equal(probe.pulled, failAt, "the source gave every item before the failing one");
      const good = read.filter((n) => n !== 1);
      assert.deepEqual(finished, good, "every good item read before the failure went through every stage");
      assert.equal(finishedWhenRejected, good.length, "run rejects only after everything read has finished");
      assert.deepEqual(
        sinkEntries.map((entry) => entry.item),
        read.filter((n) => n === 1),
        "every failure read before the failure was dead-lettered",
      );
      assert.equal(sinkClosed, true, "the dead letter sink is closed before run rejects");
      const metrics = pipeline.getMetrics();
      assert.equal(metrics.totalIngested, failAt);
      assert.equal(metrics.totalCompleted, good.length);
      assertConserved(metrics);
    });
  }
}

test("a sync iterable source that throws after giving part of a read keeps the part and asks no more", async () => {
  // A sync source is read many items at a time: the items before the throw in the same read are kept.
  const error = new RangeError("row 50 is corrupt");
  const { source, probe } = failingSource("sync iterable", 100, 50, error);
  const pipeline = new Pipeline({ name: "sync-burst", stages: [stage("s", (n: number) => n)] });
  await assert.rejects(guard(pipeline.run(source), "run"), (reason) => reason === error);
  assert.equal(probe.asked, 51, "the iterator is not asked again after it threw");
  const metrics = pipeline.getMetrics();
  assert.equal(metrics.totalIngested, 50);
  assert.equal(metrics.totalCompleted, 50);
  assertConserved(metrics);
});

test("a source that throws something that is not an Error: run rejects with exactly that value", async () => {
  for (const thrown of ["a string", 42, undefined, null, { code: "E_SOURCE" }]) {
    const { source } = failingSource("async generator", 5, 2, thrown);
    const pipeline = new Pipeline({ name: "odd-throw", stages: [stage("s", (n: number) => n)] });
    const outcome = await guard(
      pipeline.run(source).then(
        () => ({ resolved: true as const }),
        (reason) => ({ resolved: false as const, reason }),
      ),
      "run",
    );
    assert.equal(outcome.resolved, false, `run must reject when the source throws ${String(thrown)}`);
    assert.equal(outcome.resolved === false && outcome.reason, thrown);
    assertConserved(pipeline.getMetrics());
    assert.equal(pipeline.getMetrics().totalCompleted, 2);
  }
});

// ---------------------------------------------------------------------------
// A source that never ends, plus an abort.

test("a ReadableStream source whose next read never comes: abort makes run resolve with what was read", async () => {
  let pulls = 0;
  let cancelled = false;
  const firstTwo = deferred();
  const source = new ReadableStream<number>({
    pull(controller) {
      pulls++;
      if (pulls <= 2) return controller.enqueue(pulls - 1);
      firstTwo.resolve();
      return new Promise(() => {}); // after two items it hangs, as a stalled socket would
    },
    cancel() {
      cancelled = true;
    },
  }, { highWaterMark: 0 });
  const done: number[] = [];
  const pipeline = new Pipeline({ name: "stalled", stages: [stage("s", (n: number) => (done.push(n), n))] });
  const controller = new AbortController();
  const running = pipeline.run(source, { signal: controller.signal });
  await firstTwo.promise;
  controller.abort();
  const metrics = await guard(running, "run to resolve after the abort");
  assert.deepEqual(done, [0, 1]);
  assert.equal(metrics.totalIngested, 2);
  assert.equal(cancelled, true, "the stalled stream is cancelled");
  assertConserved(metrics);
});

test("an async iterator whose next() never settles: abort makes run resolve and return() is called", async () => {
  let given = 0;
  let returned = false;
  const hanging = deferred();
  const source: AsyncIterable<number> = {
    [Symbol.asyncIterator]: () => ({
      next: () => {
        if (given < 3) return Promise.resolve({ done: false, value: given++ });
        hanging.resolve();
        return new Promise<IteratorResult<number>>(() => {});
      },
      return: () => {
        returned = true;
        return Promise.resolve({ done: true, value: undefined });
      },
    }),
  };
  const pipeline = new Pipeline({ name: "hanging-iterator", stages: [stage("s", async (n: number) => n)] });
  const controller = new AbortController();
  const running = pipeline.run(source, { signal: controller.signal });
  await hanging.promise;
  controller.abort();
  const metrics = await guard(running, "run to resolve after the abort");
  assert.equal(metrics.totalIngested, 3);
  assert.equal(metrics.totalCompleted, 3);
  assert.equal(returned, true, "the iterator is told to stop");
  assertConserved(metrics);
});

test("an endless sync iterable whose return() throws: abort still makes run resolve", async () => {
  let given = 0;
  const controller = new AbortController();
  const source: Iterable<number> = {
    [Symbol.iterator]: () => ({
      next: () => ({ done: false, value: given++ }),
      return: () => {
        throw new Error("cannot stop");
      },
    }),
  };
  const pipeline = new Pipeline({
    name: "endless",
    queueSize: 8,
    stages: [stage("s", async (n: number) => {
      if (n === 20) controller.abort();
      return n;
    })],
  });
  const metrics = await guard(pipeline.run(source, { signal: controller.signal }), "run");
  assert.equal(metrics.totalIngested, given, "everything read is ingested");
  assert.ok(given >= 21);
  assertConserved(metrics);
});

// ---------------------------------------------------------------------------
// A dead letter sink that rejects writes.

/** Four stages with failures in three of them; `bad(stage, n)` picks the items that fail where. */
function failingEverywhere(deadLetterQueue: WritableStream<DeadLetter>, completed: number[]) {
  const failsAt = (n: number) => (n % 5 === 0 ? "a" : n % 7 === 0 ? "b" : n % 11 === 0 ? "c" : undefined);
  const at = (name: string) => async (n: number) => {
    if (failsAt(n) === name) throw new PermanentError(`${n} fails at ${name}`);
    return n;
  };
  const pipeline = new Pipeline({
    name: "many-failures",
    queueSize: 3,
    deadLetterQueue,
    stages: [
      stage("a", at("a"), { concurrency: 3 }),
      stage("b", at("b"), { concurrency: 2, ordered: false }),
      stage("c", at("c"), { concurrency: 4 }),
      stage("d", (n: number) => (completed.push(n), n)),
    ],
  });
  return { pipeline, failsAt };
}

/** Waits for `run` to reject and checks that it did so with a DeadLetterSinkError, which it returns. */
async function sinkFailure(run: Promise<unknown>): Promise<DeadLetterSinkError> {
  const rejected = await guard(
    run.then(() => assert.fail("run must reject"), (error) => error),
    "run to reject",
  );
  assert.ok(rejected instanceof DeadLetterSinkError, `expected a DeadLetterSinkError, got ${rejected}`);
  return rejected;
}

test("a dead letter sink that starts refusing part-way, under backpressure: run rejects after draining and no entry is lost", async () => {
  const accepted: DeadLetter[] = [];
  const sinkError = new Error("sink went away");
  const sink = new WritableStream<DeadLetter>({
    async write(entry) {
      await Promise.resolve();
      if (accepted.length === 4) throw sinkError;
      accepted.push(entry);
    },
  }, { highWaterMark: 1 });
  const completed: number[] = [];
  const { pipeline, failsAt } = failingEverywhere(sink, completed);
  const items = range(200);
  const failing = items.filter((n) => failsAt(n) !== undefined);
  const rejected = await sinkFailure(pipeline.run(items));
  assert.equal(rejected.cause, sinkError);
  assert.deepEqual(completed, items.filter((n) => failsAt(n) === undefined), "the pipeline drained first");
  const metrics = pipeline.getMetrics();
  assertConserved(metrics);
  assert.equal(metrics.totalFailed, failing.length);
  // Count them: every failure is either in the sink or kept in memory, exactly once.
  assert.equal(accepted.length, 4);
  assert.equal(rejected.unwritten, pipeline.deadLetters.length, "unwritten counts the entries kept");
  assert.equal(accepted.length + pipeline.deadLetters.length, failing.length, "sink + kept = every failure");
  const ids = [...accepted, ...pipeline.deadLetters].map((entry) => Number(entry.item)).sort((x, y) => x - y);
  assert.deepEqual(ids, failing, "each failed item appears exactly once");
  for (const entry of [...accepted, ...pipeline.deadLetters]) {
    assert.equal(entry.stage, failsAt(Number(entry.item)), "each entry names the stage it failed in");
    assert.equal(entry.reason, `${entry.item} fails at ${entry.stage}`);
  }
});

test("a dead letter sink that is errored before the run: every entry is kept and run rejects after draining", async () => {
  const sinkError = new Error("no such bucket");
  const sink = new WritableStream<DeadLetter>({
    start(controller) {
      controller.error(sinkError);
    },
  });
  const completed: number[] = [];
  const { pipeline, failsAt } = failingEverywhere(sink, completed);
  const items = range(60);
  const failing = items.filter((n) => failsAt(n) !== undefined);
  const rejected = await sinkFailure(pipeline.run(items));
  assert.equal(rejected.cause, sinkError);
  assert.equal(rejected.unwritten, failing.length);
  assert.deepEqual(pipeline.deadLetters.map((entry) => Number(entry.item)).sort((x, y) => x - y), failing);
  assert.equal(completed.length, items.length - failing.length);
  assertConserved(pipeline.getMetrics());
});

test("a dead letter sink that errors with entries queued inside it: the queued entries are kept too", async () => {
  let controller!: WritableStreamDefaultController;
  const firstWrite = deferred();
  const failFirstWrite = deferred();
  const accepted: DeadLetter[] = [];
  const sink = new WritableStream<DeadLetter>({
    start(c) {
      controller = c;
    },
    write(entry) {
      accepted.push(entry);
      firstWrite.resolve();
      return failFirstWrite.promise; // the first write hangs until the connection drops
    },
  }, { highWaterMark: 4 });
  const pipeline = new Pipeline({
    name: "sink-errors",
    deadLetterQueue: sink,
    stages: [stage("s", async (n: number) => {
      if (n === 6) {
        // Entries 0, 2 and 4 are with the sink by now: one being written, the others queued in it.
        await firstWrite.promise;
        const error = new Error("connection reset");
        controller.error(error);
        failFirstWrite.reject(error);
      }
      if (n % 2 === 0) throw new PermanentError(`even ${n}`);
      return n;
    })],
  });
  const rejected = await sinkFailure(pipeline.run(range(20)));
  assert.equal((rejected.cause as Error).message, "connection reset");
  // No write was confirmed, so every entry is kept, including the ones queued inside the sink.
  const kept = pipeline.deadLetters.map((entry) => Number(entry.item)).sort((x, y) => x - y);
  assert.deepEqual(kept, range(20).filter((n) => n % 2 === 0), "no failure is lost");
  assert.deepEqual(accepted.map((entry) => entry.item), [0]);
  assert.equal(rejected.unwritten, kept.length);
  assertConserved(pipeline.getMetrics());
});

test("a source that fails while the dead letter sink fails too: run's rejection still carries the source's error", async () => {
  // The source error says the input was not all read; the sink error says entries are kept in memory. Losing
  // either misleads: here the user must learn that their input stopped early.
  const sourceError = new Error("the export broke after 3 rows");
  const sinkError = new Error("dead letter bucket gone");
  const sink = new WritableStream<DeadLetter>({
    write() {
      throw sinkError;
    },
  });
  const source = (function* () {
    yield 0;
    yield 1;
    yield 2;
    throw sourceError;
  })();
  const pipeline = new Pipeline({
    name: "both-fail",
    deadLetterQueue: sink,
    stages: [stage("s", (n: number) => {
      if (n === 1) throw new PermanentError("bad row");
      return n;
    })],
  });
  const rejected = await guard(
    pipeline.run(source).then(() => assert.fail("run must reject"), (error: unknown) => error),
    "run to reject",
  );
  const carried = (error: unknown, depth = 0): boolean => {
    if (error === sourceError) return true;
    if (depth > 4 || typeof error !== "object" || error === null) return false;
    const { cause, errors } = error as { cause?: unknown; errors?: unknown[] };
    return carried(cause, depth + 1) || (Array.isArray(errors) && errors.some((inner) => carried(inner, depth + 1)));
  };
  assert.ok(carried(rejected), `run rejected with ${rejected}, which does not carry the source's error`);
  assert.deepEqual(pipeline.deadLetters.map((entry) => entry.item), [1], "the refused entry is kept");
  assertConserved(pipeline.getMetrics());
});

// ---------------------------------------------------------------------------
// A slow dead letter sink.

test("a slow dead letter sink (highWaterMark 1, writes released by hand): no deadlock, all entries arrive, backpressure holds the source", async () => {
  const QUEUE = 4;
  const CONCURRENCY = 2;
  const STAGES = 2;
  // The bound of the contract: sum over stages of (queueSize + concurrency), plus 8.
  const bound = STAGES * (QUEUE + CONCURRENCY) + 8;
  const writes = new Gate<DeadLetter>();
  let released = 0;
  let closed = false;
  const sink = new WritableStream<DeadLetter>({
    write: (entry) => writes.enter(entry).then(() => void released++),
    close() {
      closed = true;
    },
  }, { highWaterMark: 1 });
  let pulled = 0;
  let worstAhead = 0;
  const TOTAL = 120;
  const source = new ReadableStream<number>({
    pull(controller) {
      if (pulled === TOTAL) return controller.close();
      controller.enqueue(pulled++);
      // Items read but not yet through the sink: bounded while the sink holds writes.
      worstAhead = Math.max(worstAhead, pulled - released);
    },
  }, { highWaterMark: 0 });
  const pipeline = new Pipeline({
    name: "slow-sink",
    queueSize: QUEUE,
    deadLetterQueue: sink,
    stages: [
      stage("pass", async (n: number) => n, { concurrency: CONCURRENCY }),
      stage("refuse", async (n: number) => {
        throw new PermanentError(`refused ${n}`);
      }, { concurrency: CONCURRENCY }),
    ],
  });
  let resolved = false;
  const running = pipeline.run(source).then((metrics) => {
    resolved = true;
    return metrics;
  });
  const arrived: number[] = [];
  for (let i = 0; i < TOTAL; i++) {
    const held = await guard(writes.next(), `dead letter ${i} to reach the sink`);
    arrived.push(Number(held.value.item));
    assert.equal(resolved, false, "run waits for the sink");
    assert.ok(
      pulled - released <= bound,
      `backpressure: ${pulled} read, ${released} through the sink, bound ${bound}`,
    );
    held.release();
  }
  const metrics = await guard(running, "run to resolve");
  assert.deepEqual(arrived, range(TOTAL), "every entry arrives, in order");
  assert.equal(closed, true, "the sink is closed at the end");
  assert.ok(worstAhead <= bound, `at most ${bound} items ahead of the sink; saw ${worstAhead}`);
  assert.deepEqual(pipeline.deadLetters, [], "nothing was kept in memory instead");
  assert.equal(metrics.deadLetterCount, TOTAL);
  assertConserved(metrics);
});

// ---------------------------------------------------------------------------
// A consumer of pipeline.stream() that cancels the readable midway.

/** An endless pull source that counts its pulls and notes a cancel. */
function endlessSource() {
  const probe = { pulled: 0, cancelled: false, cancelReason: undefined as unknown };
  const source = new ReadableStream<number>({
    pull(controller) {
      controller.enqueue(probe.pulled++);
    },
    cancel(reason) {
      probe.cancelled = true;
      probe.cancelReason = reason;
    },
  }, { highWaterMark: 0 });
  return { source, probe };
}

test("stream(): a consumer that cancels midway stops the source, aborts in-flight attempts and leaves consistent metrics", async () => {
  const { source, probe } = endlessSource();
  const gate = new Gate<number>();
  const signals = new Map<number, AbortSignal>();
  const pipeline = new Pipeline({
    name: "cancelled",
    queueSize: 4,
    stages: [
      stage("first", (n: number) => n),
      stage("slow", async (n: number, ctx) => {
        signals.set(n, ctx.signal);
        if (n >= 3) await gate.enter(n); // items from 3 on are held: in flight when the consumer leaves
        return n * 10;
      }, { concurrency: 2 }),
    ],
  });
  const pair = pipeline.stream();
  const reader = source.pipeThrough(pair).getReader();
  const received: number[] = [];
  const reading = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      received.push(value);
    }
  })();
  await guard(gate.next(), "the first held attempt");
  await guard(gate.next(), "the second held attempt");
  const reason = new Error("the consumer has seen enough");
  const pulledAtCancel = probe.pulled;
  await guard(reader.cancel(reason), "cancel");
  await reading;
  const metrics = await guard(pair.finished, "finished");

  assert.deepEqual(received, [0, 10, 20], "the consumer got what came before the held items");
  assert.equal(probe.pulled, pulledAtCancel, "the source is not read after the cancel");
  assert.equal(probe.cancelled, true, "the source is cancelled");
  const held = [3, 4];
  for (const n of held) {
    assert.equal(signals.get(n)?.aborted, true, `ctx.signal of the in-flight attempt for item ${n} is aborted`);
    assert.ok(signals.get(n)?.reason instanceof ShutdownError, "aborted with a ShutdownError");
  }
  for (const n of [0, 1, 2]) assert.equal(signals.get(n)?.aborted, false, `finished attempt ${n} is not aborted`);
  assertConserved(metrics, "finished");
  assertConserved(pipeline.getMetrics(), "getMetrics()");
  assert.equal(metrics.totalCompleted, 3);
  assert.ok(
    probe.pulled - metrics.totalIngested <= 1,
    `at most the one value pipeTo had in hand is read and not ingested: read ${probe.pulled}, ingested ${metrics.totalIngested}`,
  );
  const letters = pipeline.deadLetters;
  assert.equal(letters.length, metrics.totalFailed);
  assert.ok(letters.length >= held.length);
  for (const letter of letters) {
    assert.equal(letter.error.name, "ShutdownError", `item ${letter.itemId} is dead-lettered with a ShutdownError`);
    assert.equal(letter.attempts, 1, "not retried");
  }
  const slowItems = letters.filter((letter) => letter.stage === "slow").map((letter) => Number(letter.item));
  for (const n of held) {
    assert.ok(slowItems.includes(n), `interrupted item ${n} is dead-lettered with the value it entered the stage with`);
  }
});

test("stream(): after the consumer cancels, the writer side errors with the cancel reason", async () => {
  const gate = new Gate<number>();
  const pipeline = new Pipeline({
    name: "writer-errors",
    stages: [stage("hold", async (n: number) => {
      await gate.enter(n);
      return n;
    }, { concurrency: 1, maxRetries: 3, backoff: { initialDelayMs: 0 } })],
  });
  const { writable, readable, finished } = pipeline.stream();
  const writer = writable.getWriter();
  const reader = readable.getReader();
  const pendingRead = reader.read();
  void writer.write(1).catch(() => {});
  await guard(gate.next(), "the first attempt");
  const reason = new Error("consumer gone");
  await reader.cancel(reason);
  assert.deepEqual(await pendingRead, { done: true, value: undefined });
  await assert.rejects(guard(writer.closed, "writer.closed"), (error) => error === reason);
  await assert.rejects(writer.write(2), "a write after the cancel fails");
  const metrics = await guard(finished, "finished");
  assertConserved(metrics);
  assert.equal(metrics.totalIngested, 1, "the refused write is not ingested");
  assert.equal(metrics.totalFailed, 1);
  assert.equal(pipeline.deadLetters[0].error.name, "ShutdownError");
  assert.equal(metrics.stageMetrics.hold.retries, 0, "an interrupted attempt is not retried");
});

test("stream(): cancelling with retries pending and items queued in later stages accounts for every item", async () => {
  const { source, probe } = endlessSource();
  const gate = new Gate<number>();
  const failedOnce = new Set<number>();
  const pipeline = new Pipeline({
    name: "cancel-everywhere",
    queueSize: 3,
    stages: [
      stage("flaky", async (n: number) => {
        if (n % 3 === 0 && !failedOnce.has(n)) {
          failedOnce.add(n);
          throw new Error(`transient ${n}`); // retried after a long backoff: in backoff when the cancel comes
        }
        return n;
      }, { concurrency: 3, ordered: false, maxRetries: 2, backoff: { initialDelayMs: 60_000, jitter: false } }),
      stage("held", async (n: number) => {
        await gate.enter(n);
        return n;
      }, { concurrency: 2, timeoutMs: 60_000 }),
      stage("last", (n: number) => n),
    ],
  });
  const pair = pipeline.stream();
  const reader = source.pipeThrough(pair).getReader();
  const reading = reader.read();
  await guard(gate.next(), "a held attempt");
  await guard(gate.next(), "a second held attempt");
  await reader.cancel();
  await reading;
  const metrics = await guard(pair.finished, "finished");
  assertConserved(metrics);
  assert.ok(probe.cancelled);
  assert.ok(metrics.totalFailed > 0);
  for (const letter of pipeline.deadLetters) assert.equal(letter.error.name, "ShutdownError");
  const stages = new Set(pipeline.deadLetters.map((letter) => letter.stage));
  assert.ok(stages.has("flaky"), "the items waiting out a backoff are dead-lettered");
  assert.ok(stages.has("held"), "the items in an attempt with a timeout are dead-lettered");
  assert.equal(metrics.totalIngested, metrics.totalCompleted + pipeline.deadLetters.length);
});

// ---------------------------------------------------------------------------
// onEvent and logger callbacks that throw.

/** Three stages with a retry and a dead letter, so every event type and log level is produced. */
function busyPipeline(options: { logger?: Logger; onEvent?: (event: PipelineEvent) => unknown }) {
  const tried = new Set<number>();
  return new Pipeline({
    name: "busy",
    logger: options.logger,
    onEvent: options.onEvent as (event: PipelineEvent) => void,
    stages: [
      stage("a", async (n: number, ctx) => {
        ctx.logger.info("stage a saw an item", { n }); // a stage's own log record goes to the same logger
        if (n === 2 && !tried.has(n)) {
          tried.add(n);
          throw new Error("transient");
        }
        return n;
      }, { concurrency: 2, maxRetries: 1, backoff: { initialDelayMs: 0 } }),
      stage("b", (n: number) => {
        if (n === 3) throw new PermanentError("three is bad");
        return n;
      }),
      stage("c", (n: number) => n, { concurrency: 3, ordered: false }),
    ],
  });
}

function assertBusyOutcome(metrics: PipelineMetrics): void {
  assert.deepEqual([metrics.totalIngested, metrics.totalCompleted, metrics.totalFailed], [6, 5, 1]);
  assert.equal(metrics.stageMetrics.a.retries, 1);
  assertConserved(metrics);
}

/**
 * A rejected promise that records whether anyone handled it. What a real
 * async logger or listener returns when it fails; left unhandled, such a
 * rejection ends a Node process (`--unhandled-rejections=throw`, the
 * default). This one only rejects towards whoever calls `then` (which
 * `catch`, `finally` and `await` all do), so a bug here fails an assertion
 * instead of taking the test run down.
 */
class Rejection extends Promise<never> {
  static made: Rejection[] = [];
  handled = false;
  error: unknown;

  static of(error: unknown): Rejection {
    const promise = new Rejection(() => {}); // stays pending: nothing to go unhandled
    promise.error = error;
    Rejection.made.push(promise);
    return promise;
  }

  static unhandled(): number {
    return Rejection.made.filter((promise) => !promise.handled).length;
  }

  override then<R1 = never, R2 = never>(
    onFulfilled?: ((value: never) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    this.handled = true;
    return Promise.reject(this.error).then(onFulfilled, onRejected);
  }

  static override get [Symbol.species]() {
    return Promise;
  }
}

test("an async logger whose calls reject never breaks a run: every rejection is handled", async () => {
  Rejection.made = [];
  const rejecting = () => Rejection.of(new Error("log shipper down"));
  const logger = { debug: rejecting, info: rejecting, warn: rejecting, error: rejecting } as unknown as Logger;
  const metrics = await guard(busyPipeline({ logger }).run(range(6)), "run");
  assertBusyOutcome(metrics);
  assert.ok(Rejection.made.length > 10, "the logger was called");
  const unhandled = Rejection.unhandled();
  assert.equal(unhandled, 0, `${unhandled} of ${Rejection.made.length} rejected logger promises were left unhandled`);
});

test("a logger that throws and an onEvent listener that throws, together, never break a run", async () => {
  let calls = 0;
  const logger: Logger = {
    debug() {
      throw new Error("debug broke");
    },
    info() {
      throw new Error("info broke");
    },
    warn() {
      throw new Error("warn broke"); // the listener's failure is reported here, and this throws too
    },
    error() {
      throw new Error("error broke");
    },
  };
  const metrics = await guard(
    busyPipeline({
      logger,
      onEvent: () => {
        calls++;
        throw new TypeError("listener broke");
      },
    }).run(range(6)),
    "run",
  );
  assertBusyOutcome(metrics);
  assert.ok(calls > 0);
});

test("an onEvent listener that throws non-errors (undefined, null, a string) never breaks a run", async () => {
  for (const thrown of [undefined, null, "nope", 0]) {
    const metrics = await guard(
      busyPipeline({
        onEvent: () => {
          throw thrown;
        },
      }).run(range(6)),
      `run with a listener throwing ${String(thrown)}`,
    );
    assertBusyOutcome(metrics);
  }
});

test("an async onEvent listener that rejects on some events and a logger that rejects never leave a rejection unhandled", async () => {
  Rejection.made = [];
  const metrics = await guard(
    busyPipeline({
      logger: {
        debug: () => {},
        info: () => {},
        warn: () => Rejection.of(new Error("warn rejected")),
        error: () => {},
      } as unknown as Logger,
      onEvent: (
        event,
      ) => (event.type === "retry" || event.type === "dead-lettered"
        ? Rejection.of(new Error(`listener rejected ${event.type}`))
        : undefined),
    }).run(range(6)),
    "run",
  );
  assertBusyOutcome(metrics);
  assert.ok(Rejection.made.length >= 2);
  const unhandled = Rejection.unhandled();
  assert.equal(unhandled, 0, `${unhandled} of ${Rejection.made.length} rejected promises were left unhandled`);
});

test("onEvent and logger that throw never break stream(): outputs, metrics and finished are unaffected", async () => {
  const throwing = () => {
    throw new Error("broken callback");
  };
  const pipeline = busyPipeline({
    logger: { debug: throwing, info: throwing, warn: throwing, error: throwing },
    onEvent: throwing,
  });
  const { writable, readable, finished } = pipeline.stream();
  const writer = writable.getWriter();
  const outputs: number[] = [];
  const reading = (async () => {
    for await (const value of readable as unknown as AsyncIterable<number>) outputs.push(value);
  })();
  for (const n of range(6)) await writer.write(n);
  await writer.close();
  await guard(reading, "reading");
  assertBusyOutcome(await guard(finished, "finished"));
  assert.deepEqual(outputs.sort(), [0, 1, 2, 4, 5]);
});

// ---------------------------------------------------------------------------
// Deep synchronous work.

test("a synchronous stage with a large queue does not overflow the stack", async () => {
  // A sync source is read a queue's worth at a time and a sync stage finishes each item at once.
  for (const queueSize of [1000, 5000, 20_000]) {
    const pipeline = new Pipeline({ name: "deep", queueSize, stages: [stage("sync", (n: number) => n + 1)] });
    const outcome = await pipeline.run(range(queueSize * 2)).then(
      (metrics) => ({ metrics, error: undefined }),
      (error: unknown) => ({ metrics: undefined, error }),
    );
    assert.equal(outcome.error, undefined, `queueSize ${queueSize}: run rejected with ${outcome.error}`);
    assert.equal(outcome.metrics?.totalCompleted, queueSize * 2);
  }
});

// ---------------------------------------------------------------------------
// A dead letter stream that is already closed (reused for a second run).

/**
 * Runs `code` (a module importing sluice as `SLUICE`) in a child process of
 * this runtime: a fault that takes the whole process down must fail the test,
 * not end the test run.
 */
async function inChild(code: string) {
  const dir = mkdtempSync(join(tmpdir(), "sluice-edges-"));
  const file = join(dir, "child.mts");
  writeFileSync(file, code.replaceAll("SLUICE", JSON.stringify(pathToFileURL(join(root, "mod.ts")).href)));
  const execPath = (globalThis as { process: { execPath: string } }).process.execPath;
  const args = runtime === "deno"
    ? ["run", "-A", `--config=${join(root, "deno.json")}`, file]
    : runtime === "bun"
    ? [file]
    : ["--import", "tsx", file];
  try {
    return await run(execPath, args, { cwd: root });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a second run over a WritableStream dead letter queue (closed by the first run) fails cleanly, not the process", async () => {
  const result = await inChild(`
    import { Pipeline, PermanentError, stage } from SLUICE;
    const sink = new WritableStream({ write() {} });
    const pipeline = new Pipeline({
      name: "reused",
      deadLetterQueue: sink,
      stages: [stage("s", (n: number) => { if (n === 1) throw new PermanentError("bad"); return n; })],
    });
    await pipeline.run([0, 1, 2]);
    try {
      const metrics = await pipeline.run([0, 1, 2]);
      console.log("RESOLVED " + JSON.stringify(metrics));
    } catch (error) {
      console.log("REJECTED " + error.name + ": " + error.message);
      console.log("KEPT " + pipeline.deadLetters.length);
    }
  `);
  assert.equal(
    result.code,
    0,
    `the process must not die: exit ${result.code ?? result.signal}\n${result.stdout}\n${result.stderr.slice(0, 2000)}`,
  );
  assert.match(result.stdout, /^REJECTED /m, "the second run rejects: its dead letter stream is closed");
  assert.match(result.stdout, /deadLetterQueue|closed/, "the error says the dead letter stream is closed");
});
