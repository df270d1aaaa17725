/**
 * A route node: a stage whose attempt names each item's branch (so a
 * predicate that throws dead-letters the item like any stage would), and a
 * fan-out after it that sends each item on its branch's edge only.
 *
 * @module
 */

import { PermanentError } from "./errors.ts";
import { specOf, stage, type StageSpec } from "./stage.ts";

/**
 * Dead-letters an item that no branch of a route takes: its key names no
 * branch (or no predicate held) and the route has no `default`.
 *
 * @example
 * ```ts
 * import { RouteError } from "../mod.ts";
 *
 * const error = new RouteError("byKind", "refund", ["order", "payment"]);
 * console.assert(error.name === "RouteError" && error.message.includes('"refund"'));
 * ```
 */
export class RouteError extends PermanentError {
  /** The route's name. */
  readonly route: string;
  /** The key the item got, if the route is by key. */
  readonly key: string | undefined;
  /**
   * Makes the error.
   * @param route The route's name.
   * @param key The key the item got (undefined for a route by predicates).
   * @param branches The route's branches.
   */
  constructor(route: string, key: string | undefined, branches: readonly string[]) {
    super(
      `Route "${route}": ${
        key === undefined ? "no predicate took the item" : `key ${JSON.stringify(key)} names no branch`
      }; its branches are ${
        branches.map((b) => `"${b}"`).join(", ")
      }: give the route a default branch to take such items`,
    );
    this.name = "RouteError";
    this.route = route;
    this.key = key;
  }
}

/** A value on its way out of a route, with its branch. @internal */
export class Routed {
  constructor(readonly branch: string, readonly value: unknown) {}
}

/**
 * The stage spec of a route: one synchronous attempt per item that wraps
 * the value with its branch. @internal
 */
export function routeSpec(
  name: string,
  choose: (value: unknown) => string | undefined,
  branches: readonly string[],
  keyOf?: (value: unknown) => string,
): StageSpec {
  return specOf(stage(name, (value: unknown) => {
    const branch = choose(value);
    if (branch === undefined) throw new RouteError(name, keyOf?.(value), branches);
    return new Routed(branch, value);
  }))!;
}
