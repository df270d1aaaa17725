import { test } from "node:test";
import assert from "node:assert/strict";
import { CircuitOpenError, Pipeline, type PipelineEvent, ShutdownError, silentLogger, stage } from "../mod.ts";
import { CircuitBreaker, type CircuitBreakerOptions } from "../src/circuit_breaker.ts";
import { RunContext } from "../src/run_context.ts";
import { FakeClock } from "./_fake_clock.ts";
import { countingSource, deferred, range } from "./_helpers.ts";

function breaker(options: CircuitBreakerOptions, events: PipelineEvent[] = []) {
  const run = new RunContext("p", ["s"], silentLogger, (event) => void events.push(event));
  const clock = new FakeClock();
  const counters = run.metrics.stage("s");
  return { breaker: new CircuitBreaker(options, "s", run, counters, clock), clock, run, counters, events };
}

const failure = new Error("down");

test("CircuitBreaker opens after failureThreshold failures in a row (windowSize defaults to the threshold); a success resets", () => {
  const { breaker: b, counters } = breaker({ failureThreshold: 3, cooldownMs: 100 });
  const t = b.admit() as number;
  b.settled(t, true, failure);
  b.settled(t, true, failure);
  b.settled(t, false, undefined);
  b.settled(t, true, failure);
  b.settled(t, true, failure);
  assert.equal(b.state, "closed");
  b.settled(t, true, failure);
  assert.equal(b.state, "open");
  assert.equal(counters.circuit, "open");
  assert.equal(counters.snapshot(1).circuit, "open");
});

test("CircuitBreaker with windowMs counts failures within the window only (fake clock)", () => {
  const { breaker: b, clock } = breaker({ failureThreshold: 2, windowMs: 1000, cooldownMs: 100 });
  const t = b.admit() as number;
  b.settled(t, true, failure);
  clock.advance(1500);
  b.settled(t, true, failure);
  assert.equal(b.state, "closed");
  clock.advance(500);
  b.settled(t, true, failure);
  assert.equal(b.state, "open");
});

test("CircuitBreaker: open, attempts wait; after cooldownMs halfOpenProbes go through; a success closes it and wakes everyone", async () => {
  const events: PipelineEvent[] = [];
  const { breaker: b, clock } = breaker({ failureThreshold: 1, cooldownMs: 100, halfOpenProbes: 2 }, events);
  b.settled(b.admit() as number, true, failure);
  assert.equal(b.state, "open");
  const admitted: number[] = [];
  const waits = range(4).map((i) => Promise.resolve(b.admit()).then((ticket) => (admitted.push(i), ticket)));
  await Promise.resolve();
  assert.equal(b.waiting, 4);
  clock.advance(99);
  assert.equal(b.state, "open");
  clock.advance(1);
  assert.equal(b.state, "halfOpen");
  const probe = await waits[0];
  await waits[1];
  assert.deepEqual(admitted, [0, 1]);
  assert.equal(b.waiting, 2);
  b.settled(probe, false, undefined);
  assert.equal(b.state, "closed");
  await Promise.all(waits);
  assert.deepEqual(admitted, [0, 1, 2, 3]);
  assert.deepEqual(events.map((e) => e.type), ["circuitOpened", "circuitHalfOpen", "circuitClosed"]);
});

test("CircuitBreaker: a failed probe opens it again; outcomes of attempts admitted before a change of state are not counted", async () => {
  const { breaker: b, clock } = breaker({ failureThreshold: 2, cooldownMs: 10 });
  const early = b.admit() as number;
  b.settled(early, true, failure);
  b.settled(early, true, failure);
  assert.equal(b.state, "open");
  clock.advance(10);
  assert.equal(b.state, "halfOpen");
  const probe = await b.admit();
  b.settled(early, false, undefined); // stale: admitted while closed
  assert.equal(b.state, "halfOpen");
  b.settled(probe, true, failure);
  assert.equal(b.state, "open");
  clock.advance(10);
  b.settled(await b.admit(), false, undefined);
  assert.equal(b.state, "closed");
});

test("CircuitBreaker: a graceful stop while open refuses the waiting attempts with CircuitOpenError after drainTimeoutMs", async () => {
  const { breaker: b, clock } = breaker({ failureThreshold: 1, cooldownMs: 60_000, drainTimeoutMs: 50 });
  b.settled(b.admit() as number, true, failure);
  const waiting = Promise.resolve(b.admit()).then(() => "admitted", (error: unknown) => error);
  b.stop();
  clock.advance(49);
  assert.equal(b.waiting, 1);
  clock.advance(1);
  const error = await waiting;
  assert.ok(error instanceof CircuitOpenError);
  assert.equal((error as CircuitOpenError).stage, "s");
  assert.equal((error as Error).cause, failure);
  await assert.rejects(Promise.resolve(b.admit()), CircuitOpenError);
  b.dispose();
  assert.equal(clock.pending, 0);
});

test("CircuitBreaker: a forced shutdown refuses the waiting attempts with ShutdownError", async () => {
  const { breaker: b, run } = breaker({ failureThreshold: 1, cooldownMs: 60_000 });
  b.settled(b.admit() as number, true, failure);
  const waiting = Promise.resolve(b.admit());
  run.force(new Error("now"));
  await assert.rejects(waiting, ShutdownError);
  b.dispose();
});

test("a stage's breaker opens, its items wait (not failed) with the source held back, and a successful probe lets them all through", async () => {
  let down = true;
  const events: PipelineEvent[] = [];
  let readsWhileOpen = 0;
  const pipeline = new Pipeline({
    name: "breaker",
    queueSize: 4,
    onEvent: (event) => {
      events.push(event);
      if (event.type === "circuitOpened") down = false; // the service comes back while the circuit is open
    },
    stages: [stage("call", (n: number) => {
      if (down) throw new Error("service down");
      return n;
    }, { circuitBreaker: { failureThreshold: 2, cooldownMs: 20 } })],
  });
  const { source } = countingSource("generator", 500, () => {
    if (pipeline.getMetrics().stageMetrics.call.circuit === "open") readsWhileOpen++;
  });
  const metrics = await pipeline.run(source);
  assert.equal(metrics.totalFailed, 2, "only the two attempts that opened it failed");
  assert.equal(metrics.totalCompleted, 498);
  assert.equal(metrics.stageMetrics.call.circuit, "closed");
  assert.ok(readsWhileOpen <= 4 + 1 + 8, `the source was read ${readsWhileOpen} times while the circuit was open`);
  assert.deepEqual(
    events.filter((e) => e.type.startsWith("circuit")).map((e) => e.type),
    ["circuitOpened", "circuitHalfOpen", "circuitClosed"],
  );
});

test("a graceful shutdown while a stage's circuit is open dead-letters the waiting items with CircuitOpenError after drainTimeoutMs", async () => {
  const stop = new AbortController();
  const pipeline = new Pipeline({
    name: "stuck",
    queueSize: 3,
    onEvent: (event) => {
      if (event.type === "circuitOpened") stop.abort();
    },
    stages: [stage("call", (_n: number) => {
      throw new Error("service down");
    }, { concurrency: 2, circuitBreaker: { failureThreshold: 1, cooldownMs: 3_600_000, drainTimeoutMs: 5 } })],
  });
  const metrics = await pipeline.run(range(100), { signal: stop.signal });
  assert.equal(metrics.totalCompleted, 0);
  assert.equal(metrics.totalIngested, metrics.totalFailed);
  assert.ok(metrics.totalIngested < 100);
  const reasons = new Set(pipeline.deadLetters.map((letter) => letter.error.name));
  assert.ok(reasons.has("CircuitOpenError"), [...reasons].join());
  assert.ok(pipeline.deadLetters.every((letter) => letter.attempts >= 1));
});

test("a forced shutdown while the circuit is open dead-letters the waiting items with ShutdownError", async () => {
  const force = new AbortController();
  const opened = deferred();
  const pipeline = new Pipeline({
    name: "forced",
    onEvent: (event) => {
      if (event.type === "circuitOpened") opened.resolve();
    },
    stages: [stage("call", (_n: number) => {
      throw new Error("service down");
    }, { circuitBreaker: { failureThreshold: 1, cooldownMs: 3_600_000 } })],
  });
  const running = pipeline.run(range(10), { forceSignal: force.signal });
  await opened.promise;
  force.abort();
  const metrics = await running;
  assert.equal(metrics.totalFailed, 10);
  assert.equal(pipeline.deadLetters.filter((letter) => letter.error.name === "ShutdownError").length, 9);
});
