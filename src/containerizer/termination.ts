import { create } from "@bufbuild/protobuf";
import { ContainerTerminationSchema, type ContainerTermination } from "../gen/mesos/slave/containerizer_pb.js";
import { ResourceSchema, TaskState, TaskStatus_Reason, Value_Type } from "../gen/mesos/v1/mesos_pb.js";
import type { ContainerState } from "./state.js";

/** How a container ended, as Mesos reports it plus the plain exit code or signal. */
export interface Termination {
  containerTermination: ContainerTermination;
  exitCode?: number;
  signal?: number;
  time: Date;
}

/** What the engine said about an exit. */
export interface ExitFacts {
  exitCode: number;
  oomKilled: boolean;
}

/**
 * Splits a Docker exit code into Mesos' raw wait(2) status: the engine reports a death by signal N
 * as 128+N (as a shell does), so codes 129..192 are taken as signals; `exit 137` by hand is thus
 * reported as SIGKILL, which is what every shell-based tool reports too.
 */
export function waitStatus(exitCode: number): { status: number; exitCode?: number; signal?: number } {
  if (exitCode > 128 && exitCode <= 128 + 64) {
    const signal = exitCode - 128;
    return { status: signal, signal };
  }
  return { status: (exitCode & 0xff) << 8, exitCode };
}

/**
 * Termination of a container that ran and exited. `killed` is true when Berth destroyed it;
 * `killedBecause` says why when Berth decided it itself (a failing health check).
 */
export function exitTermination(facts: ExitFacts, killed: boolean, memLimitMb?: number, killedBecause?: string): Termination {
  const { status, exitCode, signal } = waitStatus(facts.exitCode);
  const how = signal !== undefined ? `terminated by signal ${signal}` : `exited with status ${exitCode}`;
  const ct = create(ContainerTerminationSchema, { status });
  if (killed) {
    ct.state = TaskState.TASK_KILLED;
    ct.message = killedBecause !== undefined ? `Container killed by Berth: ${killedBecause} (${how})` : `Container killed by Berth (${how})`;
  } else if (facts.oomKilled) {
    ct.state = TaskState.TASK_FAILED;
    ct.reason = TaskStatus_Reason.CONTAINER_LIMITATION_MEMORY;
    ct.message = `Container exceeded its memory limit and was killed by the OOM killer (${how})`;
    if (memLimitMb !== undefined) {
      ct.limitedResources.push(create(ResourceSchema, { name: "mem", type: Value_Type.SCALAR, scalar: { value: memLimitMb } }));
    }
  } else if (exitCode === 0) {
    ct.state = TaskState.TASK_FINISHED;
    ct.message = "Container exited with status 0";
  } else {
    ct.state = TaskState.TASK_FAILED;
    ct.message = `Container ${how}`;
  }
  return { containerTermination: ct, exitCode, signal, time: new Date() };
}

/** Termination of a container destroyed before it ran (no process, so no status). */
export function destroyedBeforeRunning(stage: ContainerState): Termination {
  const ct = create(ContainerTerminationSchema, {
    state: TaskState.TASK_KILLED,
    message: `Container destroyed while ${stage}`,
  });
  return { containerTermination: ct, time: new Date() };
}

/** Termination of a launch that failed or timed out in `stage`. */
export function launchFailed(stage: ContainerState, cause: string): Termination {
  const ct = create(ContainerTerminationSchema, {
    state: TaskState.TASK_FAILED,
    reason: TaskStatus_Reason.CONTAINER_LAUNCH_FAILED,
    message: `Failed to launch container during ${stage}: ${cause}`,
  });
  return { containerTermination: ct, time: new Date() };
}

/** Termination whose true fate could not be learnt (the engine lost the container). */
export function unknownFate(message: string): Termination {
  const ct = create(ContainerTerminationSchema, { state: TaskState.TASK_LOST, message });
  return { containerTermination: ct, time: new Date() };
}
