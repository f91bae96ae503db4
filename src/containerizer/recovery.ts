import { readdir, rm } from "node:fs/promises";
import path from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import type { CheckpointStore } from "../checkpoint/checkpoint-store.js";
import type { EnginePort } from "../docker/engine-port.js";
import { LABEL_CONTAINER_ID, agentLabels } from "../docker/names.js";
import type { ContainerCheckpoint } from "../gen/berth/checkpoint/v1/checkpoint_pb.js";
import { TaskStatus_Reason } from "../gen/mesos/v1/mesos_pb.js";
import { forEachBounded, gate, type Gate } from "./bounded.js";
import { limitationFromCheckpoint, startedAtFromCheckpoint, terminationFromCheckpoint } from "./container-checkpoint.js";
import { limitTermination } from "./limitation.js";
import { runningTaskStatus, terminalTaskStatus } from "./running-status.js";
import { Container, DestroyRequested, type Publish } from "./container.js";
import { resolveLaunchSpec, summarizeResources } from "./launch-spec.js";
import { planRecovery } from "./recovery-plan.js";
import type { ContainerState } from "./state.js";
import { destroyedBeforeRunning, launchFailed, unknownFate, type Termination } from "./termination.js";

/** How many engine calls recovery and reconciliation make at once. */
export const ENGINE_CONCURRENCY = 16;

/** What recovery found and did, for the log and for tests. */
export interface RecoveryReport {
  adopted: number;
  exitedMeanwhile: number;
  vanished: number;
  abandoned: number;
  restoredTerminated: number;
  orphansRemoved: number;
  /** Engine containers with this agent's label and no record, left alone (--docker_kill_orphans=false). */
  orphansKept: number;
  /** Sandboxes in Berth's folder that no record names (never accepted, or forgotten). */
  sandboxesRemoved: number;
  unreadable: string[];
}

/** What recovery needs of the containerizer: its containers and the steps it takes on them. */
export interface RecoveryHost {
  readonly containers: Map<string, Container>;
  readonly publish: Publish;
  /** True when `engineId` is bound to a container being supervised. */
  isBound(engineId: string): boolean;
  bind(c: Container, engineId: string): void;
  retain(c: Container): void;
  checkpoint(c: Container, overrides?: { state?: ContainerState; termination?: Termination }): Promise<void>;
  /** Follows an adopted container's output and supervises it until it terminates. */
  supervise(c: Container, attachSlots: Gate): void;
  stopForDestroy(c: Container): Promise<void>;
  /** An engine container of this agent that no container owns or awaits. */
  isStray(engineId: string, containerId: string | undefined): boolean;
  /** Restores when an adopted container started (max_completion_time counts from there). */
  markStarted(c: Container, at: Date): void;
}

/** The settings recovery reads. */
export interface RecoveryOptions {
  agentId: string;
  /** Berth's own sandboxes folder; sandboxes a client chose elsewhere are never removed. */
  sandboxesDir: string;
  removeDelayMs: number;
  /**
   * --docker_kill_orphans: engine containers with this agent's label but no record are removed
   * (true, Mesos' default) or left alone (false: agents sharing an engine and an agent id).
   */
  killOrphans: boolean;
}

/**
 * Rebuilding the containers after a restart (recover), and catching up with the engine after its
 * events stream was lost (reconcile).
 */
export class Recovery {
  /** True while recover() rebuilds the containers: engine containers not bound yet are not stray. */
  private recovering = false;

  constructor(
    private readonly options: RecoveryOptions,
    private readonly deps: { engine: EnginePort; checkpoints?: CheckpointStore; log: Logger },
    private readonly host: RecoveryHost,
  ) {}

  get inProgress(): boolean {
    return this.recovering;
  }

  /**
   * Rebuilds the containers from their checkpoints and one listing of this agent's engine
   * containers: adopts the live ones (Wait, Watch, Destroy, Status work as before), reports those
   * that exited meanwhile with their real status, destroys launches caught mid-pipeline, restores
   * retained terminations, and removes engine containers of this agent that nobody owns. Call
   * after the containerizer's start() (so events are subscribed before the listing) and before serving.
   */
  async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { adopted: 0, exitedMeanwhile: 0, vanished: 0, abandoned: 0, restoredTerminated: 0, orphansRemoved: 0, orphansKept: 0, sandboxesRemoved: 0, unreadable: [] };
    if (!this.deps.checkpoints) return report;
    this.recovering = true;
    try {
      return await this.recoverNow(report, this.deps.checkpoints);
    } finally {
      this.recovering = false;
    }
  }

  private async recoverNow(report: RecoveryReport, checkpoints: CheckpointStore): Promise<RecoveryReport> {
    const { host } = this;
    const loaded = await checkpoints.load();
    report.unreadable.push(...loaded.corrupt);
    report.sandboxesRemoved = await this.removeOrphanSandboxes(new Set(loaded.containers.map((cp) => cp.sandbox)));
    const rows = await this.deps.engine.listContainers(agentLabels(this.options.agentId));
    const plan = planRecovery(loaded.containers, rows, this.options.agentId);
    /** Adopted containers; `listedRunning`: counted as adopted (the others, once exited, as exited meanwhile). */
    const inspections: Array<{ c: Container; listedRunning: boolean }> = [];
    /** Adopted running tasks: their TASK_RUNNING is published again, with the engine's inspect. */
    const runningTasks: Container[] = [];
    const removals: string[] = [];
    if (this.options.killOrphans) {
      removals.push(...plan.orphans.map((r) => r.id));
      report.orphansRemoved = plan.orphans.length;
    } else {
      report.orphansKept = plan.orphans.length;
      for (const r of plan.orphans) {
        this.deps.log.info({ engine_id: r.id, container_id: r.labels[LABEL_CONTAINER_ID], state: r.state }, "recovery: leaving alone an engine container with this agent's label but no record (--docker_kill_orphans=false)");
      }
    }
    // Bind every adopted container synchronously, before any further await, so no `die` event
    // can fall between the listing and the binding (those before are kept as unclaimed exits).
    const terminateLater: Array<{ c: Container; t: Termination }> = [];
    for (const action of plan.actions) {
      if (action.kind === "unreadable") {
        report.unreadable.push(`container '${action.checkpoint.containerId}': ${action.reason}`);
        continue;
      }
      const spec = restoreSpec(action.checkpoint);
      if (!spec) {
        report.unreadable.push(`container '${action.checkpoint.containerId}': its launch no longer validates`);
        continue;
      }
      const cp = action.checkpoint;
      const launchedAt = cp.launchedAt ? timestampDate(cp.launchedAt) : new Date();
      switch (action.kind) {
        case "restore-terminated": {
          const c = new Container(spec, cp.sandbox, host.publish, "DESTROYING", launchedAt);
          this.restoreResources(c, cp);
          host.containers.set(c.id, c);
          const t = terminationFromCheckpoint(cp.termination!);
          c.terminate(t, terminalTaskStatus(c, this.options.agentId, t));
          c.markRemoved();
          host.retain(c);
          removals.push(...action.leftovers.map((r) => r.id));
          report.restoredTerminated += 1;
          break;
        }
        case "adopt": {
          const limit = action.state === "DESTROYING" && !cp.destroyRequested ? limitationFromCheckpoint(cp, spec, summaryDiskMb(cp)) : undefined;
          const c = new Container(spec, cp.sandbox, host.publish, action.state, launchedAt);
          this.restoreResources(c, cp);
          c.engineId = action.row.id;
          // Older records have no start: the launch time stands in (an earlier deadline, never a later one).
          host.markStarted(c, startedAtFromCheckpoint(cp) ?? launchedAt);
          if (limit) c.launchAbort.abort(limit);
          else if (action.state === "DESTROYING") destroyedBeforeRestart(c);
          host.containers.set(c.id, c);
          host.bind(c, action.row.id);
          removals.push(...action.leftovers.map((r) => r.id));
          // Every adopted container is inspected once bound, the ones listed running too: an exit
          // between the listing and the inspect is learnt there, one after it by its `die` event.
          inspections.push({ c, listedRunning: action.row.state === "running" });
          if (action.row.state === "running") {
            report.adopted += 1;
            // A task's TASK_RUNNING is published again with its inspect (so a Watch snapshot has it).
            if (spec.taskId !== undefined && action.state === "RUNNING") runningTasks.push(c);
          }
          break;
        }
        case "vanished": {
          const limit = cp.destroyRequested ? undefined : limitationFromCheckpoint(cp, spec, summaryDiskMb(cp));
          const c = new Container(spec, cp.sandbox, host.publish, action.state, launchedAt);
          if (action.state === "DESTROYING") destroyedBeforeRestart(c);
          host.containers.set(c.id, c);
          const t = cp.destroyRequested
            ? destroyedBeforeRunning(action.state)
            : limit
              ? limitTermination(limit, undefined)
              : withReason(unknownFate(`Container '${c.id}' is gone from the engine and Berth was not running when it ended; its exit status is unknowable`), TaskStatus_Reason.AGENT_RESTARTED);
          terminateLater.push({ c, t });
          report.vanished += 1;
          break;
        }
        case "abandon": {
          const c = new Container(spec, cp.sandbox, host.publish, "DESTROYING", launchedAt);
          if (cp.destroyRequested) destroyedBeforeRestart(c);
          host.containers.set(c.id, c);
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
      await host.checkpoint(c, { state: "TERMINATED", termination: t }).catch((err: unknown) => this.deps.log.error({ err, container_id: c.id }, "could not checkpoint"));
      // The terminal TaskStatus too, as for any termination (a Watch of the task sees its end).
      c.terminate(t, terminalTaskStatus(c, this.options.agentId, t));
      c.markRemoved();
      host.retain(c);
    }
    await forEachBounded(inspections, ENGINE_CONCURRENCY, async ({ c, listedRunning }) => {
      // Already known (its `die` came, or was kept unclaimed until the bind): nothing to ask.
      // For one listed running the inspect is a second look: if it fails, the `die` event still comes.
      const look = () =>
        listedRunning
          ? this.learnExit(c).catch((err: unknown) => (this.deps.log.warn({ err, container_id: c.id }, "recovery: could not inspect an adopted container; its exit is left to the engine's events"), false))
          : this.learnExit(c);
      const exited = c.hasExited || (await look());
      if (exited && !listedRunning) report.exitedMeanwhile += 1;
    });
    // Before serving, so a Watch snapshot of an adopted task holds its TASK_RUNNING. One that died
    // meanwhile is left to its `die` event (bound above): its terminal status follows.
    await forEachBounded(runningTasks, ENGINE_CONCURRENCY, async (c) => {
      const status = await runningTaskStatus(c, this.deps.engine, this.options.agentId, this.deps.log);
      if (c.state === "RUNNING" && !c.hasExited) c.publishTaskStatus({ type: "task_status", status });
    });
    // Adopted containers: follow their output from where the sandbox files stopped, and supervise.
    const attach = gate(ENGINE_CONCURRENCY);
    for (const c of host.containers.values()) {
      if (c.terminated || c.engineId === undefined || !host.isBound(c.engineId)) continue;
      host.supervise(c, attach);
      if (c.state === "DESTROYING" && !c.hasExited) void host.stopForDestroy(c).catch(() => undefined);
    }
    this.deps.log.info({ ...report, unreadable: report.unreadable.length }, "recovery done");
    for (const u of report.unreadable) this.deps.log.warn({ detail: u }, "recovery: record skipped");
    return report;
  }

  /** After the events stream was lost, asks the engine about every container still awaiting its exit. */
  async reconcile(): Promise<void> {
    // Every container whose engine container exists, whatever its state: one started but not yet
    // marked RUNNING (its RUNNING record still being written) dies just as well, and its `die`
    // may have fallen into the gap too. learnExit leaves a created, never started one alone.
    const waiting = [...this.host.containers.values()].filter((c) => c.engineId !== undefined && !c.hasExited && !c.terminated);
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
    // With --docker_kill_orphans=false, only strays of container ids Berth knows are its own to remove.
    const leftovers = rows.filter(
      (r) =>
        terminatedLongEnough(this.host.containers.get(r.labels[LABEL_CONTAINER_ID] ?? ""), this.options.removeDelayMs) ||
        (this.host.isStray(r.id, r.labels[LABEL_CONTAINER_ID]) && (this.options.killOrphans || this.host.containers.has(r.labels[LABEL_CONTAINER_ID] ?? ""))),
    );
    await forEachBounded(leftovers, ENGINE_CONCURRENCY, (r) =>
      this.deps.engine
        .removeContainer(r.id)
        .then(() => this.deps.log.info({ container_id: r.labels[LABEL_CONTAINER_ID], engine_id: r.id }, "reconcile: removed the engine container of a terminated container"))
        .catch((err: unknown) => this.deps.log.warn({ err, engine_id: r.id }, "reconcile: could not remove container")),
    );
  }

  /**
   * Sandboxes in Berth's folder without a record: from a launch that was never accepted (killed
   * before its record was durable) or a container forgotten just before a crash.
   */
  private async removeOrphanSandboxes(known: Set<string>): Promise<number> {
    const dir = this.options.sandboxesDir;
    const names = await readdir(dir).catch(() => [] as string[]);
    const orphans = names.map((n) => path.join(dir, n)).filter((d) => !known.has(d));
    await forEachBounded(orphans, ENGINE_CONCURRENCY, (d) => rm(d, { recursive: true, force: true }));
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
}

function restoreSpec(cp: ContainerCheckpoint) {
  try {
    return resolveLaunchSpec(cp.containerId, cp.containerConfig, cp.environment);
  } catch {
    return undefined;
  }
}

/** True for a terminated container whose engine container may be removed (its remove delay is over). */
function terminatedLongEnough(c: Container | undefined, removeDelayMs: number): boolean {
  return c?.terminated !== undefined && Date.now() - c.terminated.time.getTime() >= removeDelayMs;
}

/** Marks a recovered container as one whose destroy was asked before the restart (its fate: TASK_KILLED). */
function destroyedBeforeRestart(c: Container): void {
  c.launchAbort.abort(new DestroyRequested(`container '${c.id}' destroyed before the restart`));
}

function withReason(t: Termination, reason: TaskStatus_Reason): Termination {
  t.containerTermination.reason = reason;
  return t;
}

/** The `disk` resource in force in a record (undefined when it has none or it does not validate). */
function summaryDiskMb(cp: ContainerCheckpoint): number | undefined {
  try {
    return summarizeResources(cp.resources).diskMb;
  } catch {
    return undefined;
  }
}
