/**
 * Dead-letter replay: entries run again from the stage each one failed in,
 * with their ids. Attempts restart: a replayed item gets the stage's full
 * `maxRetries` again, `ctx.attempt` starts at 1, and if it fails again its
 * new dead letter's `attempts` counts the replay's attempts only (its
 * `firstAttemptAt` is the replay's first attempt).
 *
 * @module
 */

import { show } from "./config.ts";
import type { DeadLetter } from "./dead_letter.ts";
import { type Chunk, type Envelope, Item, Pending } from "./envelope.ts";
import type { ItemId } from "./events.ts";

/** What replay needs of an entry: a `DeadLetter`, or one read back with `DeadLetterSchema.parse`. */
export type ReplayEntry = Pick<DeadLetter, "itemId" | "stage" | "item">;

/** Entries checked against the pipeline's stages, each with its stage's index. @internal */
export interface CheckedReplay {
  readonly entries: readonly ReplayEntry[];
  /** Indexes of the stages some entry starts at (after the first). */
  readonly startStages: ReadonlySet<number>;
}

/**
 * Checks every entry before anything runs: an entry must have an id and
 * name one of the pipeline's stages.
 * @throws {TypeError} naming the entry and the stages there are.
 * @internal
 */
export function checkReplay(pipeline: string, stages: readonly string[], deadLetters: unknown): CheckedReplay {
  const iterable = deadLetters !== null && typeof deadLetters === "object" &&
    typeof (deadLetters as Iterable<unknown>)[Symbol.iterator] === "function";
  if (!iterable) {
    throw new TypeError(
      `Pipeline "${pipeline}": replay() takes an array of dead letters (pipeline.deadLetters, or entries read back ` +
        `with DeadLetterSchema.parse); got ${show(deadLetters)}`,
    );
  }
  const entries = [...(deadLetters as Iterable<unknown>)];
  const startStages = new Set<number>();
  entries.forEach((entry, index) => {
    const { itemId, stage } = (entry ?? {}) as { itemId?: unknown; stage?: unknown };
    if (typeof itemId !== "string" && typeof itemId !== "number") {
      throw new TypeError(
        `Pipeline "${pipeline}": deadLetters[${index}] has no itemId (a string or a number); got ${show(entry)}: ` +
          `pass dead letters as the pipeline recorded them, or read them back with DeadLetterSchema.parse`,
      );
    }
    const at = stages.indexOf(stage as string);
    if (at < 0) {
      throw new TypeError(
        `Pipeline "${pipeline}": deadLetters[${index}] (item ${JSON.stringify(itemId)}) failed in stage ${
          show(stage)
        }, which this pipeline does not have; its stages are ${stages.map((name) => `"${name}"`).join(", ")}`,
      );
    }
    if (at > 0) startStages.add(at);
  });
  return { entries: entries as ReplayEntry[], startStages };
}

/** The envelope an entry enters the pipeline as. @internal */
export function replayEnvelope(entry: ReplayEntry, firstStage: string): Envelope {
  const id: ItemId = entry.itemId;
  return entry.stage === firstStage ? new Item(id, entry.item) : new Pending(id, entry.stage, entry.item);
}

/** Turns the entries replayed from `stage` into items just before it; everything else passes. @internal */
export function unpend(stage: string): TransformStream<Chunk, Chunk> {
  return new TransformStream<Chunk, Chunk>({
    transform(chunk, controller) {
      for (let i = 0; i < chunk.length; i++) {
        const envelope = chunk[i];
        if (envelope instanceof Pending && envelope.stage === stage) chunk[i] = new Item(envelope.id, envelope.value);
      }
      controller.enqueue(chunk);
    },
  });
}
