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
  });
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
