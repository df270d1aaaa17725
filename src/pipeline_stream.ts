/**
 * The `{ writable, readable, finished }` pair behind `pipeline.stream()`.
 *
 * Values written to `writable` are ingested straight into the first stage
 * (no queue of their own, so nothing counted as ingested can be dropped);
 * `readable` pulls results from the last stage. Every item ends completed or
 * dead-lettered, whatever the two ends do:
 * - the producer closes `writable`: the stages drain and `readable` closes;
 * - the producer aborts `writable`: the stages drain, then `readable` errors
 *   with the abort reason;
 * - the consumer cancels `readable`: the producer's writes fail from then on,
 *   attempts in flight are interrupted (`ctx.signal` aborts), and the items
 *   still inside are dead-lettered with a `ShutdownError` while the stages
 *   drain in the background;
 * - a strategy halts the run (`onError` "halt", `maxSkips`, …): `writable`
 *   errors with the `HaltError`, the stages drain (a forced halt interrupts
 *   them), and `readable` errors with the final `HaltError` after the last
 *   output;
 * - `finished` resolves with the final metrics once all of that is done.
 *
 * @module
 */

import type { Chunk, Envelope } from "./envelope.ts";
import type { PipelineMetrics } from "./metrics.ts";
import { type Outlet, STREAM_OUTLET_CAPACITY } from "./outlet.ts";
import type { RunContext } from "./run_context.ts";
import { pipeThroughEngines } from "./stage_stream.ts";
import type { Capacity } from "./capacity.ts";

/** What `pipeline.stream()` returns. */
export interface PipelineStream<I, O> {
  /** Write items here; close it when there are no more. */
  readonly writable: WritableStream<I>;
  /** The last stage's outputs, in order for ordered stages. Failures go to the dead letter queue. */
  readonly readable: ReadableStream<O>;
  /**
   * Resolves with the final metrics once every item written has completed or
   * been dead-lettered and the dead letter sink is closed, however the
   * stream ended. It never rejects: errors (a halt's `HaltError` too) reach
   * `readable`'s consumer.
   */
  readonly finished: Promise<PipelineMetrics>;
}

/** @internal */
export function openPipelineStream<I, O>(
  run: RunContext,
  engines: readonly { readonly capacity: Capacity; readonly stream: TransformStream<Chunk, Chunk> }[],
  outlet: Outlet,
  ingest: (value: unknown) => Envelope,
  end: () => void,
  /** After the run ended: the error `readable` ends with (a halt's), if any. */
  failure: () => { error: unknown } | undefined = () => undefined,
): PipelineStream<I, O> & { readonly closeInput: (reason?: unknown) => void } {
  const head = engines[0];
  const headWriter = head.stream.writable.getWriter();
  const reader = pipeThroughEngines(head.stream.readable, engines.slice(1)).getReader();

  let writableController!: WritableStreamDefaultController;
  let producerAborted: { reason: unknown } | undefined;
  let cancelled: { error: unknown } | undefined;
  let inputClosed = false;
  const closeInput = () => {
    if (inputClosed) return;
    inputClosed = true;
    headWriter.close().catch(() => {}); // the stages drain; the reader sees the end
  };

  let settle!: (metrics: PipelineMetrics) => void;
  const finished = new Promise<PipelineMetrics>((resolve) => (settle = resolve));
  let sinkError: { error: unknown } | undefined;
  let ended = false;
  const finish = async () => {
    if (ended) return;
    ended = true;
    try {
      await outlet.close();
    } catch (error) {
      sinkError = { error };
    }
    end();
    settle(run.metrics.snapshot());
  };

  const writable = new WritableStream<I>({
    start(controller) {
      writableController = controller;
    },
    async write(value) {
      await head.capacity.whenFree();
      if (cancelled) throw cancelled.error; // the consumer left while this write waited for room
      if (inputClosed) throw new TypeError("pipeline.close() closed this stream's writable side; no more writes");
      head.capacity.take(1);
      headWriter.write([ingest(value)] satisfies Chunk).catch(() => {});
    },
    close: closeInput,
    abort(reason) {
      producerAborted = { reason };
      run.log("warn", "stream writable aborted; finishing the items already written", { error: reason });
      closeInput();
    },
  });

  const readable = new ReadableStream<O>({
    async pull(controller) {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          await finish();
          const ending = producerAborted ? { error: producerAborted.reason } : sinkError ?? failure();
          if (ending) controller.error(ending.error);
          else controller.close();
          return;
        }
        if (cancelled) return outlet.accept(value); // cancel came while this read was pending
        let emitted = 0;
        outlet.accept(value, (output) => {
          controller.enqueue(output as O);
          emitted++;
        });
        if (emitted > 0) return;
      }
    },
    cancel(reason) {
      const error = reason ?? new Error("the consumer cancelled the pipeline's readable");
      cancelled = { error };
      run.log("warn", "stream readable cancelled; interrupting and dead-lettering what is left", { error });
      writableController.error(error);
      closeInput();
      run.force(error);
      return drainInBackground(reader, outlet).then(finish);
    },
  }, { highWaterMark: STREAM_OUTLET_CAPACITY }); // read ahead, so the last stage works while the consumer is busy

  /** For pipeline.close() and a halt: no more writes (they fail with `reason`), the stages drain. */
  const stopInput = (
    reason: unknown = new TypeError("pipeline.close() closed this stream's writable side; no more writes"),
  ) => {
    if (inputClosed) return;
    writableController.error(reason);
    closeInput();
  };
  return { writable, readable, finished, closeInput: stopInput };
}

/** After a cancel: every chunk still coming goes to the outlet (results counted, failures dead-lettered). */
async function drainInBackground(reader: ReadableStreamDefaultReader<Chunk>, outlet: Outlet): Promise<void> {
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    outlet.accept(value);
  }
}
