import path from "node:path";
import { Observable, Subject, type Subscription } from "rxjs";
import type { Logger } from "pino";
import type { ContainerConfig } from "../gen/mesos/slave/containerizer_pb.js";
import type { EngineEvent, EnginePort } from "../docker/engine-port.js";
import type { EventMonitor } from "../docker/event-monitor.js";
import type { ImagePuller } from "../docker/image-puller.js";
import { LABEL_CONTAINER_ID } from "../docker/names.js";
import { validateId } from "./container-id.js";
import { Container, DestroyRequested } from "./container.js";
import type { ContainerEvent, EventKind } from "./container-event.js";
import { buildCreateSpec } from "./create-spec.js";
import { Cancelled, ContainerNotFound, EngineUnavailable, InvalidRequest } from "./errors.js";
import { NotSupported, resolveLaunchSpec } from "./launch-spec.js";
import { runContainer, type FetchFn } from "./launch-pipeline.js";
import type { ContainerState } from "./state.js";
import type { Termination } from "./termination.js";

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
}

/** The collaborators the containerizer drives. */
export interface ContainerizerDeps {
  engine: EnginePort;
  puller: ImagePuller;
  monitor: EventMonitor;
  fetch: FetchFn;
  log: Logger;
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
}

/**
 * The domain service: one Container per id, one engine events stream for all of them, and a
 * per-agent event sequence shared by every Watch.
 */
export class Containerizer {
  private readonly containers = new Map<string, Container>();
  private readonly byEngineId = new Map<string, Container>();
  private readonly terminatedOrder: string[] = [];
  private readonly events$ = new Subject<ContainerEvent>();
  private sequence = 0n;
  private readonly subscriptions: Subscription[] = [];
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly options: ContainerizerOptions,
    private readonly deps: ContainerizerDeps,
  ) {}

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
  }

  /** The last sequence number handed out. */
  get lastSequence(): bigint {
    return this.sequence;
  }

  /** Validates and records a launch, then runs its pipeline in the background. */
  async launch(input: LaunchInput): Promise<LaunchOutcome> {
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
    const sandbox = spec.directory ?? path.join(this.options.workDir, "sandboxes", id);
    // Build the engine's create options now, so a shape the engine cannot take is refused
    // before anything is recorded.
    buildCreateSpec(spec, { agentId: this.options.agentId, hostSandbox: sandbox, containerSandbox: this.options.sandboxDirectory });
    if (!this.deps.monitor.connected$.value) {
      throw new EngineUnavailable(`the Docker engine at ${this.options.engineAddress} is not reachable; retry when Berth's health is SERVING`);
    }
    for (const other of this.containers.values()) {
      if (other.sandbox === sandbox && other.state !== "TERMINATED") {
        throw new InvalidRequest(`container_config.directory '${sandbox}' is already the sandbox of live container '${other.id}'`);
      }
    }
    const container = new Container(spec, sandbox, this.publish);
    this.containers.set(id, container);
    const run = runContainer(container, {
      engine: this.deps.engine,
      puller: this.deps.puller,
      fetch: this.deps.fetch,
      agentId: this.options.agentId,
      containerSandbox: this.options.sandboxDirectory,
      stopTimeoutMs: this.options.stopTimeoutMs,
      removeDelayMs: this.options.removeDelayMs,
      launchTimeoutMs: this.options.launchTimeoutMs,
      outputGraceMs: this.options.outputGraceMs,
      log: this.deps.log,
      bindEngineId: (c, engineId) => this.byEngineId.set(engineId, c),
    })
      .catch((err: unknown) => this.deps.log.error({ err, container_id: id }, "container pipeline crashed"))
      .finally(() => {
        this.running.delete(run);
        if (container.engineId) this.byEngineId.delete(container.engineId);
        this.retain(id);
      });
    this.running.add(run);
    return { result: "LAUNCHED", sandbox };
  }

  /** Resolves with the termination once the container has terminated; rejects Cancelled on abort. */
  async wait(containerId: string, signal?: AbortSignal): Promise<Termination> {
    const c = this.get(containerId);
    if (c.terminated) return c.terminated;
    return new Promise<Termination>((resolve, reject) => {
      const onAbort = () => {
        sub.unsubscribe();
        reject(new Cancelled(`wait for '${containerId}' was cancelled`));
      };
      const sub = c.termination$.subscribe((t) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(t);
      });
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Destroys the container in whatever state; idempotent. Resolves with the termination. */
  async destroy(containerId: string, signal?: AbortSignal): Promise<Termination> {
    const c = this.get(containerId);
    if (c.terminated) return c.terminated;
    const wasRunning = c.state === "RUNNING" || (c.state === "DESTROYING" && c.destroyRequested && c.engineId !== undefined);
    if (c.state !== "DESTROYING") c.transition("DESTROYING", "destroy requested");
    if (!c.launchAbort.signal.aborted) c.launchAbort.abort(new DestroyRequested(`container '${c.id}' destroyed`));
    if (wasRunning && c.engineId !== undefined && !c.hasExited) {
      const graceMs = c.spec.gracePeriodMs ?? this.options.stopTimeoutMs;
      this.deps.log.info({ container_id: c.id, grace_ms: graceMs }, "stopping container");
      try {
        await this.deps.engine.stopContainer(c.engineId, Math.ceil(graceMs / 1000));
      } catch (err) {
        if (c.terminated) return c.terminated;
        throw new EngineUnavailable(`could not stop container '${c.id}': ${(err as Error).message}; Destroy may be retried`);
      }
    }
    return this.wait(containerId, signal);
  }

  /**
   * Events of the given containers (all, including later ones, when empty): first a snapshot of
   * each one's current state, then live events. With ids, the stream completes once all of them
   * have terminated.
   */
  watch(containerIds: string[]): Observable<ContainerEvent> {
    const ids = containerIds.map((id) => validateId(id, "container_ids[].value"));
    for (const id of ids) this.get(id);
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
      // Subscribe before taking the snapshot and hold live events back until it is delivered: a
      // subscriber that acts on a snapshot event (e.g. destroys) must still see what that causes.
      let pending: ContainerEvent[] | undefined = [];
      let endedEarly = false;
      const live = this.events$.subscribe({
        next: (e) => (pending ? pending.push(e) : deliver(e)),
        complete: () => (pending ? (endedEarly = true) : subscriber.complete()),
      });
      const snapshot = [...this.containers.values()]
        .filter((c) => !watched || watched.has(c.id))
        .flatMap((c) => c.snapshot())
        .sort((a, b) => (a.sequence < b.sequence ? -1 : a.sequence > b.sequence ? 1 : 0));
      for (const e of snapshot) deliver(e);
      while (pending.length > 0) deliver(pending.shift()!);
      pending = undefined;
      if (endedEarly) subscriber.complete();
      return live;
    });
  }

  /** Every known container, live and retained terminated. */
  list(): ContainerInfoSummary[] {
    return [...this.containers.values()].map((c) => this.summary(c));
  }

  /** State, engine id and init pid of one container. */
  async status(containerId: string): Promise<ContainerStatusInfo> {
    const c = this.get(containerId);
    if (c.pid === undefined && c.engineId !== undefined && c.state === "RUNNING") {
      const inspect = await this.deps.engine.inspectContainer(c.engineId);
      if (inspect?.running && inspect.pid > 0) c.pid = inspect.pid;
    }
    return { ...this.summary(c), pid: c.state === "RUNNING" ? c.pid : undefined };
  }

  /** Resolves once every pipeline has finished (for tests and orderly shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
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
    this.sequence += 1n;
    const event: ContainerEvent = { sequence: this.sequence, time: new Date(), containerId, snapshot: false, kind };
    this.events$.next(event);
    return event;
  };

  /** Keeps at most `terminationRetention` terminated containers, dropping the oldest. */
  private retain(id: string): void {
    this.terminatedOrder.push(id);
    while (this.terminatedOrder.length > this.options.terminationRetention) {
      const old = this.terminatedOrder.shift()!;
      const c = this.containers.get(old);
      if (c?.terminated) this.containers.delete(old);
    }
  }

  private onEngineEvent(e: EngineEvent): void {
    const c = this.byEngineId.get(e.id) ?? this.containers.get(e.attributes[LABEL_CONTAINER_ID] ?? "");
    if (!c || (c.engineId !== undefined && c.engineId !== e.id)) return;
    if (e.action === "oom") c.oomSeen = true;
    else if (e.action === "die") {
      const exitCode = Number(e.attributes.exitCode ?? "NaN");
      c.exited({ exitCode: Number.isFinite(exitCode) ? exitCode : 255, oomKilled: c.oomSeen });
    }
  }

  /** After the events stream was lost, asks the engine about every container still awaiting its exit. */
  private async reconcile(): Promise<void> {
    for (const c of this.containers.values()) {
      if (c.engineId === undefined || c.hasExited || c.terminated) continue;
      if (c.state !== "RUNNING" && c.state !== "DESTROYING") continue;
      try {
        const inspect = await this.deps.engine.inspectContainer(c.engineId);
        if (!inspect) c.exited(undefined);
        else if (!inspect.running && inspect.status !== "created") c.exited({ exitCode: inspect.exitCode, oomKilled: inspect.oomKilled });
      } catch (err) {
        this.deps.log.warn({ err, container_id: c.id }, "reconcile: inspect failed");
      }
    }
  }
}
