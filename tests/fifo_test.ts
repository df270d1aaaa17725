/**
 * The ring-buffer queue every stage keeps its waiting work and its outbox in:
 * checked against a plain array as the model, through random sequences of
 * push, shift, take and peek that wrap around, grow and shrink the buffer.
 *
 * @module
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Fifo } from "../src/fifo.ts";

type Op = { op: "push"; count: number } | { op: "shift" } | { op: "take"; count: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("push" as const), count: fc.integer({ min: 1, max: 5_000 }) }),
  fc.record({ op: fc.constant("shift" as const) }),
  fc.record({ op: fc.constant("take" as const), count: fc.integer({ min: 0, max: 6_000 }) }),
);

test("Fifo: push, shift and take agree with an array, across wrap-around, growth and shrinking", () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
      const fifo = new Fifo<number>();
      const model: number[] = [];
      let next = 0;
      for (const step of ops) {
        if (step.op === "push") {
          for (let i = 0; i < step.count; i++) {
            fifo.push(next);
            model.push(next++);
          }
        } else if (step.op === "shift") {
          assert.equal(fifo.shift(), model.shift());
        } else {
          assert.deepEqual(fifo.take(step.count), model.splice(0, step.count));
        }
        assert.equal(fifo.length, model.length);
        assert.equal(fifo.peek(), model[0]);
      }
      assert.deepEqual(fifo.take(Infinity), model);
      assert.equal(fifo.shift(), undefined);
    }),
    { numRuns: 300 },
  );
});

test("Fifo: a queue that wraps around many times keeps its order", () => {
  const fifo = new Fifo<number>();
  const out: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    fifo.push(i);
    fifo.push(-i);
    out.push(fifo.shift()!);
  }
  out.push(...fifo.take(Infinity));
  const expected = [...Array.from({ length: 10_000 }, (_, i) => [i, -i]).flat()];
  assert.deepEqual(out, expected);
});
