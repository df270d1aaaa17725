/**
 * Type-level tests of issue 12's additions (`npx tsc -p .` checks them; an
 * unused `@ts-expect-error` fails the type-check), and a runtime test so the
 * file runs on every runtime.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  batchStage,
  type CollectResult,
  flatMapStage,
  type NamedTask,
  Pipeline,
  type PipelineOutput,
  skip,
  type Stage,
  stage,
  StatusTracker,
} from "../mod.ts";
import { type Equals, expectType } from "./_helpers.ts";

// A stage that may return skip gives the next stage only real values.
const evens = stage("evens", (n: number) => n % 2 === 0 ? n : skip);
expectType<Equals<typeof evens, Stage<number, number>>>();
const asyncEvens = stage("async-evens", async (n: number) => n > 0 ? String(n) : skip);
expectType<Equals<typeof asyncEvens, Stage<number, string>>>();
const batchEvens = batchStage("batch-evens", (rows: readonly number[]) => rows.map((n) => n ? n : skip), {
  batchSize: 2,
});
expectType<Equals<typeof batchEvens, Stage<number, number>>>();

// A flatMap stage gives its outputs' element type, from arrays, iterables and async iterables.
const words = flatMapStage("words", (line: string) => line.split(" "));
expectType<Equals<typeof words, Stage<string, string>>>();
const pages = flatMapStage("pages", async function* (n: number) {
  yield { page: n };
});
expectType<Equals<typeof pages, Stage<number, { page: number }>>>();

// Named tasks chain like functions.
const fetchData: NamedTask<string, number> = { name: "fetchData", fn: async (url: string) => url.length };
const named = stage("named", [fetchData, (n: number) => n > 1]);
expectType<Equals<typeof named, Stage<string, boolean>>>();

const pipeline = new Pipeline({ stages: [words, stage("len", (w: string) => w.length)] });
type Out = PipelineOutput<typeof pipeline extends Pipeline<infer S> ? S : never>;
expectType<Equals<Out, number>>();
export function _collects(): Promise<CollectResult<number>> {
  return pipeline.collect(["a b"]);
}
export function _results(): AsyncIterableIterator<number> {
  return pipeline.results(["a b"]);
}

export function _refused(): void {
  // @ts-expect-error: the stage after a filter takes the value, not the sentinel, so a narrower input is refused
  new Pipeline({ stages: [stage("f", (s: string) => s ? s : skip), stage("n", (n: number) => n)] });
  // @ts-expect-error: a flatMap function must return an array or an (async) iterable
  flatMapStage("bad", (n: number) => n);
  // @ts-expect-error: collect takes the first stage's input
  pipeline.collect([1, 2]);
  // @ts-expect-error: a named task's fn must fit the chain
  stage("bad-named", [fetchData, (s: string) => s]);
  // @ts-expect-error: taskConcurrency limits are numbers
  stage("bad-limit", [fetchData, (n: number) => n], { taskConcurrency: { fetchData: "2" } });
  // @ts-expect-error: statusTracker needs a record method
  new Pipeline({ stages: [words], statusTracker: {} });
  // @ts-expect-error: getStatus takes an item id
  new StatusTracker().getStatus({});
}

test("the typed additions run: filter, flatMap and named tasks", async () => {
  const { outputs } = await new Pipeline({
    stages: [words, evens.name ? stage("len", (w: string) => w.length) : words],
  })
    .collect(["ab c"]);
  assert.deepEqual(outputs, [2, 1]);
  const r = await new Pipeline({ stages: [evens, asyncEvens] }).collect([1, 2, 4]);
  assert.deepEqual(r.outputs, ["2", "4"]);
  assert.equal((await new Pipeline({ stages: [named] }).collect(["ab"])).outputs[0], true);
});
