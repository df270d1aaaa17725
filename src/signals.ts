/**
 * SIGINT/SIGTERM handling for Node, Deno and Bun, found by feature detection.
 * This is the only runtime-specific module; on runtimes without process
 * signals (browsers, workers at the edge) it does nothing.
 *
 * @module
 */

/** The signals a run with `handleSignals: true` listens for. */
export const SHUTDOWN_SIGNALS = ["SIGINT", "SIGTERM"] as const;

type SignalName = (typeof SHUTDOWN_SIGNALS)[number];

interface DenoSignals {
  addSignalListener(signal: SignalName, handler: () => void): void;
  removeSignalListener(signal: SignalName, handler: () => void): void;
  build?: { os?: string };
}

interface ProcessSignals {
  on(signal: SignalName, handler: () => void): unknown;
  off(signal: SignalName, handler: () => void): unknown;
  platform?: string;
}

/**
 * Calls `handler` with the signal's name and how many shutdown signals have
 * arrived so far; returns a function that removes the listeners.
 * @internal
 */
export function onShutdownSignals(handler: (signal: SignalName, count: number) => void): () => void {
  let count = 0;
  const listeners = SHUTDOWN_SIGNALS.map((signal) => [signal, () => handler(signal, ++count)] as const);
  const deno = (globalThis as { Deno?: DenoSignals }).Deno;
  if (deno?.addSignalListener) {
    const supported = listeners.filter(([signal]) => deno.build?.os !== "windows" || signal === "SIGINT");
    for (const [signal, listener] of supported) deno.addSignalListener(signal, listener);
    return () => {
      for (const [signal, listener] of supported) deno.removeSignalListener(signal, listener);
    };
  }
  const process = (globalThis as { process?: ProcessSignals }).process;
  if (typeof process?.on === "function" && typeof process.off === "function") {
    for (const [signal, listener] of listeners) process.on(signal, listener);
    return () => {
      for (const [signal, listener] of listeners) process.off(signal, listener);
    };
  }
  return () => {};
}
