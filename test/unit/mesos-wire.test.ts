// Proves that Berth's mesos.* messages are wire-identical to Apache Mesos.
//
// The expected bytes are assembled by hand from the field numbers and wire types in
// mesos-wire-facts.md (tag = field_number << 3 | wire_type), never with the generated code or
// protobuf-es' own writer, so a renumbered or retyped field in the .proto files fails here.
import { strict as assert } from "node:assert";
import { create, fromBinary, isFieldSet, toBinary } from "@bufbuild/protobuf";
import {
  CommandInfoSchema,
  CommandInfo_URISchema,
  ContainerInfoSchema,
  ContainerInfo_DockerInfoSchema,
  ContainerInfo_DockerInfo_Network,
  ContainerInfo_Type,
  Environment_VariableSchema,
  Environment_Variable_Type,
  HealthCheckSchema,
  ImageSchema,
  KillPolicySchema,
  LinuxInfoSchema,
  ResourceSchema,
  TaskInfoSchema,
  TaskState,
  TaskStateSchema,
  TaskStatusSchema,
  TaskStatus_Reason,
  TaskStatus_ReasonSchema,
  Value_Type,
  VolumeSchema,
  Volume_Mode,
  Volume_Source_Type,
  Volume_Source_TypeSchema,
} from "../../src/gen/mesos/v1/mesos_pb.js";
import {
  ContainerConfigSchema,
  ContainerTerminationSchema,
} from "../../src/gen/mesos/slave/containerizer_pb.js";

// ---- a minimal, independent protobuf encoder (wire format only) ----

const VARINT = 0;
const I64 = 1;
const LEN = 2;

type Bytes = number[];

function varint(value: number | bigint): Bytes {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: Bytes = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
}

function tag(field: number, wireType: number): Bytes {
  return varint((field << 3) | wireType);
}

function fVarint(field: number, value: number | bigint | boolean): Bytes {
  return [...tag(field, VARINT), ...varint(typeof value === "boolean" ? (value ? 1 : 0) : value)];
}

function fDouble(field: number, value: number): Bytes {
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, value, true);
  return [...tag(field, I64), ...new Uint8Array(buf.buffer)];
}

function fBytes(field: number, payload: Bytes): Bytes {
  return [...tag(field, LEN), ...varint(payload.length), ...payload];
}

function fString(field: number, value: string): Bytes {
  return fBytes(field, [...new TextEncoder().encode(value)]);
}

function fMsg(field: number, ...parts: Bytes[]): Bytes {
  return fBytes(field, parts.flat());
}

function wire(...parts: Bytes[]): Uint8Array {
  return new Uint8Array(parts.flat());
}

// ---- a minimal, independent decoder for checking what toBinary wrote ----

type WireField = { field: number; wireType: number; value: bigint | Uint8Array };

function readVarint(buf: Uint8Array, pos: { at: number }): bigint {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const byte = buf[pos.at++];
    if (byte === undefined) throw new Error(`truncated varint at offset ${pos.at}`);
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return result;
    shift += 7n;
  }
}

function readFields(buf: Uint8Array): WireField[] {
  const pos = { at: 0 };
  const fields: WireField[] = [];
  while (pos.at < buf.length) {
    const key = Number(readVarint(buf, pos));
    const field = key >>> 3;
    const wireType = key & 7;
    if (wireType === VARINT) {
      fields.push({ field, wireType, value: readVarint(buf, pos) });
    } else if (wireType === I64) {
      fields.push({ field, wireType, value: buf.slice(pos.at, pos.at + 8) });
      pos.at += 8;
    } else if (wireType === LEN) {
      const len = Number(readVarint(buf, pos));
      fields.push({ field, wireType, value: buf.slice(pos.at, pos.at + len) });
      pos.at += len;
    } else {
      throw new Error(`unexpected wire type ${wireType} for field ${field}`);
    }
  }
  return fields;
}

function tags(buf: Uint8Array): Array<[number, number]> {
  return readFields(buf).map((f) => [f.field, f.wireType]);
}

function sub(buf: Uint8Array, field: number, index = 0): Uint8Array {
  const found = readFields(buf).filter((f) => f.field === field)[index];
  if (found === undefined || !(found.value instanceof Uint8Array)) {
    throw new Error(`no length-delimited field ${field} #${index}`);
  }
  return found.value;
}

// ---- representative Mesos messages, assembled by hand in field-number order ----

const cpus = [
  ...fString(1, "cpus"),
  ...fVarint(2, 0), // Value.Type.SCALAR
  ...fMsg(3, fDouble(1, 0.5)),
];
const mem = [...fString(1, "mem"), ...fVarint(2, 0), ...fMsg(3, fDouble(1, 128))];
const ports = [
  ...fString(1, "ports"),
  ...fVarint(2, 1), // Value.Type.RANGES
  ...fMsg(4, fMsg(1, fVarint(1, 31000), fVarint(2, 31005))),
];

const dockerInfo = [
  ...fString(1, "nginx:1.25"),
  ...fVarint(2, 2), // Network.BRIDGE
  ...fMsg(3, fVarint(1, 31000), fVarint(2, 80), fString(3, "tcp")),
  ...fVarint(4, true), // privileged
  ...fMsg(5, fString(1, "label"), fString(2, "team=infra")),
  ...fVarint(6, true), // force_pull_image
];

const hostPathVolume = [
  ...fString(1, "/data"),
  ...fVarint(3, 2), // Mode.RO
  ...fMsg(
    5,
    fVarint(1, 4), // Source.Type.HOST_PATH
    fMsg(5, fString(1, "/srv/data"), fMsg(2, fVarint(1, 1))), // HOST_TO_CONTAINER
  ),
];
const dockerVolume = [
  ...fString(1, "/cache"),
  ...fVarint(3, 1), // Mode.RW
  ...fMsg(
    5,
    fVarint(1, 1), // Source.Type.DOCKER_VOLUME
    fMsg(2, fString(1, "local"), fString(2, "cache-vol"), fMsg(3, fMsg(1, fString(1, "o"), fString(2, "bind")))),
  ),
];

const containerInfo = [
  ...fVarint(1, 1), // ContainerInfo.Type.DOCKER
  ...fMsg(2, hostPathVolume),
  ...fMsg(2, dockerVolume),
  ...fMsg(3, dockerInfo),
  ...fString(4, "web-1"),
];

const commandInfo = [
  ...fMsg(1, fString(1, "https://example.com/app.tgz"), fVarint(4, true), fString(5, "app.tgz")),
  ...fMsg(1, fString(1, "https://example.com/run.sh"), fVarint(2, true), fVarint(3, false)),
  ...fMsg(2, fMsg(1, fString(1, "MODE"), fString(2, "prod"))),
  ...fString(3, "/bin/echo"),
  ...fString(5, "nobody"),
  ...fVarint(6, false), // shell
  ...fString(7, "echo"),
  ...fString(7, "hello"),
];

const taskInfo = [
  ...fString(1, "web"),
  ...fMsg(2, fString(1, "task-1")),
  ...fMsg(3, fString(1, "agent-1")),
  ...fMsg(4, cpus),
  ...fMsg(4, mem),
  ...fMsg(4, ports),
  ...fMsg(7, commandInfo),
  ...fMsg(9, containerInfo),
  ...fMsg(10, fMsg(1, fString(1, "owner"), fString(2, "infra"))),
  ...fMsg(12, fMsg(1, fVarint(1, 30_000_000_000n))), // KillPolicy.grace_period = 30 s
  ...fMsg(15, fString(1, "cpus"), fMsg(2, fDouble(1, 2))), // limits map entry
];

const containerTermination = [
  ...fString(2, "Memory limit exceeded"),
  ...fVarint(3, 9), // raw wait(2) status: killed by SIGKILL
  ...fVarint(4, 3), // TaskState.TASK_FAILED
  ...fVarint(5, 8), // Reason.REASON_CONTAINER_LIMITATION_MEMORY
  ...fMsg(6, mem),
];

describe("mesos wire compatibility", () => {
  describe("decoding hand-assembled Mesos bytes", () => {
    it("reads every field of a TaskInfo with Docker container, volumes, command, resources and kill policy", () => {
      const task = fromBinary(TaskInfoSchema, wire(taskInfo));

      assert.equal(task.name, "web");
      assert.equal(task.taskId?.value, "task-1");
      assert.equal(task.agentId?.value, "agent-1");

      assert.equal(task.resources.length, 3);
      const [rCpus, rMem, rPorts] = task.resources;
      assert.equal(rCpus?.name, "cpus");
      assert.equal(rCpus?.type, Value_Type.SCALAR);
      assert.equal(rCpus?.scalar?.value, 0.5);
      assert.equal(rMem?.name, "mem");
      assert.equal(rMem?.scalar?.value, 128);
      assert.equal(rPorts?.name, "ports");
      assert.equal(rPorts?.type, Value_Type.RANGES);
      assert.deepEqual(
        rPorts?.ranges?.range.map((r) => [r.begin, r.end]),
        [[31000n, 31005n]],
      );

      const cmd = task.command;
      assert.ok(cmd);
      assert.equal(cmd.uris.length, 2);
      assert.equal(cmd.uris[0]?.value, "https://example.com/app.tgz");
      assert.equal(cmd.uris[0]?.cache, true);
      assert.equal(cmd.uris[0]?.outputFile, "app.tgz");
      assert.equal(cmd.uris[0]?.extract, true, "extract defaults to true when absent");
      assert.equal(cmd.uris[1]?.executable, true);
      assert.equal(cmd.uris[1]?.extract, false);
      assert.ok(cmd.uris[1] && isFieldSet(cmd.uris[1], CommandInfo_URISchema.field.extract));
      assert.equal(cmd.environment?.variables[0]?.name, "MODE");
      assert.equal(cmd.environment?.variables[0]?.value, "prod");
      assert.equal(cmd.environment?.variables[0]?.type, Environment_Variable_Type.VALUE);
      assert.equal(cmd.value, "/bin/echo");
      assert.equal(cmd.user, "nobody");
      assert.equal(cmd.shell, false);
      assert.deepEqual(cmd.arguments, ["echo", "hello"]);

      const container = task.container;
      assert.ok(container);
      assert.equal(container.type, ContainerInfo_Type.DOCKER);
      assert.equal(container.hostname, "web-1");
      const docker = container.docker;
      assert.ok(docker);
      assert.equal(docker.image, "nginx:1.25");
      assert.equal(docker.network, ContainerInfo_DockerInfo_Network.BRIDGE);
      assert.deepEqual(
        docker.portMappings.map((p) => [p.hostPort, p.containerPort, p.protocol]),
        [[31000, 80, "tcp"]],
      );
      assert.equal(docker.privileged, true);
      assert.deepEqual(
        docker.parameters.map((p) => [p.key, p.value]),
        [["label", "team=infra"]],
      );
      assert.equal(docker.forcePullImage, true);

      assert.equal(container.volumes.length, 2);
      const [hostVol, dockerVol] = container.volumes;
      assert.equal(hostVol?.containerPath, "/data");
      assert.equal(hostVol?.mode, Volume_Mode.RO);
      assert.equal(hostVol?.source?.type, Volume_Source_Type.HOST_PATH);
      assert.equal(hostVol?.source?.hostPath?.path, "/srv/data");
      assert.equal(hostVol?.source?.hostPath?.mountPropagation?.mode, 1);
      assert.equal(dockerVol?.containerPath, "/cache");
      assert.equal(dockerVol?.mode, Volume_Mode.RW);
      assert.equal(dockerVol?.source?.type, Volume_Source_Type.DOCKER_VOLUME);
      assert.equal(dockerVol?.source?.dockerVolume?.driver, "local");
      assert.equal(dockerVol?.source?.dockerVolume?.name, "cache-vol");
      assert.deepEqual(
        dockerVol?.source?.dockerVolume?.driverOptions?.parameter.map((p) => [p.key, p.value]),
        [["o", "bind"]],
      );

      assert.deepEqual(
        task.labels?.labels.map((l) => [l.key, l.value]),
        [["owner", "infra"]],
      );
      assert.equal(task.killPolicy?.gracePeriod?.nanoseconds, 30_000_000_000n);
      assert.equal(task.limits["cpus"]?.value, 2);
    });

    it("reads a ContainerConfig that embeds the TaskInfo, command, container and limits", () => {
      const bytes = wire(
        fString(3, "/var/lib/berth/sandbox/c1"),
        fString(4, "nobody"),
        fString(5, "/rootfs"),
        fMsg(7), // empty Docker (its manifest is not carried)
        fMsg(9, taskInfo),
        fMsg(11, commandInfo),
        fMsg(12, fVarint(1, 1), fMsg(3, fString(1, "busybox"))),
        fMsg(13, cpus),
        fString(15, "/tmp/ephemeral"),
        fMsg(16, fString(1, "mem"), fMsg(2, fDouble(1, 256))),
      );
      const config = fromBinary(ContainerConfigSchema, bytes);

      assert.equal(config.directory, "/var/lib/berth/sandbox/c1");
      assert.equal(config.user, "nobody");
      assert.equal(config.rootfs, "/rootfs");
      assert.ok(config.docker, "docker sub-message is present");
      assert.equal(config.taskInfo?.name, "web");
      assert.equal(config.taskInfo?.container?.docker?.image, "nginx:1.25");
      assert.deepEqual(config.commandInfo?.arguments, ["echo", "hello"]);
      assert.equal(config.containerInfo?.docker?.image, "busybox");
      assert.equal(
        config.containerInfo?.docker?.network,
        ContainerInfo_DockerInfo_Network.HOST,
        "network defaults to HOST when absent",
      );
      assert.equal(config.resources[0]?.scalar?.value, 0.5);
      assert.deepEqual(config.ephemeralVolumes, ["/tmp/ephemeral"]);
      assert.equal(config.limits["mem"]?.value, 256);
    });

    it("reads a ContainerTermination with raw wait status, state, reason, message and limited resources", () => {
      const term = fromBinary(ContainerTerminationSchema, wire(containerTermination));
      assert.equal(term.status, 9);
      assert.equal(term.state, TaskState.TASK_FAILED);
      assert.equal(term.reason, TaskStatus_Reason.CONTAINER_LIMITATION_MEMORY);
      assert.equal(term.message, "Memory limit exceeded");
      assert.equal(term.limitedResources[0]?.name, "mem");
      assert.equal(term.limitedResources[0]?.scalar?.value, 128);
    });

    it("keeps fields Berth does not model (e.g. Resource.provider_id, ContainerConfig.container_class) on re-encode", () => {
      const resource = wire(cpus, fMsg(12, fString(1, "provider-1")));
      assert.deepEqual(toBinary(ResourceSchema, fromBinary(ResourceSchema, resource)), resource);

      const config = wire(fString(3, "/sandbox"), fMsg(11, fString(3, "true")), fVarint(14, 2));
      const reencoded = toBinary(ContainerConfigSchema, fromBinary(ContainerConfigSchema, config));
      assert.deepEqual(
        readFields(reencoded).find((f) => f.field === 14),
        { field: 14, wireType: VARINT, value: 2n },
      );
    });
  });

  describe("encoding with the generated code", () => {
    it("re-encodes the hand-assembled TaskInfo byte for byte", () => {
      const bytes = wire(taskInfo);
      assert.deepEqual(toBinary(TaskInfoSchema, fromBinary(TaskInfoSchema, bytes)), bytes);
    });

    it("writes DockerInfo with Mesos' exact tags and bytes", () => {
      const info = create(ContainerInfo_DockerInfoSchema, {
        image: "nginx:1.25",
        network: ContainerInfo_DockerInfo_Network.BRIDGE,
        portMappings: [{ hostPort: 31000, containerPort: 80, protocol: "tcp" }],
        privileged: true,
        parameters: [{ key: "label", value: "team=infra" }],
        forcePullImage: true,
      });
      const out = toBinary(ContainerInfo_DockerInfoSchema, info);
      assert.deepEqual(tags(out), [
        [1, LEN],
        [2, VARINT],
        [3, LEN],
        [4, VARINT],
        [5, LEN],
        [6, VARINT],
      ]);
      assert.deepEqual(out, wire(dockerInfo));
    });

    it("writes a TaskInfo built from values with Mesos' exact tags", () => {
      const task = create(TaskInfoSchema, {
        name: "web",
        taskId: { value: "task-1" },
        agentId: { value: "agent-1" },
        resources: [
          { name: "cpus", type: Value_Type.SCALAR, scalar: { value: 0.5 } },
          { name: "mem", type: Value_Type.SCALAR, scalar: { value: 128 } },
          { name: "ports", type: Value_Type.RANGES, ranges: { range: [{ begin: 31000n, end: 31005n }] } },
        ],
        command: {
          uris: [
            { value: "https://example.com/app.tgz", cache: true, outputFile: "app.tgz" },
            { value: "https://example.com/run.sh", executable: true, extract: false },
          ],
          environment: { variables: [{ name: "MODE", value: "prod" }] },
          value: "/bin/echo",
          user: "nobody",
          shell: false,
          arguments: ["echo", "hello"],
        },
        container: {
          type: ContainerInfo_Type.DOCKER,
          volumes: [
            {
              containerPath: "/data",
              mode: Volume_Mode.RO,
              source: {
                type: Volume_Source_Type.HOST_PATH,
                hostPath: { path: "/srv/data", mountPropagation: { mode: 1 } },
              },
            },
            {
              containerPath: "/cache",
              mode: Volume_Mode.RW,
              source: {
                type: Volume_Source_Type.DOCKER_VOLUME,
                dockerVolume: {
                  driver: "local",
                  name: "cache-vol",
                  driverOptions: { parameter: [{ key: "o", value: "bind" }] },
                },
              },
            },
          ],
          docker: {
            image: "nginx:1.25",
            network: ContainerInfo_DockerInfo_Network.BRIDGE,
            portMappings: [{ hostPort: 31000, containerPort: 80, protocol: "tcp" }],
            privileged: true,
            parameters: [{ key: "label", value: "team=infra" }],
            forcePullImage: true,
          },
          hostname: "web-1",
        },
        labels: { labels: [{ key: "owner", value: "infra" }] },
        killPolicy: { gracePeriod: { nanoseconds: 30_000_000_000n } },
        limits: { cpus: { value: 2 } },
      });
      const out = toBinary(TaskInfoSchema, task);

      assert.deepEqual(tags(out), [
        [1, LEN],
        [2, LEN],
        [3, LEN],
        [4, LEN],
        [4, LEN],
        [4, LEN],
        [7, LEN],
        [9, LEN],
        [10, LEN],
        [12, LEN],
        [15, LEN],
      ]);
      assert.deepEqual(tags(sub(out, 12)), [[1, LEN]], "KillPolicy.grace_period is field 1");
      assert.deepEqual(tags(sub(sub(out, 12), 1)), [[1, VARINT]], "DurationInfo.nanoseconds is field 1");
      assert.deepEqual(tags(sub(out, 7)), [
        [1, LEN],
        [1, LEN],
        [2, LEN],
        [3, LEN],
        [5, LEN],
        [6, VARINT],
        [7, LEN],
        [7, LEN],
      ]);
      assert.deepEqual(tags(sub(out, 9)), [
        [1, VARINT],
        [2, LEN],
        [2, LEN],
        [3, LEN],
        [4, LEN],
      ]);
      assert.deepEqual(tags(sub(sub(out, 9), 2)), [
        [1, LEN],
        [3, VARINT],
        [5, LEN],
      ]);
      assert.deepEqual(out, wire(taskInfo), "matches the hand-assembled Mesos bytes exactly");
    });

    it("writes a ContainerTermination with Mesos' exact tags and bytes", () => {
      const term = create(ContainerTerminationSchema, {
        status: 9,
        state: TaskState.TASK_FAILED,
        reason: TaskStatus_Reason.CONTAINER_LIMITATION_MEMORY,
        message: "Memory limit exceeded",
        limitedResources: [{ name: "mem", type: Value_Type.SCALAR, scalar: { value: 128 } }],
      });
      const out = toBinary(ContainerTerminationSchema, term);
      assert.deepEqual(tags(out), [
        [2, LEN],
        [3, VARINT],
        [4, VARINT],
        [5, VARINT],
        [6, LEN],
      ]);
      assert.deepEqual(out, wire(containerTermination));
    });

    it("omits unset proto2 optional fields instead of writing their defaults", () => {
      const out = toBinary(CommandInfoSchema, create(CommandInfoSchema, { value: "true" }));
      assert.deepEqual(out, wire(fString(3, "true")));
    });
  });

  describe("proto2 defaults", () => {
    it("matches Mesos' declared defaults for unset fields", () => {
      const docker = create(ContainerInfo_DockerInfoSchema, { image: "x" });
      assert.equal(docker.network, ContainerInfo_DockerInfo_Network.HOST);
      assert.equal(isFieldSet(docker, ContainerInfo_DockerInfoSchema.field.network), false);
      assert.equal(docker.privileged, false);

      const cmd = create(CommandInfoSchema);
      assert.equal(cmd.shell, true);
      assert.equal(isFieldSet(cmd, CommandInfoSchema.field.shell), false);
      assert.equal(create(CommandInfo_URISchema).extract, true);
      assert.equal(create(Environment_VariableSchema).type, Environment_Variable_Type.VALUE);
      assert.equal(create(ImageSchema).cached, true);
      assert.equal(create(LinuxInfoSchema).shareCgroups, true);
      assert.equal(create(ResourceSchema).role, "*");

      const health = create(HealthCheckSchema);
      assert.equal(health.delaySeconds, 15);
      assert.equal(health.intervalSeconds, 10);
      assert.equal(health.timeoutSeconds, 20);
      assert.equal(health.consecutiveFailures, 3);
      assert.equal(health.gracePeriodSeconds, 10);
    });

    it("applies the defaults when decoding bytes that leave the fields out", () => {
      const docker = fromBinary(ContainerInfo_DockerInfoSchema, wire(fString(1, "busybox")));
      assert.equal(docker.network, ContainerInfo_DockerInfo_Network.HOST);
      const cmd = fromBinary(CommandInfoSchema, wire(fMsg(1, fString(1, "https://example.com/a"))));
      assert.equal(cmd.shell, true);
      assert.equal(cmd.uris[0]?.extract, true);
    });

    it("defaults an unset TaskState to its first declared value, TASK_STAGING", () => {
      assert.equal(create(TaskStatusSchema).state, TaskState.TASK_STAGING);
      assert.equal(create(ContainerTerminationSchema).state, TaskState.TASK_STAGING);
    });

    it("leaves unset messages absent (KillPolicy without grace_period)", () => {
      assert.equal(fromBinary(KillPolicySchema, new Uint8Array()).gracePeriod, undefined);
      assert.equal(create(VolumeSchema).source, undefined);
      assert.equal(create(ContainerInfoSchema).docker, undefined);
    });
  });

  describe("enum values", () => {
    it("uses Mesos' numbers for TaskState", () => {
      assert.equal(TaskState.TASK_RUNNING, 1);
      assert.equal(TaskState.TASK_STAGING, 6);
      assert.equal(TaskState.TASK_STARTING, 0);
      assert.equal(TaskState.TASK_KILLING, 8);
      assert.equal(TaskState.TASK_FINISHED, 2);
      assert.equal(TaskState.TASK_FAILED, 3);
      assert.equal(TaskState.TASK_KILLED, 4);
      assert.equal(TaskState.TASK_ERROR, 7);
      assert.equal(TaskState.TASK_GONE_BY_OPERATOR, 12);
      assert.equal(TaskState.TASK_UNKNOWN, 13);
      assert.equal(TaskStateSchema.typeName, "mesos.v1.TaskState");
    });

    it("uses Mesos' names and numbers for TaskStatus.Reason", () => {
      assert.equal(TaskStatus_Reason.CONTAINER_LAUNCH_FAILED, 21);
      assert.equal(TaskStatus_Reason.CONTAINER_LIMITATION_MEMORY, 8);
      assert.equal(TaskStatus_Reason.CONTAINER_LIMITATION, 19);
      assert.equal(TaskStatus_Reason.COMMAND_EXECUTOR_FAILED, 0);
      const byName = new Map(TaskStatus_ReasonSchema.values.map((v) => [v.name, v.number]));
      assert.equal(byName.get("REASON_CONTAINER_LAUNCH_FAILED"), 21);
      assert.equal(byName.get("REASON_CONTAINER_LIMITATION_MEMORY"), 8);
      assert.equal(byName.get("REASON_CONTAINER_LIMITATION_DISK"), 20);
      assert.equal(byName.get("REASON_TASK_KILLED_DURING_LAUNCH"), 30);
      assert.equal(byName.get("REASON_AGENT_DRAINING"), 34);
      assert.equal(byName.size, 35, "every Reason value Mesos lists is carried");
    });

    it("uses Mesos' numbers for Volume.Source.Type, Volume.Mode and DockerInfo.Network", () => {
      assert.deepEqual(
        Volume_Source_TypeSchema.values.map((v) => [v.name, v.number]),
        [
          ["UNKNOWN", 0],
          ["DOCKER_VOLUME", 1],
          ["HOST_PATH", 4],
          ["SANDBOX_PATH", 2],
          ["SECRET", 3],
          ["CSI_VOLUME", 5],
        ],
      );
      assert.equal(Volume_Mode.RW, 1);
      assert.equal(Volume_Mode.RO, 2);
      assert.equal(ContainerInfo_DockerInfo_Network.HOST, 1);
      assert.equal(ContainerInfo_DockerInfo_Network.BRIDGE, 2);
      assert.equal(ContainerInfo_DockerInfo_Network.NONE, 3);
      assert.equal(ContainerInfo_DockerInfo_Network.USER, 4);
      assert.equal(ContainerInfo_Type.DOCKER, 1);
      assert.equal(ContainerInfo_Type.MESOS, 2);
    });
  });
});
