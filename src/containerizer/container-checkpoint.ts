import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  CheckpointTerminationSchema,
  ContainerCheckpointSchema,
  type CheckpointTermination,
  type ContainerCheckpoint,
} from "../gen/berth/checkpoint/v1/checkpoint_pb.js";
import type { Resource } from "../gen/mesos/v1/mesos_pb.js";
import type { LaunchSpec } from "./launch-spec.js";
import { diskLimit, type LimitReached } from "./limitation.js";
import { completionLimit, maxCompletionMs } from "./completion-deadline.js";
import type { ContainerState } from "./state.js";
import type { Termination } from "./termination.js";

/** The facts about a container that a checkpoint records. */
export interface CheckpointFacts {
  spec: LaunchSpec;
  sandbox: string;
  state: ContainerState;
  launchedAt: Date;
  resources: Resource[];
  engineId?: string;
  destroyRequested?: boolean;
  termination?: Termination;
  /** When the engine was asked to start it (max_completion_time counts from there). */
  startedAt?: Date;
  /** The limit Berth is killing it for, if any. */
  limitation?: LimitReached;
}

/** Domain → checkpoint record. */
export function toCheckpoint(agentId: string, f: CheckpointFacts): ContainerCheckpoint {
  return create(ContainerCheckpointSchema, {
    containerId: f.spec.containerId,
    agentId,
    containerConfig: f.spec.config,
    environment: f.spec.extraEnvironment,
    sandbox: f.sandbox,
    state: f.state,
    engineId: f.engineId ?? "",
    termination: f.termination ? terminationToCheckpoint(f.termination) : undefined,
    launchedAt: timestampFromDate(f.launchedAt),
    resources: f.resources,
    destroyRequested: f.destroyRequested ?? false,
    startedAt: f.startedAt ? timestampFromDate(f.startedAt) : undefined,
    limitation: f.limitation?.kind ?? "",
    limitationUsedBytes: f.limitation?.usedBytes ?? 0n,
  });
}

/** The start a checkpoint records (older records: none, and the launch time stands in). */
export function startedAtFromCheckpoint(cp: ContainerCheckpoint): Date | undefined {
  return cp.startedAt ? timestampDate(cp.startedAt) : undefined;
}

/**
 * The limit a checkpointed container was being killed for, rebuilt with the same message
 * (`spec` gives max_completion_time, `diskMb` the disk resource in force).
 */
export function limitationFromCheckpoint(cp: ContainerCheckpoint, spec: LaunchSpec, diskMb: number | undefined): LimitReached | undefined {
  if (cp.limitation === "max_completion_time") {
    let limitMs: number | undefined;
    try {
      limitMs = maxCompletionMs(spec.config);
    } catch {
      limitMs = undefined;
    }
    return completionLimit(limitMs);
  }
  if (cp.limitation === "disk") return diskLimit(cp.limitationUsedBytes, diskMb);
  return undefined;
}

function terminationToCheckpoint(t: Termination): CheckpointTermination {
  return create(CheckpointTerminationSchema, {
    containerTermination: t.containerTermination,
    exitCode: t.exitCode,
    signal: t.signal,
    time: timestampFromDate(t.time),
  });
}

/** Checkpoint record → domain termination. */
export function terminationFromCheckpoint(t: CheckpointTermination): Termination {
  return {
    containerTermination: t.containerTermination!,
    exitCode: t.exitCode,
    signal: t.signal,
    time: t.time ? timestampDate(t.time) : new Date(),
  };
}

const STATES: readonly ContainerState[] = ["FETCHING", "PULLING", "MOUNTING", "RUNNING", "DESTROYING", "TERMINATED"];

/** The state a checkpoint records, or undefined for a record this version does not know. */
export function checkpointState(cp: ContainerCheckpoint): ContainerState | undefined {
  return STATES.find((s) => s === cp.state);
}
