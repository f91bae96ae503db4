import { clone, create, isFieldSet } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import type { EnginePort } from "../docker/engine-port.js";
import { ContainerTerminationSchema } from "../gen/mesos/slave/containerizer_pb.js";
import { NetworkInfo_IPAddressSchema, NetworkInfo_Protocol, NetworkInfoSchema, TaskState, type NetworkInfo, type TaskStatus } from "../gen/mesos/v1/mesos_pb.js";
import type { Container } from "./container.js";
import { taskStatus } from "./task-status.js";
import type { Termination } from "./termination.js";

/**
 * The TASK_RUNNING of a task, as Mesos' docker executor sends it: `data` is the engine's inspect
 * output (`docker inspect`'s JSON array with the one container), `container_status` names the
 * container, its init pid (executor_pid) and, when the container has addresses on its engine
 * networks, one NetworkInfo with them (the task's first NetworkInfo, its addresses replaced).
 * An inspect that fails leaves those out (logged): the task runs either way.
 */
export async function runningTaskStatus(c: Container, engine: EnginePort, agentId: string, log: Logger): Promise<TaskStatus> {
  const inspect = c.engineId === undefined
    ? undefined
    : await engine.inspectContainer(c.engineId, { raw: true }).catch((err: unknown) => {
        log.warn({ err, container_id: c.id }, "could not inspect the running container; TASK_RUNNING goes without its inspect data");
        return undefined;
      });
  const ips = inspect?.ipAddresses ?? [];
  return taskStatus(c.spec, agentId, TaskState.TASK_RUNNING, {
    pid: inspect && inspect.pid > 0 ? inspect.pid : undefined,
    data: inspect?.raw !== undefined ? inspectData(inspect.raw) : undefined,
    networkInfos: ips.length > 0 ? [networkInfoOf(c, ips)] : undefined,
  });
}

/**
 * `docker inspect`'s output for the data field: a JSON array with the container, its
 * `Config.Env` values replaced by `***` (names kept). A task's environment often carries secrets,
 * and Berth's events never do (Mesos' executor sends them as they are; Watch clients are not all
 * the framework). Undefined when the engine's answer is not JSON.
 */
export function inspectData(raw: string): Uint8Array | undefined {
  let inspect: { Config?: { Env?: unknown } };
  try {
    inspect = JSON.parse(raw) as typeof inspect;
  } catch {
    return undefined;
  }
  const env = inspect.Config?.Env;
  if (Array.isArray(env)) {
    inspect.Config!.Env = env.map((entry) => {
      if (typeof entry !== "string") return "***";
      const eq = entry.indexOf("=");
      return eq === -1 ? entry : `${entry.slice(0, eq)}=***`;
    });
  }
  return new TextEncoder().encode(JSON.stringify([inspect]));
}

/** The task's first NetworkInfo (if any) with the container's addresses in place of its own. */
function networkInfoOf(c: Container, ips: string[]): NetworkInfo {
  const given = c.spec.containerInfo.networkInfos[0];
  const info = given ? clone(NetworkInfoSchema, given) : create(NetworkInfoSchema);
  info.ipAddresses = [];
  for (const ip of ips) info.ipAddresses.push(create(NetworkInfo_IPAddressSchema, { ipAddress: ip, protocol: ip.includes(":") ? NetworkInfo_Protocol.IPv6 : NetworkInfo_Protocol.IPv4 }));
  return info;
}

/** The terminal TaskStatus of a task ended with `t` (undefined when the container runs no task). */
export function terminalTaskStatus(c: Container, agentId: string, t: Termination): TaskStatus | undefined {
  if (c.spec.taskId === undefined) return undefined;
  const ct = t.containerTermination;
  // proto2: an unset reason reads as the enum's first value; only a reason that was set is passed on.
  const reason = isFieldSet(ct, ContainerTerminationSchema.field.reason) ? ct.reason : undefined;
  return taskStatus(c.spec, agentId, ct.state, { message: ct.message, reason });
}
