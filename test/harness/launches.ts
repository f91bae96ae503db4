import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { LaunchRequestSchema } from "../../src/gen/berth/v1/containerizer_pb.js";
import { ContainerInfo_DockerInfo_Network, ContainerInfo_Type, Value_Type, type CommandInfo } from "../../src/gen/mesos/v1/mesos_pb.js";
import { CommandInfoSchema } from "../../src/gen/mesos/v1/mesos_pb.js";

let counter = 0;

/** A fresh container id for a test. */
export function newId(prefix = "t"): string {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

/** Options of a test launch. */
export interface LaunchOptions {
  image: string;
  /** Shell command (shell=true). */
  shell?: string;
  command?: MessageInitShape<typeof CommandInfoSchema>;
  taskId?: string;
  network?: ContainerInfo_DockerInfo_Network;
  memMb?: number;
  cpus?: number;
  forcePull?: boolean;
  gracePeriodMs?: number;
  environment?: Record<string, string>;
}

/** A LaunchRequest for a task running in the given image, with network NONE by default. */
export function launchRequest(id: string, o: LaunchOptions): MessageInitShape<typeof LaunchRequestSchema> {
  const command: CommandInfo = create(CommandInfoSchema, o.command ?? { shell: true, value: o.shell ?? "true" });
  const resources = [
    ...(o.cpus !== undefined ? [{ name: "cpus", type: Value_Type.SCALAR, scalar: { value: o.cpus } }] : []),
    ...(o.memMb !== undefined ? [{ name: "mem", type: Value_Type.SCALAR, scalar: { value: o.memMb } }] : []),
  ];
  const containerInfo = {
    type: ContainerInfo_Type.DOCKER,
    docker: { image: o.image, network: o.network ?? ContainerInfo_DockerInfo_Network.NONE, forcePullImage: o.forcePull },
  };
  return {
    containerId: { value: id },
    environment: o.environment ?? {},
    containerConfig: {
      // Required in Mesos' proto2 schema; empty asks Berth to pick the sandbox.
      directory: "",
      commandInfo: command,
      containerInfo,
      resources,
      taskInfo: o.taskId
        ? {
            name: o.taskId,
            taskId: { value: o.taskId },
            agentId: { value: "agent" },
            command,
            container: containerInfo,
            resources,
            killPolicy: o.gracePeriodMs !== undefined ? { gracePeriod: { nanoseconds: BigInt(o.gracePeriodMs) * 1_000_000n } } : undefined,
          }
        : undefined,
    },
  };
}
