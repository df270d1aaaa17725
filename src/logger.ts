/**
 * The logger interface sluice writes to, and a small structured console
 * logger for those who want one. sluice is silent by default.
 *
 * @module
 */

import type { ItemId } from "./events.ts";

/** Structured fields attached to a log record. */
export type LogProperties = Record<string, unknown>;

/** `itemId` for one item, `itemIds` for a batch: how log records name what they are about. @internal */
export function idFields(itemIds: readonly ItemId[]): { itemId: ItemId } | { itemIds: readonly ItemId[] } {
  return itemIds.length === 1 ? { itemId: itemIds[0] } : { itemIds };
}

/**
 * Anything with `debug/info/warn/error(message, properties?)`: `console`,
 * LogTape's and `@std/log`'s loggers all fit. Records from sluice carry
 * `pipeline`, `stage`, `itemId` and `attempt` where they apply.
 *
 * @example Use LogTape, `@std/log` or your own
 * ```ts
 * import type { Logger } from "./logger.ts";
 *
 * const lines: string[] = [];
 * const logger: Logger = {
 *   debug: () => {},
 *   info: (message) => lines.push(message),
 *   warn: (message) => lines.push(message),
 *   error: (message) => lines.push(message),
 * };
 * logger.info("started", { pipeline: "etl" });
 * ```
 */
export interface Logger {
  /** Per-item detail: each attempt started and each item completed in a stage. */
  debug(message: string, properties?: LogProperties): void;
  /** Run lifecycle: started, stopping, finished, signals received. */
  info(message: string, properties?: LogProperties): void;
  /** Retries, listener failures, forced shutdowns. */
  warn(message: string, properties?: LogProperties): void;
  /** Dead-lettered items and failed sinks. */
  error(message: string, properties?: LogProperties): void;
}

/** A logger that drops every record: the default. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** The levels {@linkcode consoleLogger} knows, least severe first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Options for {@linkcode consoleLogger}. */
export interface ConsoleLoggerOptions {
  /**
   * `json` writes one JSON object per line; `pretty` writes
   * `LEVEL message key=value …`.
   * @default {"json"}
   */
  readonly format?: "json" | "pretty";
  /**
   * Records below this level are dropped.
   * @default {"info"}
   */
  readonly level?: LogLevel;
  /**
   * Where lines go.
   * @default {console.error}
   */
  readonly write?: (line: string) => void;
}

const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/**
 * A structured logger that writes JSON lines (or readable lines) to the
 * console.
 *
 * @example JSON lines at info level
 * ```ts
 * import { consoleLogger } from "./logger.ts";
 *
 * const lines: string[] = [];
 * const logger = consoleLogger({ write: (line) => lines.push(line) });
 * logger.info("run finished", { pipeline: "etl", completed: 3 });
 * logger.debug("dropped: below the level");
 * console.assert(JSON.parse(lines[0]).completed === 3 && lines.length === 1);
 * ```
 */
export function consoleLogger(options: ConsoleLoggerOptions = {}): Logger {
  const { format = "json", level = "info", write = (line) => console.error(line) } = options;
  const threshold = LEVELS.indexOf(level);
  if (threshold < 0) {
    throw new TypeError(`consoleLogger level must be one of ${LEVELS.join(", ")}: got ${String(level)}`);
  }
  if (format !== "json" && format !== "pretty") {
    throw new TypeError(`consoleLogger format must be "json" or "pretty": got ${String(format)}`);
  }
  const log = (at: LogLevel) => (message: string, properties: LogProperties = {}) => {
    if (LEVELS.indexOf(at) < threshold) return;
    write(format === "json" ? toJsonLine(at, message, properties) : toPrettyLine(at, message, properties));
  };
  return { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

function toJsonLine(level: LogLevel, message: string, properties: LogProperties): string {
  return JSON.stringify({ time: new Date().toISOString(), level, message, ...properties }, jsonSafe);
}

function toPrettyLine(level: LogLevel, message: string, properties: LogProperties): string {
  const fields = Object.entries(properties)
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value, jsonSafe)}`);
  return [level.toUpperCase().padEnd(5), message, ...fields].join(" ");
}

function jsonSafe(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === "bigint") return value.toString();
  return value;
}
