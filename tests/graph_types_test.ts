/**
 * Type-level tests for graphs: `npx tsc -p .` checks them (an unused
 * `@ts-expect-error` fails the type-check). Types flow through edges: a
 * handle passed to a stage whose input type does not match is a compile
 * error. The runtime test at the end runs the well-typed graph.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { graph, type Handle, source, stage } from "../mod.ts";
import { type Equals, expectType } from "./_helpers.ts";

interface Order {
  readonly id: string;
  readonly total: number;
}

const parse = stage("parse", (line: string) => JSON.parse(line) as Order);
const total = stage("total", (order: Order) => order.total);
const label = stage("label", (n: number) => `€${n}`);
const shout = stage("shout", (s: string) => s.toUpperCase());

/** Type-checked only: the expected errors below are not run. */
const typed = () =>
  graph({ name: "typed", sources: { lines: source<string>() } }, (b, { lines }) => {
    expectType<Equals<typeof lines, Handle<string>>>();
    const orders = b.add(parse, lines);
    expectType<Equals<typeof orders, Handle<Order>>>();

    // @ts-expect-error a Handle<Order> cannot feed a stage that takes a number
    b.add(label, orders);
    // @ts-expect-error a Handle<string> cannot feed a stage that takes an Order
    b.add(total, lines);

    const { big, small } = b.route("size", orders, { when: { big: (o) => o.total > 100 }, default: "small" });
    expectType<Equals<typeof big, Handle<Order>>>();
    expectType<Equals<typeof small, Handle<Order>>>();
    // @ts-expect-error the route has no branch "medium"
    void b.route("size2", orders, { when: { big: (o) => o.total > 100 } }).medium;
    // @ts-expect-error a route's predicate gets the input type
    b.route("size3", orders, { when: { big: (o: number) => o > 1 } });

    const byKey = b.route("byId", small, { key: (o) => o.id, branches: ["a", "b"], default: "rest" });
    expectType<Equals<keyof typeof byKey, "a" | "b" | "rest">>();

    const fan = b.broadcast("fan", big);
    const amount = b.add(total, fan);
    const text = b.add(shout, b.add(stage("id", (o: Order) => o.id), fan));
    const joined = b.join("pair", { amount, text });
    expectType<Equals<typeof joined, Handle<{ amount: number; text: string }>>>();
    // @ts-expect-error a join gives an object, not a number
    b.add(label, joined);

    const merged = b.merge("all", [byKey.a, byKey.b, byKey.rest]);
    expectType<Equals<typeof merged, Handle<Order>>>();

    b.tap(amount, (value, info) => {
      expectType<Equals<typeof value, number>>();
      expectType<Equals<typeof info.itemId, string | number>>();
    });
    return { joined, merged };
  });

test("graph types: outputs and sources are typed by name", async () => {
  type Outputs = Awaited<ReturnType<ReturnType<typeof typed>["collect"]>>["outputs"];
  expectType<Equals<Outputs["joined"], { amount: number; text: string }[]>>();
  expectType<Equals<Outputs["merged"], Order[]>>();
  const g = graph({ sources: { n: source<number>() } }, (b, { n }) => ({ labels: b.add(label, n) }));
  // @ts-expect-error the source gives numbers
  void (() => g.run({ n: ["one"] }));
  // @ts-expect-error there is no output "other"
  void (() => g.start([1]).outputs.other);
  const { outputs } = await g.collect([1, 2]);
  expectType<Equals<typeof outputs.labels, string[]>>();
  assert.deepEqual(outputs.labels, ["€1", "€2"]);
});
