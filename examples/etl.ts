/**
 * The sluice demo: a four-stage ETL pipeline over generated orders.
 *
 *   ingest → validate → transform → load
 *
 * - `validate` refuses bad orders with a PermanentError: they go straight to
 *   the dead letter queue, without a retry.
 * - `transform` and `load` call (simulated) services that sometimes fail on
 *   the first attempt; the retry succeeds.
 * - While it runs, `progress()` shows it live: in a terminal, a bar per stage
 *   (counts, rates, busy workers, queue fill) under an overall bar with an
 *   ETA; piped or in CI, one plain line every 250 ms. At the end, the final
 *   report and the dead letter queue.
 * - Ctrl-C stops reading new orders and lets everything already read finish;
 *   a second Ctrl-C interrupts what is still running.
 *
 * Run it with any of:
 *   npm run demo
 *   npx deno run -A examples/etl.ts
 *   npx bun examples/etl.ts
 *
 * @module
 */

import { PermanentError, Pipeline, progress, stage, type StageContext } from "../mod.ts";

const ORDER_COUNT = 3000;
const SEED = 42;

interface Order {
  readonly id: string;
  readonly customer: string;
  readonly email: string;
  readonly amount: number;
  readonly currency: string;
}

interface PricedOrder extends Order {
  readonly amountUsd: number;
}

// ---------------------------------------------------------------------------
// The data: the same orders on every run (a seeded generator), one JSON line
// each, about 3% of them invalid.

/** mulberry32: a tiny seeded random number generator, in [0, 1). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function* orderLines(count: number, seed: number): Generator<string> {
  const random = seededRandom(seed);
  const currencies = ["EUR", "USD", "GBP", "JPY"];
  for (let i = 1; i <= count; i++) {
    const customer = `c${String(Math.floor(random() * 500)).padStart(3, "0")}`;
    const order = {
      id: `ord-${String(i).padStart(5, "0")}`,
      customer,
      email: `${customer}@example.com`,
      amount: Math.round(random() * 50_000) / 100,
      currency: currencies[Math.floor(random() * currencies.length)],
    };
    const flaw = random();
    if (flaw < 0.01) order.email = "";
    else if (flaw < 0.02) order.amount = -order.amount;
    else if (flaw < 0.03) order.currency = "XYZ";
    yield JSON.stringify(order);
  }
}

// ---------------------------------------------------------------------------
// Simulated I/O: small delays, and services that fail now and then.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** True for about `percent`% of keys, the same ones on every run (FNV-1a hash). */
function unlucky(key: string, percent: number): boolean {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % 100 < percent;
}

const USD_PER_UNIT: Record<string, number> = { EUR: 1.08, USD: 1, GBP: 1.27, JPY: 0.0067 };

// ---------------------------------------------------------------------------
// The stages. Each one is an ordinary (async) function of one item.

function ingest(line: string): Order {
  return JSON.parse(line) as Order;
}

async function validate(order: Order): Promise<Order> {
  await sleep(1); // say, a lookup in a customer cache
  if (!order.email.includes("@")) throw new PermanentError(`${order.id}: email is missing`);
  if (order.amount <= 0) throw new PermanentError(`${order.id}: amount must be positive, got ${order.amount}`);
  if (!(order.currency in USD_PER_UNIT)) {
    throw new PermanentError(`${order.id}: unknown currency ${JSON.stringify(order.currency)}`);
  }
  return order;
}

async function transform(order: Order, ctx: StageContext): Promise<PricedOrder> {
  await sleep(4); // an exchange-rate service
  if (ctx.attempt === 1 && unlucky(`${order.id}/rates`, 5)) throw new Error("exchange-rate service: 503");
  return { ...order, amountUsd: Math.round(order.amount * USD_PER_UNIT[order.currency] * 100) / 100 };
}

const warehouse: PricedOrder[] = [];

async function load(order: PricedOrder, ctx: StageContext): Promise<PricedOrder> {
  await sleep(2); // a database insert
  if (ctx.attempt === 1 && unlucky(`${order.id}/db`, 2)) throw new Error("database: connection reset");
  warehouse.push(order);
  return order;
}

// ---------------------------------------------------------------------------
// The pipeline.

const pipeline = new Pipeline({
  name: "etl",
  stages: [
    stage("ingest", ingest, { concurrency: 1 }),
    stage("validate", validate, { concurrency: 4 }),
    // Order does not matter from here on: `ordered: false` lets a retrying
    // item fall behind without holding the others up.
    stage("transform", transform, { concurrency: 8, maxRetries: 3, ordered: false }),
    stage("load", load, { concurrency: 2, maxRetries: 5, ordered: false, backoff: { initialDelayMs: 50 } }),
  ],
  queueSize: 200, // small, so that you can watch backpressure: the queue in front of `load` fills up
  deadLetterQueue: true,
});

// ---------------------------------------------------------------------------
// Printing.

function printDeadLetters(): void {
  const entries = pipeline.deadLetters;
  const byCause = new Map<string, number>();
  for (const entry of entries) {
    const cause = `${entry.stage}/${entry.error.name}`;
    byCause.set(cause, (byCause.get(cause) ?? 0) + 1);
  }
  const causes = [...byCause].map(([cause, count]) => `${cause} ${count}`).join(", ");
  console.log(`\nDead letter queue: ${entries.length} entries (${causes || "none"})`);
  console.log(`  ${"itemId".padEnd(8)}${"stage".padEnd(11)}${"attempts".padEnd(10)}reason`);
  for (const entry of entries.slice(0, 10)) {
    console.log(
      `  ${String(entry.itemId).padEnd(8)}${entry.stage.padEnd(11)}${String(entry.attempts).padEnd(10)}${entry.reason}`,
    );
  }
}

// ---------------------------------------------------------------------------
// Run it.

console.log(`sluice demo: ${ORDER_COUNT} orders through ingest → validate → transform → load (Ctrl-C to stop)\n`);
const metrics = await progress(pipeline, { total: ORDER_COUNT, intervalMs: 250 }).run(orderLines(ORDER_COUNT, SEED), {
  handleSignals: true,
});
const balanced = metrics.totalIngested === metrics.totalCompleted + metrics.totalFailed;
console.log(`  ingested = completed + failed: ${balanced ? "yes" : "NO"}`);
printDeadLetters();
console.log(`\n${warehouse.length} orders loaded into the warehouse.`);
