/**
 * The clock the stages read when an attempt's promise settles: a reading is
 * shared by the reactions queued before it, and it is never earlier than the
 * settling of the promise whose reaction gets it. Checked through random
 * schedules of resolutions, busy waits, fresh readings and macrotask turns.
 *
 * @module
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { SettleClock } from "../src/settle_clock.ts";
import { busy } from "./_helpers.ts";

/** One step of a schedule, run in a microtask of its own (or after a macrotask turn). */
interface Step {
  readonly turn: boolean;
  readonly busyMs: number;
  /** How many of the waiting promises to resolve in this step. */
  readonly resolve: number;
  readonly freshReading: boolean;
}

/** Promises per schedule: each reaction makes another one until there are this many. */
const MAX_PROMISES = 40;

const stepArb: fc.Arbitrary<Step> = fc.record({
  turn: fc.constantFrom(false, false, false, true),
  busyMs: fc.constantFrom(0, 0, 0.05, 0.3),
  resolve: fc.integer({ min: 0, max: 3 }),
  freshReading: fc.boolean(),
});

test("SettleClock.settled() is never earlier than the settling of the promise whose reaction reads it", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(stepArb, { minLength: 1, maxLength: 25 }),
      fc.array(fc.constantFrom(0, 0, 0.1), { minLength: 1, maxLength: 8 }),
      async (steps, reactionBusyMs) => {
        const clock = new SettleClock();
        const problems: string[] = [];
        const handedOut: number[] = [];
        const reactions: Promise<void>[] = [];
        const resolvers: { resolve: () => void; settledAt: number }[] = [];
        let made = 0;
        const waiting = (): void => {
          const index = made++;
          const entry = { resolve: () => {}, settledAt: Number.NaN };
          const promise = new Promise<void>((resolve) => (entry.resolve = resolve));
          resolvers.push(entry);
          reactions.push(promise.then(() => {
            const reading = clock.settled();
            handedOut.push(reading);
            if (reading < entry.settledAt) {
              problems.push(`promise ${index}: reading ${reading} before it settled at ${entry.settledAt}`);
            }
            busy(reactionBusyMs[index % reactionBusyMs.length]);
            if (made < MAX_PROMISES) waiting(); // work of its own, as a stage starts the next item
          }));
        };
        for (let i = 0; i < 4; i++) waiting();
        let next = 0;
        for (const step of steps) {
          if (step.turn) await new Promise((resolve) => setTimeout(resolve, 0));
          else await null;
          busy(step.busyMs);
          if (step.freshReading) handedOut.push(clock.now());
          for (let k = 0; k < step.resolve && next < resolvers.length; k++) {
            const entry = resolvers[next++];
            entry.settledAt = performance.now();
            entry.resolve();
          }
        }
        while (next < resolvers.length) {
          const entry = resolvers[next++];
          entry.settledAt = performance.now();
          entry.resolve();
          await null;
        }
        await Promise.all(reactions.slice(0, next));
        assert.deepEqual(problems, []);
        for (let i = 1; i < handedOut.length; i++) {
          assert.ok(handedOut[i] >= handedOut[i - 1], `reading ${i} (${handedOut[i]}) went back in time`);
        }
      },
    ),
    { numRuns: 60 },
  );
});

test("SettleClock.settled() reads the clock once for the reactions queued before the reading", async () => {
  const clock = new SettleClock();
  const readings: number[] = [];
  const promises = [Promise.resolve(), Promise.resolve(), Promise.resolve()];
  await Promise.all(promises.map((p) => p.then(() => readings.push(clock.settled()))));
  assert.equal(readings.length, 3);
  assert.equal(readings[1], readings[0]);
  assert.equal(readings[2], readings[0]);

  // A promise that settles after the shared reading has expired gets a fresh one.
  busy(0.2);
  const settledAt = performance.now();
  const later = await Promise.resolve().then(() => clock.settled());
  assert.ok(later >= settledAt, `${later} >= ${settledAt}`);
  assert.ok(later > readings[0]);
});
