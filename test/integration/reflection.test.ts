import assert from "node:assert/strict";
import { create, createFileRegistry, fromJson, toJson, type DescMessage, type DescService, type FileRegistry, type JsonValue } from "@bufbuild/protobuf";
import type { DescriptorProto, FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { status, type ServiceError } from "@grpc/grpc-js";
import type Dockerode from "dockerode";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import { ensureEngine, ensureTestImages, removeTestContainers, type TestImages } from "../support/engine.js";
import { newId } from "../harness/launches.js";
import { DynamicClient } from "../harness/reflection-dynamic-client.js";
import { ReflectionClient, resolveSymbol, type ResolvedFiles } from "../harness/reflection-client.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";

const SERVICE = "berth.v1.Containerizer";
const BERTH_FILE = "berth/v1/containerizer.proto";
const CLOSURE = [BERTH_FILE, "google/protobuf/duration.proto", "google/protobuf/timestamp.proto", "mesos/slave/containerizer.proto", "mesos/v1/mesos.proto"];
const METHODS = ["Launch", "Wait", "Destroy", "Watch", "Containers", "Status", "Update", "Usage", "PruneImages", "Logs", "ExecSync", "Exec"];

/** Every message and enum a file declares (nested included), fully qualified. */
function declaredTypes(file: FileDescriptorProto): string[] {
  const names: string[] = [];
  const prefix = file.package === "" ? "" : `${file.package}.`;
  const visit = (scope: string, m: DescriptorProto) => {
    const name = `${scope}${m.name}`;
    names.push(name);
    for (const e of m.enumType) names.push(`${name}.${e.name}`);
    for (const n of m.nestedType) visit(`${name}.`, n);
  };
  for (const m of file.messageType) visit(prefix, m);
  for (const e of file.enumType) names.push(`${prefix}${e.name}`);
  return names;
}

/** Every `type_name` a file's messages (nested included) and services refer to, without the leading dot. */
function referencedTypes(file: FileDescriptorProto): string[] {
  const names: string[] = [];
  const visit = (m: DescriptorProto) => {
    for (const f of m.field) if (f.typeName !== "") names.push(f.typeName.replace(/^\./, ""));
    m.nestedType.forEach(visit);
  };
  file.messageType.forEach(visit);
  for (const s of file.service) for (const m of s.method) names.push(m.inputType.replace(/^\./, ""), m.outputType.replace(/^\./, ""));
  return names;
}

function registryOf(resolved: ResolvedFiles): FileRegistry {
  const root = resolved.files.get(BERTH_FILE);
  assert.ok(root, `reflection returned no '${BERTH_FILE}'`);
  // Resolution follows each file's `dependency` list: an empty list would leave types unresolved.
  return createFileRegistry(root, (name) => resolved.files.get(name));
}

function serviceOf(registry: FileRegistry): DescService {
  const service = registry.getService(SERVICE);
  assert.ok(service, `registry built from reflection has no service '${SERVICE}'`);
  return service;
}

function messageOf(registry: FileRegistry, name: string): DescMessage {
  const desc = registry.getMessage(name);
  assert.ok(desc, `registry built from reflection has no message '${name}'`);
  return desc;
}

describe("server reflection, resolved the way grpcurl resolves it", function () {
  this.timeout(120_000);
  let docker: Dockerode;
  let images: TestImages;
  let t: TestBerth;
  const clients: { close(): void }[] = [];

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
    t = await startTestBerth();
  });
  after(async () => {
    clients.forEach((c) => c.close());
    if (t) {
      await removeTestContainers(docker, { [LABEL_AGENT_ID]: t.berth.agentId });
      await t.close();
    }
  });

  function reflection(version: "v1" | "v1alpha"): ReflectionClient {
    const client = new ReflectionClient(t.berth.addresses[0]!, version);
    clients.push(client);
    return client;
  }

  for (const version of ["v1", "v1alpha"] as const) {
    it(`${version}: list_services names ${SERVICE}`, async () => {
      assert.ok((await reflection(version).listServices()).includes(SERVICE));
    });

    it(`${version}: file_containing_symbol ${SERVICE} answers its file with the real dependency list, and file_by_filename closes the imports`, async () => {
      const client = reflection(version);
      const direct = await client.fileContainingSymbol(SERVICE);
      assert.equal(direct[0]?.name, BERTH_FILE, "the declaring file comes first");
      assert.deepEqual([...direct[0]!.dependency].sort(), CLOSURE.slice(1).sort(), "berth/v1 imports duration, timestamp, mesos/slave and mesos/v1");
      const resolved = await resolveSymbol(client, SERVICE);
      assert.deepEqual([...resolved.files.keys()].sort(), [...CLOSURE].sort());
      assert.deepEqual(resolved.files.get("mesos/slave/containerizer.proto")!.dependency, ["mesos/v1/mesos.proto"]);
      // grpcurl asks file_by_filename for imports it has not seen; each name answers that file first.
      for (const name of CLOSURE) {
        const byName = await client.fileByFilename(name);
        assert.equal(byName[0]?.name, name);
        assert.deepEqual(byName[0]!.dependency, resolved.files.get(name)!.dependency, `${name}: same dependency list by name as by symbol`);
      }
      // Every name a file refers to is declared in the closure, and protobuf-es links them all.
      const declared = new Set([...resolved.files.values()].flatMap(declaredTypes));
      for (const file of resolved.files.values()) {
        for (const name of referencedTypes(file)) assert.ok(declared.has(name), `'${name}' referenced from '${file.name}' is declared nowhere`);
      }
      const registry = registryOf(resolved);
      assert.ok(registry.getMessage("mesos.v1.ContainerID") && registry.getMessage("google.protobuf.Timestamp") && registry.getMessage("mesos.slave.ContainerConfig"));
    });
  }

  it("file_by_filename for an unknown file answers NOT_FOUND in the reflection stream", async () => {
    await assert.rejects(reflection("v1").fileByFilename("no/such/file.proto"), /answered error 5/);
  });

  it("the resolved service has exactly Berth's twelve methods, Watch and Logs server-streaming, Exec bidi", async () => {
    const service = serviceOf(registryOf(await resolveSymbol(reflection("v1"), SERVICE)));
    assert.deepEqual(service.methods.map((m) => m.name), METHODS);
    assert.deepEqual(service.methods.filter((m) => m.methodKind !== "unary").map((m) => `${m.name}:${m.methodKind}`), ["Watch:server_streaming", "Logs:server_streaming", "Exec:bidi_streaming"]);
  });

  it("Update, Usage, Status and PruneImages are callable through the dynamic descriptors and validate their input", async () => {
    const service = serviceOf(registryOf(await resolveSymbol(reflection("v1"), SERVICE)));
    const client = new DynamicClient(t.berth.addresses[0]!, service);
    clients.push(client);
    for (const name of ["Update", "Usage", "Status"]) {
      const err = await client.unary(name, create(client.method(name).input)).then(
        () => assert.fail(`${name} answered OK`),
        (e: ServiceError) => e,
      );
      assert.equal(err.code, status.INVALID_ARGUMENT, `${name}: ${err.message}`);
      assert.match(err.details, /container_id is missing/);
    }
    // Nothing pulled by this Berth yet: nothing to prune.
    const pruned = await client.unary("PruneImages", create(client.method("PruneImages").input));
    assert.deepEqual((pruned as unknown as { removedImages: string[] }).removedImages, []);
  });

  it("a busybox container launched and waited for with descriptors from reflection only terminates TASK_FINISHED", async () => {
    const registry = registryOf(await resolveSymbol(reflection("v1"), SERVICE));
    const client = new DynamicClient(t.berth.addresses[0]!, serviceOf(registry));
    clients.push(client);
    const id = newId("refl");
    const launchJson: JsonValue = {
      containerId: { value: id },
      containerConfig: {
        directory: "",
        commandInfo: { shell: true, value: "echo via-reflection" },
        containerInfo: { type: "DOCKER", docker: { image: images.busybox, network: "NONE" } },
      },
    };
    const launch = client.method("Launch");
    assert.equal(launch.input.typeName, "berth.v1.LaunchRequest");
    const launched = toJson(launch.output, await client.unary("Launch", fromJson(launch.input, launchJson, { registry })), { registry });
    assert.equal((launched as { result?: string }).result, "LAUNCH_RESULT_LAUNCHED");

    const wait = client.method("Wait");
    const waited = await client.unary("Wait", fromJson(wait.input, { containerId: { value: id } }, { registry }));
    const json = toJson(wait.output, waited, { registry }) as { termination?: { containerTermination?: { state?: string }; exitCode?: number; time?: string } };
    assert.equal(json.termination?.containerTermination?.state, "TASK_FINISHED", JSON.stringify(json));
    assert.equal(json.termination?.exitCode, 0);
    assert.ok(!Number.isNaN(Date.parse(json.termination?.time ?? "")), "google.protobuf.Timestamp decodes from the reflected timestamp.proto");
    // The termination type came from reflection, not from Berth's generated code.
    assert.equal(messageOf(registry, "mesos.slave.ContainerTermination").file.proto.name, "mesos/slave/containerizer.proto");
  });
});
