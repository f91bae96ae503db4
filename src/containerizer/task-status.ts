import { create } from "@bufbuild/protobuf";
import { TaskState, TaskStatusSchema, TaskStatus_Reason, TaskStatus_Source, type NetworkInfo, type TaskStatus } from "../gen/mesos/v1/mesos_pb.js";
import type { LaunchSpec } from "./launch-spec.js";

/** A Mesos TaskStatus for the task a container runs, as its executor would send it. */
export function taskStatus(
  spec: LaunchSpec,
  agentId: string,
  state: TaskState,
  extra: { message?: string; reason?: TaskStatus_Reason; pid?: number; data?: Uint8Array; networkInfos?: NetworkInfo[] } = {},
): TaskStatus {
  return create(TaskStatusSchema, {
    taskId: { value: spec.taskId ?? "" },
    state,
    message: extra.message ?? "",
    reason: extra.reason,
    data: extra.data,
    source: TaskStatus_Source.EXECUTOR,
    timestamp: Date.now() / 1000,
    agentId: { value: agentId },
    executorId: spec.executorId !== undefined ? { value: spec.executorId } : undefined,
    containerStatus: {
      containerId: { value: spec.containerId },
      executorPid: extra.pid,
      networkInfos: extra.networkInfos ?? [],
    },
  });
}

/**
 * A change of the task's health, as Mesos' docker executor reports it: TASK_RUNNING with `healthy`
 * and reason REASON_TASK_HEALTH_CHECK_STATUS_UPDATED (the message says what the check saw).
 */
export function healthStatus(spec: LaunchSpec, agentId: string, healthy: boolean, message: string): TaskStatus {
  const status = taskStatus(spec, agentId, TaskState.TASK_RUNNING, { message, reason: TaskStatus_Reason.TASK_HEALTH_CHECK_STATUS_UPDATED });
  status.healthy = healthy;
  return status;
}
