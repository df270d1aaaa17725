import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, Pipeline, type PipelineEvent, stage } from "../mod.ts";

const taskEvents = (events: PipelineEvent[]) =>
  events.flatMap((e) =>
    e.type.startsWith("task") && "taskName" in e
      ? [`${e.type} ${e.taskName} #${e.attempt}${"error" in e ? ` ${e.error.message}` : ""}`]
      : []
  );

test("task events: a stage with several tasks reports each call, named by the function or { name, fn }", async () => {
  const events: PipelineEvent[] = [];
  let failures = 0;
  const pipeline = new Pipeline({
    stages: [stage("s", [
      function parse(n: number) {
        return n;
      },
      {
        name: "save",
        fn: async (n: number) => {
          if (failures++ === 0) throw new Error("once");
          return n;
        },
      },
      (n: number) => n,
    ], { maxRetries: 1, backoff: { initialDelayMs: 0 } })],
    onEvent: (event) => void events.push(event),
  });
  await pipeline.run([1]);
  assert.deepEqual(taskEvents(events), [
    "taskStarted parse #1",
    "taskCompleted parse #1",
    "taskStarted save #1",
    "taskRetry save #1 once",
    "taskStarted save #2",
    "taskCompleted save #2",
    "taskStarted s[2] #1",
    "taskCompleted s[2] #1",
  ]);
  const completed = events.find((e) => e.type === "taskCompleted");
  assert.ok(completed && completed.type === "taskCompleted");
  assert.equal(completed.stage, "s");
  assert.equal(completed.itemId, 0);
  assert.equal(completed.worker, 0);
  assert.equal(completed.taskIndex, 0);
  assert.ok(completed.durationMs >= 0 && completed.timestamp > 0);
});

test("task events: taskFailed when a task is out of retries, and with retryScope stage", async () => {
  for (const retryScope of ["task", "stage"] as const) {
    const events: PipelineEvent[] = [];
    const pipeline = new Pipeline({
      stages: [stage("s", [(n: number) => n, function boom(_: number): number {
        throw new Error("boom");
      }], { retryScope })],
      onEvent: (event) => void events.push(event),
    });
    const metrics = await pipeline.run([1]);
    assert.equal(metrics.totalFailed, 1);
    assert.deepEqual(taskEvents(events).slice(-1), ["taskFailed boom #1 boom"]);
  }
});

test("no task events for a single-function stage", async () => {
  const events: PipelineEvent[] = [];
  await new Pipeline({ stages: [stage("s", (n: number) => n)], onEvent: (e) => void events.push(e) }).run([1]);
  assert.deepEqual(taskEvents(events), []);
});

/** A task that counts how many of its calls run at once. */
function gauge(name: string) {
  const state = { running: 0, max: 0, calls: 0 };
  const fn = async (n: number) => {
    state.running++;
    state.calls++;
    state.max = Math.max(state.max, state.running);
    await new Promise((resolve) => setTimeout(resolve, 1));
    state.running--;
    return n;
  };
  Object.defineProperty(fn, "name", { value: name });
  return { fn, state };
}

test("taskConcurrency on the pipeline limits a task across stages; the other tasks keep the full concurrency", async () => {
  const fetchData = gauge("fetchData");
  const other = gauge("other");
  const pipeline = new Pipeline({
    taskConcurrency: { fetchData: 2 },
    stages: [
      stage("a", [other.fn, fetchData.fn], { concurrency: 6 }),
      stage("b", fetchData.fn, { concurrency: 6 }),
    ],
  });
  const metrics = await pipeline.run(Array.from({ length: 30 }, (_, i) => i));
  assert.equal(metrics.totalCompleted, 30);
  assert.equal(fetchData.state.calls, 60);
  assert.ok(fetchData.state.max <= 2, `fetchData ran ${fetchData.state.max} at once`);
  assert.ok(other.state.max > 2, `other ran at most ${other.state.max} at once`);
});

test("taskConcurrency on a stage limits that stage only and overrides the pipeline's", async () => {
  const limited = gauge("limited");
  const pipeline = new Pipeline({
    taskConcurrency: { limited: 3 },
    stages: [stage("a", [limited.fn, (n: number) => n], { concurrency: 5, taskConcurrency: { limited: 1 } })],
  });
  await pipeline.run(Array.from({ length: 10 }, (_, i) => i));
  assert.equal(limited.state.max, 1);
});

test("a worker waiting for a task slot holds no slot of another task", async () => {
  const first = gauge("first");
  let secondRunning = 0;
  let firstWhileSecondWaits = 0;
  const second = {
    name: "second",
    fn: async (n: number) => {
      secondRunning++;
      await new Promise((resolve) => setTimeout(resolve, 2));
      secondRunning--;
      return n;
    },
  };
  const pipeline = new Pipeline({
    stages: [stage("a", [async (n: number) => {
      if (secondRunning > 0) firstWhileSecondWaits++;
      return first.fn(n);
    }, second], { concurrency: 4, taskConcurrency: { second: 1 } })],
  });
  const metrics = await pipeline.run(Array.from({ length: 12 }, (_, i) => i));
  assert.equal(metrics.totalCompleted, 12);
  // With the second task serialised, the first kept running for other items meanwhile.
  assert.ok(firstWhileSecondWaits > 0);
});

test("a forced shutdown releases workers waiting for a task slot", async () => {
  const force = new AbortController();
  const pipeline = new Pipeline({
    stages: [stage("a", [(n: number) => n, {
      name: "hang",
      fn: (_: number, ctx) =>
        new Promise<number>((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))),
    }], { concurrency: 3, taskConcurrency: { hang: 1 } })],
    onEvent: (event) => {
      if (event.type === "taskStarted" && event.taskName === "hang" && event.itemId === 2) force.abort();
    },
  });
  const metrics = await pipeline.run([1, 2, 3, 4], { forceSignal: force.signal });
  assert.equal(metrics.totalFailed, 4);
  assert.equal(metrics.itemsInFlight, 0);
});

test("bad task names and limits are ConfigErrors", () => {
  const fetchData = (n: number) => n;
  assert.throws(
    () => new Pipeline({ taskConcurrency: { fetchDta: 2 }, stages: [stage("s", [fetchData, (n: number) => n])] }),
    (error: unknown) =>
      error instanceof ConfigError && /"taskConcurrency.fetchDta" names no task of any stage/.test(error.message) &&
      /"fetchData"/.test(error.message),
  );
  assert.throws(
    () => stage("s", [fetchData, (n: number) => n], { taskConcurrency: { nope: 1 } }),
    /option "taskConcurrency.nope" names no task of this stage/,
  );
  assert.throws(
    () => stage("s", [fetchData, (n: number) => n], { taskConcurrency: { fetchData: 0 } }),
    /option "taskConcurrency.fetchData" must be a positive integer; got 0/,
  );
  assert.throws(
    () => stage("s", [fetchData, { name: "", fn: fetchData }]),
    /"fn\[1\].name" must be a non-empty string/,
  );
  assert.throws(() => stage("s", [fetchData, { name: "x", fn: 3 } as never]), /"fn\[1\].fn" must be a function/);
});
