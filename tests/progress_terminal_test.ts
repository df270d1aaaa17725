/**
 * The demo's progress view in a real terminal: tmux runs `examples/etl.ts`
 * in a pane (on a tmux server of this test's own), and the test reads the
 * pane as a person would see it (`capture-pane`) once the demo has ended,
 * signalled with `tmux wait-for`. Also the plain output: piped, and in a
 * terminal with CI set.
 *
 * Runs from the Node run of the suite only; skipped, with the reason, when
 * tmux is not installed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodeOnly, root, run, skipBecause } from "./fixtures/runtimes.ts";

async function tmuxMissing(): Promise<string | false> {
  if (nodeOnly) return nodeOnly;
  try {
    const version = await run("tmux", ["-V"]);
    return version.code === 0 ? false : `tmux -V exited with ${version.code}`;
  } catch {
    return "tmux is not installed (apt-get install tmux)";
  }
}

const skip = skipBecause("tests/progress_terminal_test.ts", await tmuxMissing());
const STAGES = ["ingest", "validate", "transform", "load"];

/** What a terminal showed once the demo ended, and the bytes the demo wrote to it. */
interface Screen {
  readonly text: string;
  readonly raw: string;
}

/** Runs the demo in a 130×45 tmux pane with `env` and returns the pane's text once the demo has ended. */
async function inTerminal(env: string): Promise<Screen> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-tmux-"));
  const socket = `sluice-progress-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const tmux = (...args: string[]) => run("tmux", ["-L", socket, "-f", "/dev/null", ...args]);
  const raw = join(dir, "raw");
  try {
    const demo = `${env} ${process.execPath} --import tsx examples/etl.ts`;
    const started = await tmux(
      "new-session",
      "-d",
      "-x",
      "130",
      "-y",
      "45",
      "-c",
      root,
      "-s",
      "demo",
      // Hold the pane open after the demo, until the test has read it.
      `tmux -L ${socket} pipe-pane -o 'cat > ${raw}'; ${demo}; tmux -L ${socket} wait-for -S demo-done; sleep 600`,
    );
    assert.equal(started.code, 0, started.stderr);
    const waited = await tmux("wait-for", "demo-done");
    assert.equal(waited.code, 0, waited.stderr);
    const captured = await tmux("capture-pane", "-p", "-t", "demo");
    assert.equal(captured.code, 0, captured.stderr);
    return { text: captured.stdout, raw: readFileSync(raw, "utf8") };
  } finally {
    await tmux("kill-server");
    rmSync(dir, { recursive: true, force: true });
  }
}

test("in a terminal the demo draws one live view, redrawn in place, and leaves the final report on screen", {
  skip,
}, async () => {
  const { text, raw } = await inTerminal("env -u CI");
  const lines = text.split("\n");
  const context = `--- pane\n${text}`;

  const overall = lines.filter((line) => /^etl\s+[█░]{24}/.test(line));
  assert.equal(overall.length, 1, `one overall bar on screen, not a scroll of frames\n${context}`);
  assert.match(overall[0], /^etl\s+█{24} 100% {2}3000\/3000 {2}✓ \d+ {2}✗ \d+ {2}in flight 0 .*ETA 0s$/, context);
  for (const name of STAGES) {
    const bars = lines.filter((line) => line.startsWith(`  ${name} `) && line.includes("queue"));
    assert.equal(bars.length, 1, `one bar for ${name}\n${context}`);
    assert.match(bars[0], /✓ \d+ +✗ \d+ +↻ \d+ +[\d.]+\/s {2}busy 0\/\d {2}queue ░{8} 0\/200$/, context);
  }
  assert.match(text, /^etl: done in \d+\.\d\ds: 3000 items, \d+ completed, \d+ failed \(\d+ dead-lettered\)/m, context);
  assert.match(text, /ingested = completed \+ failed: yes/, context);
  assert.match(text, /Dead letter queue: \d+ entries/, context);
  assert.ok(!text.includes("\x1b") && !text.includes("[2K"), `no escape codes visible\n${context}`);

  const redraws = raw.split("\x1b[5F").length - 1;
  assert.ok(redraws >= 2, `the view was redrawn over itself (${redraws} times)`);
  const firstFrame = raw.indexOf("\x1b[2Ketl");
  assert.ok(
    firstFrame >= 0 && !/100%/.test(raw.slice(firstFrame, raw.indexOf("\n", firstFrame))),
    "the first frame showed the run under way",
  );
});

test("in a terminal with CI set, the demo prints plain lines instead of the live view", { skip }, async () => {
  const { text, raw } = await inTerminal("env CI=true");
  assert.ok(!raw.includes("\x1b[2K"), "no redrawing");
  assert.ok(!text.split("\n").some((line) => /^etl\s+[█░]{24}/.test(line)), text);
  const plain = raw.split(/\r?\n/).filter((line) => line.startsWith("[etl] "));
  assert.ok(plain.length >= 2, raw);
  assert.match(plain.at(-1)!, /3000\/3000 \(100%\) {2}completed \d+ {2}failed \d+ {2}in flight 0/);
  assert.match(text, /etl: done in/);
});

test("piped (not a TTY), the demo prints one plain line per interval and the final report", { skip }, async () => {
  const result = await run(process.execPath, ["--import", "tsx", "examples/etl.ts"], {
    cwd: root,
    env: { CI: undefined },
  });
  assert.equal(result.code, 0, result.stderr);
  assert.ok(!result.stdout.includes("\x1b"), "no escape codes when piped");
  const lines = result.stdout.split("\n");
  const plain = lines.filter((line) => line.startsWith("[etl] "));
  assert.ok(plain.length >= 2, result.stdout);
  for (const line of plain) {
    assert.match(line, /^\[etl\] \d+\.\ds {2}\d+\/3000 \(\d+%\) {2}completed \d+ {2}failed \d+ {2}in flight \d+ {2}/);
    assert.match(line, /\| ingest \d+ q\d+ {2}validate \d+ q\d+ {2}transform \d+ q\d+ {2}load \d+ q\d+$/);
  }
  assert.match(plain.at(-1)!, /3000\/3000 \(100%\)/);
  const report = lines.findIndex((line) => line.startsWith("etl: done in"));
  assert.ok(report > lines.indexOf(plain.at(-1)!), "the report comes after the last line");
  for (const name of STAGES) assert.ok(lines.slice(report).some((line) => line.startsWith(`  ${name} `)), name);
});
