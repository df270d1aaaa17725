import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, PermanentError, Pipeline, progress, type ProgressOutput, stage } from "../mod.ts";
import { deferred, Gate, guard, range } from "./_helpers.ts";

/** An output that keeps what is written and resolves `lines(n)` once n newlines have been written. */
function recorder(isTTY: boolean, columns = 100) {
  let text = "";
  const waiters: { n: number; resolve: () => void }[] = [];
  const output: ProgressOutput = {
    isTTY,
    columns,
    write(chunk) {
      text += chunk;
      const count = text.split("\n").length - 1;
      for (const waiter of waiters.filter((w) => count >= w.n)) waiter.resolve();
    },
  };
  return {
    output,
    get text() {
      return text;
    },
    lines(n: number): Promise<void> {
      const done = deferred();
      waiters.push({ n, resolve: () => done.resolve() });
      output.write("");
      return done.promise;
    },
  };
}

function held(gate: Gate<number>) {
  return new Pipeline({
    name: "orders",
    stages: [
      stage("check", (n: number) => {
        if (n === 3) throw new PermanentError("three is bad");
        return n;
      }),
      stage("hold", async (n: number) => {
        await gate.enter(n);
        return n;
      }, { concurrency: 2 }),
    ],
    queueSize: 10,
  });
}

/** Lets every held call (and those still to come) through. */
function drain(gate: Gate<number>): () => void {
  let open = true;
  const loop = async () => {
    while (open) (await gate.next()).release();
  };
  void loop();
  return () => void (open = false);
}

test("plain mode: one line per interval with counts, percentage and ETA, then the final report", async () => {
  const gate = new Gate<number>();
  const out = recorder(false);
  const pipeline = held(gate);
  const view = progress(pipeline, { intervalMs: 5, output: out.output });
  assert.equal(view.mode, "plain");
  const done = view.run(range(8));
  await guard(out.lines(2), "two plain lines while the run is held");
  const stop = drain(gate);
  const metrics = await done;
  stop();
  assert.equal(metrics.totalCompleted, 7);

  const lines = out.text.trimEnd().split("\n");
  assert.ok(!out.text.includes("\x1b"), "no escape sequences in plain output");
  const live = lines.filter((line) => line.startsWith("[orders] "));
  assert.ok(live.length >= 3, `a line per interval and one at the end: ${lines.join("\n")}`);
  assert.match(live[0], /\d+\/8 \(\d+%\)/, "the total came from the array's length");
  assert.match(live[0], /\| check \d+ q\d+ {2}hold \d+ q\d+$/);
  assert.match(live.at(-1)!, /8\/8 \(100%\) {2}completed 7 {2}failed 1 {2}in flight 0 .* ETA 0s/);
  const report = lines.slice(lines.indexOf(live.at(-1)!) + 1);
  assert.match(report[0], /^orders: done in \d+\.\d\ds: 8 items, 7 completed, 1 failed \(1 dead-lettered\)/);
  assert.match(report[1], /stage\s+completed\s+failed\s+retries\s+p50\s+p95\s+p99/);
  assert.match(report[2], /^ {2}check\s+7\s+1\s+0\s+[\d.]+ms/);
  assert.match(report[3], /^ {2}hold\s+7\s+0\s+0\s+[\d.]+ms/);
});

test("live mode: frames redrawn in place (cursor back over the last frame, lines cleared), final frame and report", async () => {
  const gate = new Gate<number>();
  const out = recorder(true, 120);
  const pipeline = held(gate);
  const view = progress(pipeline, { intervalMs: 5, output: out.output, mode: "live", total: 8 });
  assert.equal(view.mode, "live");
  const done = pipeline.run(range(8));
  await guard(out.lines(9), "three frames of three lines");
  const stop = drain(gate);
  await done;
  stop();
  view.stop();
  view.stop(); // once only

  const frames = out.text.split("\x1b[3F"); // each later frame starts by moving up over the 3 lines drawn
  assert.ok(frames.length >= 3, "redrawn at least twice");
  for (const frame of frames) {
    const lines = frame.split("\n");
    assert.ok(lines[0].startsWith("\x1b[2Korders"), `a frame starts with the overall line: ${JSON.stringify(frame)}`);
    assert.ok(lines[1].startsWith("\x1b[2K  check"));
    assert.ok(lines[2].startsWith("\x1b[2K  hold"));
  }
  const last = frames.at(-1)!;
  assert.match(last, /orders\s+█{24} 100% {2}8\/8 {2}✓ 7 {2}✗ 1 {2}in flight 0 .* ETA 0s/);
  // 7 of the 8 items reached hold: its bar is 7/8 full.
  assert.match(last, / {2}hold\s+█{11}░\s+✓ 7\s+✗ 0\s+↻ 0\s+.*busy 0\/2 {2}queue ░{8} 0\/10/);
  assert.match(last, /\norders: done in /);
  assert.equal(out.text.match(/orders: done in/g)?.length, 1, "one final report");
});

test("live mode fits each line to the terminal's width, so that lines never wrap", async () => {
  const out = recorder(true, 50);
  const pipeline = new Pipeline({ name: "narrow", stages: [stage("a-rather-long-stage-name", (n: number) => n)] });
  await progress(pipeline, { output: out.output, mode: "live" }).run(range(3));
  const frameLines = out.text.split("\n").filter((line) => line.startsWith("\x1b[2K"));
  assert.ok(frameLines.length >= 2);
  const ESC = String.fromCharCode(27);
  for (const line of frameLines) {
    const visible = line.split(`${ESC}[2K`).at(-1)!; // after the cursor-up and clear-line codes
    assert.ok(visible.length <= 50, line);
  }
});

test("auto mode: live on a TTY, plain when not a TTY or when CI is set", async () => {
  const pipeline = new Pipeline({ name: "p", stages: [stage("s", (n: number) => n)] });
  const saved = process.env.CI;
  try {
    delete process.env.CI;
    const tty = progress(pipeline, { output: recorder(true).output });
    tty.stop();
    assert.equal(tty.mode, "live");
    const piped = progress(pipeline, { output: recorder(false).output });
    piped.stop();
    assert.equal(piped.mode, "plain");
    process.env.CI = "true";
    const ci = progress(pipeline, { output: recorder(true).output });
    ci.stop();
    assert.equal(ci.mode, "plain");
    process.env.CI = "0";
    const notCi = progress(pipeline, { output: recorder(true).output });
    notCi.stop();
    assert.equal(notCi.mode, "live", "CI=0 is not CI");
  } finally {
    if (saved === undefined) delete process.env.CI;
    else process.env.CI = saved;
  }
});

test("without a total or a sized source, the view counts without a percentage or ETA", async () => {
  const out = recorder(false);
  const pipeline = new Pipeline({ name: "gen", stages: [stage("s", (n: number) => n)] });
  function* numbers() {
    yield* range(5);
  }
  await progress(pipeline, { output: out.output }).run(numbers());
  const line = out.text.split("\n").find((l) => l.startsWith("[gen]"))!;
  assert.match(line, /5 done/);
  assert.ok(!line.includes("ETA") && !line.includes("%"));
  const sized = recorder(false);
  await progress(pipeline, { output: sized.output }).run(new Set([1, 2]) as unknown as number[]);
  assert.match(sized.text, /2\/2 \(100%\)/, "a Set's size is its total");
});

test("progress() refuses bad options with a ConfigError naming the field", () => {
  const pipeline = new Pipeline({ name: "p", stages: [stage("s", (n: number) => n)] });
  for (
    const [options, field] of [
      [{ intervalMs: 0 }, "intervalMs"],
      [{ total: -1 }, "total"],
      [{ total: 1.5 }, "total"],
      [{ output: {} }, "output"],
      [{ mode: "fancy" }, "mode"],
      [{ interval: 10 }, "interval"],
    ] as const
  ) {
    assert.throws(() => progress(pipeline, options as never), (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.field, field);
      return true;
    });
  }
});
