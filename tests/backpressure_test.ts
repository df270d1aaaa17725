import { test } from "node:test";
import assert from "node:assert/strict";
import { PermanentError, Pipeline, type PipelineEvent, stage } from "../mod.ts";
import { Counter, countingSource, Gate, type SourceKind } from "./_helpers.ts";

/** The bound: read-but-unfinished items never exceed Σ(queueSize + concurrency) + 8. */
const SLACK = 8;

for (const kind of ["iterable", "generator", "async generator", "ReadableStream"] as const satisfies SourceKind[]) {
  test(`a slow last stage makes the ${kind} source wait: read-but-unfinished items stay within the bound`, async () => {
    const queueSize = 5;
    const concurrency = { parse: 1, enrich: 3, check: 2, load: 2 };
    const bound = Object.values(concurrency).reduce((sum, c) => sum + queueSize + c, 0) + SLACK;
    const total = 10 * bound;
    const isBad = (n: number) => n % 10 === 3;

    let finished = 0;
    let worst = 0;
    let finishedWhenExhausted = -1;
    const { source, probe } = countingSource(kind, total, (p) => {
      worst = Math.max(worst, p.pulled - finished);
      if (p.pulled === total) finishedWhenExhausted = finished;
    });
    const ingested = new Counter();
    const gate = new Gate<number>();
    const pipeline = new Pipeline({
      name: "backpressure",
      queueSize,
      onEvent: (event: PipelineEvent) => {
        if (event.type === "queued" && event.stage === "parse") ingested.increment();
        if ((event.type === "completed" && event.stage === "load") || event.type === "dead-lettered") finished++;
      },
      stages: [
        stage("parse", (n: number) => n, { concurrency: concurrency.parse }),
        stage("enrich", async (n: number) => ({ n }), { concurrency: concurrency.enrich }),
        stage("check", (row: { n: number }) => {
          if (isBad(row.n)) throw new PermanentError(`bad ${row.n}`);
          return row.n;
        }, { concurrency: concurrency.check }),
        stage("load", async (n: number) => {
          await gate.enter(n);
          return n;
        }, { concurrency: concurrency.load }),
      ],
    });
    const running = pipeline.run(source);

    // The slow stage holds everything: the pipeline fills up to its capacity and no further.
    await ingested.reaches(bound - SLACK);
    assert.equal(gate.entered, concurrency.load);
    assert.equal(pipeline.getMetrics().totalCompleted, 0);
    assert.ok(probe.pulled < total, "the source is not read to the end while the slow stage is blocked");
    assert.equal(probe.exhausted, false);

    // Let the slow stage go one item at a time.
    const good = Array.from({ length: total }, (_, n) => n).filter((n) => !isBad(n));
    for (const expected of good) {
      const held = await gate.next();
      assert.equal(held.value, expected);
      held.release();
    }
    const metrics = await running;

    assert.ok(worst <= bound, `read-but-unfinished items peaked at ${worst}, above the bound ${bound}`);
    assert.ok(
      finishedWhenExhausted >= total - bound,
      `the last value was read when only ${finishedWhenExhausted} of ${total} items had finished`,
    );
    assert.equal(probe.pulled, total);
    assert.equal(metrics.totalIngested, total);
    assert.equal(metrics.totalCompleted, good.length);
    assert.equal(metrics.totalFailed, total - good.length);
    assert.equal(metrics.itemsInFlight, 0);
  });
}

test("getMetrics() shows a full queue in front of a blocked stage, and an empty one once it drains", async () => {
  const queueSize = 5;
  const gate = new Gate<number>();
  const queuedAtSlow = new Counter();
  const pipeline = new Pipeline({
    name: "queue-depth",
    queueSize: 50,
    onEvent: (event) => {
      if (event.type === "queued" && event.stage === "slow") queuedAtSlow.increment();
    },
    stages: [
      stage("fast", (n: number) => n + 1, { concurrency: 4 }),
      stage("slow", async (n: number) => {
        await gate.enter(n);
        return n;
      }, { concurrency: 2, queueSize }),
    ],
  });
  const running = pipeline.run(Array.from({ length: 100 }, (_, i) => i));

  // The slow stage takes queueSize + concurrency items: two in attempts, five waiting.
  await queuedAtSlow.reaches(queueSize + 2);
  const full = pipeline.getMetrics();
  assert.equal(full.stageMetrics.slow.queueDepth, queueSize);
  assert.equal(full.stageMetrics.slow.inFlight, 2);
  assert.equal(gate.entered, 2);
  assert.equal(full.totalCompleted, 0);
  assert.ok(full.itemsInFlight <= (50 + 4) + (queueSize + 2) + 8, `${full.itemsInFlight} items in flight`);

  // Releasing one item lets exactly one more in.
  const first = await gate.next();
  first.release();
  await queuedAtSlow.reaches(queueSize + 3);
  assert.equal(pipeline.getMetrics().stageMetrics.slow.queueDepth, queueSize);

  for (let released = 1; released < 100; released++) (await gate.next()).release();
  const metrics = await running;
  assert.equal(metrics.totalCompleted, 100);
  assert.equal(metrics.stageMetrics.slow.queueDepth, 0);
  assert.equal(metrics.stageMetrics.fast.queueDepth, 0);
  assert.equal(metrics.stageMetrics.slow.inFlight, 0);
});

test("a per-stage queueSize bounds only that stage: a small queue in front of a slow stage holds the source back", async () => {
  let finished = 0;
  let worst = 0;
  const total = 200;
  const { source, probe } = countingSource("generator", total, (p) => {
    worst = Math.max(worst, p.pulled - finished);
  });
  const gate = new Gate<number>();
  const pipeline = new Pipeline({
    name: "per-stage",
    queueSize: 3,
    stages: [
      stage("a", (n: number) => n, { concurrency: 2, queueSize: 2 }),
      stage("b", async (n: number) => {
        await gate.enter(n);
        finished++;
        return n;
      }, { concurrency: 1, queueSize: 1 }),
    ],
  });
  const running = pipeline.run(source);
  for (let i = 0; i < total; i++) (await gate.next()).release();
  await running;
  const bound = (2 + 2) + (1 + 1) + SLACK;
  assert.ok(worst <= bound, `peak ${worst} above ${bound}`);
  assert.equal(probe.pulled, total);
});

test("a consumer that does not read pipeline.stream()'s readable makes the writer wait", async () => {
  const queueSize = 3;
  const stages = { a: 2, b: 1 };
  const bound = (queueSize + stages.a) + (queueSize + stages.b) + SLACK;
  const total = 5 * bound;
  const pipeline = new Pipeline({
    name: "stream-backpressure",
    queueSize,
    stages: [
      stage("a", async (n: number) => n, { concurrency: stages.a }),
      stage("b", (n: number) => n * 2, { concurrency: stages.b }),
    ],
  });
  const { writable, readable } = pipeline.stream();
  const writer = writable.getWriter();
  const accepted = new Counter();
  let consumed = 0;
  let worst = 0;
  const producing = (async () => {
    for (let i = 0; i < total; i++) {
      await writer.write(i);
      accepted.increment();
      worst = Math.max(worst, accepted.count - consumed);
    }
    await writer.close();
  })();

  // Nothing is read yet: the writer gets as far as the pipeline holds (at least the first stage's
  // share), not to the end; the bound on what it holds is checked after every accepted write.
  await accepted.reaches(queueSize + stages.a);
  assert.ok(accepted.count < total);

  const reader = readable.getReader();
  const out: number[] = [];
  for (let next = await reader.read(); !next.done; next = await reader.read()) {
    out.push(next.value);
    consumed++;
  }
  await producing;
  assert.deepEqual(out, Array.from({ length: total }, (_, i) => i * 2));
  assert.ok(worst <= bound, `accepted-but-unread items peaked at ${worst}, above the bound ${bound}`);
});
