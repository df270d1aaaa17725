/**
 * Error routing: an ordered list of `[matcher, action]` rules that decides,
 * for each failed attempt, whether the item is retried, dead-lettered,
 * skipped or halts the pipeline.
 *
 * How the rules compose with `retryIf` and `maxRetries`:
 * - Rules are tried in order; the first rule whose matcher matches and whose
 *   action applies decides. A function action may return `undefined` to pass
 *   the error on to the next rule.
 * - `"retry"` retries after the stage's backoff, and applies only while the
 *   stage has retries left (`maxRetries`); once they are used up the rule is
 *   passed over and the next matching rule decides. So
 *   `[[Transient, "retry"], [Transient, "skip"]]` reads "retry, then skip".
 *   An explicit `"retry"` rule retries even errors `retryIf` refuses.
 * - An error no rule decides gets today's behaviour: retried per `retryIf`
 *   while retries are left, then dead-lettered.
 * - A `ShutdownError` or `CircuitOpenError` is never routed: the item is
 *   dead-lettered, as without rules.
 *
 * @module
 */

import { z } from "zod";
import type { ItemId } from "./events.ts";
import { CircuitOpenError, ShutdownError } from "./errors.ts";
import { retryIfSays, type RetryPolicy, type Unit } from "./retry.ts";

/** What to do with a failed item. `"halt"` is `{ halt: "graceful" }`. */
export type ErrorAction =
  | "retry"
  | "deadLetter"
  | "skip"
  | "halt"
  | { readonly halt: "graceful" | "force" };

/** What a function action (and `onStageError`) is told about the failure. */
export interface ErrorRouteContext {
  /** The stage the attempt failed in. */
  readonly stage: string;
  /** The item's id (a batch: its first item's). */
  readonly itemId: ItemId;
  /** Every item's id: one for an item stage, the batch for a batch stage. */
  readonly itemIds: readonly ItemId[];
  /** The attempt that failed, 1-based. */
  readonly attempt: number;
  /** Retries the stage still has for this item (`maxRetries` minus the retries made). */
  readonly retriesLeft: number;
}

/**
 * An action computed from the error: return an {@linkcode ErrorAction}, or
 * `undefined` to let the next rule decide.
 */
export type ErrorActionFn = (error: unknown, ctx: ErrorRouteContext) => ErrorAction | undefined;

/** A class of error: matches errors that are `instanceof` it. */
export type ErrorClass = abstract new (...args: never[]) => unknown;

/**
 * What a rule matches: an error class (`instanceof`), a predicate, or a
 * string compared with the error's `name`.
 */
export type ErrorMatcher = ErrorClass | ((error: unknown) => boolean) | string;

/** One rule: when `matcher` matches the error, do `action`. */
export type ErrorRule = readonly [matcher: ErrorMatcher, action: ErrorAction | ErrorActionFn];

/**
 * The `onError` option of a stage or a pipeline: rules tried in order (see
 * the module documentation for how they compose with `retryIf`).
 *
 * @example Skip bad rows, halt on a lost connection, dead-letter the rest
 * ```ts
 * import { type OnError, Pipeline, stage } from "../mod.ts";
 *
 * class ConnectionLost extends Error {}
 * const onError: OnError = [
 *   [SyntaxError, "skip"],
 *   [ConnectionLost, { halt: "force" }],
 *   ["TimeoutError", "retry"],
 * ];
 * const parse = stage("parse", (line: string) => JSON.parse(line) as unknown, { onError });
 * const metrics = await new Pipeline({ name: "lines", stages: [parse] }).run(["1", "{"]);
 * console.assert(metrics.totalCompleted === 1 && metrics.totalSkipped === 1);
 * ```
 */
export type OnError = readonly ErrorRule[];

/** A decided action, normalised. @internal */
export type Decision = "retry" | "deadLetter" | "skip" | { readonly halt: "graceful" | "force" };

const matcherSchema = z.custom<ErrorMatcher>(
  (value) => typeof value === "function" || (typeof value === "string" && value.length > 0),
  { error: "must be an error class, a predicate function or an error name (a non-empty string)" },
);
const actionSchema = z.union([
  z.enum(["retry", "deadLetter", "skip", "halt"]),
  z.strictObject({ halt: z.enum(["graceful", "force"]) }),
  z.custom<ErrorActionFn>((value) => typeof value === "function"),
], { error: 'must be "retry", "deadLetter", "skip", "halt", { halt: "force" } or a function returning one' });

/** The `onError` option's schema. @internal */
export const onErrorSchema = z.array(
  z.tuple([matcherSchema, actionSchema], { error: "must be a [matcher, action] pair" }),
  { error: "must be an array of [matcher, action] pairs" },
);

interface CompiledRule {
  readonly matches: (error: unknown) => boolean;
  readonly action: ErrorAction | ErrorActionFn;
  readonly index: number;
}

/** Whether a function is a class (matched with `instanceof`) rather than a predicate. */
function isClass(fn: ErrorClass | ((error: unknown) => boolean)): boolean {
  if (fn === Error || fn.prototype instanceof Error) return true;
  return /^class\b/.test(Function.prototype.toString.call(fn));
}

/** Decides one stage's failures. @internal */
export class ErrorRouter {
  readonly #rules: readonly CompiledRule[];
  readonly #stage: string;
  readonly #warn: (message: string, properties: Record<string, unknown>) => void;

  constructor(
    rules: OnError,
    stage: string,
    warn: (message: string, properties: Record<string, unknown>) => void,
  ) {
    this.#stage = stage;
    this.#warn = warn;
    this.#rules = rules.map(([matcher, action], index) => ({ matches: this.#matcher(matcher, index), action, index }));
  }

  #matcher(matcher: ErrorMatcher, index: number): (error: unknown) => boolean {
    if (typeof matcher === "string") {
      return (error) => (error as { name?: unknown } | null)?.name === matcher;
    }
    if (isClass(matcher)) {
      const cls = matcher as ErrorClass;
      return (error) => error instanceof cls;
    }
    const predicate = matcher as (error: unknown) => boolean;
    return (error) => {
      try {
        return predicate(error) === true;
      } catch (predicateError) {
        this.#warn("onError matcher threw; the rule does not match", {
          stage: this.#stage,
          rule: index,
          error: predicateError,
        });
        return false;
      }
    };
  }

  /** The action for a failed attempt (`attempt` is the one that failed). */
  decide(unit: Unit, policy: RetryPolicy, error: unknown, attempt: number): Decision {
    if (error instanceof ShutdownError || error instanceof CircuitOpenError) return "deadLetter";
    const retriesLeft = Math.max(0, policy.maxRetries - attempt + 1);
    let ctx: ErrorRouteContext | undefined;
    for (const rule of this.#rules) {
      if (!rule.matches(error)) continue;
      let action: unknown = rule.action;
      if (typeof action === "function") {
        ctx ??= { stage: unit.stage, itemId: unit.itemIds[0], itemIds: unit.itemIds, attempt, retriesLeft };
        try {
          action = (action as ErrorActionFn)(error, ctx);
        } catch (actionError) {
          this.#warn("onError action function threw; the item is dead-lettered", {
            stage: this.#stage,
            rule: rule.index,
            error: actionError,
          });
          return "deadLetter";
        }
        if (action === undefined) continue;
      }
      const decision = normalise(action);
      if (!decision) {
        this.#warn("onError action function returned no known action; the item is dead-lettered", {
          stage: this.#stage,
          rule: rule.index,
          returned: String(action),
        });
        return "deadLetter";
      }
      if (decision === "retry" && retriesLeft === 0) continue;
      return decision;
    }
    return retriesLeft > 0 && retryIfSays(unit, policy, error, attempt) ? "retry" : "deadLetter";
  }
}

function normalise(action: unknown): Decision | undefined {
  if (action === "retry" || action === "deadLetter" || action === "skip") return action;
  if (action === "halt") return { halt: "graceful" };
  const halt = (action as { halt?: unknown } | null)?.halt;
  if (halt === "graceful" || halt === "force") return { halt };
  return undefined;
}

/** A decision as the action name the hooks and logs use. @internal */
export function actionName(decision: Decision): "retry" | "deadLetter" | "skip" | "halt" | "halt (force)" {
  if (typeof decision === "string") return decision;
  return decision.halt === "force" ? "halt (force)" : "halt";
}
