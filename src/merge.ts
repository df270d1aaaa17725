/**
 * A merge node: the items of several nodes into one. It holds nothing of
 * its own: each edge in takes room straight from the node after the merge,
 * and the merge ends once every edge in has ended.
 *
 * @module
 */

import type { Edge, Inlet } from "./graph_edge.ts";

/** The way in of a merge of `inputs` edges whose items go on `out`. @internal */
export function mergeInlet(out: Edge, inputs: number, onEnd: () => void): Inlet {
  let open = inputs;
  return {
    capacity: out.target.capacity,
    accept: (chunk) => out.send(chunk),
    end: () => {
      if (--open > 0) return;
      out.end();
      onEnd();
    },
  };
}
