/**
 * Type-level tests: `npx tsc -p .` checks them (an unused `@ts-expect-error`
 * fails the type-check). The runtime test at the end makes the file a test
 * file on every runtime and checks that the well-typed pipelines also run.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  batchStage,
  type DeadLetter,
  Pipeline,
  type PipelineInput,
  type PipelineMetrics,
  type PipelineOutput,
  type Stage,
  stage,
  type StageContext,
  type StageInput,
  type StageOutput,
} from "../mod.ts";
import { type Equals, expectType } from "./_helpers.ts";

interface Order {
  readonly id: string;
  readonly total: number;
}

// Stage types come from the function: input from the parameter, output from the (awaited) result.
const parse = stage("parse", (line: string) => JSON.parse(line) as Order);
const price = stage("price", async (order: Order, ctx: StageContext) => ({ ...order, attempt: ctx.attempt }));
const total = stage("total", (order: { total: number }) => order.total);
const label = stage("label", (n: number) => `€${n}`);
expectType<Equals<typeof parse, Stage<string, Order>>>();
expectType<Equals<StageOutput<typeof price>, { id: string; total: number; attempt: number }>>();
expectType<Equals<StageInput<typeof total>, { total: number }>>();

// A task array chains its tasks: input of the first, output of the last.
const parseThenTotal = stage("parse-total", [(line: string) => JSON.parse(line) as Order, (o: Order) => o.total]);
expectType<Equals<typeof parseThenTotal, Stage<string, number>>>();

// A batch stage maps items one to one; returning nothing passes the inputs on.
const chunked = batchStage("chunked", (orders: readonly Order[]) => orders.map((o) => o.id), { batchSize: 10 });
expectType<Equals<typeof chunked, Stage<Order, string>>>();
const sink = batchStage("sink", async (_ids: readonly string[]) => {}, { batchSize: 10 });
expectType<Equals<StageOutput<typeof sink>, string>>();

// Output types flow from stage to stage: a pipeline takes the first input and gives the last output.
const orders = new Pipeline({ name: "orders", stages: [parse, price, total, label] });
expectType<Equals<PipelineInput<typeof orders extends Pipeline<infer S> ? S : never>, string>>();
expectType<Equals<PipelineOutput<typeof orders extends Pipeline<infer S> ? S : never>, string>>();

// A batch stage that returns nothing passes its input type on, also when written inline.
new Pipeline({
  name: "void-batch",
  stages: [
    stage("first", (n: number) => n * 2),
    batchStage("load", async (_rows: readonly number[]) => {}, { batchSize: 2 }),
    stage("after", (n: number) => n + 1),
  ],
});

// A later stage may take a wider type than the one before gives.
const wide = new Pipeline({
  name: "wide",
  stages: [stage("n", (s: string) => s.length), stage("any", (value: unknown) => String(value))],
});

// run() takes an iterable, an async iterable or a ReadableStream of the first stage's input…
// (type-checked only; never called)
export function _runs(): Promise<PipelineMetrics>[] {
  async function* lines() {
    yield "{}";
  }
  return [
    orders.run(['{"id":"a","total":1}']),
    orders.run(new Set(["{}"])),
    orders.run(lines()),
    orders.run(new ReadableStream<string>()),
    wide.run(["a"]),
    // @ts-expect-error: the elements must be the first stage's input (string), not numbers
    orders.run([1, 2, 3]),
    // @ts-expect-error: nor a stream of something else
    orders.run(new ReadableStream<Order>()),
    // @ts-expect-error: nor an async iterable of something else
    orders.run((async function* () {
      yield 1;
    })()),
  ];
}

const numbers = new Pipeline({
  name: "numbers",
  stages: [stage("inc", (n: number) => n + 1), stage("twice", (n: number) => n * 2)],
});

// Checked by tsc only: never called, since some of these pipelines are invalid on purpose.
export function _typeChecks(): void {
  // …and stream() is a { writable, readable } pair of the first input and the last output.
  const pair = orders.stream();
  expectType<Equals<typeof pair.writable, WritableStream<string>>>();
  expectType<Equals<typeof pair.readable, ReadableStream<string>>>();
  expectType<Equals<ReturnType<typeof numbers.stream>["readable"], ReadableStream<number>>>();
  // @ts-expect-error: the readable gives the last stage's output (string here), not the first's input
  const notNumbers: ReadableStream<number> = orders.stream().readable;
  void notNumbers;

  // id() takes the first stage's input.
  new Pipeline({ name: "ids", stages: [parse], id: (line: string) => line.slice(0, 8) });
  // @ts-expect-error: id() must take the first stage's input (string), not a number
  new Pipeline({ name: "ids", stages: [parse], id: (n: number) => n });
  // @ts-expect-error: id() must return a string or a number
  new Pipeline({ name: "ids", stages: [parse], id: (line: string) => ({ line }) });

  // A stage whose input does not match the previous stage's output is a compile error.
  // @ts-expect-error: "b" takes a number but "a" gives a string
  new Pipeline({ name: "x", stages: [stage("a", (n: number) => String(n)), stage("b", (n: number) => n)] });
  // @ts-expect-error: the mismatch is found further down the chain too ("total" takes an object, "label" gives a string)
  new Pipeline({ name: "x", stages: [parse, price, total, label, stage("again", (o: { total: number }) => o.total)] });
  // @ts-expect-error: a batch stage is checked like any other
  new Pipeline({ name: "x", stages: [parse, sink] });
  // @ts-expect-error: an async stage's output is its awaited value, not a promise
  new Pipeline({ name: "x", stages: [price, stage("p", (p: Promise<Order>) => p)] });
  // @ts-expect-error: a narrower input than the previous output is refused
  new Pipeline({ name: "x", stages: [stage("u", (s: string) => s as string | number), stage("n", (n: number) => n)] });

  // A task array whose tasks do not fit together is a compile error as well.
  // @ts-expect-error: the second task takes a boolean but the first gives a number
  stage("bad-tasks", [(s: string) => s.length, (b: boolean) => !b]);
}

// DeadLetter items are typed by the caller.
const letter: DeadLetter<Order> | undefined = undefined as DeadLetter<Order> | undefined;
expectType<Equals<NonNullable<typeof letter>["item"], Order>>();

test("well-typed pipelines also run: outputs flow from stage to stage", async () => {
  const metrics = await orders.run(['{"id":"a","total":7}', '{"id":"b","total":8}']);
  assert.equal(metrics.totalCompleted, 2);
  const { writable, readable } = numbers.stream();
  const writer = writable.getWriter();
  void writer.write(1);
  void writer.write(20);
  void writer.close();
  const out: number[] = [];
  const reader = readable.getReader();
  for (let next = await reader.read(); !next.done; next = await reader.read()) out.push(next.value);
  assert.deepEqual(out, [4, 42]);
  const wideMetrics = await wide.run(["abc"]);
  assert.equal(wideMetrics.totalCompleted, 1);
});
