/**
 * Holds an acknowledging source's `settle` back for a flatMap stage's
 * parents: a parent is told once it and every output it was expanded into
 * have a final fate. Told at once, the source would acknowledge a message
 * whose outputs are still in the pipeline, and a crash then would lose them.
 *
 * @module
 */

import type { ItemId } from "./events.ts";
import type { SettleListener } from "./outlet.ts";
import type { Fate, SettledItem } from "./source.ts";

/** A parent and its outputs not settled yet. */
interface Family {
  readonly id: ItemId;
  /** Outputs made and not settled yet. */
  open: number;
  /** The parent's own fate, once it has one ("expanded", or "dead-lettered" when its expansion failed midway). */
  fate: Fate | undefined;
}

/**
 * Made only for a run with an acknowledging source and a flatMap stage. The
 * outputs themselves are not told (the source did not hand them out); an
 * output that was expanded again (nested flatMap stages) counts as settled
 * once its own outputs have. Ids are the key, so outputs need ids unique in
 * the run (the default, `<parent id>.<index>`, is).
 * @internal
 */
export class SettleGate {
  readonly #settle: SettleListener;
  /** Parents with outputs, by id, until told. */
  readonly #families = new Map<ItemId, Family>();
  /** Outputs not settled yet, by id: their parent's family. */
  readonly #parents = new Map<ItemId, Family>();

  constructor(settle: SettleListener) {
    this.#settle = settle;
  }

  /** A flatMap stage made `child` from `parent`, before handing it on. */
  adopt(parent: ItemId, child: ItemId): void {
    let family = this.#families.get(parent);
    if (!family) {
      family = { id: parent, open: 0, fate: undefined };
      this.#families.set(parent, family);
    }
    family.open++;
    this.#parents.set(child, family);
  }

  /** The outlet's listener: passes on the fates that are final now, parents' once their outputs' are. */
  readonly settle: SettleListener = (items) => {
    const told: SettledItem[] = [];
    for (const item of items) this.#settled(item, told);
    if (told.length > 0) this.#settle(told);
  };

  #settled(item: SettledItem, told: SettledItem[]): void {
    const family = this.#families.get(item.id);
    if (family) {
      family.fate = item.fate;
      if (family.open > 0) return; // its last output tells it
      this.#families.delete(item.id);
    }
    const parent = this.#parents.get(item.id);
    if (!parent) {
      told.push(item); // one of the source's own
      return;
    }
    this.#parents.delete(item.id);
    if (--parent.open > 0 || parent.fate === undefined) return;
    this.#families.delete(parent.id);
    this.#settled({ id: parent.id, fate: parent.fate }, told);
  }
}
