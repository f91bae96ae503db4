import { create } from "@bufbuild/protobuf";
import { ContainerTerminationSchema } from "../gen/mesos/slave/containerizer_pb.js";
import { ResourceSchema, TaskState, TaskStatus_Reason, Value_Type } from "../gen/mesos/v1/mesos_pb.js";
import { waitStatus, type ExitFacts, type Termination } from "./termination.js";

/** The limits Berth kills a container for (besides the memory limit, which the kernel enforces). */
export type LimitKind = "max_completion_time" | "disk";

/**
 * Why Berth killed a running container: the launch signal's abort reason, as DestroyRequested is
 * for a Destroy. Its fate is TASK_FAILED with the limit's reason, whatever the exit says.
 */
export class LimitReached extends Error {
  override readonly name = "LimitReached";
  constructor(
    readonly kind: LimitKind,
    message: string,
    /** disk: the sandbox's measured usage and the `disk` resource, in bytes. */
    readonly usedBytes?: bigint,
    readonly limitMb?: number,
  ) {
    super(message);
  }
}

/** The limit a container is being killed for, when that is why its launch signal was aborted. */
export function limitOf(signal: AbortSignal): LimitReached | undefined {
  return signal.aborted && signal.reason instanceof LimitReached ? signal.reason : undefined;
}

/** The disk LimitReached of a sandbox using `usedBytes` against a `disk` resource of `limitMb`. */
export function diskLimit(usedBytes: bigint, limitMb: number | undefined): LimitReached {
  return new LimitReached("disk", diskMessage(usedBytes, limitMb), usedBytes, limitMb);
}

/** As Mesos' disk/du isolator words it. */
export function diskMessage(usedBytes: bigint, limitMb: number | undefined): string {
  const limit = limitMb === undefined ? "its disk resource" : `its disk resource of ${limitMb} MB`;
  return `Disk usage (${formatBytes(usedBytes)}) exceeds quota: the sandbox outgrew ${limit}`;
}

/**
 * Termination of a container Berth killed for a limit: TASK_FAILED with
 * REASON_MAX_COMPLETION_TIME_REACHED (as Mesos' docker executor) or REASON_CONTAINER_LIMITATION_DISK
 * with the `disk` resource in limited_resources (as Mesos' disk/du isolator). `facts` is the exit
 * the engine reported (undefined when it lost the container).
 */
export function limitTermination(limit: LimitReached, facts: ExitFacts | undefined): Termination {
  const ct = create(ContainerTerminationSchema, { state: TaskState.TASK_FAILED, message: limit.message });
  let exitCode: number | undefined;
  let signal: number | undefined;
  if (facts !== undefined) {
    const w = waitStatus(facts.exitCode);
    ct.status = w.status;
    exitCode = w.exitCode;
    signal = w.signal;
  }
  if (limit.kind === "max_completion_time") {
    ct.reason = TaskStatus_Reason.MAX_COMPLETION_TIME_REACHED;
  } else {
    ct.reason = TaskStatus_Reason.CONTAINER_LIMITATION_DISK;
    if (limit.limitMb !== undefined) ct.limitedResources.push(create(ResourceSchema, { name: "disk", type: Value_Type.SCALAR, scalar: { value: limit.limitMb } }));
  }
  return { containerTermination: ct, exitCode, signal, time: new Date() };
}

/** Bytes with a binary unit, for messages. */
export function formatBytes(bytes: bigint): string {
  const n = Number(bytes);
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}
