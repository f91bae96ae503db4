// The field table (src/containerizer/field-support.ts) against the generated descriptors: every
// field of every message a launch can reach through honoured fields has a row, no row names a
// field that does not exist, and every "refused" row is really refused — set in an otherwise valid
// launch, the launch is INVALID_ARGUMENT naming the field's path. A field added to the protos
// without a row fails here.
import { strict as assert } from "node:assert";
import { create, createRegistry, fromBinary, toBinary, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ContainerConfigSchema, file_mesos_slave_containerizer, type ContainerConfig } from "../../src/gen/mesos/slave/containerizer_pb.js";
import { ContainerInfo_DockerInfo_Network, ContainerInfo_Type, TaskInfoSchema, Value_Type, file_mesos_v1_mesos } from "../../src/gen/mesos/v1/mesos_pb.js";
import { InvalidRequest } from "../../src/containerizer/errors.js";
import { FIELD_SUPPORT, OMITTED_FIELDS, fieldSupportMarkdown } from "../../src/containerizer/field-support.js";
import { resolveLaunchSpec } from "../../src/containerizer/launch-spec.js";

const registry = createRegistry(file_mesos_v1_mesos, file_mesos_slave_containerizer);

/** One step from a message to a field of it; lists and maps step into one element. */
interface Step {
  desc: DescMessage;
  field: DescField;
}

/**
 * Every message reachable from ContainerConfig through honoured fields (the ones the launch check
 * descends into), each with the shortest chain of steps that reaches it.
 */
function reachable(): Map<string, Step[]> {
  const paths = new Map<string, Step[]>([[ContainerConfigSchema.typeName, []]]);
  const queue: DescMessage[] = [ContainerConfigSchema];
  while (queue.length > 0) {
    const desc = queue.shift()!;
    for (const field of desc.fields) {
      if (FIELD_SUPPORT[desc.typeName]?.[field.name]?.support !== "honoured") continue;
      const next = field.message;
      if (!next || paths.has(next.typeName)) continue;
      paths.set(next.typeName, [...paths.get(desc.typeName)!, { desc, field }]);
      queue.push(next);
    }
  }
  return paths;
}

/** A valid launch: a shell command in a Docker container with network NONE. */
function baseConfig(): ContainerConfig {
  return create(ContainerConfigSchema, {
    commandInfo: { value: "echo hi" },
    containerInfo: { type: ContainerInfo_Type.DOCKER, docker: { image: "busybox:1.36", network: ContainerInfo_DockerInfo_Network.NONE } },
  });
}

/** A value that makes `field` set (isFieldSet true). */
function someValue(field: DescField): unknown {
  const one = (kind: "scalar" | "enum" | "message", f: DescField): unknown => {
    if (kind === "message") return create(f.message!);
    if (kind === "enum") return f.enum!.values.find((v) => v.number !== 0)?.number ?? f.enum!.values[0]!.number;
    switch (f.scalar) {
      case 9: // STRING
        return "x";
      case 8: // BOOL
        return true;
      case 12: // BYTES
        return new Uint8Array([1]);
      case 3: case 4: case 6: case 16: case 18: // 64-bit integers
        return 1n;
      default:
        return 1;
    }
  };
  switch (field.fieldKind) {
    case "scalar":
      return one("scalar", field);
    case "enum":
      return one("enum", field);
    case "message":
      return one("message", field);
    case "list":
      return [one(field.listKind, field)];
    case "map":
      return { k: one(field.mapKind, field) };
  }
}

function setField(message: Message, field: DescField, value: unknown): void {
  const m = message as unknown as Record<string, unknown>;
  if (field.oneof) m[field.oneof.localName] = { case: field.localName, value };
  else m[field.localName] = value;
}

/** Walks `steps` from the config, creating (or reusing) one message per step; answers the last one and its path. */
function descend(config: ContainerConfig, steps: Step[]): { message: Message; path: string } {
  let message: Message = config;
  let path = "container_config";
  for (const { field } of steps) {
    const m = message as unknown as Record<string, unknown>;
    if (field.fieldKind === "list") {
      const list = (m[field.localName] as Message[]) ?? [];
      if (list.length === 0) list.push(create(field.message!));
      m[field.localName] = list;
      message = list[0]!;
      path += `.${field.name}[0]`;
    } else if (field.fieldKind === "map") {
      const map = m[field.localName] as Record<string, Message>;
      map.k ??= create(field.message!);
      message = map.k;
      path += `.${field.name}['k']`;
    } else {
      const existing = m[field.localName] as Message | undefined;
      const next = existing ?? create(field.message!);
      if (!existing) setField(message, field, next);
      message = next;
      path += `.${field.name}`;
    }
  }
  return { message, path };
}

function refusal(config: ContainerConfig): InvalidRequest | undefined {
  try {
    resolveLaunchSpec("c1", config, {});
  } catch (err) {
    if (err instanceof InvalidRequest) return err;
    throw err;
  }
  return undefined;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe("field support table", () => {
  const paths = reachable();

  it("has a row for every field of every message a launch reaches through honoured fields", () => {
    const missing: string[] = [];
    for (const typeName of paths.keys()) {
      const desc = registry.getMessage(typeName)!;
      for (const f of desc.fields) if (!FIELD_SUPPORT[typeName]?.[f.name]) missing.push(`${typeName}.${f.name}`);
    }
    assert.deepEqual(missing, [], `fields without a row in FIELD_SUPPORT: ${missing.join(", ")}`);
    // The walk does go deep: resources, volumes, health checks, limits.
    for (const t of ["mesos.v1.Resource.DiskInfo", "mesos.v1.Volume.Source.HostPath", "mesos.v1.HealthCheck.HTTPCheckInfo", "mesos.v1.Value.Scalar", "mesos.v1.RLimitInfo.RLimit"]) {
      assert.ok(paths.has(t), `${t} is reached`);
    }
  });

  it("names no message or field that does not exist, and no message a launch cannot reach", () => {
    for (const [typeName, rows] of Object.entries(FIELD_SUPPORT)) {
      const desc = registry.getMessage(typeName);
      assert.ok(desc, `${typeName} is a message of Berth's protos`);
      assert.ok(paths.has(typeName), `${typeName} is reached from ContainerConfig through honoured fields`);
      for (const name of Object.keys(rows)) assert.ok(desc.fields.some((f) => f.name === name), `${typeName}.${name} is a field`);
    }
    for (const [typeName, rows] of Object.entries(OMITTED_FIELDS)) {
      const desc = registry.getMessage(typeName)!;
      for (const no of Object.keys(rows)) assert.ok(!desc.fields.some((f) => f.number === Number(no)), `${typeName} field ${no} is really omitted from the protos`);
    }
  });

  it("says what every row does, in one line", () => {
    for (const [typeName, rows] of Object.entries(FIELD_SUPPORT)) {
      for (const [name, row] of Object.entries(rows)) {
        assert.ok(row.what.length > 5 && !row.what.includes("\n"), `${typeName}.${name} has a one-line 'what'`);
      }
    }
  });

  describe("every refused field is refused, naming its path", () => {
    for (const [typeName, rows] of Object.entries(FIELD_SUPPORT)) {
      for (const [name, row] of Object.entries(rows)) {
        if (row.support !== "refused") continue;
        it(`${typeName}.${name}`, () => {
          const desc = registry.getMessage(typeName)!;
          const field = desc.fields.find((f) => f.name === name)!;
          const config = baseConfig();
          assert.equal(refusal(config), undefined, "the base launch is valid");
          const { message, path } = descend(config, paths.get(typeName)!);
          setField(message, field, someValue(field));
          const err = refusal(config);
          assert.ok(err, `setting ${path}.${name} is refused`);
          assert.match(err.message, new RegExp(`^${escape(`${path}.${name}`)} is set: `));
          assert.ok(err.message.includes(row.what), err.message);
        });
      }
    }
  });

  it("never refuses an honoured or informational field for itself (other checks may still refuse its value)", () => {
    for (const [typeName, rows] of Object.entries(FIELD_SUPPORT)) {
      const desc = registry.getMessage(typeName)!;
      for (const [name, row] of Object.entries(rows)) {
        if (row.support === "refused") continue;
        const field = desc.fields.find((f) => f.name === name)!;
        const config = baseConfig();
        const { message, path } = descend(config, paths.get(typeName)!);
        setField(message, field, someValue(field));
        const err = refusal(config);
        if (err) assert.ok(!err.message.startsWith(`${path}.${name} is set`), `${path}.${name} (${row.support}) was refused by the table: ${err.message}`);
      }
    }
  });

  it("refuses fields Berth's protos omit by number, lets the informational ones pass, and refuses any other unknown field", () => {
    const withUnknown = (steps: Step[], no: number) => {
      const config = baseConfig();
      const { message, path } = descend(config, steps);
      (message as { $unknown?: unknown[] }).$unknown = [{ no, wireType: WireType.LengthDelimited, data: new Uint8Array([0x0a, 0x00]) }];
      return { err: refusal(config), path };
    };
    for (const [typeName, rows] of Object.entries(OMITTED_FIELDS)) {
      for (const [no, row] of Object.entries(rows)) {
        const { err, path } = withUnknown(paths.get(typeName)!, Number(no));
        if (row.support === "refused") {
          assert.ok(err, `${typeName} field ${no} is refused`);
          assert.ok(err.message.startsWith(`${path}.${row.name} (field ${no}) is set: `), err.message);
        } else {
          assert.ok(!err || !err.message.includes(`field ${no}`), `${typeName} field ${no} passes: ${err?.message}`);
        }
      }
    }
    const { err } = withUnknown(paths.get("mesos.v1.ContainerInfo.DockerInfo")!, 99);
    assert.match(err?.message ?? "", /^container_config\.container_info\.docker has field number 99, which mesos\.v1\.ContainerInfo\.DockerInfo in Berth's protos does not know/);
  });

  it("names the field when the wire carries an enum value newer than Berth's protos (proto2 keeps it as an unknown field)", () => {
    const config = baseConfig();
    // container_info (12) { type (1) = DOCKER, docker (3) { image (1), network (2) = 9, unknown to Berth } }
    const docker = new BinaryWriter().tag(1, WireType.LengthDelimited).string("busybox:1.36").tag(2, WireType.Varint).int32(9).finish();
    const info = new BinaryWriter().tag(1, WireType.Varint).int32(1).tag(3, WireType.LengthDelimited).bytes(docker).finish();
    const bytes = new Uint8Array([...toBinary(ContainerConfigSchema, create(ContainerConfigSchema, { commandInfo: config.commandInfo, directory: "" })), ...new BinaryWriter().tag(12, WireType.LengthDelimited).bytes(info).finish()]);
    const decoded = fromBinary(ContainerConfigSchema, bytes);
    assert.equal(decoded.containerInfo?.docker?.image, "busybox:1.36");
    assert.match(refusal(decoded)?.message ?? "", /^container_config\.container_info\.docker\.network has a value Berth's protos do not know/);
  });

  it("refuses at any depth: a persistent volume in a task's resources", () => {
    const config = baseConfig();
    config.taskInfo = create(TaskInfoSchema, {
      name: "t",
      taskId: { value: "t1" },
      agentId: { value: "a" },
      resources: [
        { name: "disk", type: Value_Type.SCALAR, scalar: { value: 10 } },
        { name: "disk", type: Value_Type.SCALAR, scalar: { value: 5 }, disk: { persistence: { id: "p1" } } },
      ],
    });
    assert.match(refusal(config)?.message ?? "", /^container_config\.task_info\.resources\[1\]\.disk\.persistence is set: persistent volumes/);
  });

  it("renders every row into the README's markdown table", () => {
    const md = fieldSupportMarkdown();
    const rows = Object.values(FIELD_SUPPORT).reduce((n, r) => n + Object.keys(r).length, 0) + Object.values(OMITTED_FIELDS).reduce((n, r) => n + Object.keys(r).length, 0);
    assert.equal(md.split("\n").length, rows + 2);
    assert.match(md, /\| `mesos\.v1\.TaskInfo` \| `check` \| refused \| /);
  });
});
