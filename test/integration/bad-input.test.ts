import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import type Dockerode from "dockerode";
import { LaunchRequestSchema, LaunchResult, WaitRequestSchema } from "../../src/gen/berth/v1/containerizer_pb.js";
import { ContainerInfo_Type, Value_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import type { TestImages } from "../support/engine.js";
import { launchRequest, newId } from "../harness/launches.js";
import type { TestBerth } from "../harness/test-berth.js";
import { useBerth } from "../harness/use-berth.js";

type Req = MessageInitShape<typeof LaunchRequestSchema>;

describe("bad input gets a clear error and loses nothing (real server, real engine)", function () {
  this.timeout(60_000);
  const suite = useBerth();
  let docker: Dockerode;
  let images: TestImages;
  let t: TestBerth;
  beforeEach(() => ({ docker, images, t } = suite));

  async function rejected(req: Req, code: status, pattern: RegExp): Promise<void> {
    await assert.rejects(t.client.launch(req), (err: { code: number; details: string }) => {
      assert.equal(err.code, code, `code for ${err.details}`);
      assert.match(err.details, pattern);
      return true;
    });
    const id = req.containerId?.value ?? "";
    // Nothing recorded: not listed, no sandbox, no engine object.
    assert.ok(!(await t.client.containers()).containers.some((c) => c.containerId?.value === id && id !== ""), "not recorded");
    if (/^[A-Za-z0-9_-]+$/.test(id)) assert.ok(!existsSync(path.join(t.workDir, "sandboxes", id)), "no sandbox");
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${t.berth.agentId}`] } });
    assert.deepEqual(left, []);
  }

  const good = (id = newId("bad")) => launchRequest(id, { image: images.busybox, shell: "true" });

  it("a missing container_id is INVALID_ARGUMENT", async () => {
    await rejected({ ...good(), containerId: undefined }, status.INVALID_ARGUMENT, /container_id is missing/);
  });

  for (const [label, value, pattern] of [
    ["empty", "", /container_id.value is empty/],
    ["a '/'", "a/b", /container_id.value 'a\/b' contains '\/'/],
    ["'..'", "a..b", /contains '\.\.'/],
    ["a control character", "a\u0001b", /control character U\+0001/],
    ["a leading dot", ".hidden", /starts with '\.'/],
    ["more than 128 characters", "x".repeat(129), /129 characters long; at most 128/],
    ["non-ASCII", "контейнер", /contains 'к'/],
  ] as const) {
    it(`a container id with ${label} is INVALID_ARGUMENT naming it`, async () => {
      const req = good();
      req.containerId = { value };
      await rejected(req, status.INVALID_ARGUMENT, pattern);
    });
  }

  it("a missing container_config is INVALID_ARGUMENT", async () => {
    await rejected({ containerId: { value: newId() } }, status.INVALID_ARGUMENT, /container_config is missing/);
  });

  it("a missing image is INVALID_ARGUMENT", async () => {
    const req = good();
    req.containerConfig!.containerInfo = { type: ContainerInfo_Type.DOCKER, docker: { image: "" } };
    req.containerConfig!.taskInfo = undefined;
    await rejected(req, status.INVALID_ARGUMENT, /container_info.docker.image is empty/);
  });

  it("a malformed image reference is INVALID_ARGUMENT naming it", async () => {
    const req = good();
    req.containerConfig!.containerInfo = { type: ContainerInfo_Type.DOCKER, docker: { image: "Bad Image!" } };
    await rejected(req, status.INVALID_ARGUMENT, /image 'Bad Image!' is not a valid image reference/);
  });

  // shell=false arguments without a value are Mesos' Default_CMD_Args, accepted: see mesos-parity.test.ts.
  it("shell=true without a value and shell=true with arguments are INVALID_ARGUMENT", async () => {
    const a = good();
    a.containerConfig!.commandInfo = { shell: true, value: "" };
    await rejected(a, status.INVALID_ARGUMENT, /command_info.value is empty but command_info.shell is true/);
    const b = good();
    b.containerConfig!.commandInfo = { shell: true, value: "echo", arguments: ["x"] };
    await rejected(b, status.INVALID_ARGUMENT, /command_info.arguments has 1 entries but command_info.shell is true/);
  });

  it("malformed URIs are INVALID_ARGUMENT naming the URI", async () => {
    for (const [value, pattern] of [
      ["ftp://example.invalid/x", /command_info.uris\[0\].value/],
      ["relative/path", /command_info.uris\[0\].value/],
    ] as const) {
      const req = good();
      req.containerConfig!.commandInfo = { shell: true, value: "true", uris: [{ value }] };
      await rejected(req, status.INVALID_ARGUMENT, pattern);
    }
    const escape = good();
    escape.containerConfig!.commandInfo = { shell: true, value: "true", uris: [{ value: "http://127.0.0.1:1/x", outputFile: "../../etc/passwd" }] };
    await rejected(escape, status.INVALID_ARGUMENT, /output_file/);
  });

  it("negative, non-finite and absurd resources are INVALID_ARGUMENT naming the value", async () => {
    for (const [name, value, pattern] of [
      ["cpus", -1, /resources\[0\] \('cpus'\) scalar value -1 must be a finite number/],
      ["mem", Number.NaN, /scalar value NaN/],
      ["mem", Number.POSITIVE_INFINITY, /scalar value Infinity/],
      ["cpus", 1e9, /resources cpus 1000000000 is more than 256/],
    ] as const) {
      const req = good();
      req.containerConfig!.resources = [{ name, type: Value_Type.SCALAR, scalar: { value } }];
      await rejected(req, status.INVALID_ARGUMENT, pattern);
    }
  });

  it("an unsupported docker parameter is INVALID_ARGUMENT listing the supported ones", async () => {
    const req = good();
    req.containerConfig!.containerInfo = { type: ContainerInfo_Type.DOCKER, docker: { image: images.busybox, parameters: [{ key: "volumes-from", value: "x" }] } };
    await rejected(req, status.INVALID_ARGUMENT, /key 'volumes-from' is not supported; supported keys: label/);
  });

  it("a MESOS container and a nested container answer NOT_SUPPORTED, recording nothing", async () => {
    const mesos = good();
    mesos.containerConfig!.containerInfo = { type: ContainerInfo_Type.MESOS };
    assert.equal((await t.client.launch(mesos)).result, LaunchResult.NOT_SUPPORTED);
    const nested = good();
    nested.containerId = { value: newId("child"), parent: { value: "parent" } };
    assert.equal((await t.client.launch(nested)).result, LaunchResult.NOT_SUPPORTED);
    const ids = (await t.client.containers()).containers.map((c) => c.containerId?.value);
    assert.ok(!ids.includes(mesos.containerId!.value) && !ids.includes(nested.containerId!.value));
  });

  it("a duplicate launch answers ALREADY_LAUNCHED and changes nothing", async () => {
    const id = newId("dup");
    const first = await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exit 0" }));
    const second = await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exit 7" }));
    assert.equal(first.result, LaunchResult.LAUNCHED);
    assert.equal(second.result, LaunchResult.ALREADY_LAUNCHED);
    assert.equal(second.sandboxDirectory, first.sandboxDirectory);
    assert.equal((await t.client.wait(id)).termination?.exitCode, 0);
    // Destroy answers once the engine container is gone, so later checks see a clean engine.
    await t.client.destroy(id);
  });

  it("Wait, Destroy and Status of an unknown container are NOT_FOUND (a Watch of one waits for it: watch-before-launch); a missing id is INVALID_ARGUMENT", async () => {
    const id = newId("ghost");
    for (const call of [() => t.client.wait(id), () => t.client.destroy(id), () => t.client.status(id)]) {
      await assert.rejects(call(), (err: { code: number; details: string }) => err.code === status.NOT_FOUND && err.details.includes(id));
    }
    await assert.rejects(t.client.call("wait", create(WaitRequestSchema, {})), (err: { code: number }) => err.code === status.INVALID_ARGUMENT);
  });

  it("Wait honours the call's deadline and leaves the container running", async () => {
    const id = newId("deadline");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exec sleep 300" }));
    await assert.rejects(t.client.wait(id, { deadline: Date.now() + 300 }), (err: { code: number }) => err.code === status.DEADLINE_EXCEEDED);
    const row = (await t.client.containers()).containers.find((c) => c.containerId?.value === id);
    assert.ok(row && row.state !== 6, "still alive");
    await t.client.destroy(id);
  });
});
