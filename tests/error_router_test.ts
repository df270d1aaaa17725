import { test } from "node:test";
import assert from "node:assert/strict";
import {
  batchStage,
  ConfigError,
  HaltError,
  PermanentError,
  Pipeline,
  type PipelineEvent,
  ShutdownError,
  stage,
  type StageErrorInfo,
} from "../mod.ts";
import { range, readableOf, recordingLogger } from "./_helpers.ts";

class Transient extends Error {
  override name = "Transient";
}
class Fatal extends Error {
  override name = "Fatal";
}

function conserved(metrics: {
  totalIngested: number;
  totalCompleted: number;
  totalFailed: number;
  totalFiltered: number;
  totalSkipped: number;
  itemsInFlight: number;
}): void {
  assert.equal(
    metrics.totalIngested,
    metrics.totalCompleted + metrics.totalFailed + metrics.totalFiltered + metrics.totalSkipped,
  );
  assert.equal(metrics.itemsInFlight, 0);
}

test("onError [Class, 'skip'] drops the item as skipped: counted, in an event and a warn log, not a dead letter", async () => {
  const events: PipelineEvent[] = [];
  const { logger, records } = recordingLogger();
  const pipeline = new Pipeline({
    name: "skips",
    stages: [
      stage("parse", (text: string) => JSON.parse(text) as number, { onError: [[SyntaxError, "skip"]] }),
      stage("double", (n: number) => n * 2),
    ],
    onEvent: (event) => void events.push(event),
    logger,
  });
  const metrics = await pipeline.run(["1", "{", "3"]);
  assert.equal(metrics.totalCompleted, 2);
  assert.equal(metrics.totalSkipped, 1);
  assert.equal(metrics.totalFailed, 0);
  assert.equal(metrics.stageMetrics.parse.skipped, 1);
  assert.equal(metrics.stageMetrics.double.processed, 2);
  assert.deepEqual(pipeline.deadLetters, []);
  const skipped = events.filter((event) => event.type === "skipped");
  assert.equal(skipped.length, 1);
  assert.equal(skipped[0].type === "skipped" && skipped[0].error.name, "SyntaxError");
  assert.equal("itemId" in skipped[0] && skipped[0].itemId, 1);
  assert.ok(records.some((record) => record.level === "warn" && record.message === "item skipped"));
  conserved(metrics);
});

test("onError matches by error name (a string) and by predicate, in rule order", async () => {
  const pipeline = new Pipeline({
    name: "matchers",
    stages: [
      stage("s", (n: number) => {
        if (n === 1) throw new Transient("by name");
        if (n === 2) throw new Error("by predicate");
        if (n === 3) throw new Fatal("no rule");
        return n;
      }, {
        onError: [
          ["Transient", "skip"],
          [(error) => (error as Error).message === "by predicate", "skip"],
        ],
      }),
    ],
  });
  const metrics = await pipeline.run([0, 1, 2, 3]);
  assert.equal(metrics.totalSkipped, 2);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(pipeline.deadLetters[0].itemId, 3);
  assert.equal(pipeline.deadLetters[0].error.name, "Fatal");
});

test("'retry' retries with the stage's backoff while maxRetries lasts, then the next matching rule decides (retry, then skip)", async () => {
  const attempts = new Map<number, number>();
  const pipeline = new Pipeline({
    name: "retry-then-skip",
    stages: [
      stage("s", (n: number) => {
        attempts.set(n, (attempts.get(n) ?? 0) + 1);
        if (n === 1) throw new Transient("always");
        return n;
      }, {
        maxRetries: 2,
        backoff: { initialDelayMs: 0 },
        onError: [[Transient, "retry"], [Transient, "skip"]],
      }),
    ],
  });
  const metrics = await pipeline.run([0, 1]);
  assert.equal(attempts.get(1), 3);
  assert.equal(metrics.stageMetrics.s.retries, 2);
  assert.equal(metrics.totalSkipped, 1);
  assert.equal(metrics.totalCompleted, 1);
});

test("an explicit 'retry' rule retries even an error retryIf refuses; without a rule the default refuses it", async () => {
  let calls = 0;
  const failing = (_n: number) => {
    calls++;
    throw new PermanentError("refused by retryIf");
  };
  const routed = new Pipeline({
    name: "r",
    stages: [
      stage("s", failing, { maxRetries: 2, backoff: { initialDelayMs: 0 }, onError: [[PermanentError, "retry"]] }),
    ],
  });
  await routed.run([1]);
  assert.equal(calls, 3);
  assert.equal(routed.deadLetters[0].attempts, 3);
  calls = 0;
  const plain = new Pipeline({
    name: "p",
    stages: [stage("s", failing, { maxRetries: 2, onError: [[Fatal, "skip"]] })],
  });
  await plain.run([1]);
  assert.equal(calls, 1);
  assert.equal(plain.deadLetters[0].attempts, 1);
});

test("an error no rule decides keeps today's behaviour: retried per retryIf, then dead-lettered", async () => {
  let calls = 0;
  const pipeline = new Pipeline({
    name: "default",
    stages: [stage("s", (_n: number) => {
      calls++;
      throw new Error("transient");
    }, { maxRetries: 1, backoff: { initialDelayMs: 0 }, onError: [[Fatal, "skip"]] })],
  });
  const metrics = await pipeline.run([1]);
  assert.equal(calls, 2);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(pipeline.deadLetters[0].attempts, 2);
});

test("a function action sees the attempt and retries left, and undefined passes the error on to the next rule", async () => {
  const seen: { attempt: number; retriesLeft: number }[] = [];
  const pipeline = new Pipeline({
    name: "fn",
    stages: [stage("s", (_n: number) => {
      throw new Transient("x");
    }, {
      maxRetries: 1,
      backoff: { initialDelayMs: 0 },
      onError: [
        [Transient, (_error, ctx) => {
          seen.push({ attempt: ctx.attempt, retriesLeft: ctx.retriesLeft });
          return ctx.retriesLeft > 0 ? "retry" : undefined;
        }],
        [Error, "skip"],
      ],
    })],
  });
  const metrics = await pipeline.run([1]);
  assert.deepEqual(seen, [{ attempt: 1, retriesLeft: 1 }, { attempt: 2, retriesLeft: 0 }]);
  assert.equal(metrics.totalSkipped, 1);
});

test("a matcher or action that throws is logged; the item is not lost", async () => {
  const { logger, records } = recordingLogger();
  const pipeline = new Pipeline({
    name: "throwing",
    logger,
    stages: [stage("s", (n: number) => {
      if (n > 0) throw new Error(`bad ${n}`);
      return n;
    }, {
      onError: [
        [(error) => {
          if ((error as Error).message === "bad 1") throw new Error("matcher broke");
          return false;
        }, "skip"],
        [(error) => (error as Error).message === "bad 2", () => {
          throw new Error("action broke");
        }],
      ],
    })],
  });
  const metrics = await pipeline.run([0, 1, 2]);
  assert.equal(metrics.totalCompleted, 1);
  assert.equal(metrics.totalFailed, 2);
  assert.ok(records.some((r) => r.message.startsWith("onError matcher threw")));
  assert.ok(records.some((r) => r.message.startsWith("onError action function threw")));
  conserved(metrics);
});

/** Halts gracefully at item 5, in its first stage. */
function halting() {
  return new Pipeline({
    name: "halts",
    queueSize: 4,
    stages: [
      stage("check", (n: number) => {
        if (n === 5) throw new Fatal("corrupt input");
        return n;
      }, { onError: [[Fatal, "halt"]] }),
      stage("load", async (n: number) => n),
    ],
  });
}

test("'halt' stops reading, drains, and run rejects with a HaltError naming the stage and item, with the run's account", async () => {
  let read = 0;
  function* source() {
    for (let i = 0; i < 10_000; i++) {
      read++;
      yield i;
    }
  }
  const pipeline = halting();
  const error = await pipeline.run(source()).then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof HaltError, String(error));
  assert.equal(error.stage, "check");
  assert.equal(error.itemId, 5);
  assert.equal(error.mode, "graceful");
  assert.ok(error.cause instanceof Fatal);
  assert.match(error.message, /stage "check", item 5/);
  const metrics = error.metrics!;
  assert.ok(read < 10_000);
  assert.ok(metrics.totalIngested <= read);
  conserved(metrics);
  assert.equal(metrics.totalFailed, 1);
  assert.equal(metrics.totalCompleted, metrics.totalIngested - 1);
  assert.deepEqual(error.deadLetters.map((letter) => letter.itemId), [5]);
  assert.deepEqual(pipeline.deadLetters.map((letter) => letter.itemId), [5]);
});

test(
  "a halt in stream(): the writable errors, what was inside drains, and the readable errors with the final HaltError",
  { timeout: 20_000 },
  async () => {
    let read = 0;
    const source = new ReadableStream<number>({
      pull(controller) {
        if (read === 10_000) controller.close();
        else controller.enqueue(read++);
      },
    });
    const pipeline = halting();
    const { writable, readable, finished } = pipeline.stream();
    const piped = source.pipeTo(writable).then(() => undefined, (e: unknown) => e);
    const outputs: number[] = [];
    const error = await (async () => {
      for await (const n of readable) outputs.push(n);
    })().then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof HaltError, String(error));
    assert.equal(error.stage, "check");
    assert.equal(error.itemId, 5);
    assert.equal(error.mode, "graceful");
    assert.ok((await piped) instanceof HaltError, "the producer's writes fail with the halt");
    assert.ok(read < 10_000, `the source was read on after the halt: ${read} items`);
    const metrics = await finished;
    conserved(metrics);
    assert.deepEqual(error.metrics, metrics);
    assert.equal(metrics.totalFailed, 1);
    assert.equal(metrics.totalCompleted, metrics.totalIngested - 1);
    assert.deepEqual(outputs, Array.from({ length: metrics.totalIngested }, (_, i) => i).filter((n) => n !== 5));
    assert.deepEqual(error.deadLetters.map((letter) => letter.itemId), [5]);
  },
);

test(
  "a forced halt in stream(): attempts in flight are interrupted, and the readable errors with a HaltError of mode force",
  { timeout: 20_000 },
  async () => {
    const pipeline = new Pipeline({
      name: "force",
      stages: [
        stage("check", async (n: number, ctx) => {
          if (n === 3) throw new Fatal("stop now");
          if (n > 3) {
            await new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)));
          }
          return n;
        }, { concurrency: 8, onError: [[Fatal, { halt: "force" }]] }),
      ],
    });
    const source = readableOf([0, 1, 2, 3, 4, 5, 6]);
    const outputs: number[] = [];
    const error = await (async () => {
      for await (const n of source.pipeThrough(pipeline.stream())) outputs.push(n);
    })().then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof HaltError, String(error));
    assert.equal(error.mode, "force");
    assert.deepEqual(outputs, [0, 1, 2]);
    const metrics = error.metrics!;
    conserved(metrics);
    assert.equal(metrics.totalCompleted, 3);
    assert.deepEqual(
      error.deadLetters.map((letter) => letter.itemId).sort(),
      [3, 4, 5, 6].slice(0, metrics.totalFailed),
    );
    assert.ok(error.deadLetters.filter((letter) => letter.itemId !== 3).every((l) => l.error.name === "ShutdownError"));
  },
);

test("{ halt: 'force' } interrupts the attempts in flight: their items are dead-lettered with a ShutdownError caused by the halt", async () => {
  const pipeline = new Pipeline({
    name: "force",
    stages: [
      stage("check", (n: number) => {
        if (n === 1) throw new Fatal("stop everything");
        return n;
      }, { onError: [[Fatal, { halt: "force" }]] }),
      stage("slow", async (n: number, ctx) => {
        if (n !== 0) return n;
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
        throw ctx.signal.reason;
      }),
    ],
  });
  const error = await pipeline.run(range(20)).then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof HaltError);
  assert.equal(error.mode, "force");
  conserved(error.metrics!);
  const byId = new Map(pipeline.deadLetters.map((letter) => [letter.itemId, letter]));
  assert.equal(byId.get(1)?.error.name, "Fatal");
  assert.equal(byId.get(0)?.error.name, "ShutdownError");
  assert.equal((byId.get(0)?.error.cause as { name?: string } | undefined)?.name, "HaltError");
});

test("the pipeline's onError applies to every stage without its own; a stage's own overrides it", async () => {
  const pipeline = new Pipeline({
    name: "layers",
    onError: [[Transient, "skip"]],
    stages: [
      stage("a", (n: number) => {
        if (n === 1) throw new Transient("a");
        return n;
      }),
      stage("b", (n: number) => {
        if (n === 2) throw new Transient("b");
        return n;
      }, { onError: [[Transient, "deadLetter"]] }),
    ],
  });
  const metrics = await pipeline.run([0, 1, 2]);
  assert.equal(metrics.stageMetrics.a.skipped, 1);
  assert.equal(metrics.stageMetrics.b.failed, 1);
  assert.equal(pipeline.deadLetters[0].itemId, 2);
});

test("maxSkips: the skip past the limit halts the run gracefully, with the limit as the reason", async () => {
  const pipeline = new Pipeline({
    name: "limits",
    maxSkips: 2,
    queueSize: 2,
    stages: [stage("s", (n: number) => {
      if (n % 2 === 1) throw new Transient("odd");
      return n;
    }, { onError: [[Transient, "skip"]] })],
  });
  const error = await pipeline.run(range(1000)).then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof HaltError);
  assert.match(error.reason, /maxSkips \(2\)/);
  assert.equal(error.itemId, 5);
  const metrics = error.metrics!;
  assert.ok(metrics.totalSkipped >= 3);
  assert.ok(metrics.totalIngested < 1000);
  conserved(metrics);
});

test("maxDeadLetters: more dead letters than allowed halt the run; interruptions by a shutdown do not count", async () => {
  const pipeline = new Pipeline({
    name: "dl-limit",
    maxDeadLetters: 1,
    queueSize: 2,
    stages: [stage("s", (n: number) => {
      if (n >= 3) throw new Error(`no ${n}`);
      return n;
    })],
  });
  const error = await pipeline.run(range(1000)).then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof HaltError);
  assert.match(error.reason, /maxDeadLetters \(1\)/);
  assert.equal(error.itemId, 4);
  assert.ok(error.deadLetters.length >= 2);
  conserved(error.metrics!);
});

test("a batch stage's skip drops every item of the batch", async () => {
  const pipeline = new Pipeline({
    name: "batches",
    stages: [batchStage("b", (rows: readonly number[]) => {
      if (rows.includes(3)) throw new Transient("batch");
      return rows;
    }, { batchSize: 2, onError: [[Transient, "skip"]] })],
  });
  const metrics = await pipeline.run([0, 1, 2, 3, 4]);
  assert.equal(metrics.totalSkipped, 2);
  assert.equal(metrics.totalCompleted, 3);
});

test("onStageError hears every failed attempt and the action taken; a throwing hook is logged", async () => {
  const heard: Pick<StageErrorInfo, "itemId" | "attempt" | "action">[] = [];
  const { logger, records } = recordingLogger();
  const pipeline = new Pipeline({
    name: "hooked",
    logger,
    hooks: {
      onStageError: ({ itemId, attempt, action }) => {
        heard.push({ itemId, attempt, action });
        if (attempt === 2) throw new Error("hook broke");
      },
    },
    stages: [stage("s", (n: number) => {
      if (n === 1) throw new Transient("t");
      return n;
    }, { maxRetries: 1, backoff: { initialDelayMs: 0 } })],
  });
  const metrics = await pipeline.run([0, 1]);
  assert.deepEqual(heard, [{ itemId: 1, attempt: 1, action: "retry" }, {
    itemId: 1,
    attempt: 2,
    action: "deadLetter",
  }]);
  assert.equal(metrics.totalFailed, 1);
  assert.ok(records.some((r) => r.message === "hook onStageError threw; the run goes on"));
});

test("ShutdownErrors are never routed: a catch-all skip rule still dead-letters items a forced shutdown interrupted", async () => {
  const force = new AbortController();
  const pipeline = new Pipeline({
    name: "shutdown",
    onError: [[() => true, "skip"]],
    stages: [stage("s", async (n: number, ctx) => {
      if (n === 0) force.abort();
      await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
      throw ctx.signal.reason;
    }, { concurrency: 2 })],
  });
  const metrics = await pipeline.run([0, 1], { forceSignal: force.signal });
  assert.equal(metrics.totalSkipped, 0);
  assert.equal(metrics.totalFailed, 2);
  assert.ok(pipeline.deadLetters.every((letter) => letter.error.name === "ShutdownError"));
  assert.ok(new ShutdownError("s") instanceof Error);
});

test("bad onError, limits and breaker options are ConfigErrors naming the stage and the field", () => {
  const fn = (n: number) => n;
  const cases: [() => unknown, string, string | undefined][] = [
    [() => stage("s", fn, { onError: [[Error, "explode" as "skip"]] }), "onError.0.1", "s"],
    [() => stage("s", fn, { onError: [[42 as unknown as string, "skip"]] }), "onError.0.0", "s"],
    [() => stage("s", fn, { onError: [[Error]] as never }), "onError.0", "s"],
    [() => stage("s", fn, { onError: "skip" as never }), "onError", "s"],
    [() => stage("s", fn, { onError: [["", "skip"]] }), "onError.0.0", "s"],
    [
      () => stage("s", fn, { circuitBreaker: { failureThreshold: -1, cooldownMs: 10 } }),
      "circuitBreaker.failureThreshold",
      "s",
    ],
    [
      () => stage("s", fn, { circuitBreaker: { failureThreshold: 1, cooldownMs: -5 } }),
      "circuitBreaker.cooldownMs",
      "s",
    ],
    [
      () => stage("s", fn, { circuitBreaker: { failureThreshold: 3, windowSize: 2, cooldownMs: 5 } }),
      "circuitBreaker.windowSize",
      "s",
    ],
    [
      () => stage("s", fn, { circuitBreaker: { failureThreshold: 3, windowMs: 9, windowSize: 4, cooldownMs: 5 } }),
      "circuitBreaker.windowSize",
      "s",
    ],
    [() => stage("s", fn, { rateLimit: { limit: 0, intervalMs: 10 } }), "rateLimit.limit", "s"],
    [() => stage("s", fn, { rateLimit: { limit: 1, intervalMs: -1 } }), "rateLimit.intervalMs", "s"],
    [() => new Pipeline({ name: "p", stages: [stage("s", fn)], maxSkips: -1 }), "maxSkips", undefined],
    [() => new Pipeline({ name: "p", stages: [stage("s", fn)], maxDeadLetters: 1.5 }), "maxDeadLetters", undefined],
    [
      () => new Pipeline({ name: "p", stages: [stage("s", fn)], onError: [[Error, "halt!" as "halt"]] }),
      "onError.0.1",
      undefined,
    ],
    [
      () => new Pipeline({ name: "p", stages: [stage("s", fn)], hooks: { onEnd: 5 as never } }),
      "hooks.onEnd",
      undefined,
    ],
    [() => new Pipeline({ name: "p", stages: [stage("s", fn)], breakpoint: true as never }), "breakpoint", undefined],
  ];
  for (const [make, field, stageName] of cases) {
    assert.throws(make, (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.field, field, error.message);
      assert.equal(error.stage, stageName);
      assert.ok(error.message.includes(`"${field}"`), error.message);
      return true;
    });
  }
});

test("onError, circuitBreaker, rateLimit and hooks are typed: bad shapes are compile errors", () => {
  const fn = (n: number) => n;
  const typed = () => {
    // @ts-expect-error: not an action
    stage("s", fn, { onError: [[Error, "ignore"]] });
    // @ts-expect-error: halt takes "graceful" or "force"
    stage("s", fn, { onError: [[Error, { halt: "now" }]] });
    // @ts-expect-error: cooldownMs is required
    stage("s", fn, { circuitBreaker: { failureThreshold: 3 } });
    // @ts-expect-error: a hook is a function
    new Pipeline({ name: "p", stages: [stage("s", fn)], hooks: { onEnd: 1 } });
    stage("s", fn, { onError: [[(e) => e instanceof RangeError, (_e, ctx) => (ctx.retriesLeft ? "retry" : "skip")]] });
  };
  assert.equal(typeof typed, "function");
});
