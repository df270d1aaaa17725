/**
 * Event listeners beside the `onEvent` option: `pipeline.subscribe()` adds
 * one (an integration such as `sluice/otel` does), and a run delivers each
 * event to the option's listener and then to every subscriber.
 *
 * @module
 */

import { isPromiseLike } from "./attempt.ts";
import type { EventListener, PipelineEvent } from "./events.ts";

/**
 * One listener calling `first` (the `onEvent` option, if any) and then each
 * of `subscribers`, read live (one removed mid-run hears no more). Every
 * listener is called even if an earlier one throws; the first error is
 * rethrown afterwards (after the listeners' promises settle, if any), so the run logs it
 * as it does for `onEvent`.
 * @internal
 */
export function fanOut(first: EventListener | undefined, subscribers: ReadonlySet<EventListener>): EventListener {
  return (event: PipelineEvent) => {
    let failure: { error: unknown } | undefined;
    let pending: Promise<unknown>[] | undefined;
    const call = (listener: EventListener) => {
      try {
        const result: unknown = listener(event);
        if (isPromiseLike(result)) (pending ??= []).push(Promise.resolve(result));
      } catch (error) {
        failure ??= { error };
      }
    };
    if (first) call(first);
    for (const listener of subscribers) call(listener);
    if (!pending) {
      if (failure) throw failure.error;
      return;
    }
    // Every promise is waited for (none is left unhandled), then the first error is passed on.
    return Promise.allSettled(pending).then((results) => {
      if (failure) throw failure.error;
      const rejected = results.find((result) => result.status === "rejected");
      if (rejected) throw rejected.reason;
    });
  };
}
