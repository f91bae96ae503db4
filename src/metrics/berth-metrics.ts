/**
 * Berth's Prometheus metrics, in a private prom-client Registry (never the global one: two Berths
 * in one process, as in tests, keep their own counts).
 *
 * Almost everything is derived from the one container event stream the containerizer already has
 * (`observe(event)`): recording is a few Map lookups and counter increments, done synchronously in
 * the subscriber, with no I/O and no timer. Gauges whose value is a view of the state (containers by
 * state) are computed when scraped, so the hot path does nothing for them at all.
 */
import { isFieldSet } from "@bufbuild/protobuf";
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { FastCounter, FastHistogram, type CounterChild, type HistogramChild } from "./fast-metrics.js";
import { ContainerTerminationSchema } from "../gen/mesos/slave/containerizer_pb.js";
import { TaskState, TaskStatus_Reason } from "../gen/mesos/v1/mesos_pb.js";
import type { ContainerEvent } from "../containerizer/container-event.js";
import type { ContainerState } from "../containerizer/state.js";

/** The launch stages the duration histogram knows; `start` is the whole launch, FETCHING to RUNNING. */
export type LaunchStage = "fetch" | "pull" | "mount" | "start";

/** The happy-path successor of each launch state, and the stage its time is recorded under. */
const NEXT_STAGE: Partial<Record<ContainerState, { next: ContainerState; stage: LaunchStage }>> = {
  FETCHING: { next: "PULLING", stage: "fetch" },
  PULLING: { next: "MOUNTING", stage: "pull" },
  MOUNTING: { next: "RUNNING", stage: "mount" },
};

const ALL_STATES: readonly ContainerState[] = ["FETCHING", "PULLING", "MOUNTING", "RUNNING", "DESTROYING", "TERMINATED"];

/** Seconds: launch stages range from a millisecond (a cached fetch) to minutes (a large pull). */
const STAGE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** Seconds: unary RPCs answer in well under a millisecond to seconds; streams last longer. */
const RPC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Seconds: one fsync'd file replace. */
const WRITE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** At most this many distinct RPC method labels; later unknown ones are counted as "other". */
const MAX_METHOD_LABELS = 64;

/** What the metrics remember of a container between its events (dropped at its termination). */
interface Progress {
  state: ContainerState;
  /** When `state` was entered (ms since the epoch), when seen live. */
  enteredAt?: number;
  /** When FETCHING was entered, when seen live. */
  launchedAt?: number;
  running: boolean;
  /** The pull's bytes so far (cumulative, as the puller reports them). */
  pulledBytes: number;
}

/** Where the gauges read the current state from (the containerizer's list). */
export interface ContainerStates {
  list(): Array<{ state: ContainerState }>;
}

/** Every metric Berth serves on /metrics, and the recording of each. */
export class BerthMetrics {
  readonly registry = new Registry();
  private readonly progress = new Map<string, Progress>();
  private readonly methods = new Set<string>();
  private containers: ContainerStates | undefined;

  readonly launches = new FastCounter(
    "berth_launches_total",
    "Launches by how they ended their launch: running (reached RUNNING), failed (a launch failure or timeout), destroyed (destroyed before RUNNING)",
    ["result"],
    this.registry,
  );
  readonly stageSeconds = new FastHistogram(
    "berth_launch_stage_duration_seconds",
    "Time a launch spent in each stage: fetch (FETCHING), pull (PULLING), mount (MOUNTING: sandbox mounts, engine create and start), start (the whole launch, FETCHING to RUNNING); only stages completed on the happy path",
    ["stage"],
    STAGE_BUCKETS,
    this.registry,
  );
  readonly pullBytes = new FastCounter("berth_pull_bytes_total", "Bytes image pulls downloaded, as reported to each launch (a pull two launches share counts for each)", [], this.registry);
  readonly terminations = new FastCounter("berth_terminations_total", "Container terminations by Mesos task state and reason (reason 'none' when there is none)", ["state", "reason"], this.registry);
  readonly fetcherCache = new FastCounter("berth_fetcher_cache_total", "URIs fetched, by fetcher cache outcome: hit, miss, not_cached (URI.cache false)", ["outcome"], this.registry);
  readonly watchStreams = new Gauge({ name: "berth_watch_streams_open", help: "berth.v1 Watch streams open now", registers: [this.registry] });
  readonly engineEvents = new FastCounter("berth_engine_events_total", "Engine (dockerd) container events received on the events stream", [], this.registry);
  readonly engineReconnects = new FastCounter(
    "berth_engine_event_stream_reconnects_total",
    "Times the engine events stream came back after a loss (each one is followed by a reconciliation)",
    [],
    this.registry,
  );
  readonly engineConnected = new Gauge({ name: "berth_engine_connected", help: "1 while the engine events stream is open, else 0", registers: [this.registry] });
  readonly rpcSeconds = new FastHistogram(
    "berth_rpc_duration_seconds",
    "gRPC calls by method and status code, from the call's arrival to its status (streams: their whole life); _count is the number of calls",
    ["method", "code"],
    RPC_BUCKETS,
    this.registry,
  );
  readonly checkpointSeconds = new FastHistogram("berth_checkpoint_write_duration_seconds", "Durable checkpoint writes (write, fsync, rename), by result", ["result"], WRITE_BUCKETS, this.registry);

  /** Label children bound once: the hot paths record through them. */
  private readonly stageChild = new Map<LaunchStage, HistogramChild>();
  private readonly launchChild = new Map<string, CounterChild>();
  private readonly cacheChild = new Map<string, CounterChild>();
  private readonly terminationChild = new Map<string, CounterChild>();
  private readonly rpcChild = new Map<string, HistogramChild>();
  private readonly pulled = this.pullBytes.child();
  private readonly engineEvent = this.engineEvents.child();
  private readonly engineReconnect = this.engineReconnects.child();
  private readonly checkpointOk = this.checkpointSeconds.child({ result: "ok" });
  private readonly checkpointError = this.checkpointSeconds.child({ result: "error" });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registry = this.registry;
    const self = this;
    new Gauge({
      name: "berth_containers",
      help: "Containers Berth knows by state (terminated ones while they are retained)",
      labelNames: ["state"] as const,
      registers: [registry],
      // Computed at scrape time from the containerizer's own map: nothing to keep up to date.
      collect() {
        const counts = new Map<ContainerState, number>(ALL_STATES.map((s) => [s, 0]));
        for (const c of self.containers?.list() ?? []) counts.set(c.state, (counts.get(c.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    // Process metrics, among them the event-loop lag (nodejs_eventloop_lag_*, from perf_hooks'
    // monitorEventLoopDelay), heap and GC.
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
    // Known label values are served from the start (at 0), so a rate() sees the first increment.
    for (const result of ["running", "failed", "destroyed"]) this.launchChild.set(result, this.launches.child({ result }));
    for (const outcome of ["hit", "miss", "not_cached"]) this.cacheChild.set(outcome, this.fetcherCache.child({ outcome }));
    for (const stage of ["fetch", "pull", "mount", "start"] as const) this.stageChild.set(stage, this.stageSeconds.child({ stage }));
    this.engineConnected.set(0);
    this.watchStreams.set(0);
  }

  /** Where berth_containers is read from. */
  watchContainers(containers: ContainerStates): void {
    this.containers = containers;
  }

  /** Records one event of the container event stream (snapshot events describe the past: skipped). */
  observe(e: ContainerEvent): void {
    if (e.snapshot) return;
    const kind = e.kind;
    switch (kind.type) {
      case "state":
        this.stateChanged(e.containerId, kind.state, e.time.getTime());
        return;
      case "pull": {
        const p = this.progress.get(e.containerId);
        const now = kind.progress.bytesCurrent;
        const before = p?.pulledBytes ?? 0;
        if (now > before) this.pulled.inc(now - before);
        if (p) p.pulledBytes = Math.max(before, now);
        return;
      }
      case "fetch":
        this.cacheChild.get(kind.result.cache === "HIT" ? "hit" : kind.result.cache === "MISS" ? "miss" : "not_cached")!.inc();
        return;
      case "termination": {
        const ct = kind.termination.containerTermination;
        const reason = isFieldSet(ct, ContainerTerminationSchema.field.reason) ? ct.reason : undefined;
        const key = `${ct.state}/${reason ?? ""}`;
        let child = this.terminationChild.get(key);
        if (!child) {
          child = this.terminations.child({ state: TaskState[ct.state] ?? String(ct.state), reason: reason === undefined ? "none" : (TaskStatus_Reason[reason] ?? String(reason)) });
          this.terminationChild.set(key, child);
        }
        child.inc();
        const p = this.progress.get(e.containerId);
        if (p && !p.running && p.launchedAt !== undefined) {
          this.launchChild.get(reason === TaskStatus_Reason.CONTAINER_LAUNCH_FAILED ? "failed" : "destroyed")!.inc();
        }
        this.progress.delete(e.containerId);
        return;
      }
      default:
        return;
    }
  }

  private stateChanged(id: string, state: ContainerState, at: number): void {
    let p = this.progress.get(id);
    if (!p) {
      // A container first seen in a later state (recovered after a restart) has no stage times.
      p = { state, running: state === "RUNNING", pulledBytes: 0, enteredAt: state === "FETCHING" ? at : undefined, launchedAt: state === "FETCHING" ? at : undefined };
      this.progress.set(id, p);
      return;
    }
    const step = NEXT_STAGE[p.state];
    if (step && step.next === state && p.enteredAt !== undefined) this.stageChild.get(step.stage)!.observe(Math.max(0, at - p.enteredAt) / 1000);
    if (state === "RUNNING" && !p.running) {
      p.running = true;
      if (p.launchedAt !== undefined) {
        this.stageChild.get("start")!.observe(Math.max(0, at - p.launchedAt) / 1000);
        this.launchChild.get("running")!.inc();
      }
    }
    p.state = state;
    p.enteredAt = at;
  }

  /** Counts one engine event. */
  engineEventReceived(): void {
    this.engineEvent.inc();
  }

  /** Counts one reconnect of the engine events stream. */
  engineReconnected(): void {
    this.engineReconnect.inc();
  }

  /** Records one finished gRPC call. */
  rpc(method: string, code: string, seconds: number): void {
    const key = `${method} ${code}`;
    let child = this.rpcChild.get(key);
    if (!child) {
      let label = method;
      if (!this.methods.has(method)) {
        if (this.methods.size >= MAX_METHOD_LABELS || !/^\/[A-Za-z0-9_.]+\/[A-Za-z0-9_]+$/.test(method)) label = "other";
        else this.methods.add(method);
      }
      child = this.rpcSeconds.child({ method: label, code });
      // Unknown methods share "other" but are not remembered one by one (the map stays bounded).
      if (label !== "other") this.rpcChild.set(key, child);
    }
    child.observe(seconds);
  }

  /** Records one checkpoint write (the CheckpointStore's observer). */
  readonly checkpointWritten = (seconds: number, ok: boolean): void => {
    (ok ? this.checkpointOk : this.checkpointError).observe(seconds);
  };

  /** Containers the stage bookkeeping holds (for tests: it must not grow without bound). */
  get tracked(): number {
    return this.progress.size;
  }

  /** The exposition text. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
