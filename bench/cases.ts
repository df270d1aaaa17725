/**
 * The cases of the suite (issues #4 and #17): what each one runs, how big it is,
 * who competes, and how a run is checked. A case makes a fresh
 * {@linkcode CaseRun} for every run of every contender: the sink's tally
 * lives there, and `verify` throws when the answer is wrong — a fast wrong
 * answer is not a result.
 *
 * @module
 */

import { failsOnce, type ItemServer, LATENCY_MS, startItemServer } from "./lib/http_server.ts";
import { type Job, type Outcome, PermanentError, sleep, type StageFn } from "./lib/job.ts";
import { chain, CONCURRENCIES, STAGE_COUNTS, SWEEP_CONCURRENCY, SWEEP_STAGES } from "./lib/scaling.ts";

export type CaseKind = "throughput" | "memory" | "latency" | "scaling";

/** Sizes for a full run and for `--quick`. */
export interface Size {
  /** Items per measured run. */
  readonly n: number;
  /** Measured rounds per contender (interleaved). */
  readonly rounds: number;
  /** Items in the one warm-up run per contender. */
  readonly warmup: number;
}

export interface CaseRun {
  readonly job: Job;
  /** Throws when the run's result is wrong. */
  verify(outcome: Outcome): void;
  /** Per item, milliseconds from the source to the sink (latency case). */
  readonly latencies?: number[];
  /** The sink's own bookkeeping (memory case). */
  readonly sinkStats?: { peakRss: number };
}

export interface BenchCase {
  readonly id: number;
  readonly title: string;
  readonly kind: CaseKind;
  /** Stages in the measured job (the latency case divides by it). */
  readonly stages: number;
  readonly full: Size;
  readonly quick: Size;
  /** Contender names, sluice first. */
  readonly contenders: readonly string[];
  /** Starts what the case's runs need (case 7: its HTTP server) before its first run; stopped after its last. */
  readonly start?: () => Promise<{ stop(): Promise<void> }>;
  /**
   * Every contender runs as many items as the slowest may in the time budget: where a run's length changes its rate
   * (case 7: connections, the server's own warm-up), a ratio needs the same N.
   */
  readonly sameN?: boolean;
  /** Left out, with why. */
  readonly excluded?: Readonly<Record<string, string>>;
  readonly notes: readonly string[];
  /**
   * A fresh run over `n` items; `stages` overrides the stage count (the latency baseline uses 0), `itemBytes` the
   * size of each item (the memory case).
   */
  make(n: number, stages?: number, itemBytes?: number): CaseRun;
}

const ALL = ["sluice", "naive_streams", "p_map", "effect", "node_readable", "for_await"] as const;

/** The stage function of cases 1, 2, 4 and 6. */
const inc: StageFn = async (x) => (x as number) + 1;
/** The identity stage of case 5. */
const pass: StageFn = async (x) => x;

function* range(n: number): Generator<number> {
  for (let i = 0; i < n; i++) yield i;
}

/** Counts, sums and checks the order of numeric outputs. */
class Tally {
  count = 0;
  sum = 0;
  outOfOrder = 0;
  #last = Number.NEGATIVE_INFINITY;
  readonly write = (value: unknown): void => {
    const x = value as number;
    this.count++;
    this.sum += x;
    if (x < this.#last) this.outOfOrder++;
    this.#last = x;
  };
}

interface Expected {
  readonly count: number;
  readonly sum: number;
  readonly deadLettered: number;
  readonly retries: number;
  readonly ordered: boolean;
  readonly ingested: number;
}

function checkTally(tally: Tally, outcome: Outcome, expected: Expected): void {
  const problems: string[] = [];
  const want = (what: string, got: number, wanted: number) => {
    if (got !== wanted) problems.push(`${what} ${got}, expected ${wanted}`);
  };
  want("outputs", tally.count, expected.count);
  want("sum of outputs", tally.sum, expected.sum);
  want("dead-lettered", outcome.deadLettered, expected.deadLettered);
  want("retries", outcome.retries, expected.retries);
  if (outcome.ingested !== undefined) want("ingested", outcome.ingested, expected.ingested);
  if (expected.ordered) want("outputs out of order", tally.outOfOrder, 0);
  if (problems.length > 0) throw new Error(`wrong result: ${problems.join("; ")}`);
}

/** Cases 1 and 2: `n` integers through 4 × `async x => x + 1`, concurrency 8. */
function trivial(n: number, ordered: boolean): CaseRun {
  const tally = new Tally();
  const job: Job = {
    source: () => range(n),
    fns: [inc, inc, inc, inc],
    concurrency: 8,
    ordered,
    maxRetries: undefined,
    streaming: false,
    sink: { kind: "sync", write: tally.write },
  };
  const expected = { count: n, sum: (n * (n - 1)) / 2 + 4 * n, deadLettered: 0, retries: 0, ordered, ingested: n };
  return { job, verify: (outcome) => checkTally(tally, outcome, expected) };
}

/** Case 3: one stage awaiting a 2 ms timer, concurrency 64. */
function ioBound(n: number): CaseRun {
  const tally = new Tally();
  const job: Job = {
    source: () => range(n),
    fns: [async (x) => {
      await sleep(2);
      return (x as number) + 1;
    }],
    concurrency: 64,
    ordered: true,
    maxRetries: undefined,
    streaming: false,
    sink: { kind: "sync", write: tally.write },
  };
  // Completion order is not output order for every contender here (the worker pool sinks as items complete): only count.
  const expected = { count: n, sum: (n * (n - 1)) / 2 + n, deadLettered: 0, retries: 0, ordered: false, ingested: n };
  return { job, verify: (outcome) => checkTally(tally, outcome, expected) };
}

/** Case 4: case 1, with 1% of items failing once in stage 2 and 0.1% failing for good in stage 3. */
const transientOnce: StageFn = async (x, attempt) => {
  const v = x as number;
  if (v % 100 === 0 && attempt === 1) throw new Error(`transient failure of ${v}`);
  return v + 1;
};
const permanentTenthPercent: StageFn = async (x) => {
  const v = x as number;
  if (v % 1000 === 500) throw new PermanentError(`${v} is refused`);
  return v + 1;
};

function failures(n: number): CaseRun {
  const tally = new Tally();
  const job: Job = {
    source: () => range(n),
    fns: [inc, transientOnce, permanentTenthPercent, inc],
    concurrency: 8,
    ordered: true,
    maxRetries: 1,
    streaming: false,
    sink: { kind: "sync", write: tally.write },
  };
  let count = 0, sum = 0, deadLettered = 0, retries = 0;
  for (let i = 0; i < n; i++) {
    const v2 = i + 1;
    if (v2 % 100 === 0) retries++;
    const v3 = v2 + 1;
    if (v3 % 1000 === 500) deadLettered++;
    else {
      count++;
      sum += v3 + 2;
    }
  }
  const expected = { count, sum, deadLettered, retries, ordered: true, ingested: n };
  return { job, verify: (outcome) => checkTally(tally, outcome, expected) };
}

/** The length of each string of case 5 (its target is about these). */
export const STRING_BYTES = 1024;
/** Case 5's sink pauses for a 1 ms timer after every this many items. */
export const SINK_PAUSE_EVERY = 100;

/**
 * Case 5's item sizes beyond 1 KB, for information (issue 17): run in the same
 * `--case 5`, with only the contenders that matter here. N is smaller, so
 * that a run takes seconds, but at least four times the 5,033 items sluice
 * holds, so that the bound is reached and held.
 */
export const ITEM_SIZES: readonly {
  readonly bytes: number;
  readonly full: number;
  readonly quick: number;
}[] = [
  { bytes: 16 * 1024, full: 100_000, quick: 300 },
  { bytes: 256 * 1024, full: 20_000, quick: 40 },
];
/** Who runs at the other item sizes: sluice, the floor, and the two with next to no buffer. */
export const ITEM_SIZE_CONTENDERS: readonly string[] = ["sluice", "buffered_loop", "p_map", "for_await"];

/** `n` distinct, flat (not rope/cons) strings of `bytes` characters: the index in base 36, then filler. */
function* strings(n: number, bytes: number): Generator<string> {
  const buffer = new Uint8Array(bytes).fill(0x2e);
  const decoder = new TextDecoder();
  for (let i = 0; i < n; i++) {
    const id = i.toString(36).padStart(8, "0");
    for (let k = 0; k < 8; k++) buffer[k] = id.charCodeAt(k);
    yield decoder.decode(buffer);
  }
}

/** Case 5: `n` strings (1 KB unless said) through 4 stages into a slow sink (1 ms pause per 100 items). */
function memory(n: number, rss: () => number, bytes = STRING_BYTES): CaseRun {
  let count = 0, idSum = 0, badLength = 0;
  const sinkStats = { peakRss: 0 };
  const job: Job = {
    source: () => strings(n, bytes),
    fns: [pass, pass, pass, pass],
    concurrency: 8,
    ordered: true,
    maxRetries: undefined,
    streaming: true,
    sink: {
      kind: "async",
      async write(value) {
        const s = value as string;
        if (s.length !== bytes) badLength++;
        idSum += parseInt(s.slice(0, 8), 36);
        if (++count % SINK_PAUSE_EVERY === 0) {
          const now = rss();
          if (now > sinkStats.peakRss) sinkStats.peakRss = now;
          await sleep(1);
        }
      },
    },
  };
  return {
    job,
    sinkStats,
    verify(outcome) {
      const problems: string[] = [];
      if (count !== n) problems.push(`outputs ${count}, expected ${n}`);
      if (idSum !== (n * (n - 1)) / 2) problems.push(`sum of ids ${idSum}, expected ${(n * (n - 1)) / 2}`);
      if (badLength > 0) problems.push(`${badLength} strings of the wrong length`);
      if (outcome.deadLettered !== 0) problems.push(`${outcome.deadLettered} dead-lettered`);
      if (outcome.ingested !== undefined && outcome.ingested !== n) problems.push(`ingested ${outcome.ingested}`);
      if (problems.length > 0) throw new Error(`wrong result: ${problems.join("; ")}`);
    },
  };
}

/** Case 6: one item per 1 ms through `stages` × `async x => x + 1`; latency from leaving the source to the sink. */
function latency(n: number, stages: number): CaseRun {
  const emittedAt = new Float64Array(n);
  const latencies: number[] = [];
  let count = 0, outOfOrder = 0, last = -1;
  async function* trickle(): AsyncGenerator<number> {
    for (let i = 0; i < n; i++) {
      await sleep(1);
      emittedAt[i] = performance.now();
      yield i;
    }
  }
  const job: Job = {
    source: trickle,
    fns: Array.from({ length: stages }, () => inc),
    concurrency: 8,
    ordered: true,
    maxRetries: undefined,
    streaming: true,
    sink: {
      kind: "sync",
      write(value) {
        const now = performance.now();
        const i = (value as number) - stages;
        latencies.push(now - emittedAt[i]);
        count++;
        if (i < last) outOfOrder++;
        last = i;
      },
    },
  };
  return {
    job,
    latencies,
    verify(outcome) {
      if (count !== n || outOfOrder !== 0 || outcome.deadLettered !== 0) {
        throw new Error(`wrong result: ${count} of ${n} outputs, ${outOfOrder} out of order`);
      }
    },
  };
}

/** Case 7's server while the case runs (started by the case's `start`). */
let itemServer: ItemServer | undefined;

/** One fetch of item `x`; a 503 throws (and is retried), any other status but 200 fails for good. */
const fetchItem: StageFn = async (x, attempt) => {
  const response = await fetch(`${itemServer!.url}/item/${x as number}?attempt=${attempt}`);
  const body = await response.text();
  if (response.status === 503) throw new Error(`503 for item ${x}`);
  if (response.status !== 200) throw new PermanentError(`status ${response.status} for item ${x}: ${body}`);
  return Number(body);
};

/** Case 7: `n` ids, each fetched once from the local server (1% get a 503 first and are retried), concurrency 64. */
function http(n: number): CaseRun {
  if (!itemServer) throw new Error("case 7 needs its server: start() it first");
  const tally = new Tally();
  const job: Job = {
    source: () => range(n),
    fns: [fetchItem],
    concurrency: 64,
    ordered: false,
    maxRetries: 3,
    streaming: false,
    sink: { kind: "sync", write: tally.write },
  };
  let retries = 0;
  for (let i = 0; i < n; i++) if (failsOnce(i)) retries++;
  // Completion order is not output order for the pool and p-map: only count (as in case 3).
  const expected = { count: n, sum: (n * (n - 1)) / 2 + n, deadLettered: 0, retries, ordered: false, ingested: n };
  return { job, verify: (outcome) => checkTally(tally, outcome, expected) };
}

export function cases(rss: () => number): readonly BenchCase[] {
  return [
    {
      id: 1,
      title: "CPU-trivial throughput: 4 stages of async x => x + 1, concurrency 8, ordered",
      kind: "throughput",
      stages: 4,
      full: { n: 1_000_000, rounds: 3, warmup: 100_000 },
      quick: { n: 2_000, rounds: 1, warmup: 200 },
      contenders: ALL,
      notes: [
        "naive_streams runs each stage one item at a time (a per-item TransformStream has no concurrency).",
        "for_await is one item at a time through all four functions: the floor of per-item overhead.",
      ],
      make: (n) => trivial(n, true),
    },
    {
      id: 2,
      title: "Same, unordered (ordered: false)",
      kind: "throughput",
      stages: 4,
      full: { n: 1_000_000, rounds: 2, warmup: 100_000 },
      quick: { n: 2_000, rounds: 1, warmup: 200 },
      contenders: ALL,
      notes: [
        "Only sluice (ordered: false) and effect (unordered: true) change anything here: pMap always fills free slots " +
        "and returns results in order, Readable.map has no unordered mode, naive_streams and for_await are sequential.",
        "Two rounds instead of three, to keep a full run near 10 minutes on 2 cores.",
      ],
      make: (n) => trivial(n, false),
    },
    {
      id: 3,
      title: "I/O-bound: 1 stage awaiting a 2 ms timer, concurrency 64",
      kind: "throughput",
      stages: 1,
      full: { n: 5_000, rounds: 5, warmup: 5_000 },
      quick: { n: 320, rounds: 1, warmup: 64 },
      contenders: ["sluice", "worker_pool", "p_map", "effect", "node_readable"],
      excluded: {
        naive_streams: "no concurrency: 5,000 × 2 ms one at a time (~64x slower by construction)",
        for_await: "no concurrency: 5,000 × 2 ms one at a time (~64x slower by construction)",
      },
      notes: [
        "The ceiling is 64 / (2 ms + timer slack); worker_pool (64 plain async workers on one iterator) is the reference.",
        "sluice keeps its default ordered: true; worker_pool and p_map complete out of order.",
      ],
      make: (n) => ioBound(n),
    },
    {
      id: 4,
      title: "Failures: case 1 with 1% of items failing once (retried at once) and 0.1% dead-lettered",
      kind: "throughput",
      stages: 4,
      full: { n: 1_000_000, rounds: 3, warmup: 100_000 },
      quick: { n: 2_000, rounds: 1, warmup: 200 },
      contenders: ALL,
      notes: [
        "Stage 2 throws an Error on the first attempt for 1% of items; stage 3 throws a PermanentError for 0.1%.",
        "sluice: maxRetries: 1, backoff.initialDelayMs: 0 on every stage, in-memory DLQ. Others: a hand-written " +
        "retry loop and dead letter list (effect: Effect.retry({ times: 1, while }) + Effect.catch).",
      ],
      make: (n) => failures(n),
    },
    {
      id: 5,
      title: "Memory under backpressure: 1 KB strings through 4 stages into a slow sink; peak RSS above baseline",
      kind: "memory",
      stages: 4,
      full: { n: 1_000_000, rounds: 1, warmup: 0 },
      quick: { n: 3_000, rounds: 1, warmup: 0 },
      contenders: [...ALL, "buffered_loop"],
      notes: [
        "Each contender runs in a fresh child process of the same runtime. Baseline: RSS after a forced GC just before " +
        "the run; peak: the highest RSS sampled every 5 ms and at every sink pause.",
        `The sink pauses for a 1 ms timer after every ${SINK_PAUSE_EVERY} items (a ceiling of ~100k items/s); ` +
        "a contender slower than that is limited by itself, not the sink. sluice's sink is a fifth stage (concurrency 1), " +
        "with the default queueSize (1000) unless a note below says otherwise; the others await the sink in their " +
        "consumer. Effect reads its source 4096 items per chunk (Stream.fromIterable's default).",
        "buffered_loop is a reference, not a library: for_await holding as many items as sluice may hold here " +
        "(4 × (1000 + 8) + 1001 = 5,033), in a plain array. Held that long, the strings outlive young-generation " +
        "collections; what it shows is the cost of holding them at all, with no bookkeeping.",
        "sluice and buffered_loop, whose growths the target compares, run in three children each (alternating: one " +
        "child's peak moves by several MiB with when the collector runs); their rows are the median child's.",
      ],
      make: (n, _stages, itemBytes) => memory(n, rss, itemBytes),
    },
    {
      id: 6,
      title: "Latency: a trickle source (1 item per 1 ms) through 4 stages; source-to-sink time per item",
      kind: "latency",
      stages: 4,
      full: { n: 1_000, rounds: 3, warmup: 100 },
      quick: { n: 30, rounds: 1, warmup: 5 },
      contenders: ALL,
      notes: [
        "Added per stage = (contender's quantile − the zero-stage baseline's quantile) / 4; the baseline is for await " +
        "straight from the trickle source to the sink. Quantiles pool every measured round.",
        "sluice's sink runs inside its last stage (run() keeps no outputs), so its path has one hop fewer than the " +
        "others' (last stage → consumer).",
      ],
      make: (n, stages = 4) => latency(n, stages),
    },
    {
      id: 7,
      title: `Real I/O: fetch from a local HTTP server (${LATENCY_MS} ms latency, 1% 503s retried), concurrency 64`,
      kind: "throughput",
      stages: 1,
      full: { n: 100_000, rounds: 3, warmup: 5_000 },
      quick: { n: 200, rounds: 1, warmup: 64 },
      contenders: ["sluice", "worker_pool", "p_map_retry", "sluice_ordered"],
      sameN: true,
      excluded: {
        naive_streams: "no concurrency: one request at a time",
        for_await: "no concurrency: one request at a time",
      },
      notes: [
        "The server is a child process of the same runtime (Node's http, Deno.serve, Bun.serve) on 127.0.0.1; it " +
        `answers GET /item/<id>?attempt=<n> after a ${LATENCY_MS} ms timer. The first attempt of 1% of the ids (a fixed ` +
        "hash of the id, the same for every contender) gets a 503, which the client retries at once; each run checks " +
        "the count and sum of the bodies and the number of retries.",
        "The client is the runtime's own fetch. sluice: one stage, maxRetries 3, backoff.initialDelayMs 0; " +
        "worker_pool: 64 async workers with a hand-written retry loop; p_map_retry: pMap over pRetry (retries 3, " +
        "minTimeout 0). The ceiling is 64 / (2 ms + a request's round trip).",
        "sluice runs with ordered: false, as the others run: worker_pool and p_map_retry start the next item as soon " +
        "as one completes, in any order (pMap puts its results array in order at the end). sluice_ordered is sluice " +
        "with its default ordered: true, for information: an ordered stage frees a worker only once its result is " +
        "next in line, so a slow request (a retry, a slow round trip) holds up to 64 others behind it.",
      ],
      start: async () => {
        itemServer = await startItemServer();
        return {
          stop: async () => {
            await itemServer?.stop();
            itemServer = undefined;
          },
        };
      },
      make: (n) => http(n),
    },
    {
      id: 8,
      title: `Scaling: sluice at ${STAGE_COUNTS.join(", ")} stages and at concurrency ${CONCURRENCIES.join(", ")}`,
      kind: "scaling",
      stages: SWEEP_STAGES,
      full: { n: 4_000_000, rounds: 3, warmup: 0 },
      quick: { n: 4_000, rounds: 1, warmup: 0 },
      contenders: ["sluice"],
      notes: [
        `The stage of case 1 (async x => x + 1, ordered). Stage sweep: concurrency ${SWEEP_CONCURRENCY}, N = ` +
        "4,000,000 / stages items (the same work per point). Concurrency sweep: " +
        `${SWEEP_STAGES} stages, 1,000,000 items. Each point is measured like a contender: a warm-up of a tenth of ` +
        "its items, then interleaved rounds in one process; items/s is the median.",
        "Cost per item per stage = 1 / (items/s × stages), relative to the 1-stage point (1.00x: the same cost per " +
        "stage; below: the per-item costs outside the stages, reading the source and counting the item out, spread " +
        "over more stages). Marginal cost = the time one more stage adds per item, between this point and the one " +
        "before it.",
        "The plot is results/scaling.svg (every runtime whose results are in results/).",
      ],
      make: (n, stages = SWEEP_STAGES) => chain(n, stages, SWEEP_CONCURRENCY),
    },
  ];
}
