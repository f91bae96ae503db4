import path from "node:path";
import { stat } from "node:fs/promises";
import { type Observable, type Subscription } from "rxjs";
import type { Logger } from "pino";
import type { ContainerConfig } from "../gen/mesos/slave/containerizer_pb.js";
import { EngineRequestFailed, EngineUnreachable, type EnginePort } from "../docker/engine-port.js";
import type { EventMonitor } from "../docker/event-monitor.js";
import type { ImagePuller } from "../docker/image-puller.js";
import { validateId } from "./container-id.js";
import { Container, DestroyRequested } from "./container.js";
import type { ContainerEvent } from "./container-event.js";
import { buildCreateSpec, type CreateOptions } from "./create-spec.js";
import { stopTimeoutMs } from "./docker-parameters.js";
import type { SeccompProfiles } from "./seccomp.js";
import { AlreadyExists, BerthError, Cancelled, ContainerNotFound, EngineFailed, EngineUnavailable, FailedPrecondition, InvalidRequest, PermissionDenied, ResourceExhausted, StorageFailed } from "./errors.js";
import { EventHub } from "./event-hub.js";
import { NotSupported, resolveLaunchSpec, type LaunchSpec } from "./launch-spec.js";
import { admissionPaths, admit } from "../policy/admit.js";
import { checkLaunchLimits, checkLiveContainers, DEFAULT_LAUNCH_LIMITS, type LaunchLimits } from "../policy/limits.js";
import { defaultPolicy, WELL_KNOWN_ENGINE_SOCKETS, type Policy } from "../policy/policy.js";
import { resolvePaths } from "../policy/resolve-paths.js";
import { isInside } from "../fetcher/sandbox-paths.js";
import { adoptContainer, BerthStopping, KilledUnhealthy, runContainer, type FetchFn, type PipelineDeps } from "./launch-pipeline.js";
import { HealthSupervisor } from "../health/health-supervisor.js";
import { execSync } from "../exec/exec-sync.js";
import { healthStatus } from "./task-status.js";
import type { CheckpointStore } from "../checkpoint/checkpoint-store.js";
import type { SequenceFile } from "../checkpoint/sequence-file.js";
import { gate } from "./bounded.js";
import { ContainerExec, type ExecSyncInput } from "../exec/container-exec.js";
import type { ExecSession, ExecStartInput } from "../exec/exec-session.js";
import type { ExecSyncResult } from "../exec/exec-sync.js";
import { toCheckpoint } from "./container-checkpoint.js";
import { Recovery, type RecoveryReport } from "./recovery.js";
import { Retention } from "./retention.js";
import { EngineEvents } from "./engine-events.js";
import type { Termination } from "./termination.js";
import type { ContainerState } from "./state.js";
import type { Resource, ResourceStatistics } from "../gen/mesos/v1/mesos_pb.js";
import { ContainerResources } from "./container-resources.js";
import { PulledImages, recordingPuller } from "./pulled-images.js";
import { RuntimeFacts, type StatsSource } from "./runtime-facts.js";
import { OutputRegistry } from "../logger/live-output.js";
import { FellBehind, LogReader, type LogChunk, type LogReadOptions } from "../logger/log-reader.js";
import { CompletionDeadlines, maxCompletionMs } from "./completion-deadline.js";
import { DiskWatcher } from "./disk-usage.js";
import { limitOf, type LimitReached } from "./limitation.js";

export type { RecoveryReport } from "./recovery.js";

/** A container's output as Logs streams it. */
export interface ContainerLogs extends AsyncIterable<LogChunk> {
  /** Settles with ResourceExhausted when the reader, not being read, fell behind the rotation. */
  overrun: Promise<unknown>;
  /** Stops reading and closes every file. */
  close(): void;
}

/** How many creates/starts launches have in flight at once. */
const ENGINE_LAUNCH_CONCURRENCY = 8;

/** How many HTTP/TCP health probe processes run at once, across all containers (each is a short-lived Node). */
const HEALTH_PROBE_CONCURRENCY = 4;

/** Field names a COMMAND health check's exec refusals name. */
const HEALTH_COMMAND_FIELDS = {
  argv: "task_info.health_check.command",
  env: "task_info.health_check.command.environment",
  user: "task_info.health_check.command.user",
  workingDir: "task_info.health_check.command",
};

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
  /** --exec_timeout (ExecSync's default timeout, default 1 min) and --exec_max_output_bytes (default 1 MiB). */
  execTimeoutMs?: number;
  execMaxOutputBytes?: number;
  /** --max_containers and the per-launch limits (default: the flags' defaults). */
  limits?: Partial<LaunchLimits>;
  /** --default_pids_limit: every container's pids limit (0 or unset = none). */
  defaultPidsLimit?: number;
  /** --fetcher_cache_dir: never mountable nor fetchable, like the work dir. */
  fetcherCacheDir?: string;
  /** --seccomp_config_dir / --seccomp_profile_name (the default profile already read at start-up). */
  seccomp?: SeccompProfiles;
  /** --container_log_max_size / --container_log_max_files (default 10 MB and 5). */
  containerLogMaxSize?: number;
  containerLogMaxFiles?: number;
  /** --container_disk_watch_interval: how often each sandbox's disk usage is measured (default 15 s). */
  diskWatchIntervalMs?: number;
  /** --enforce_container_disk_quota: kill a container whose sandbox outgrows its `disk`. */
  enforceDiskQuota?: boolean;
  /** --docker_kill_orphans: remove labelled engine containers without a record (default true). */
  killOrphans?: boolean;
}

/** The collaborators the containerizer drives. */
export interface ContainerizerDeps {
  engine: EnginePort;
  /** Whether an image is present, remembered between launches (default: asked of the engine each time). */
  images?: Pick<EnginePort, "imagePresent">;
  puller: ImagePuller;
  monitor: EventMonitor;
  fetch: FetchFn;
  log: Logger;
  /** Durable records; without one (unit tests), nothing survives a restart. */
  checkpoints?: CheckpointStore;
  /** Where Usage reads statistics (the composition root wires the host's cgroup reader). */
  stats: StatsSource;
  /** The per-agent sequence kept across restarts; without one, numbering starts at 1. */
  sequence?: SequenceFile;
}

/**
 * Outcome of Launch, as Mesos' Containerizer::LaunchResult; `firstSequence` is the sequence
 * number of the container's first event (a Watch resumed from one less misses none of them).
 */
export type LaunchOutcome = { result: "LAUNCHED" | "ALREADY_LAUNCHED"; sandbox: string; firstSequence: bigint } | { result: "NOT_SUPPORTED"; reason: string };

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
 * The domain service: one Container per id — admission, launch, Wait, Destroy, Status, Update,
 * Usage. Beside it: the event hub (numbering, journal, Watch), the engine events (routing exits
 * to containers), retention (forgetting terminated containers) and recovery (restart, events gap).
 */
export class Containerizer {
  private readonly containers = new Map<string, Container>();
  /** Which terminated containers are remembered, and the forgetting of the others. */
  private readonly retention: Retention;
  private readonly subscriptions: Subscription[] = [];
  private readonly running = new Set<Promise<void>>();
  /** The engine's events, routed to the containers. */
  private readonly engineEvents: EngineEvents;
  private readonly pipelineDeps: PipelineDeps;
  /** The engine's create options beyond the launch itself (CFS quota, pids limit, log cap, seccomp). */
  private readonly createOptions: CreateOptions;
  /** Numbering, journal and Watch streams of every container's events. */
  private readonly hub: EventHub;
  /** Recover after a restart, reconcile after an events gap. */
  private readonly recovery: Recovery;
  /** Images Berth pulled: the only ones PruneImages may remove. */
  private readonly pulledImages: PulledImages;
  /** Update, Usage, the runtime part of Status, PruneImages. */
  private readonly resources: ContainerResources;
  private readonly policy: Policy;
  private readonly limits: LaunchLimits;
  /** The engine sockets admission never lets a launch mount. */
  private readonly engineSockets: string[];
  /** The open writers of the sandboxes' stdout/stderr, for Logs. */
  private readonly outputs = new OutputRegistry();
  /** TaskInfo.max_completion_time of the running tasks. */
  private readonly deadlines: CompletionDeadlines;
  /** The sandboxes' disk usage (Mesos' disk/du isolator). */
  private readonly disk: DiskWatcher;
  /** TaskInfo.health_check of the running tasks. */
  private readonly health: HealthSupervisor<Container>;
  /** Aborted by shutdown(): every output capture ends (the containers keep running). */
  private readonly stopping = new AbortController();
  /** The ends of the output captures still running, for closed() to await. */
  private readonly captures = new Set<Promise<void>>();

  constructor(
    private readonly options: ContainerizerOptions,
    private readonly deps: ContainerizerDeps,
  ) {
    this.engineEvents = new EngineEvents(this.containers, { engine: deps.engine, log: deps.log, recovering: () => this.recovery.inProgress, killOrphans: options.killOrphans });
    this.retention = new Retention(options.terminationRetention, this.containers, { checkpoints: deps.checkpoints, log: deps.log, sandboxesDir: this.sandboxesDir });
    this.hub = new EventHub(options.eventRetention ?? 10_000, this.containers, deps.sequence);
    this.policy = options.policy ?? defaultPolicy();
    this.limits = { ...DEFAULT_LAUNCH_LIMITS, ...options.limits };
    this.engineSockets = [...new Set([...WELL_KNOWN_ENGINE_SOCKETS, ...(options.engineSocket ? [path.normalize(options.engineSocket)] : [])])];
    this.pulledImages = new PulledImages(deps.checkpoints, deps.log);
    this.deadlines = new CompletionDeadlines((c, limit) => void this.enforceLimit(c, limit), deps.log);
    this.disk = new DiskWatcher({
      intervalMs: options.diskWatchIntervalMs ?? 15_000,
      enforce: options.enforceDiskQuota ?? false,
      log: deps.log,
      onExceeded: (c, limit) => void this.enforceLimit(c, limit),
    });
    this.health = new HealthSupervisor<Container>({
      engine: deps.engine,
      run: (engineId, command, signal) => execSync(deps.engine, engineId, command, signal, HEALTH_COMMAND_FIELDS),
      probeSlots: gate(HEALTH_PROBE_CONCURRENCY),
      log: deps.log,
      changed: (c, healthy, message) => {
        if (c.state === "RUNNING" && c.spec.taskId !== undefined) c.publishTaskStatus({ type: "task_status", status: healthStatus(c.spec, options.agentId, healthy, message) });
      },
      kill: (c, why) => void this.killUnhealthy(c, why),
    });
    this.resources = new ContainerResources({
      engine: deps.engine,
      facts: new RuntimeFacts(deps.engine, deps.stats),
      images: this.pulledImages,
      log: deps.log,
      cfsQuota: options.cgroupsEnableCfs ?? false,
      checkpoint: (c) => this.checkpoint(c),
      diskUsedBytes: (c) => this.disk.usedBytes(c),
    });
    this.createOptions = {
      cfsQuota: options.cgroupsEnableCfs ?? false,
      pidsLimit: options.defaultPidsLimit,
      engineLogMaxSize: options.containerLogMaxSize,
      seccomp: options.seccomp,
    };
    this.pipelineDeps = {
      engine: deps.engine,
      images: deps.images,
      puller: recordingPuller(deps.puller, this.pulledImages),
      fetch: deps.fetch,
      agentId: options.agentId,
      containerSandbox: options.sandboxDirectory,
      stopTimeoutMs: options.stopTimeoutMs,
      removeDelayMs: options.removeDelayMs,
      launchTimeoutMs: options.launchTimeoutMs,
      outputGraceMs: options.outputGraceMs,
      logRotation: { maxSize: options.containerLogMaxSize ?? 10 * 1024 * 1024, maxFiles: options.containerLogMaxFiles ?? 5 },
      outputs: this.outputs,
      log: deps.log,
      bindEngineId: (c, engineId) => this.engineEvents.bind(c, engineId),
      checkpoint: (c, overrides) => this.checkpoint(c, overrides),
      engineSlots: gate(ENGINE_LAUNCH_CONCURRENCY),
      shutdown: {
        signal: this.stopping.signal,
        track: (done) => {
          this.captures.add(done);
          void done.finally(() => this.captures.delete(done));
        },
      },
    };
    this.recovery = new Recovery(
      { agentId: options.agentId, sandboxesDir: this.sandboxesDir, removeDelayMs: options.removeDelayMs, killOrphans: options.killOrphans ?? true },
      { engine: deps.engine, checkpoints: deps.checkpoints, log: deps.log },
      {
        containers: this.containers,
        publish: this.hub.publish,
        isBound: (engineId) => this.engineEvents.isBound(engineId),
        bind: (c, engineId) => this.engineEvents.bind(c, engineId),
        retain: (c) => this.retention.retain(c),
        checkpoint: (c, overrides) => this.checkpoint(c, overrides),
        supervise: (c, attachSlots) => this.track(c, adoptContainer(c, this.pipelineDeps, attachSlots)),
        stopForDestroy: (c) => this.stopForDestroy(c),
        isStray: (engineId, containerId) => this.engineEvents.isStray(engineId, containerId),
        markStarted: (c, at) => this.deadlines.markStarted(c, at),
      },
    );
  }

  /** Starts listening to the engine's events; call before serving. */
  start(): void {
    this.subscriptions.push(
      this.deps.monitor.events$.subscribe((e) => this.engineEvents.route(e)),
      this.deps.monitor.reconnected$.subscribe(() => void this.recovery.reconcile()),
    );
  }

  /**
   * Ends every Watch stream, stops listening and ends every output capture (closed() resolves once
   * their files are closed); containers keep running, as after the exit of Berth's process.
   */
  shutdown(): void {
    for (const s of this.subscriptions) s.unsubscribe();
    if (!this.stopping.signal.aborted) this.stopping.abort(new Error("Berth is stopping; the container keeps running"));
    // Launches under way stop where they are, as a process exit would stop them.
    for (const c of this.containers.values()) {
      if (c.terminated || c.launchAbort.signal.aborted || !(c.state === "FETCHING" || c.state === "PULLING" || c.state === "MOUNTING")) continue;
      c.launchAbort.abort(new BerthStopping(`Berth is stopping during ${c.state}`));
      const pipeline = this.pipelines.get(c);
      if (pipeline) this.stoppedLaunches.push(pipeline);
    }
    this.deadlines.close();
    this.diskClosed = this.disk.close();
    this.health.stopAll();
    this.hub.complete();
  }

  /** The disk watcher's close (its walk in progress ends), once shutdown() began it. */
  private diskClosed: Promise<void> | undefined;

  /** Each container's pipeline while it runs. */
  private readonly pipelines = new Map<Container, Promise<void>>();
  /** The pipelines of the launches shutdown() stopped. */
  private readonly stoppedLaunches: Promise<void>[] = [];

  /**
   * After shutdown(): resolves once the launches under way have stopped, every output capture has
   * closed its files and the disk watcher's walk is over.
   */
  async closed(): Promise<void> {
    await Promise.allSettled(this.stoppedLaunches);
    await this.diskClosed?.catch(() => undefined);
    while (this.captures.size > 0) await Promise.allSettled([...this.captures]);
  }

  /** The last sequence number handed out. */
  get lastSequence(): bigint {
    return this.hub.lastSequence;
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
    if (existing) return { result: "ALREADY_LAUNCHED", sandbox: existing.sandbox, firstSequence: existing.firstSequence };
    let spec;
    try {
      spec = resolveLaunchSpec(id, input.config, input.environment);
    } catch (err) {
      if (err instanceof NotSupported) return { result: "NOT_SUPPORTED", reason: err.message };
      throw err;
    }
    checkLaunchLimits(spec, this.limits);
    maxCompletionMs(spec.config);
    const sandbox = spec.directory ?? path.join(this.sandboxesDir, id);
    // A seccomp profile the launch names is read and checked first: the create options carry its text.
    if (this.options.seccomp?.needsPrepare(spec.containerInfo)) {
      await this.options.seccomp.prepare(spec.containerInfo);
      const raced = this.containers.get(id);
      if (raced) return { result: "ALREADY_LAUNCHED", sandbox: raced.sandbox, firstSequence: raced.firstSequence };
    }
    // Build the engine's create options now, so a shape the engine cannot take is refused
    // before anything is recorded.
    const createSpec = buildCreateSpec(spec, { agentId: this.options.agentId, hostSandbox: sandbox, containerSandbox: this.options.sandboxDirectory }, this.createOptions);
    const admitting = this.admit(spec, input.peer);
    // An earlier container of this id is being forgotten: its record and sandbox removal must be
    // over before this launch writes its own (same record name, and the same sandbox path when
    // Berth chose it), or the eviction would remove the new ones.
    const evicting = this.retention.evicting(id);
    if (admitting || evicting) {
      await Promise.all([admitting, evicting]);
      // Admission waited for the file system: another launch of this id may have come in.
      const raced = this.containers.get(id);
      if (raced) return { result: "ALREADY_LAUNCHED", sandbox: raced.sandbox, firstSequence: raced.firstSequence };
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
    const container = new Container(spec, sandbox, this.hub.publish);
    this.containers.set(id, container);
    this.track(container, runContainer(container, this.pipelineDeps, createSpec, recorded));
    try {
      await recorded;
    } catch (err) {
      // Not recorded, so not accepted: the pipeline fails on the same error; forget the id once
      // it has terminated so that a retry starts afresh.
      void container.removed.then(() => this.retention.forget(container));
      // Berth's own disk, not the engine: the message names where and why.
      throw new StorageFailed(`could not record container '${id}' in ${store?.dir}: ${(err as Error).message}; nothing was launched, Launch may be retried once the disk is fixed`, { cause: err });
    }
    return { result: "LAUNCHED", sandbox, firstSequence: container.firstSequence };
  }

  /**
   * The operator policy's one decision: the real paths it compares are read first (lstat and
   * readlink only, and only when the launch names a sandbox, host paths or local files), then the
   * pure check runs. A refusal is logged with the container id and the caller. Without paths to
   * read it decides synchronously (undefined), so a launch stays registered in the same turn.
   */
  private admit(spec: LaunchSpec, peer: string | undefined): Promise<void> | undefined {
    const facts = { workDir: this.options.workDir, sandboxesDir: this.sandboxesDir, engineSockets: this.engineSockets, engineLogMaxSize: this.options.containerLogMaxSize, fetcherCacheDir: this.options.fetcherCacheDir };
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
    // A limit kill the engine did not carry out (unreachable then) is stopped again by a Destroy.
    const wasRunning = c.state === "RUNNING" || (c.state === "DESTROYING" && (c.destroyRequested || limitOf(c.launchAbort.signal) !== undefined) && c.engineId !== undefined);
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
    // The kill policy's grace, else a `stop-timeout` parameter's, else --docker_stop_timeout.
    const graceMs = c.spec.gracePeriodMs ?? stopTimeoutMs(c.spec) ?? this.options.stopTimeoutMs;
    this.deps.log.info({ container_id: c.id, grace_ms: graceMs }, "stopping container");
    await this.deps.engine.stopContainer(c.engineId!, Math.ceil(graceMs / 1000));
  }

  /**
   * Events of the given containers (all, including later ones, when empty): a snapshot or, with
   * `fromSequence`, a resume, then live events; see EventHub.watch.
   */
  watch(containerIds: string[], fromSequence?: bigint): Observable<ContainerEvent> {
    const ids = containerIds.map((id) => validateId(id, "container_ids[].value"));
    return this.hub.watch(ids, fromSequence);
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

  /** Runs a command to its end in a RUNNING container (ExecSync); see ContainerExec.sync. */
  async execSync(containerId: string, input: ExecSyncInput, signal: AbortSignal): Promise<ExecSyncResult> {
    return this.execs.sync(this.get(validateId(containerId, "container_id.value")), input, signal).catch(rethrowAsDomainError);
  }

  /** Starts an interactive exec in a RUNNING container (Exec); see ContainerExec.interactive. */
  async exec(containerId: string, input: ExecStartInput, signal: AbortSignal): Promise<ExecSession> {
    return this.execs.interactive(this.get(validateId(containerId, "start.container_id.value")), input, signal).catch(rethrowAsDomainError);
  }

  private execsMemo: ContainerExec | undefined;

  private get execs(): ContainerExec {
    this.execsMemo ??= new ContainerExec(this.deps.engine, this.policy, {
      defaultTimeoutMs: this.options.execTimeoutMs ?? 60_000,
      maxOutputBytes: this.options.execMaxOutputBytes ?? 1024 * 1024,
    });
    return this.execsMemo;
  }

  /**
   * A container's output from its sandbox (rotated files included), running or retained
   * terminated; see LogReader. NOT_FOUND for an unknown container, InvalidRequest for a bad
   * `since`, FailedPrecondition once its sandbox is gone. A reader that falls behind the rotation
   * fails (and `overrun` settles) with ResourceExhausted; `close()` frees everything.
   */
  async logs(containerId: string, query: LogReadOptions): Promise<ContainerLogs> {
    const c = this.get(validateId(containerId, "container_id.value"));
    if (query.sinceMs !== undefined && !(Number.isFinite(query.sinceMs) && query.sinceMs >= 0)) throw new InvalidRequest(`since ${query.sinceMs} ms is not a time at or after the Unix epoch`);
    if (query.tail !== undefined && !(Number.isSafeInteger(query.tail) && query.tail >= 0)) throw new InvalidRequest(`tail ${query.tail} is not a line count`);
    // Before the sandbox is made (FETCHING just began) there is simply no output yet.
    const present = await stat(c.sandbox).then((s) => s.isDirectory(), () => false);
    if (!present && !(c.state === "FETCHING" && !c.terminated)) throw new FailedPrecondition(`the sandbox of container '${c.id}' (${c.sandbox}) is gone; its output cannot be read`);
    const reader = new LogReader(
      {
        sandbox: c.sandbox,
        registry: this.outputs,
        isTerminated: () => c.terminated !== undefined,
        onTerminated: (wake) => {
          const sub = c.termination$.subscribe({ complete: wake, error: wake });
          return () => sub.unsubscribe();
        },
      },
      query,
    );
    const behind = (err: unknown) => (err instanceof FellBehind ? new ResourceExhausted("--container_log_max_files", err.message) : toDomainError(err));
    return {
      overrun: reader.overrun.then(behind),
      close: () => reader.dispose(),
      async *[Symbol.asyncIterator]() {
        try {
          yield* reader;
        } catch (err) {
          throw behind(err);
        }
      },
    };
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
    for (let pending = this.retention.pending; this.running.size > 0 || pending.length > 0; pending = this.retention.pending) {
      await Promise.allSettled([...this.running, ...pending]);
    }
  }

  private summary(c: Container): ContainerInfoSummary {
    return { containerId: c.id, state: c.state, image: c.spec.image, engineId: c.engineId, sandbox: c.sandbox };
  }

  private get(containerId: string): Container {
    const c = this.containers.get(containerId);
    if (!c) throw new ContainerNotFound(containerId);
    return c;
  }

  private checkpoint(c: Container, overrides: { state?: ContainerState; termination?: Termination } = {}): Promise<void> {
    // The RUNNING record is written as the engine is asked to start the container: that moment
    // is the start max_completion_time counts from.
    if (overrides.state === "RUNNING") this.deadlines.markStarted(c);
    if (!this.deps.checkpoints) return Promise.resolve();
    const limit = limitOf(c.launchAbort.signal);
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
        startedAt: this.deadlines.startedAt(c),
        limitation: limit,
      }),
    );
  }

  /**
   * Kills a RUNNING container for a limit (max_completion_time, disk): DESTROYING, the limit
   * recorded (a restart still reports it), then SIGKILL as Mesos does for both; the exit then
   * becomes TASK_FAILED with the limit's reason. A container already on its way out is left be.
   */
  private async enforceLimit(c: Container, limit: LimitReached): Promise<void> {
    if (c.state !== "RUNNING" || c.hasExited || c.launchAbort.signal.aborted || c.engineId === undefined) return;
    c.transition("DESTROYING", limit.message);
    c.launchAbort.abort(limit);
    await this.checkpoint(c).catch((err: unknown) => this.deps.log.error({ err, container_id: c.id }, "could not checkpoint the limitation"));
    await this.deps.engine.killContainer(c.engineId).catch((err: unknown) => this.deps.log.warn({ err, container_id: c.id }, "could not kill the container past its limit"));
  }

  /**
   * Kills a RUNNING task whose health checks failed `consecutive_failures` times, as Mesos' docker
   * executor does: a destroy (SIGTERM, SIGKILL after the kill grace), ending TASK_KILLED with
   * `healthy` false and the reason in the termination's message.
   */
  private async killUnhealthy(c: Container, why: string): Promise<void> {
    if (c.state !== "RUNNING" || c.hasExited || c.launchAbort.signal.aborted || c.engineId === undefined) return;
    const reason = new KilledUnhealthy(why);
    c.transition("DESTROYING", `container '${c.id}' ${reason.message}`);
    c.launchAbort.abort(reason);
    await this.checkpoint(c).catch((err: unknown) => this.deps.log.error({ err, container_id: c.id }, "could not checkpoint the destroy"));
    await this.stopForDestroy(c).catch((err: unknown) => this.deps.log.warn({ err, container_id: c.id }, "could not stop the unhealthy container"));
  }

  private track(c: Container, run: Promise<void>): void {
    this.deadlines.watch(c);
    this.disk.watch(c);
    this.health.watch(c, c.spec.config.taskInfo?.healthCheck);
    const tracked = run
      .catch((err: unknown) => this.deps.log.error({ err, container_id: c.id }, "container pipeline crashed"))
      .finally(() => {
        this.running.delete(tracked);
        this.pipelines.delete(c);
        if (c.engineId) this.engineEvents.unbind(c.engineId);
        this.retention.retain(c);
      });
    this.running.add(tracked);
    this.pipelines.set(c, tracked);
  }

  /**
   * Rebuilds the containers after a restart; see Recovery.recover. Call after start() (so events
   * are subscribed before the listing) and before serving.
   */
  recover(): Promise<RecoveryReport> {
    return this.recovery.recover();
  }

  /** Berth's own sandboxes folder; sandboxes a client chose elsewhere are never removed. */
  private get sandboxesDir(): string {
    return path.join(this.options.workDir, "sandboxes");
  }

}

/** `inner` lies strictly below `outer`. */
function nested(inner: string, outer: string): boolean {
  return inner !== outer && isInside(outer, inner);
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
