import { create } from "@bufbuild/protobuf";
import { TaskStatusSchema, TaskStatus_Source, type NetworkInfo, type TaskState, type TaskStatus, type TaskStatus_Reason } from "../gen/mesos/v1/mesos_pb.js";
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
