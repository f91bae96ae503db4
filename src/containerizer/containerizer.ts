import { readdir, rm } from "node:fs/promises";
import path from "node:path";
import { Observable, Subject, type Subscription } from "rxjs";
import type { Logger } from "pino";
import type { ContainerConfig } from "../gen/mesos/slave/containerizer_pb.js";
import { EngineRequestFailed, EngineUnreachable, type EngineEvent, type EnginePort } from "../docker/engine-port.js";
import type { EventMonitor } from "../docker/event-monitor.js";
import type { ImagePuller } from "../docker/image-puller.js";
import { LABEL_CONTAINER_ID, agentLabels } from "../docker/names.js";
import { validateId } from "./container-id.js";
import { Container, DestroyRequested } from "./container.js";
import type { ContainerEvent, EventKind } from "./container-event.js";
import { buildCreateSpec } from "./create-spec.js";
import { AlreadyExists, BerthError, Cancelled, ContainerNotFound, EngineFailed, EngineUnavailable, FailedPrecondition, InvalidRequest, OutOfRange, PermissionDenied, StorageFailed } from "./errors.js";
import { EventJournal } from "./event-journal.js";
import { NotSupported, resolveLaunchSpec, summarizeResources, type LaunchSpec } from "./launch-spec.js";
import { admissionPaths, admit } from "../policy/admit.js";
import { checkLaunchLimits, checkLiveContainers, DEFAULT_LAUNCH_LIMITS, type LaunchLimits } from "../policy/limits.js";
import { defaultPolicy, WELL_KNOWN_ENGINE_SOCKETS, type Policy } from "../policy/policy.js";
import { resolvePaths } from "../policy/resolve-paths.js";
import { adoptContainer, runContainer, type FetchFn, type PipelineDeps } from "./launch-pipeline.js";
import type { CheckpointStore } from "../checkpoint/checkpoint-store.js";
import type { SequenceFile } from "../checkpoint/sequence-file.js";
import type { ContainerCheckpoint } from "../gen/berth/checkpoint/v1/checkpoint_pb.js";
import { TaskStatus_Reason } from "../gen/mesos/v1/mesos_pb.js";
import { forEachBounded, gate } from "./bounded.js";
import { terminationFromCheckpoint, toCheckpoint } from "./container-checkpoint.js";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { planRecovery } from "./recovery-plan.js";
import { destroyedBeforeRunning, launchFailed, unknownFate, type ExitFacts } from "./termination.js";
import type { ContainerState } from "./state.js";
import type { Termination } from "./termination.js";
import type { Resource, ResourceStatistics } from "../gen/mesos/v1/mesos_pb.js";
import { CgroupStatsReader } from "../stats/cgroup-stats.js";
import { ContainerResources } from "./container-resources.js";
import { PulledImages, recordingPuller } from "./pulled-images.js";
import { RuntimeFacts, type StatsSource } from "./runtime-facts.js";

/** How many engine calls recovery and reconciliation make at once. */
const ENGINE_CONCURRENCY = 16;
/** How many creates/starts launches have in flight at once. */
const ENGINE_LAUNCH_CONCURRENCY = 8;

/** Settings the containerizer takes from the flags. */
export interface ContainerizerOptions {
  agentId: string;
  workDir: string;
  /** Mount point of the sandbox inside containers. */
  sandboxDirectory: string;
  stopTimeoutMs: number;
  removeDelayMs: number;
  launchTimeoutMs: number;
  /** How many terminated containers are remembered for Wait/Watch/Destroy. */
  terminationRetention: number;
  outputGraceMs: number;
  /** Where the engine is, for messages. */
  engineAddress: string;
  /** How many recent events are kept for Watch resumes (default 10,000). */
  eventRetention?: number;
  /** Mesos' --cgroups_enable_cfs: cpus also become a CFS quota, at launch and on Update. */
  cgroupsEnableCfs?: boolean;
  /** The operator policy in force (default: the safe defaults of policy/policy.ts). */
  policy?: Policy;
  /** --docker_socket when it is a unix socket: never mountable (besides the well-known paths). */
  engineSocket?: string;
  /** --max_containers and the per-launch limits (default: the flags' defaults). */
  limits?: Partial<LaunchLimits>;
  /** --default_pids_limit: every container's pids limit (0 or unset = none). */
  defaultPidsLimit?: number;
}

/** The collaborators the containerizer drives. */
export interface ContainerizerDeps {
  engine: EnginePort;
  puller: ImagePuller;
  monitor: EventMonitor;
  fetch: FetchFn;
  log: Logger;
  /** Durable records; without one (unit tests), nothing survives a restart. */
  checkpoints?: CheckpointStore;
  /** Where Usage reads statistics (default: the host's cgroup files). */
  stats?: StatsSource;
  /** The per-agent sequence kept across restarts; without one, numbering starts at 1. */
  sequence?: SequenceFile;
}

/** What recovery found and did, for the log and for tests. */
export interface RecoveryReport {
  adopted: number;
  exitedMeanwhile: number;
  vanished: number;
  abandoned: number;
  restoredTerminated: number;
  orphansRemoved: number;
  /** Sandboxes in Berth's folder that no record names (never accepted, or forgotten). */
  sandboxesRemoved: number;
  unreadable: string[];
}

/** Outcome of Launch, as Mesos' Containerizer::LaunchResult. */
export type LaunchOutcome = { result: "LAUNCHED" | "ALREADY_LAUNCHED"; sandbox: string } | { result: "NOT_SUPPORTED"; reason: string };

/** A launch as the edge hands it over. */
export interface LaunchInput {
  containerId: string;
  /** True when the ContainerID has a parent (a nested container). */
  nested: boolean;
  config: ContainerConfig | undefined;
  environment: Record<string, string>;
  /** Who asked (the edge's peer address or identity), for the log of a refusal. */
  peer?: string;
}

/** One container at a glance. */
export interface ContainerInfoSummary {
  containerId: string;
  state: ContainerState;
  image: string;
  engineId?: string;
  sandbox: string;
}

/** What Status reports. */
export interface ContainerStatusInfo extends ContainerInfoSummary {
  pid?: number;
  /** The running container's addresses on its engine networks. */
  ipAddresses?: string[];
  /** The running container's cgroup dirs (controller or "unified" → host dir), when resolved. */
  cgroupDirs?: Record<string, string>;
}

/**
 * The domain service: one Container per id, one engine events stream for all of them, and a
 * per-agent event sequence shared by every Watch.
 */
export class Containerizer {
  private readonly containers = new Map<string, Container>();
  private readonly byEngineId = new Map<string, Container>();
  /** Retained terminated containers, oldest first (the objects: an id may be launched again). */
  private readonly terminatedOrder: Container[] = [];
  /** Ids being forgotten (record removal, then sandbox removal): a relaunch waits for it. */
  private readonly evictions = new Map<string, Promise<void>>();
  private readonly events$ = new Subject<ContainerEvent>();
  private sequence = 0n;
  private readonly subscriptions: Subscription[] = [];
  private readonly running = new Set<Promise<void>>();
  /** `die` events of engine ids not (yet) bound to a container: recovery claims them. */
  private readonly unclaimedExits = new Map<string, ExitFacts>();
  private readonly pipelineDeps: PipelineDeps;
  /** Recent events, for Watch clients resuming from a sequence number. */
  private readonly journal: EventJournal;
  /** True while recover() rebuilds the containers: engine containers not bound yet are not stray. */
  private recovering = false;
  /** The first sequence number this process handed out. */
  private firstSequence: bigint | undefined;
  /** Images Berth pulled: the only ones PruneImages may remove. */
  private readonly pulledImages: PulledImages;
  /** Update, Usage, the runtime part of Status, PruneImages. */
  private readonly resources: ContainerResources;
  /** The host's cgroup reader when none was injected: its kept descriptors close at shutdown. */
  private readonly ownStats?: CgroupStatsReader;
  private readonly policy: Policy;
  private readonly limits: LaunchLimits;
  /** The engine sockets admission never lets a launch mount. */
  private readonly engineSockets: string[];

  constructor(
    private readonly options: ContainerizerOptions,
    private readonly deps: ContainerizerDeps,
  ) {
    this.journal = new EventJournal(options.eventRetention ?? 10_000);
    this.policy = options.policy ?? defaultPolicy();
    this.limits = { ...DEFAULT_LAUNCH_LIMITS, ...options.limits };
    this.engineSockets = [...new Set([...WELL_KNOWN_ENGINE_SOCKETS, ...(options.engineSocket ? [path.normalize(options.engineSocket)] : [])])];
    this.pulledImages = new PulledImages(deps.checkpoints, deps.log);
    if (!deps.stats) this.ownStats = new CgroupStatsReader();
    this.resources = new ContainerResources({
      engine: deps.engine,
      facts: new RuntimeFacts(deps.engine, deps.stats ?? this.ownStats!),
      images: this.pulledImages,
      log: deps.log,
      cfsQuota: options.cgroupsEnableCfs ?? false,
      checkpoint: (c) => this.checkpoint(c),
    });
    this.pipelineDeps = {
      engine: deps.engine,
      puller: recordingPuller(deps.puller, this.pulledImages),
      cfsQuota: options.cgroupsEnableCfs ?? false,
      pidsLimit: options.defaultPidsLimit,
      fetch: deps.fetch,
      agentId: options.agentId,
      containerSandbox: options.sandboxDirectory,
      stopTimeoutMs: options.stopTimeoutMs,
      removeDelayMs: options.removeDelayMs,
      launchTimeoutMs: options.launchTimeoutMs,
      outputGraceMs: options.outputGraceMs,
      log: deps.log,
      bindEngineId: (c, engineId) => this.bind(c, engineId),
      checkpoint: (c, overrides) => this.checkpoint(c, overrides),
      engineSlots: gate(ENGINE_LAUNCH_CONCURRENCY),
    };
  }

  /** Starts listening to the engine's events; call before serving. */
  start(): void {
    this.subscriptions.push(
      this.deps.monitor.events$.subscribe((e) => this.onEngineEvent(e)),
      this.deps.monitor.reconnected$.subscribe(() => void this.reconcile()),
    );
  }

  /** Ends every Watch stream and stops listening; containers keep running. */
  shutdown(): void {
    for (const s of this.subscriptions) s.unsubscribe();
    this.events$.complete();
    this.ownStats?.close();
  }

  /** The last sequence number handed out. */
  get lastSequence(): bigint {
    return this.deps.sequence?.last ?? this.sequence;
  }

  /**
   * Validates, admits and records a launch, then runs its pipeline in the background. In order:
   * the request's shape (InvalidRequest, NOT_SUPPORTED), the per-launch limits
   * (ResourceExhausted), the operator policy (PermissionDenied), then the agent's state (live
   * containers, engine, sandbox conflicts). Nothing is written, created or recorded before all of
   * them passed.
   */
  async launch(input: LaunchInput): Promise<LaunchOutcome> {
    return this.launchNow(input).catch(rethrowAsDomainError);
  }

  private async launchNow(input: LaunchInput): Promise<LaunchOutcome> {
    const id = validateId(input.containerId, "container_id.value");
    if (input.nested) return { result: "NOT_SUPPORTED", reason: "nested containers (container_id.parent) are not supported" };
    const existing = this.containers.get(id);
    if (existing) return { result: "ALREADY_LAUNCHED", sandbox: existing.sandbox };
    let spec;
    try {
      spec = resolveLaunchSpec(id, input.config, input.environment);
    } catch (err) {
      if (err instanceof NotSupported) return { result: "NOT_SUPPORTED", reason: err.message };
      throw err;
    }
    checkLaunchLimits(spec, this.limits);
    const sandbox = spec.directory ?? path.join(this.sandboxesDir, id);
    // Build the engine's create options now, so a shape the engine cannot take is refused
    // before anything is recorded.
    buildCreateSpec(spec, { agentId: this.options.agentId, hostSandbox: sandbox, containerSandbox: this.options.sandboxDirectory });
    const admitting = this.admit(spec, input.peer);
    // An earlier container of this id is being forgotten: its record and sandbox removal must be
    // over before this launch writes its own (same record name, and the same sandbox path when
    // Berth chose it), or the eviction would remove the new ones.
    const evicting = this.evictions.get(id);
    if (admitting || evicting) {
      await Promise.all([admitting, evicting]);
      // Admission waited for the file system: another launch of this id may have come in.
      const raced = this.containers.get(id);
      if (raced) return { result: "ALREADY_LAUNCHED", sandbox: raced.sandbox };
    }
    if (!this.deps.monitor.connected$.value) {
      throw new EngineUnavailable(`the Docker engine at ${this.options.engineAddress} is not reachable; retry when Berth's health is SERVING`);
    }
    let live = 0;
    for (const other of this.containers.values()) {
      if (other.state === "TERMINATED") continue;
      live += 1;
      if (other.sandbox === sandbox) {
        throw new InvalidRequest(`container_config.directory '${sandbox}' is already the sandbox of live container '${other.id}'`);
      }
    }
    if (spec.directory !== undefined) {
      // A sandbox inside another one (or holding one) would let one task reach the other's files,
      // or plant a link the other's launch would follow.
      for (const other of this.containers.values()) {
        if (nested(sandbox, other.sandbox) || nested(other.sandbox, sandbox)) {
          throw new InvalidRequest(`container_config.directory '${sandbox}' lies inside or holds the sandbox '${other.sandbox}' of container '${other.id}'`);
        }
      }
    }
    checkLiveContainers(live, this.limits);
    // Recorded durably before it is accepted: a restart right after LAUNCHED still knows it.
    // The record is written while the pipeline already fetches and pulls (those leave nothing in
    // the engine); the pipeline waits for it before starting anything, and Launch answers
    // LAUNCHED only once it is durable.
    const store = this.deps.checkpoints;
    const recorded = store
      ? store.save(toCheckpoint(this.options.agentId, { spec, sandbox, state: "FETCHING", launchedAt: new Date(), resources: spec.resourceMessages }))
      : Promise.resolve();
    const container = new Container(spec, sandbox, this.publish);
    this.containers.set(id, container);
    this.track(container, runContainer(container, this.pipelineDeps, recorded));
    try {
      await recorded;
    } catch (err) {
      // Not recorded, so not accepted: the pipeline fails on the same error; forget the id once
      // it has terminated so that a retry starts afresh.
      void container.removed.then(() => this.forget(container));
      // Berth's own disk, not the engine: the message names where and why.
      throw new StorageFailed(`could not record container '${id}' in ${store?.dir}: ${(err as Error).message}; nothing was launched, Launch may be retried once the disk is fixed`, { cause: err });
    }
    return { result: "LAUNCHED", sandbox };
  }

  /**
   * The operator policy's one decision: the real paths it compares are read first (lstat and
   * readlink only, and only when the launch names a sandbox, host paths or local files), then the
   * pure check runs. A refusal is logged with the container id and the caller. Without paths to
   * read it decides synchronously (undefined), so a launch stays registered in the same turn.
   */
  private admit(spec: LaunchSpec, peer: string | undefined): Promise<void> | undefined {
    const facts = { workDir: this.options.workDir, sandboxesDir: this.sandboxesDir, engineSockets: this.engineSockets };
    const decide = (resolved: ReadonlyMap<string, string | null>) => {
      try {
        admit(spec, this.policy, { ...facts, resolved });
      } catch (err) {
        if (err instanceof PermissionDenied) {
          this.deps.log.warn({ container_id: spec.containerId, peer, rule: err.rule, field: err.field, value: err.value }, `launch refused: ${err.message}`);
        }
        throw err;
      }
    };
    const paths = admissionPaths(spec, this.policy, facts);
    if (paths.length === 0) {
      decide(new Map());
      return undefined;
    }
    return resolvePaths(paths).then(decide);
  }

  /** Resolves with the termination once the container has terminated; rejects Cancelled on abort. */
  async wait(containerId: string, signal?: AbortSignal): Promise<Termination> {
    return this.waitNow(containerId, signal).catch(rethrowAsDomainError);
  }

  private async waitNow(containerId: string, signal?: AbortSignal): Promise<Termination> {
    const c = this.get(containerId);
    if (c.terminated) return c.terminated;
    return new Promise<Termination>((resolve, reject) => {
      const onAbort = () => {
        sub.unsubscribe();
        reject(new Cancelled(`wait for '${containerId}' was cancelled`));
      };
      const sub = c.termination$.subscribe({
        next: (t) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(t);
        },
        // The termination could not be recorded (a failing disk): say so rather than hang.
        error: (err: unknown) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      });
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Destroys the container in whatever state; idempotent. Resolves with the termination. */
  async destroy(containerId: string, signal?: AbortSignal): Promise<Termination> {
    return this.destroyNow(containerId, signal).catch(rethrowAsDomainError);
  }

  private async destroyNow(containerId: string, signal?: AbortSignal): Promise<Termination> {
    const c = this.get(containerId);
    if (c.terminated) {
      await c.removed;
      return c.terminated;
    }
    if (c.hasExited) {
      // The process already died on its own; its termination is on its way (output draining,
      // record, removal). Nothing is left to destroy, and its fate is its exit's (MESOS-7975).
      return this.settled(c, signal);
    }
    const wasRunning = c.state === "RUNNING" || (c.state === "DESTROYING" && c.destroyRequested && c.engineId !== undefined);
    if (c.state !== "DESTROYING") c.transition("DESTROYING", "destroy requested");
    if (!c.launchAbort.signal.aborted) c.launchAbort.abort(new DestroyRequested(`container '${c.id}' destroyed`));
    if (wasRunning && c.engineId !== undefined && !c.hasExited) {
      // After a crash from here on, recovery finishes the destroy (and reports TASK_KILLED).
      await this.checkpoint(c).catch((err: unknown) => this.deps.log.error({ err, container_id: c.id }, "could not checkpoint the destroy"));
      try {
        await this.stopForDestroy(c);
      } catch (err) {
        if (c.terminated) return c.terminated;
        // "May be retried" only when the engine could not be reached; an engine that answered
        // with an error of its own would most likely answer the same again.
        if (err instanceof EngineUnreachable) throw new EngineUnavailable(`could not stop container '${c.id}': ${err.message}; Destroy may be retried`, { cause: err });
        throw new EngineFailed(`could not stop container '${c.id}': ${(err as Error).message}`, { cause: err });
      }
    }
    return this.settled(c, signal);
  }

  /** The termination once the engine container is removed (or its removal scheduled past --docker_remove_delay). */
  private async settled(c: Container, signal?: AbortSignal): Promise<Termination> {
    const termination = await this.wait(c.id, signal);
    await c.removed;
    return termination;
  }

  /** SIGTERM, then SIGKILL after the task's kill policy grace or --docker_stop_timeout. */
  private async stopForDestroy(c: Container): Promise<void> {
    const graceMs = c.spec.gracePeriodMs ?? this.options.stopTimeoutMs;
    this.deps.log.info({ container_id: c.id, grace_ms: graceMs }, "stopping container");
    await this.deps.engine.stopContainer(c.engineId!, Math.ceil(graceMs / 1000));
  }

  /**
   * Events of the given containers (all, including later ones, when empty): first a snapshot of
   * each one's current state — or, with `fromSequence`, every retained event after it — then live
   * events. With ids, the stream completes once all of them have terminated. A resume from a
   * sequence whose successors are no longer retained is refused with OutOfRange.
   */
  watch(containerIds: string[], fromSequence?: bigint): Observable<ContainerEvent> {
    const ids = containerIds.map((id) => validateId(id, "container_ids[].value"));
    if (fromSequence !== undefined) return this.resume(ids, fromSequence);
    for (const id of ids) this.get(id);
    const watched = ids.length > 0 ? new Set(ids) : undefined;
    return this.stream(ids, () =>
      [...this.containers.values()]
        .filter((c) => !watched || watched.has(c.id))
        .flatMap((c) => c.snapshot())
        .sort((a, b) => (a.sequence < b.sequence ? -1 : a.sequence > b.sequence ? 1 : 0)),
    );
  }

  /** Watch resumed after `from`: the retained events after it, then live ones. */
  private resume(ids: string[], from: bigint): Observable<ContainerEvent> {
    const last = this.lastSequence;
    if (from > last) throw new InvalidRequest(`from_sequence ${from} is ahead of the last sequence handed out (${last})`);
    const missed = this.journal.after(from, this.firstSequence ?? last + 1n);
    if (missed === undefined) {
      throw new OutOfRange(
        `events after sequence ${from} are no longer retained (oldest retained: ${this.journal.oldest ?? "none"}; Berth keeps the last ${this.journal.capacity} events of this run); Watch without from_sequence for a fresh snapshot`,
      );
    }
    const inMissed = new Set(missed.map((e) => e.containerId));
    for (const id of ids) if (!inMissed.has(id)) this.get(id);
    // A watched container that terminated before `from` has nothing more to say.
    return this.stream(ids, () => missed, (id) => !inMissed.has(id) && this.containers.get(id)?.terminated !== undefined);
  }

  /**
   * The events of `ids` (all when empty): `initial()` first, then live ones; with ids, complete
   * once each has terminated (or was already `settled`). Live events are subscribed before
   * `initial()` is taken and held back until it is delivered: a subscriber that acts on an initial
   * event (e.g. destroys) must still see what that causes, and nothing falls between.
   */
  private stream(ids: string[], initial: () => ContainerEvent[], settled: (id: string) => boolean = () => false): Observable<ContainerEvent> {
    return new Observable<ContainerEvent>((subscriber) => {
      const watched = ids.length > 0 ? new Set(ids) : undefined;
      const remaining = new Set(ids);
      const deliver = (e: ContainerEvent): void => {
        if (subscriber.closed || (watched && !watched.has(e.containerId))) return;
        subscriber.next(e);
        if (watched && e.kind.type === "termination") {
          remaining.delete(e.containerId);
          if (remaining.size === 0) subscriber.complete();
        }
      };
      let pending: ContainerEvent[] | undefined = [];
      let endedEarly = false;
      const live = this.events$.subscribe({
        next: (e) => (pending ? pending.push(e) : deliver(e)),
        complete: () => (pending ? (endedEarly = true) : subscriber.complete()),
      });
      for (const e of initial()) deliver(e);
      for (const id of ids) if (settled(id)) remaining.delete(id);
      if (watched && remaining.size === 0 && !subscriber.closed) subscriber.complete();
      while (pending.length > 0) deliver(pending.shift()!);
      pending = undefined;
      if (endedEarly) subscriber.complete();
      return live;
    });
  }

  /** Every known container, live and retained terminated. */
  list(): ContainerInfoSummary[] {
    return [...this.containers.values()].map((c) => this.memoSummary(c));
  }

  // The same summary object while nothing in it changed, so the edge can cache its encoding
  // (Containers() with hundreds of containers is called often and changes rarely).
  private readonly summaries = new WeakMap<Container, ContainerInfoSummary>();

  private memoSummary(c: Container): ContainerInfoSummary {
    const memo = this.summaries.get(c);
    if (memo && memo.state === c.state && memo.engineId === c.engineId) return memo;
    const fresh = this.summary(c);
    this.summaries.set(c, fresh);
    return fresh;
  }

  /** State, engine id, and for a running container its init pid, addresses and cgroup dirs. */
  async status(containerId: string): Promise<ContainerStatusInfo> {
    const c = this.get(containerId);
    const runtime = await this.resources.runtime(c).catch(rethrowAsDomainError);
    return { ...this.summary(c), pid: runtime.pid, ipAddresses: runtime.ipAddresses, cgroupDirs: runtime.cgroupDirs };
  }

  /** Applies new cpu/memory limits to a RUNNING container and records them; see ContainerResources.update. */
  async update(containerId: string, resources: Resource[]): Promise<void> {
    return this.resources.update(this.get(validateId(containerId, "container_id.value")), resources).catch(rethrowAsDomainError);
  }

  /** A RUNNING container's statistics, straight from its cgroup. */
  async usage(containerId: string): Promise<ResourceStatistics> {
    return this.resources.usage(this.get(validateId(containerId, "container_id.value"))).catch(rethrowAsDomainError);
  }

  /** Removes images Berth pulled that no live container uses, except `excluded`; returns the removed refs. */
  async pruneImages(excluded: string[]): Promise<string[]> {
    return this.resources.prune(() => this.containers.values(), excluded).catch(rethrowAsDomainError);
  }

  /** Reads the record of pulled images (call at start, so a bad record shows before serving). */
  loadPulledImages(): Promise<void> {
    return this.pulledImages.load();
  }

  /** Resolves once every pipeline has finished (for tests and orderly shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0 || this.evictions.size > 0) await Promise.allSettled([...this.running, ...this.evictions.values()]);
  }

  private summary(c: Container): ContainerInfoSummary {
    return { containerId: c.id, state: c.state, image: c.spec.image, engineId: c.engineId, sandbox: c.sandbox };
  }

  private get(containerId: string): Container {
    const c = this.containers.get(containerId);
    if (!c) throw new ContainerNotFound(containerId);
    return c;
  }

  private readonly publish = (containerId: string, kind: EventKind): ContainerEvent => {
    const sequence = this.deps.sequence ? this.deps.sequence.next() : (this.sequence += 1n);
    const event: ContainerEvent = { sequence, time: new Date(), containerId, snapshot: false, kind };
    this.firstSequence ??= sequence;
    this.journal.append(event);
    this.events$.next(event);
    return event;
  };

  /** Keeps at most `terminationRetention` terminated containers, dropping the oldest. */
  private retain(c: Container): void {
    // A container already forgotten (its launch was never recorded) takes no place: its id may
    // belong to a later container by now, which must not be evicted in its stead.
    if (this.containers.get(c.id) !== c || this.terminatedOrder.includes(c)) return;
    this.terminatedOrder.push(c);
    while (this.terminatedOrder.length > this.options.terminationRetention) {
      const old = this.terminatedOrder.shift()!;
      if (this.containers.get(old.id) !== old || !old.terminated) continue;
      this.containers.delete(old.id);
      // Forget the record first: a crash in between leaves an orphan sandbox, which recovery
      // removes, never a record whose sandbox is gone. A relaunch of the id waits for both
      // (see launch), so its new record and sandbox are never the ones removed.
      const previous = this.evictions.get(old.id) ?? Promise.resolve();
      const eviction = previous
        .then(() => this.deps.checkpoints?.remove(old.id))
        .then(() => this.removeOwnSandbox(old.sandbox))
        .catch((err: unknown) => this.deps.log.warn({ err, container_id: old.id }, "could not forget container"))
        .finally(() => {
          if (this.evictions.get(old.id) === eviction) this.evictions.delete(old.id);
        });
      this.evictions.set(old.id, eviction);
    }
  }

  /** Forgets a container at once, without its record or sandbox (for a launch never recorded). */
  private forget(c: Container): void {
    if (this.containers.get(c.id) === c) this.containers.delete(c.id);
    const at = this.terminatedOrder.indexOf(c);
    if (at >= 0) this.terminatedOrder.splice(at, 1);
  }

  private onEngineEvent(e: EngineEvent): void {
    const c = this.byEngineId.get(e.id) ?? this.containers.get(e.attributes[LABEL_CONTAINER_ID] ?? "");
    if (e.action === "create" && this.isStray(e.id, e.attributes[LABEL_CONTAINER_ID])) {
      // Created after its launch gave up on the create (a timeout): nothing will ever run or remove it.
      this.deps.log.info({ container_id: e.attributes[LABEL_CONTAINER_ID], engine_id: e.id }, "removing an engine container no launch is waiting for");
      void this.deps.engine.removeContainer(e.id).catch((err: unknown) => this.deps.log.warn({ err, engine_id: e.id }, "could not remove a stray engine container"));
      return;
    }
    if (!c || (c.engineId !== undefined && c.engineId !== e.id)) {
      // Not bound yet (recovery is listing the engine): keep the exit for whoever claims the id.
      if (e.action === "die") {
        this.unclaimedExits.set(e.id, { exitCode: exitCodeOf(e), oomKilled: false });
        while (this.unclaimedExits.size > 4096) this.unclaimedExits.delete(this.unclaimedExits.keys().next().value!);
      }
      return;
    }
    if (e.action === "oom") c.oomSeen = true;
    else if (e.action === "die") c.exited({ exitCode: exitCodeOf(e), oomKilled: c.oomSeen });
  }

  /**
   * An engine container of this agent that no container owns or awaits: its id is unknown, or its
   * container is bound to another engine container, or terminated without one (the create failed
   * on Berth's side). A container still waiting for its create's answer is not stray. Nothing is
   * stray while recovery is rebuilding the picture.
   */
  private isStray(engineId: string, containerId: string | undefined): boolean {
    if (this.recovering) return false;
    const c = containerId === undefined ? undefined : this.containers.get(containerId);
    if (!c) return true;
    if (c.engineId !== undefined) return c.engineId !== engineId;
    return c.terminated !== undefined;
  }

  private bind(c: Container, engineId: string): void {
    this.byEngineId.set(engineId, c);
    const missed = this.unclaimedExits.get(engineId);
    if (missed) {
      this.unclaimedExits.delete(engineId);
      c.exited(missed);
    }
  }

  private checkpoint(c: Container, overrides: { state?: ContainerState; termination?: Termination } = {}): Promise<void> {
    if (!this.deps.checkpoints) return Promise.resolve();
    return this.deps.checkpoints.save(
      toCheckpoint(this.options.agentId, {
        spec: c.spec,
        sandbox: c.sandbox,
        state: overrides.state ?? c.state,
        launchedAt: c.launchedAt,
        resources: c.resourceMessages,
        engineId: c.engineId,
        destroyRequested: c.destroyRequested,
        termination: overrides.termination ?? c.terminated,
      }),
    );
  }

  private track(c: Container, run: Promise<void>): void {
    const tracked = run
      .catch((err: unknown) => this.deps.log.error({ err, container_id: c.id }, "container pipeline crashed"))
      .finally(() => {
        this.running.delete(tracked);
        if (c.engineId) this.byEngineId.delete(c.engineId);
        this.retain(c);
      });
    this.running.add(tracked);
  }

  /**
   * Rebuilds the containers from their checkpoints and one listing of this agent's engine
   * containers: adopts the live ones (Wait, Watch, Destroy, Status work as before), reports those
   * that exited meanwhile with their real status, destroys launches caught mid-pipeline, restores
   * retained terminations, and removes engine containers of this agent that nobody owns. Call
   * after start() (so events are subscribed before the listing) and before serving.
   */
  async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { adopted: 0, exitedMeanwhile: 0, vanished: 0, abandoned: 0, restoredTerminated: 0, orphansRemoved: 0, sandboxesRemoved: 0, unreadable: [] };
    if (!this.deps.checkpoints) return report;
    this.recovering = true;
    try {
      return await this.recoverNow(report, this.deps.checkpoints);
    } finally {
      this.recovering = false;
    }
  }

  private async recoverNow(report: RecoveryReport, checkpoints: CheckpointStore): Promise<RecoveryReport> {
    const loaded = await checkpoints.load();
    report.unreadable.push(...loaded.corrupt);
    report.sandboxesRemoved = await this.removeOrphanSandboxes(new Set(loaded.containers.map((cp) => cp.sandbox)));
    const rows = await this.deps.engine.listContainers(agentLabels(this.options.agentId));
    const plan = planRecovery(loaded.containers, rows, this.options.agentId);
    const inspections: Array<{ c: Container }> = [];
    const removals: string[] = plan.orphans.map((r) => r.id);
    report.orphansRemoved = plan.orphans.length;
    // Bind every adopted container synchronously, before any further await, so no `die` event
    // can fall between the listing and the binding (those before are kept as unclaimed exits).
    const terminateLater: Array<{ c: Container; t: Termination }> = [];
    for (const action of plan.actions) {
      if (action.kind === "unreadable") {
        report.unreadable.push(`container '${action.checkpoint.containerId}': ${action.reason}`);
        continue;
      }
      const spec = this.restoreSpec(action.checkpoint);
      if (!spec) {
        report.unreadable.push(`container '${action.checkpoint.containerId}': its launch no longer validates`);
        continue;
      }
      const cp = action.checkpoint;
      const launchedAt = cp.launchedAt ? timestampDate(cp.launchedAt) : new Date();
      switch (action.kind) {
        case "restore-terminated": {
          const c = new Container(spec, cp.sandbox, this.publish, "DESTROYING", launchedAt);
          this.restoreResources(c, cp);
          this.containers.set(c.id, c);
          c.terminate(terminationFromCheckpoint(cp.termination!));
          c.markRemoved();
          this.retain(c);
          removals.push(...action.leftovers.map((r) => r.id));
          report.restoredTerminated += 1;
          break;
        }
        case "adopt": {
          const c = new Container(spec, cp.sandbox, this.publish, action.state, launchedAt);
          this.restoreResources(c, cp);
          c.engineId = action.row.id;
          if (action.state === "DESTROYING") destroyedBeforeRestart(c);
          this.containers.set(c.id, c);
          this.bind(c, action.row.id);
          removals.push(...action.leftovers.map((r) => r.id));
          if (action.row.state !== "running") inspections.push({ c });
          else report.adopted += 1;
          break;
        }
        case "vanished": {
          const c = new Container(spec, cp.sandbox, this.publish, action.state, launchedAt);
          if (action.state === "DESTROYING") destroyedBeforeRestart(c);
          this.containers.set(c.id, c);
          const t = cp.destroyRequested
            ? destroyedBeforeRunning(action.state)
            : withReason(unknownFate(`Container '${c.id}' is gone from the engine and Berth was not running when it ended; its exit status is unknowable`), TaskStatus_Reason.AGENT_RESTARTED);
          terminateLater.push({ c, t });
          report.vanished += 1;
          break;
        }
        case "abandon": {
          const c = new Container(spec, cp.sandbox, this.publish, "DESTROYING", launchedAt);
          if (cp.destroyRequested) destroyedBeforeRestart(c);
          this.containers.set(c.id, c);
          removals.push(...action.leftovers.map((r) => r.id));
          const t = cp.destroyRequested ? destroyedBeforeRunning(action.stage) : launchFailed(action.stage, `Berth restarted during ${action.stage}; the launch was abandoned`);
          terminateLater.push({ c, t });
          report.abandoned += 1;
          break;
        }
      }
    }
    await forEachBounded(removals, ENGINE_CONCURRENCY, (id) =>
      this.deps.engine.removeContainer(id).catch((err: unknown) => this.deps.log.warn({ err, engine_id: id }, "recovery: could not remove container")),
    );
    for (const { c, t } of terminateLater) {
      await this.checkpoint(c, { state: "TERMINATED", termination: t }).catch((err: unknown) => this.deps.log.error({ err, container_id: c.id }, "could not checkpoint"));
      c.terminate(t);
      c.markRemoved();
      this.retain(c);
    }
    await forEachBounded(inspections, ENGINE_CONCURRENCY, async ({ c }) => {
      if (await this.learnExit(c)) report.exitedMeanwhile += 1;
    });
    // Adopted containers: follow their output from where the sandbox files stopped, and supervise.
    const attach = gate(ENGINE_CONCURRENCY);
    for (const c of this.containers.values()) {
      if (c.terminated || c.engineId === undefined || !this.byEngineId.has(c.engineId)) continue;
      this.track(c, adoptContainer(c, this.pipelineDeps, attach));
      if (c.state === "DESTROYING" && !c.hasExited) void this.stopForDestroy(c).catch(() => undefined);
    }
    this.deps.log.info({ ...report, unreadable: report.unreadable.length }, "recovery done");
    for (const u of report.unreadable) this.deps.log.warn({ detail: u }, "recovery: record skipped");
    return report;
  }

  /** Berth's own sandboxes folder; sandboxes a client chose elsewhere are never removed. */
  private get sandboxesDir(): string {
    return path.join(this.options.workDir, "sandboxes");
  }

  /**
   * A sandbox Berth chose lives as long as Berth remembers its container (live, or terminated
   * within --termination_retention); then it goes, as Mesos' sandbox GC would.
   */
  private async removeOwnSandbox(sandbox: string): Promise<void> {
    if (path.dirname(sandbox) !== this.sandboxesDir) return;
    await rm(sandbox, { recursive: true, force: true });
  }

  /**
   * Sandboxes in Berth's folder without a record: from a launch that was never accepted (killed
   * before its record was durable) or a container forgotten just before a crash.
   */
  private async removeOrphanSandboxes(known: Set<string>): Promise<number> {
    const names = await readdir(this.sandboxesDir).catch(() => [] as string[]);
    const orphans = names.map((n) => path.join(this.sandboxesDir, n)).filter((dir) => !known.has(dir));
    await forEachBounded(orphans, ENGINE_CONCURRENCY, (dir) => rm(dir, { recursive: true, force: true }));
    return orphans.length;
  }

  /** The resources in force before the restart (the launch's, or the last Update's). */
  private restoreResources(c: Container, cp: ContainerCheckpoint): void {
    try {
      c.resources = summarizeResources(cp.resources);
      c.resourceMessages = cp.resources;
    } catch (err) {
      this.deps.log.warn({ err, container_id: c.id }, "recovery: recorded resources do not validate; keeping the launch's");
    }
  }

  private restoreSpec(cp: ContainerCheckpoint) {
    try {
      return resolveLaunchSpec(cp.containerId, cp.containerConfig, cp.environment);
    } catch {
      return undefined;
    }
  }

  /**
   * Asks the engine whether `c` has exited (its events may have been missed) and records the exit
   * if so; true when it has. A container the engine no longer knows has exited, fate unknown.
   */
  private async learnExit(c: Container): Promise<boolean> {
    const inspect = await this.deps.engine.inspectContainer(c.engineId!);
    if (!inspect) c.exited(undefined);
    else if (!inspect.running && inspect.status !== "created") c.exited({ exitCode: inspect.exitCode, oomKilled: inspect.oomKilled });
    else return false;
    return true;
  }

  /** After the events stream was lost, asks the engine about every container still awaiting its exit. */
  private async reconcile(): Promise<void> {
    // Every container whose engine container exists, whatever its state: one started but not yet
    // marked RUNNING (its RUNNING record still being written) dies just as well, and its `die`
    // may have fallen into the gap too. learnExit leaves a created, never started one alone.
    const waiting = [...this.containers.values()].filter((c) => c.engineId !== undefined && !c.hasExited && !c.terminated);
    await forEachBounded(waiting, ENGINE_CONCURRENCY, async (c) => {
      try {
        await this.learnExit(c);
      } catch (err) {
        this.deps.log.warn({ err, container_id: c.id }, "reconcile: inspect failed");
      }
    });
    // A container that ended while the engine was going away was reported, but its removal
    // failed then and nothing retries it: without this, its engine container stays until the
    // next restart of Berth. Only terminated containers past --docker_remove_delay are swept;
    // engine containers no container owns are left to recovery, which runs with the full picture.
    let rows;
    try {
      rows = await this.deps.engine.listContainers(agentLabels(this.options.agentId));
    } catch (err) {
      this.deps.log.warn({ err }, "reconcile: listing the engine's containers failed");
      return;
    }
    // Also those of a create Berth gave up on (a timeout) that the engine carried out anyway.
    const leftovers = rows.filter(
      (r) => terminatedLongEnough(this.containers.get(r.labels[LABEL_CONTAINER_ID] ?? ""), this.options.removeDelayMs) || this.isStray(r.id, r.labels[LABEL_CONTAINER_ID]),
    );
    await forEachBounded(leftovers, ENGINE_CONCURRENCY, (r) =>
      this.deps.engine
        .removeContainer(r.id)
        .then(() => this.deps.log.info({ container_id: r.labels[LABEL_CONTAINER_ID], engine_id: r.id }, "reconcile: removed the engine container of a terminated container"))
        .catch((err: unknown) => this.deps.log.warn({ err, engine_id: r.id }, "reconcile: could not remove container")),
    );
  }
}

/** `inner` lies strictly below `outer`. */
function nested(inner: string, outer: string): boolean {
  const o = outer.endsWith("/") ? outer : `${outer}/`;
  return inner !== outer && inner.startsWith(o);
}

/** True for a terminated container whose engine container may be removed (its remove delay is over). */
function terminatedLongEnough(c: Container | undefined, removeDelayMs: number): boolean {
  return c?.terminated !== undefined && Date.now() - c.terminated.time.getTime() >= removeDelayMs;
}

/** Marks a recovered container as one whose destroy was asked before the restart (its fate: TASK_KILLED). */
function destroyedBeforeRestart(c: Container): void {
  c.launchAbort.abort(new DestroyRequested(`container '${c.id}' destroyed before the restart`));
}

function exitCodeOf(e: EngineEvent): number {
  const exitCode = Number(e.attributes.exitCode ?? "NaN");
  return Number.isFinite(exitCode) ? exitCode : 255;
}

function withReason(t: Termination, reason: TaskStatus_Reason): Termination {
  t.containerTermination.reason = reason;
  return t;
}


/** Errnos of a failing disk (a full one, an I/O error, a read-only remount, a quota). */
const DISK_ERRNOS = new Set(["ENOSPC", "EIO", "EROFS", "EDQUOT"]);

/** True for a failed durable write of Berth's own records (the checkpoint layer's DiskFailed, or a disk errno). */
function isDiskFailure(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth += 1) {
    if (e.name === "DiskFailed" || DISK_ERRNOS.has((e as NodeJS.ErrnoException).code ?? "")) return true;
  }
  return false;
}

/**
 * The one translation of docker-layer and disk errors into domain errors, so the rpc edge sees
 * only the latter. An engine refusal the caller caused becomes a code the caller can act on:
 * 400 (a bad value, e.g. a memory limit under the engine's minimum) InvalidRequest; a name in use
 * AlreadyExists; another conflict, or a limit below what the container already uses (the engine
 * answers 500 "current usage"), FailedPrecondition. An engine that cannot be reached is
 * EngineUnavailable; any other engine failure EngineFailed, with the engine's words.
 */
export function toDomainError(err: unknown): unknown {
  if (err instanceof BerthError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof EngineUnreachable) return new EngineUnavailable(message, { cause: err });
  if (err instanceof EngineRequestFailed) {
    if (err.statusCode === 400) return new InvalidRequest(message, { cause: err });
    if (err.statusCode === 409 && /already in use/i.test(message)) return new AlreadyExists(message, { cause: err });
    if (err.statusCode === 409) return new FailedPrecondition(message, { cause: err });
    if (/current usage|resource busy|should be (larger|smaller) than/i.test(message)) return new FailedPrecondition(message, { cause: err });
    return new EngineFailed(message, { cause: err });
  }
  if (isDiskFailure(err)) return new StorageFailed(message, { cause: err });
  return err;
}

function rethrowAsDomainError(err: unknown): never {
  throw toDomainError(err);
}
