/**
 * What the status page shows, kept up to date from the container event stream (and the
 * checkpoint writes, which carry each container's image and resources in force). One row per
 * container; each change produces the row anew for the live page (Server-Sent Events).
 */
import type { ContainerCheckpoint } from "../gen/berth/checkpoint/v1/checkpoint_pb.js";
import { TaskState, TaskStatus_Reason } from "../gen/mesos/v1/mesos_pb.js";
import { isFieldSet } from "@bufbuild/protobuf";
import { ContainerTerminationSchema } from "../gen/mesos/slave/containerizer_pb.js";
import type { ContainerEvent } from "../containerizer/container-event.js";
import type { ContainerState } from "../containerizer/state.js";

/** A container as the page shows it. Every string in it may come from a caller: the page escapes it. */
export interface ContainerRow {
  id: string;
  state: ContainerState;
  image?: string;
  /** When the launch was accepted (ms since the epoch). */
  launchedAt?: number;
  resources?: { cpus?: number; memMb?: number; diskMb?: number };
  /** Each state entered, with when (ms since the epoch), as seen live. */
  stages: Array<{ state: ContainerState; at: number }>;
  pull?: { ref: string; bytesCurrent: number; bytesTotal: number; layersDone: number; layersTotal: number; status: string };
  termination?: { state: string; reason?: string; message: string; at: number; exitCode?: number; signal?: number };
}

/** The engine and disk as the page shows them. */
export interface EngineHealth {
  engine: string;
  connected: boolean;
  diskOk: boolean;
  reconnects: number;
}

/** What a new page (or SSE client) receives first. */
export interface StatusSnapshot {
  now: number;
  agentId: string;
  containers: ContainerRow[];
  engine: EngineHealth;
}

/** The containerizer's own list: which containers exist now, their state and image. */
export interface ContainerList {
  list(): Array<{ containerId: string; state: ContainerState; image: string }>;
}

/** Terminated rows kept beyond those the containerizer still lists (for "recent terminations"). */
const MAX_TERMINATED_ROWS = 200;
/** Stages one row keeps (a container passes through at most six states). */
const MAX_STAGES = 16;

export type StatusChange = { type: "row"; row: ContainerRow } | { type: "engine"; engine: EngineHealth };

/** The page's state, and the changes to it. */
export class StatusModel {
  private readonly rows = new Map<string, ContainerRow>();
  private readonly terminated: string[] = [];
  private readonly listeners = new Set<(change: StatusChange) => void>();
  private health: EngineHealth;

  constructor(
    private readonly containers: ContainerList,
    readonly agentId: string,
    engine: string,
  ) {
    this.health = { engine, connected: false, diskOk: true, reconnects: 0 };
  }

  /** Calls `listener` with every change until the returned function is called. */
  subscribe(listener: (change: StatusChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Every container the containerizer lists, with what the events told about it. */
  snapshot(): StatusSnapshot {
    const containers = this.containers.list().map((c) => {
      const row = this.rows.get(c.containerId);
      if (row) {
        row.state = c.state;
        row.image ??= c.image;
        return row;
      }
      return { id: c.containerId, state: c.state, image: c.image, stages: [] };
    });
    return { now: Date.now(), agentId: this.agentId, containers, engine: { ...this.health } };
  }

  /** One event of the container stream. */
  observe(e: ContainerEvent): void {
    const kind = e.kind;
    if (kind.type === "task_status") return;
    const row = this.row(e.containerId);
    const at = e.time.getTime();
    switch (kind.type) {
      case "state":
        row.state = kind.state;
        // States only move forward, so a row has a handful of stages; the bound is a safeguard.
        if ((!e.snapshot || row.stages.length === 0) && row.stages.length < MAX_STAGES) row.stages.push({ state: kind.state, at });
        row.launchedAt ??= at;
        break;
      case "pull":
        {
          // Totals only: the page shows one bar per pull, so the per-layer list stays off the wire.
          const { ref, bytesCurrent, bytesTotal, layersDone, layersTotal, status } = kind.progress;
          row.pull = { ref, bytesCurrent, bytesTotal, layersDone, layersTotal, status };
        }
        break;
      case "fetch":
        return;
      case "termination": {
        const ct = kind.termination.containerTermination;
        const reason = isFieldSet(ct, ContainerTerminationSchema.field.reason) ? TaskStatus_Reason[ct.reason] : undefined;
        row.state = "TERMINATED";
        row.termination = {
          state: TaskState[ct.state] ?? String(ct.state),
          reason,
          message: ct.message,
          at: kind.termination.time.getTime(),
          exitCode: kind.termination.exitCode,
          signal: kind.termination.signal,
        };
        this.terminated.push(row.id);
        while (this.terminated.length > MAX_TERMINATED_ROWS) {
          const old = this.terminated.shift()!;
          if (this.rows.get(old)?.state === "TERMINATED") this.rows.delete(old);
        }
        break;
      }
    }
    this.emit({ type: "row", row });
  }

  /** A checkpoint write: the container's image, resources in force and launch time. */
  checkpointed(cp: ContainerCheckpoint): void {
    const row = this.rows.get(cp.containerId);
    if (!row) return;
    const image = cp.containerConfig?.containerInfo?.docker?.image;
    const resources: NonNullable<ContainerRow["resources"]> = {};
    for (const r of cp.resources) {
      const v = r.scalar?.value;
      if (v === undefined) continue;
      if (r.name === "cpus") resources.cpus = (resources.cpus ?? 0) + v;
      else if (r.name === "mem") resources.memMb = (resources.memMb ?? 0) + v;
      else if (r.name === "disk") resources.diskMb = (resources.diskMb ?? 0) + v;
    }
    const launchedAt = cp.launchedAt ? Number(cp.launchedAt.seconds) * 1000 + Math.floor(cp.launchedAt.nanos / 1e6) : undefined;
    const changed =
      (image !== undefined && image !== row.image) ||
      JSON.stringify(resources) !== JSON.stringify(row.resources ?? {}) ||
      (launchedAt !== undefined && row.launchedAt === undefined);
    if (!changed) return;
    if (image) row.image = image;
    row.resources = resources;
    if (launchedAt !== undefined) row.launchedAt = launchedAt;
    this.emit({ type: "row", row });
  }

  /** The engine events stream opened or closed, or the checkpoint disk changed health. */
  setHealth(change: Partial<EngineHealth>): void {
    const next = { ...this.health, ...change };
    if (JSON.stringify(next) === JSON.stringify(this.health)) return;
    this.health = next;
    this.emit({ type: "engine", engine: { ...next } });
  }

  private row(id: string): ContainerRow {
    let row = this.rows.get(id);
    if (!row) {
      row = { id, state: "FETCHING", stages: [] };
      this.rows.set(id, row);
    }
    return row;
  }

  private emit(change: StatusChange): void {
    for (const l of this.listeners) l(change);
  }
}
