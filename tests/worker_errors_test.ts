import { test } from "node:test";
import assert from "node:assert/strict";
import { PermanentError } from "../mod.ts";
import { fromWireError, toWireError } from "../src/worker_errors.ts";

/** Through the wire format and a structured clone, as across a worker boundary. */
const roundTrip = (error: unknown) => fromWireError(structuredClone(toWireError(error)));

test("an error crosses the worker boundary with its name, message, stack, fields and cause chain", () => {
  const root = new RangeError("too big");
  const error = Object.assign(new Error("upstream failed", { cause: root }), { status: 503, body: { retry: true } });
  error.name = "UpstreamError";
  const back = roundTrip(error);
  assert.equal(back.name, "UpstreamError");
  assert.equal(back.message, "upstream failed");
  assert.equal(back.stack, error.stack);
  assert.deepEqual({ status: (back as { status?: number }).status, body: (back as { body?: unknown }).body }, {
    status: 503,
    body: { retry: true },
  });
  assert.ok(back.cause instanceof RangeError);
  assert.equal((back.cause as Error).message, "too big");
});

test("a PermanentError stays one, by class or by name (another copy of sluice in the worker)", () => {
  assert.ok(roundTrip(new PermanentError("no")) instanceof PermanentError);
  const lookalike = new Error("no");
  lookalike.name = "PermanentError";
  const back = roundTrip(lookalike);
  assert.ok(back instanceof PermanentError);
  assert.equal(back.name, "PermanentError");
});

test("what is not an Error, or will not clone, still comes back as something readable", () => {
  assert.equal(roundTrip("plain string").message, "plain string");
  const withFunction = Object.assign(new Error("has a function"), { callback: () => 1 });
  const back = roundTrip(withFunction) as Error & { callback?: unknown };
  assert.equal(typeof back.callback, "string");
  assert.equal(roundTrip(new Error("non-error cause", { cause: 42 })).cause, 42);
});

test("a cycle of causes stops instead of recursing forever", () => {
  const a = new Error("a");
  const b = new Error("b", { cause: a });
  (a as { cause?: unknown }).cause = b;
  let depth = 0;
  for (let error: unknown = roundTrip(a); error instanceof Error; error = error.cause) depth++;
  assert.ok(depth > 1 && depth <= 10, `followed ${depth} causes`);
});
