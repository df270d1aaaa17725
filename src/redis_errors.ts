/**
 * The errors of `sluice/redis`.
 *
 * @module
 */

/**
 * A Redis stream cannot be read or written as asked: the client is not
 * connected, the stream or the consumer group does not exist, or an
 * acknowledgement failed. The message says what to do; `cause` holds the
 * Redis error, if any.
 *
 * @example
 * ```ts
 * import { RedisStreamError } from "./redis_errors.ts";
 *
 * const error = new RedisStreamError("the stream \"orders\" does not exist");
 * console.assert(error.name === "RedisStreamError");
 * ```
 */
export class RedisStreamError extends Error {
  /**
   * Makes the error.
   * @param message What is wrong and what to do.
   * @param options `cause`: the Redis error, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RedisStreamError";
  }
}

/**
 * The dead letter of a stream entry delivered more than `maxDeliveries`
 * times: consumers kept dying (or timing out) while it was in flight, so it
 * is dead-lettered instead of being run again.
 *
 * @example
 * ```ts
 * import { PoisonMessageError } from "./redis_errors.ts";
 *
 * const error = new PoisonMessageError("orders", "1700000000000-0", 6, 5);
 * console.assert(error.name === "PoisonMessageError" && error.deliveries === 6);
 * ```
 */
export class PoisonMessageError extends Error {
  /** The stream entry's id. */
  readonly entryId: string;
  /** How many times the entry has been delivered. */
  readonly deliveries: number;
  /** The source's `maxDeliveries`. */
  readonly maxDeliveries: number;

  /**
   * Makes the dead letter's error.
   * @param stream The stream the entry is in.
   * @param entryId The entry's id.
   * @param deliveries How many times it has been delivered.
   * @param maxDeliveries The source's limit.
   */
  constructor(stream: string, entryId: string, deliveries: number, maxDeliveries: number) {
    super(
      `Entry ${entryId} of stream "${stream}" was delivered ${deliveries} times, more than maxDeliveries ` +
        `(${maxDeliveries}): it is dead-lettered instead of being run again; find out why the consumers that ` +
        `read it stopped (the dead letter holds the entry), then add it to the stream again to replay it`,
    );
    this.name = "PoisonMessageError";
    this.entryId = entryId;
    this.deliveries = deliveries;
    this.maxDeliveries = maxDeliveries;
  }
}
