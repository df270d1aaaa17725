/**
 * A graph: signups are checked and split (valid / invalid), each valid one
 * is enriched from two services in parallel (a broadcast and a join), and
 * the enriched records are written to a warehouse; a tap samples what
 * reaches it, and the graph is drawn with its live counts at the end.
 *
 * Run: node --import tsx examples/graph.ts (or deno run examples/graph.ts, bun examples/graph.ts)
 *
 * @module
 */

import { graph, PermanentError, source, stage } from "../mod.ts";

interface Signup {
  readonly id: string;
  readonly email: string;
  readonly country: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Two services to enrich from; the credit service refuses one country. */
async function geoLookup(signup: Signup): Promise<{ region: string }> {
  await sleep(2);
  return { region: signup.country === "NZ" || signup.country === "AU" ? "APAC" : "EMEA" };
}

async function creditScore(signup: Signup): Promise<number> {
  await sleep(3);
  if (signup.country === "XX") throw new PermanentError(`no credit data for country ${signup.country}`);
  return 300 + (signup.id.length * 97) % 550;
}

const warehouse: unknown[] = [];
const sampled: string[] = [];

const signups = graph({
  name: "signups",
  sources: { signups: source<Signup>() },
  id: (value) => (value as Signup).id,
}, (b, { signups }) => {
  const { valid, invalid } = b.route("check", signups, {
    when: { valid: (s) => s.email.includes("@") },
    default: "invalid",
  });
  const both = b.broadcast("enrich", valid);
  const geo = b.add(stage("geo", geoLookup, { concurrency: 8 }), both);
  const credit = b.add(stage("credit", creditScore, { concurrency: 4, maxRetries: 2 }), both);
  const enriched = b.join("combine", { geo, credit }, { timeoutMs: 1000 });
  const saved = b.add(
    stage("save", async (record: { geo: { region: string }; credit: number }) => {
      warehouse.push(record);
      return record;
    }),
    enriched,
  );
  b.tap(enriched, (record, info) => void sampled.push(`${info.itemId}: ${record.geo.region}/${record.credit}`), {
    bufferSize: 10,
    whenFull: "sample",
  });
  return { saved, invalid };
});

const input: Signup[] = [
  { id: "u1", email: "ada@example.com", country: "NZ" },
  { id: "u2", email: "not-an-email", country: "DE" },
  { id: "u3", email: "grace@example.com", country: "XX" },
  { id: "u4", email: "linus@example.com", country: "FI" },
];

const { outputs, metrics } = await signups.collect(input);
console.log(`saved ${outputs.saved.length}, invalid ${outputs.invalid.map((s) => s.id).join(", ")}`);
for (const letter of signups.deadLetters) {
  console.log(`dead letter ${letter.itemId} at ${letter.stage}: ${letter.reason}`);
}
console.log(`tap saw: ${sampled.join("; ")}`);
console.log(
  `conservation: ingested ${metrics.totalIngested} + copies ${metrics.totalCopies} = completed ${metrics.totalCompleted}` +
    ` + failed ${metrics.totalFailed} + joined ${metrics.totalJoined}`,
);
console.log();
console.log(signups.toOutline({ counts: true }));
console.log(signups.toMermaid({ counts: true }));
