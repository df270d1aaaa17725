/**
 * Runs a checked graph: one `StageEngine` per stage and route node (each
 * with its own bounded queue), small nodes around them for broadcasts,
 * merges, joins and outputs, the sources read as a pipeline reads its one,
 * and one outlet that accounts for every item's fate.
 *
 * @module
 */

import { Capacity } from "./capacity.ts";
import { show } from "./config.ts";
import type { DeadLetter } from "./dead_letter.ts";
import { type Chunk, type Envelope, Failure, Item } from "./envelope.ts";
import type { EventListener, ItemId, PipelineEvent } from "./events.ts";
import { Expander } from "./expander.ts";
import { Fifo } from "./fifo.ts";
import type { FlowControl, PipelineStrategies } from "./flow_control.ts";
import { callHook, type PipelineHooks } from "./hooks.ts";
import { attachShutdown, recordStatus, runFlowControl, settleRun, strategiesIn, withTracker } from "./run_control.ts";
import { statusChangeOf, type StatusRecorder } from "./status_tracker.ts";
import { FanOut } from "./broadcast.ts";
import type { NodeDecl } from "./graph_builder.ts";
import { Edge, type Inlet, itemsIn } from "./graph_edge.ts";
import type { GraphShape, GraphShapeEdge, GraphShapeNode } from "./graph_shape.ts";
import type { GraphEdgeMetrics, GraphMetrics, GraphNodeMetrics, GraphTapMetrics } from "./graph_types.ts";
import type { GraphPlan } from "./graph_validate.ts";
import { JoinNode } from "./join.ts";
import { mergeInlet } from "./merge.ts";
import { type DeadLetterTarget, Outlet, STREAM_OUTLET_CAPACITY } from "./outlet.ts";
import type { RunOptions } from "./pipeline.ts";
import { routeSpec } from "./route.ts";
import { RunContext } from "./run_context.ts";
import { type Source, sourceStream } from "./source.ts";
import type { StageSpec } from "./stage.ts";
import { StageEngine } from "./stage_stream.ts";
import { TapRun } from "./tap.ts";

/** How a run hands over outputs: `emit` for run/collect, else ReadableStreams. @internal */
export interface OutputMode {
  readonly emit?: (output: string, value: unknown) => void;
}

/** What one node of a run shows in metrics. */
interface NodeRun {
  readonly decl: NodeDecl;
  items: number;
  queueDepth: () => number;
  /** Envelopes that left it (for the shape's counts of nodes that are not stages). */
  readonly out: Edge[];
}

/** One run's state. */
class GraphRunState {
  copies = 0;
  joined = 0;
  readonly nodes = new Map<string, NodeRun>();
  readonly edges: Edge[] = [];
  readonly taps: TapRun[] = [];
  readonly outputs: Record<string, number> = {};
  constructor(readonly run: RunContext) {}
}

/** @internal */
export class GraphRunner {
  #deadLetters: DeadLetter[] = [];
  #current: GraphRunState | undefined;
  readonly #usedSinks = new WeakSet<WritableStream<DeadLetter>>();
  /** Runs in progress, for close(): how to stop each gracefully, and when it is over. */
  readonly #active = new Set<{ readonly stop: () => void; readonly done: Promise<unknown> }>();
  /** Node names that keep stage counters: stages, routes and joins. */
  readonly #counted: readonly string[];
  readonly #specs: ReadonlyMap<string, StageSpec>;
  /** The error strategies and flow control, when an option or a stage asks for them. */
  readonly #strategies: PipelineStrategies | undefined;
  /** `onEvent`, with the status tracker fed from it. */
  readonly #onEvent: EventListener | undefined;

  constructor(readonly plan: GraphPlan) {
    const specs = new Map<string, StageSpec>();
    for (const node of plan.nodes) {
      if (node.kind === "stage") specs.set(node.name, node.spec);
      if (node.kind === "route") specs.set(node.name, routeSpec(node.name, node.choose, node.branches, node.keyOf));
    }
    this.#specs = specs;
    this.#strategies = strategiesIn(plan.strategies, specs.values());
    // No stage is the last one: an item completes at an output, and is recorded there (see `#toOutlet`).
    const statusOf = (event: PipelineEvent) => statusChangeOf(event, "");
    this.#onEvent = withTracker(plan.onEvent, plan.statusTracker, statusOf, plan.logger, plan.name);
    this.#counted = plan.nodes.filter((node) => node.kind === "stage" || node.kind === "route" || node.kind === "join")
      .map((node) => node.name);
  }

  get deadLetters(): readonly DeadLetter[] {
    return this.#deadLetters;
  }

  /** The latest run's context (for pause and resume). */
  get run(): RunContext | undefined {
    return this.#current?.run;
  }

  metrics(): GraphMetrics {
    return this.#snapshot(this.#current ?? this.#blank());
  }

  shape(counts: boolean): GraphShape {
    const state = counts ? this.#current ?? this.#blank() : undefined;
    const snapshot = state && this.#snapshot(state);
    const shape: GraphShape = {
      name: this.plan.name,
      nodes: this.plan.nodes.map((node) => {
        if (!snapshot) return { name: node.name, kind: node.kind };
        const stage = snapshot.stageMetrics[node.name];
        const seen = snapshot.nodes[node.name];
        const left = snapshot.edges.filter((edge) => edge.from === node.name).reduce(
          (sum, edge) => sum + edge.items,
          0,
        );
        return {
          name: node.name,
          kind: node.kind,
          counts: {
            ingested: stage ? stage.processed + stage.inFlight + stage.queueDepth : seen.items,
            completed: stage ? stage.succeeded : node.kind === "output" ? snapshot.outputs[node.output] : left,
            failed: stage ? stage.failed : 0,
            inFlight: stage ? stage.inFlight + stage.queueDepth : seen.queueDepth,
            filtered: stage ? stage.filtered + stage.skipped : 0,
          },
        };
      }),
      edges: this.plan.edges.map((edge, i) => {
        const label = edge.port ?? edge.branch;
        const base = label === undefined ? { from: edge.from, to: edge.to } : { from: edge.from, to: edge.to, label };
        return snapshot ? { ...base, items: snapshot.edges[i].items } : base;
      }),
    };
    return {
      ...shape,
      nodes: [...shape.nodes, ...this.#tapNodes(snapshot)],
      edges: [...shape.edges, ...this.#tapEdges(snapshot)],
    };
  }

  /** Taps as nodes: counts are what the tap saw, threw on, and has waiting. */
  #tapNodes(snapshot: GraphMetrics | undefined): GraphShapeNode[] {
    return this.plan.taps.map((tap) => {
      const seen = snapshot?.taps[tap.name];
      if (!seen) return { name: tap.name, kind: "tap" };
      const counts = {
        ingested: seen.seen + seen.pending + seen.missed,
        completed: seen.seen,
        failed: seen.errors,
        inFlight: seen.pending,
      };
      return { name: tap.name, kind: "tap", counts };
    });
  }

  /** An edge from the node each tap observes (labelled with the edge's end when it observes one edge). */
  #tapEdges(snapshot: GraphMetrics | undefined): GraphShapeEdge[] {
    return this.plan.taps.map((tap) => {
      const target = tap.target;
      const edge: GraphShapeEdge = "from" in target
        ? { from: target.from, to: tap.name, label: `→ ${target.to}` }
        : target.port !== undefined
        ? { from: target.node, to: tap.name, label: target.port }
        : { from: target.node, to: tap.name };
      const seen = snapshot?.taps[tap.name];
      return seen ? { ...edge, items: seen.seen + seen.pending + seen.missed } : edge;
    });
  }

  /** A state with nothing run, for metrics before the first run. */
  #blank(): GraphRunState {
    const state = new GraphRunState(new RunContext(this.plan.name, this.#counted, this.plan.logger, undefined));
    for (const node of this.plan.nodes) {
      state.nodes.set(node.name, {
        decl: node,
        items: 0,
        queueDepth: () => 0,
        out: [],
      });
    }
    for (const edge of this.plan.edges) {
      state.edges.push(new Edge(edge.from, edge.to, edge.port ?? edge.branch, blankInlet));
    }
    for (const output of this.plan.outputs) state.outputs[output] = 0;
    return state;
  }

  #snapshot(state: GraphRunState): GraphMetrics {
    const base = state.run.metrics.snapshot();
    const nodes: Record<string, GraphNodeMetrics> = {};
    for (const [name, node] of state.nodes) {
      nodes[name] = { kind: node.decl.kind, items: node.items, queueDepth: node.queueDepth() };
    }
    const edges: GraphEdgeMetrics[] = state.edges.map((edge) => {
      const into = state.nodes.get(edge.to);
      const queued = into?.decl.kind === "stage" || into?.decl.kind === "route" ? into.queueDepth() : 0;
      const metrics = { from: edge.from, to: edge.to, items: edge.items, queueDepth: edge.waiting() + queued };
      return edge.label === undefined ? metrics : { ...metrics, label: edge.label };
    });
    const taps: Record<string, GraphTapMetrics> = {};
    for (const tap of state.taps) taps[tap.decl.name] = tap.metrics();
    const settled = base.totalCompleted + base.totalFailed + base.totalFiltered + base.totalSkipped +
      base.totalExpanded + state.joined;
    return {
      ...base,
      itemsInFlight: base.totalIngested + state.copies - settled,
      totalCopies: state.copies,
      totalJoined: state.joined,
      nodes,
      edges,
      taps,
      outputs: { ...state.outputs },
    };
  }

  /** Where this run's dead letters go; a stream is checked before the run starts. */
  #deadLetterTarget(): DeadLetterTarget {
    this.#deadLetters = [];
    const target = this.plan.deadLetterQueue;
    if (target === true) return this.#deadLetters;
    if (target === false) return undefined;
    const sink = typeof target === "function" ? target() : target;
    if (!(sink instanceof WritableStream)) {
      throw new TypeError(
        `Graph "${this.plan.name}": deadLetterQueue() must return a WritableStream; got ${show(sink)}`,
      );
    }
    if (sink.locked || this.#usedSinks.has(sink)) {
      throw new TypeError(
        `Graph "${this.plan.name}": the deadLetterQueue WritableStream is in use or was closed by an earlier run; ` +
          `pass a function instead, deadLetterQueue: () => new WritableStream(…), to give each run its own`,
      );
    }
    this.#usedSinks.add(sink);
    return sink;
  }

  /** Starts one run over `sources`. */
  start(
    sources: Readonly<Record<string, Source<unknown>>>,
    options: RunOptions,
    mode: OutputMode,
  ): { outputs: Record<string, ReadableStream<unknown>>; finished: Promise<GraphMetrics> } {
    const plan = this.plan;
    const target = this.#deadLetterTarget();
    const run = new RunContext(plan.name, this.#counted, plan.logger, this.#onEvent);
    const state = new GraphRunState(run);
    this.#current = state;
    run.log("info", "run started", { nodes: plan.nodes.map((node) => node.name) });
    const hooks = plan.hooks;
    const stop = new AbortController();
    const { flow, graceful } = runFlowControl(run, this.#strategies, stop);
    const detach = attachShutdown(run, graceful, options);
    const outlet = new Outlet(run, target, this.#deadLetters, Number.MAX_SAFE_INTEGER);
    if (hooks.onItemEnd) outlet.traceEnds(hooks.onItemEnd, ""); // each output names itself (see `#toOutlet`)
    const outletInlet: Inlet = { capacity: outlet.capacity, accept: (chunk) => outlet.accept(chunk), end: () => {} };
    const wiring = new Wiring(plan, state, this.#specs, flow, outlet, outletInlet, mode, graceful);
    let sourceError: { error: unknown } | undefined;
    wiring.build();
    wiring.attachTaps();
    const read = () =>
      wiring.readSources(sources, stop.signal, (error) => {
        sourceError ??= { error };
        run.log("error", "source failed; finishing the items already read", { error });
      }, hooks.onDrain && (() => callHook(run, "onDrain", hooks.onDrain, { pipeline: plan.name })));
    const finished = (async () => {
      let thrown: { error: unknown } | undefined;
      try {
        if (hooks.onStart) await callHook(run, "onStart", hooks.onStart, { pipeline: plan.name });
        read();
        await wiring.done();
        await outlet.close();
      } catch (error) {
        thrown = { error };
      } finally {
        detach();
        flow?.dispose();
        run.ended();
        run.metrics.end();
        const m = this.#snapshot(state);
        run.log("info", "run finished", {
          totalIngested: m.totalIngested,
          totalCompleted: m.totalCompleted,
          totalFailed: m.totalFailed,
        });
      }
      const ending = { run, name: plan.name, flow, onEnd: hooks.onEnd, thrown, sourceError };
      return await settleRun({ ...ending, metrics: this.#snapshot(state), deadLetters: this.#deadLetters });
    })();
    finished.catch(() => {}); // a start() whose caller reads only the outputs must not crash the process
    const entry = { stop: graceful, done: finished.catch(() => {}) };
    this.#active.add(entry);
    entry.done.then(() => this.#active.delete(entry));
    return { outputs: wiring.readables, finished };
  }

  /** Stops every run in progress gracefully and resolves once they are over. */
  async close(): Promise<void> {
    const active = [...this.#active];
    for (const entry of active) entry.stop();
    await Promise.all(active.map((entry) => entry.done));
  }
}

const blankInlet: Inlet = { capacity: new Capacity(1), accept: () => {}, end: () => {} };

/** Builds one run's nodes and edges, downstream first (each node needs the room of the next). */
class Wiring {
  readonly #inlets = new Map<string, (edge: { branch?: string }) => Inlet>();
  readonly #done: Promise<void>[] = [];
  readonly #sourceEdges = new Map<string, Edge>();
  readonly readables: Record<string, ReadableStream<unknown>> = {};
  readonly #edgesOut = new Map<string, Edge[]>();

  constructor(
    readonly plan: GraphPlan,
    readonly state: GraphRunState,
    readonly specs: ReadonlyMap<string, StageSpec>,
    readonly flow: FlowControl | undefined,
    readonly outlet: Outlet,
    readonly outletInlet: Inlet,
    readonly mode: OutputMode,
    /** Stops reading the sources (a cancelled output stops the run). */
    readonly stopReading: () => void,
  ) {}

  get run(): RunContext {
    return this.state.run;
  }

  build(): void {
    const edgeOf = new Map<object, Edge>();
    for (const name of [...this.plan.order].reverse()) {
      const decl = this.plan.byName.get(name)!;
      const out = this.plan.edges.filter((edge) => edge.from === name).map((edge) => {
        const runEdge = new Edge(edge.from, edge.to, edge.port ?? edge.branch, this.#inlets.get(edge.to)!(edge));
        edgeOf.set(edge, runEdge);
        return runEdge;
      });
      this.#edgesOut.set(name, out);
      const node: NodeRun = { decl, items: 0, queueDepth: () => 0, out };
      this.state.nodes.set(name, node);
      const inputs = this.plan.edges.filter((edge) => edge.to === name).length;
      this.#node(decl, node, out, inputs);
    }
    for (const edge of this.plan.edges) this.state.edges.push(edgeOf.get(edge)!);
  }

  /** Makes a node's way in (counted into `node.items`) and connects it to its edges out. */
  #node(decl: NodeDecl, node: NodeRun, out: Edge[], inputs: number): void {
    const counted = (inlet: Inlet): Inlet => ({
      capacity: inlet.capacity,
      accept: (chunk) => {
        node.items += itemsIn(chunk);
        inlet.accept(chunk);
      },
      end: inlet.end,
    });
    switch (decl.kind) {
      case "source":
        this.#sourceEdges.set(decl.name, out[0]);
        return;
      case "output": {
        const inlet = counted(this.#output(decl.output, inputs, node));
        this.#inlets.set(decl.name, () => inlet);
        return;
      }
      case "stage":
      case "route": {
        const inlet = counted(this.#stage(decl, node, out, inputs));
        this.#inlets.set(decl.name, () => inlet);
        return;
      }
      case "broadcast": {
        let ended!: () => void;
        this.#done.push(new Promise<void>((resolve) => (ended = resolve)));
        const fan = new FanOut(
          out,
          undefined,
          this.outletInlet,
          (count) => void (this.state.copies += count),
          ended,
          this.plan.queueSize,
        );
        node.queueDepth = () => fan.buffered;
        const inlet = counted(endAfterAll(fan, inputs));
        this.#inlets.set(decl.name, () => inlet);
        return;
      }
      case "merge": {
        const inlet = counted(mergeInlet(out[0], inputs, () => {}));
        this.#inlets.set(decl.name, () => inlet);
        return;
      }
      case "join": {
        let ended!: () => void;
        this.#done.push(new Promise<void>((resolve) => (ended = resolve)));
        const join = new JoinNode(
          decl.name,
          decl.branches,
          decl.timeoutMs,
          this.run,
          this.#portLimit(),
          (count) => void (this.state.joined += count),
          ended,
        );
        join.connect(out[0]);
        node.queueDepth = () => join.pending;
        const inlets = new Map(decl.branches.map((branch) => [branch, counted(join.inlet(branch))]));
        this.#inlets.set(decl.name, (edge) => inlets.get(edge.branch!)!);
        return;
      }
    }
  }

  /**
   * A join branch's room: more than the whole graph can hold in flight, so
   * that copies waiting for a slow branch never fill it while that branch
   * still has copies to deliver (which would deadlock).
   */
  #portLimit(): number {
    let total = this.plan.queueSize * this.plan.nodes.length;
    for (const spec of this.specs.values()) {
      total += (spec.queueSize ?? this.plan.queueSize) + spec.concurrency * spec.batchSize;
    }
    return total;
  }

  /** A stage or route node: a StageEngine (and an Expander after a flatMap stage, a fan-out after a route). */
  #stage(decl: NodeDecl & { kind: "stage" | "route" }, node: NodeRun, out: Edge[], inputs: number): Inlet {
    const specOfNode = this.specs.get(decl.name)!;
    const base = specOfNode.forRun?.(this.run) ?? specOfNode; // a worker stage's threads are per run
    const spec = this.flow ? this.flow.derive(base) : base;
    let next: Capacity;
    let deliver: (chunk: Chunk) => void;
    let last = false;
    const tail: Promise<void>[] = [];
    let endOut: () => void;
    if (decl.kind === "route") {
      const fan = new FanOut(
        out,
        out.map((edge) => edge.label!),
        this.outletInlet,
        () => {},
        () => {},
        this.plan.queueSize,
      );
      next = fan.capacity;
      deliver = (chunk) => fan.accept(chunk);
      endOut = () => fan.end();
    } else {
      const edge = out[0];
      next = edge.target.capacity;
      deliver = (chunk) => edge.send(chunk);
      last = this.plan.byName.get(edge.to)!.kind === "output";
      endOut = () => edge.end();
    }
    if (spec.expand) {
      const expander = new Expander(spec, this.run, next, deliver, last);
      const writer = expander.stream.writable.getWriter();
      tail.push(expander.stream.readable.pipeTo(new WritableStream()));
      next = expander.capacity;
      deliver = (chunk) => void writer.write(chunk).catch(() => {});
      const endExpander = endOut;
      endOut = () => {
        writer.close().catch(() => {});
        Promise.all(tail).then(endExpander);
      };
    }
    const engine = new StageEngine(spec, this.run, spec.queueSize ?? this.plan.queueSize, next, deliver, {
      first: false,
      last: last && !spec.expand,
    });
    node.queueDepth = () => this.run.metrics.stage(decl.name).queueDepth();
    const writer = engine.stream.writable.getWriter();
    this.#done.push(engine.stream.readable.pipeTo(new WritableStream()).then(() => endOut()));
    let open = inputs;
    return {
      capacity: engine.capacity,
      accept: (chunk) => void writer.write(chunk).catch(() => {}),
      end: () => {
        if (--open === 0) writer.close().catch(() => {});
      },
    };
  }

  /** An output: straight to the outlet for run/collect, else a ReadableStream with room for a few items. */
  #output(name: string, inputs: number, node: NodeRun): Inlet {
    this.state.outputs[name] = 0;
    let open = inputs;
    let ended!: () => void;
    this.#done.push(new Promise<void>((resolve) => (ended = resolve)));
    const emit = this.mode.emit;
    if (emit) {
      // Bounded like any node (a source wired straight to an output reads a share of this at a time), and freed at once.
      const room = new Capacity(this.plan.queueSize);
      const emitted = (value: unknown) => emit(name, value);
      return {
        capacity: room,
        accept: (chunk) => this.#toOutlet(chunk, room, name, emitted),
        end: () => {
          if (--open === 0) ended();
        },
      };
    }
    const room = new Capacity(STREAM_OUTLET_CAPACITY);
    const queue = new Fifo<Chunk>();
    let wake: (() => void) | undefined;
    let cancelled = false;
    node.queueDepth = () => room.used;
    const drain = () => {
      for (let chunk = queue.shift(); chunk; chunk = queue.shift()) this.#toOutlet(chunk, room, name);
    };
    this.readables[name] = new ReadableStream<unknown>({
      pull: async (controller) => {
        for (;;) {
          const chunk = queue.shift();
          if (!chunk) {
            if (open === 0) {
              controller.close();
              return ended();
            }
            await new Promise<void>((resolve) => (wake = resolve));
            continue;
          }
          let emitted = 0;
          this.#toOutlet(chunk, room, name, (value) => {
            controller.enqueue(value);
            emitted++;
          });
          if (emitted > 0) return;
        }
      },
      cancel: (reason) => {
        cancelled = true;
        const error = reason ?? new Error(`the consumer cancelled output "${name}"`);
        this.run.log("warn", "graph output cancelled; interrupting and dead-lettering what is left", {
          stage: name,
          error,
        });
        this.stopReading();
        this.run.force(error);
        drain();
        if (open === 0) ended();
      },
    }, { highWaterMark: 0 });
    return {
      capacity: room,
      accept: (chunk) => {
        queue.push(chunk);
        if (cancelled) drain();
        wake?.();
        wake = undefined;
      },
      end: () => {
        if (--open > 0) return;
        if (cancelled) ended();
        wake?.();
        wake = undefined;
      },
    };
  }

  #toOutlet(chunk: Chunk, room: Capacity, name: string, emit?: (value: unknown) => void): void {
    const { onItemEnd } = this.plan.hooks;
    if (onItemEnd) this.outlet.traceEnds(onItemEnd, name); // a completed item's `stage` is its output
    if (this.plan.statusTracker) this.#recordCompleted(chunk, name, this.plan.statusTracker);
    this.outlet.capacity.take(chunk.length);
    this.outlet.accept(chunk, (value) => {
      this.state.outputs[name]++;
      emit?.(value);
    });
    room.release(chunk.length);
  }

  /** Tells the status tracker that the chunk's items completed at output `name` (failures pass through). */
  #recordCompleted(chunk: Chunk, name: string, tracker: StatusRecorder): void {
    const timestamp = Date.now();
    for (const envelope of chunk) {
      if (!(envelope instanceof Item)) continue;
      const change = { itemId: envelope.id, status: "completed", stage: name, timestamp, event: "completed" } as const;
      recordStatus(tracker, change, this.plan.logger, this.plan.name);
    }
  }

  /** Hangs each tap on the edges it observes. */
  attachTaps(): void {
    for (const decl of this.plan.taps) {
      const target = decl.target;
      const node = "from" in target ? target.from : target.node;
      const tap = new TapRun(decl, node, this.run);
      this.state.taps.push(tap);
      for (const edge of this.#edgesOut.get(node)!) {
        const matches = "from" in target
          ? edge.to === target.to
          : target.port === undefined || edge.label === target.port;
        if (matches) edge.taps.push(tap);
      }
    }
  }

  /** Reads every source into the edge after it; `onDrain` once none will be read any more. */
  readSources(
    sources: Readonly<Record<string, Source<unknown>>>,
    signal: AbortSignal,
    onError: (error: unknown) => void,
    onDrain?: () => void,
  ): void {
    const ingest = withItemStart(this.run, ingester(this.run, this.plan.id), this.plan.hooks.onItemStart);
    let reading = this.#sourceEdges.size;
    const ended = onDrain && (() => {
      if (--reading === 0) onDrain();
    });
    for (const [name, edge] of this.#sourceEdges) {
      const node = this.state.nodes.get(name)!;
      const stream = sourceStream(sources[name], edge.target.capacity, ingest(name), signal, onError, ended);
      this.#done.push(
        stream.pipeTo(
          new WritableStream<Chunk>({
            write: (chunk) => {
              node.items += itemsIn(chunk);
              edge.send(chunk);
            },
          }),
        ).then(() => edge.end()),
      );
    }
  }

  /** Resolves once every node has ended. */
  async done(): Promise<void> {
    // Nodes push their promises while they are built and while the sources are read: all are there by now.
    await Promise.all(this.#done);
  }
}

/** A fan-out that ends once all of its `inputs` edges in have ended. */
function endAfterAll(fan: FanOut, inputs: number): Inlet {
  let open = inputs;
  return {
    capacity: fan.capacity,
    accept: (chunk) => fan.accept(chunk),
    end: () => {
      if (--open === 0) fan.end();
    },
  };
}

/** The ingester, calling `onItemStart` for each item it makes (as a pipeline does); itself without the hook. */
function withItemStart(
  run: RunContext,
  ingest: (source: string) => (value: unknown) => Envelope,
  onItemStart: PipelineHooks["onItemStart"],
): (source: string) => (value: unknown) => Envelope {
  if (!onItemStart) return ingest;
  return (source) => {
    const wrap = ingest(source);
    return (value) => {
      const envelope = wrap(value);
      callHook(run, "onItemStart", onItemStart, { itemId: envelope.id, item: value });
      return envelope;
    };
  };
}

/** Wraps a source's values as items with their ids (one sequence for all sources), counted as ingested. */
function ingester(
  run: RunContext,
  id: ((input: unknown, source: string) => ItemId) | undefined,
): (source: string) => (value: unknown) => Envelope {
  let sequence = 0;
  return (source) => (value) => {
    run.metrics.ingested++;
    const seq = sequence++;
    let itemId: ItemId = seq;
    if (id) {
      try {
        itemId = id(value, source);
        if (typeof itemId !== "string" && typeof itemId !== "number") {
          throw new TypeError(`The graph's id() must return a string or a number; got ${show(itemId)}`);
        }
      } catch (error) {
        const now = Date.now();
        return new Failure(seq, source, value, error, 1, now, now);
      }
    }
    const item = new Item(itemId, value);
    item.bornAt = run.clock.settled(); // one reading per chunk read, not one per item
    return item;
  };
}
