/**
 * Shutdown at random points (issue 3, item 2): the pipelines and fault
 * schedules of tests/property_test.ts, run with `run(source, { signal,
 * forceSignal })` and aborted at a random moment — before the run, right
 * after `run()` is called, from inside the source after it handed out item
 * k, on the k-th `queued` event, from inside the first stage's k-th call, once
 * the last item is queued, or after a few milliseconds — sometimes over an
 * endless source, and sometimes forced (at the same moment, on the j-th event
 * or call after it, a few milliseconds after it, or with the force signal
 * alone).
 *
 * After every run: `run` resolved; ingested = completed + failed; every
 * ingested item is an output or a dead letter exactly once, with the outcome
 * its schedule implies (a graceful stop changes no outcome; a forced one may
 * only turn an outcome into a ShutdownError where the schedule allows);
 * nothing was read from the source after the abort and nothing it handed out
 * was dropped; after a forced shutdown every attempt in flight saw
 * `ctx.signal` abort with a ShutdownError, its items were dead-lettered with
 * that reason after the attempts they had made, and no stage function was
 * called again; and a second run of the same pipeline is unaffected.
 *
 * A child process (tests/fixtures/shutdown_child.ts) runs a dozen such
 * aborted runs with minute-long timers and returns from its main module: it
 * must exit on its own, so no timer or handle is left behind.
 *
 * SLUICE_PROPERTY_RUNS, SLUICE_PROPERTY_SEED and SLUICE_PROPERTY_KNOWN work as
 * in tests/property_test.ts. The regression tests at the end are failures the
 * properties found, shrunk to deterministic cases.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { Pipeline, stage } from "../mod.ts";
import { propertyParameters, runShutdownCase, shutdownCaseArb, withoutKnown } from "./_property_helpers.ts";
import { deferred, runtime } from "./_helpers.ts";

const RUNS = 1000;

test(
  `random shutdowns of random pipelines: run resolves, nothing ingested is lost, a forced shutdown interrupts what is in flight (${RUNS} cases by default)`,
  {
    timeout: 300_000,
  },
  async () => {
    const parameters = propertyParameters(process.env, RUNS);
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(shutdownCaseArb, async ({ c, plan }) => {
        cases++;
        assert.deepEqual(withoutKnown(await runShutdownCase(c, plan), process.env), []);
      }),
      parameters,
    );
    assert.ok(cases >= parameters.numRuns);
  },
);

// ---------------------------------------------------------------------------
// The process exits on its own after aborted runs.

const FIXTURE = fileURLToPath(new URL("./fixtures/shutdown_child.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("..", import.meta.url));

function childCommand(args: string[]): [string, string[]] {
  switch (runtime()) {
    case "deno":
      return [process.execPath, ["run", "-A", FIXTURE, ...args]];
    case "bun":
      return [process.execPath, [FIXTURE, ...args]];
    case "node":
      return [process.execPath, ["--import", "tsx", FIXTURE, ...args]];
  }
}

interface FixtureRun {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  /** True when it was still running after `killAfterMs` and was killed. */
  readonly killed: boolean;
}

/** Runs the shutdown fixture in a child process of this runtime, killing it if it runs past `killAfterMs`. */
async function runFixture(args: string[], killAfterMs: number): Promise<FixtureRun> {
  const [command, commandArgs] = childCommand(args);
  const child = spawn(command, commandArgs, {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", (data: string) => void (stdout += data));
  child.stderr.on("data", (data: string) => void (stderr += data));
  const ended = deferred<{ code: number | null; signal: string | null }>();
  child.on("close", (code, signal) => ended.resolve({ code, signal }));
  let killed = false;
  const guard = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, killAfterMs);
  try {
    const { code, signal } = await ended.promise;
    return { code, signal, stdout, stderr, killed };
  } finally {
    clearTimeout(guard);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}

test(`a ${runtime()} process that ran aborted pipelines exits on its own: no timer or handle is left behind`, {
  timeout: 120_000,
}, async () => {
  const seed = process.env.SLUICE_PROPERTY_SEED ?? String(Date.now() % 1_000_000);
  // The fixture's timers are a minute long: a leaked one keeps it alive well past this limit.
  const { code, signal, stdout, stderr, killed } = await runFixture([seed], 45_000);
  const report = () => `seed ${seed}\nstdout:\n${stdout}\nstderr:\n${stderr}`;
  assert.equal(killed, false, `the child did not exit on its own and was killed: ${report()}`);
  assert.equal(signal, null, report());
  assert.equal(code, 0, `the child exited with ${code}: ${report()}`);
  assert.match(stdout, /^DONE \d+ runs/m, report());
});

// ---------------------------------------------------------------------------
// Regressions found by the properties above, as deterministic tests.

test(
  "a forced shutdown with thousands of items waiting dead-letters them all (no stack overflow in the abort listener)",
  {
    timeout: 60_000,
  },
  async () => {
    const force = new AbortController();
    const started = deferred();
    const pipeline = new Pipeline({
      name: "deep-force",
      queueSize: 10_000,
      stages: [stage("hang", (n: number, ctx) => {
        started.resolve();
        return new Promise<number>((resolve) => ctx.signal.addEventListener("abort", () => resolve(n)));
      })],
    });
    const running = pipeline.run(Array.from({ length: 10_000 }, (_, i) => i), { forceSignal: force.signal });
    await started.promise;
    let thrown: unknown;
    try {
      force.abort(new Error("stop"));
    } catch (error) {
      thrown = error;
    }
    const metrics = await running;
    assert.equal(thrown, undefined);
    assert.equal(metrics.totalIngested, 10_000);
    assert.equal(metrics.totalFailed, 10_000);
    assert.equal(metrics.itemsInFlight, 0);
    assert.ok(pipeline.deadLetters.every((letter) => letter.error.name === "ShutdownError"));
  },
);

test("a forced shutdown from the 'started' event of a first attempt does not run that attempt", async () => {
  const force = new AbortController();
  const calls: { n: number; aborted: boolean }[] = [];
  const pipeline = new Pipeline({
    name: "started-force",
    onEvent: (event) => {
      if (event.type === "started") force.abort(new Error("stop"));
    },
    stages: [stage("s", (n: number, ctx) => {
      calls.push({ n, aborted: ctx.signal.aborted });
      return n;
    })],
  });
  const metrics = await pipeline.run([0], { forceSignal: force.signal });
  assert.equal(metrics.totalFailed, 1);
  assert.equal(pipeline.deadLetters[0].error.name, "ShutdownError");
  assert.deepEqual(
    calls,
    [],
    "the stage function ran after the forced shutdown (its side effects happened), yet the item is dead-lettered as interrupted",
  );
});

for (const kind of ["ReadableStream", "async generator"] as const) {
  test(`a graceful abort from inside a stage never reads the ${kind} source again nor drops a value it handed out`, async () => {
    // The abort lands a few microtasks after the stage starts: sweep the count to cover every point of the
    // source's read cycle (waiting for room, reading, ingesting).
    const failures: string[] = [];
    for (let hops = 0; hops <= 12; hops++) {
      const controller = new AbortController();
      let handedOut = 0;
      let handedOutAtAbort = -1;
      const source = kind === "ReadableStream"
        ? new ReadableStream<number>({
          pull(c) {
            c.enqueue(handedOut++);
          },
        }, { highWaterMark: 0 })
        : (async function* () {
          for (;;) yield handedOut++;
        })();
      const pipeline = new Pipeline({
        name: "abort-in-read",
        stages: [stage("s", async (n: number) => {
          if (n === 0) {
            for (let i = 0; i < hops; i++) await null;
            handedOutAtAbort = handedOut;
            controller.abort();
          }
          return n;
        })],
      });
      const metrics = await pipeline.run(source, { signal: controller.signal });
      if (handedOut !== handedOutAtAbort || metrics.totalIngested !== handedOut) {
        failures.push(
          `abort ${hops} microtasks in: ${handedOutAtAbort} values handed out at the abort, ${handedOut} at the end, ` +
            `${metrics.totalIngested} ingested`,
        );
      }
      assert.equal(metrics.totalIngested, metrics.totalCompleted + metrics.totalFailed);
    }
    assert.deepEqual(failures, []);
  });
}

test("an abort from inside a synchronous source's next() stops reading it at once", async () => {
  const controller = new AbortController();
  let pulled = 0;
  const source: Iterable<number> = {
    [Symbol.iterator]: () => ({
      next: () => {
        if (++pulled === 1) controller.abort();
        return { done: false, value: pulled };
      },
    }),
  };
  const pipeline = new Pipeline({ name: "sync-source-abort", stages: [stage("s", (n: number) => n)] });
  const metrics = await pipeline.run(source, { signal: controller.signal });
  assert.equal(metrics.totalIngested, metrics.totalCompleted + metrics.totalFailed);
  assert.equal(pulled, 1, `${pulled - 1} values were read from the source after it aborted the run`);
  assert.equal(metrics.totalIngested, 1);
});

test(
  `an endless synchronous source through quick stages can be stopped by a timer on ${runtime()} (the pipeline lets the event loop turn)`,
  {
    timeout: 60_000,
  },
  async () => {
    // In a child process: if the pipeline never yields to the event loop, no timer in this process could fire either.
    const { code, stdout, stderr, killed } = await runFixture(["starve"], 15_000);
    assert.equal(
      killed,
      false,
      "the zero-delay timer that aborts the run never fired: the run over an endless source never yielded " +
        `to the event loop (so timers, I/O and SIGINT handlers starve), and the child was killed after 15 s`,
    );
    assert.equal(code, 0, `stdout:\n${stdout}\nstderr:\n${stderr}`);
    assert.match(stdout, /^DONE starve/m);
  },
);

test("a forced shutdown stops a sequence of tasks at the task it interrupted: no later task runs for the dead-lettered item", async () => {
  const force = new AbortController();
  const calls: string[] = [];
  const pipeline = new Pipeline({
    name: "tasks-force",
    stages: [stage("s", [
      (n: number, ctx) => {
        calls.push("fetch");
        queueMicrotask(() => force.abort(new Error("stop")));
        // Answers once its signal aborts, as a late reply would.
        return new Promise<number>((resolve) => ctx.signal.addEventListener("abort", () => resolve(n)));
      },
      (n: number) => {
        calls.push("write");
        return n;
      },
    ], { retryScope: "stage" })],
  });
  const metrics = await pipeline.run([0], { forceSignal: force.signal });
  assert.equal(metrics.totalFailed, 1);
  assert.equal(pipeline.deadLetters[0].error.name, "ShutdownError");
  assert.deepEqual(
    calls,
    ["fetch"],
    "the write ran after the forced shutdown, yet the item is dead-lettered for replay",
  );
});
