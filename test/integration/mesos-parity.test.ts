// Apache Mesos' own docker containerizer tests, replayed against a real engine through Berth's
// gRPC API: Default_CMD_Args (shell=false arguments reach the image's entrypoint),
// CommandTaskLimits and CommandTaskInfiniteLimits (cpus/mem limits → CFS quota, memory limit,
// reservation, OOM score; Usage's soft and hard limits), AllocationRoleEnvironmentVariable, and
// the field table's refusals over the wire (nothing left behind).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type Dockerode from "dockerode";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServiceError } from "@grpc/grpc-js";
import { State, type LaunchRequestSchema } from "../../src/gen/berth/v1/containerizer_pb.js";
import { TaskState, Value_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { removeImage } from "../support/engine.js";
import { launchRequest, newId, type LaunchOptions } from "../harness/launches.js";
import { useBerth } from "../harness/use-berth.js";

const MiB = 1024 * 1024;
const ENTRYPOINT_IMAGE = `berth-test/entrypoint:${process.pid}`;

type Launch = MessageInitShape<typeof LaunchRequestSchema>;

/** Builds a local image FROM the test busybox whose ENTRYPOINT echoes a marker, then its arguments. */
async function buildEntrypointImage(docker: Dockerode, base: string): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "berth-entrypoint-"));
  try {
    await writeFile(path.join(dir, "Dockerfile"), `FROM ${base}\nENTRYPOINT ["/bin/echo", "from-entrypoint"]\nCMD ["default-cmd"]\n`);
    const stream = await docker.buildImage({ context: dir, src: ["Dockerfile"] }, { t: ENTRYPOINT_IMAGE, networkmode: "none", rm: true });
    const lines = await new Promise<Array<{ error?: string }>>((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null, out: Array<{ error?: string }>) => (err ? reject(err) : resolve(out))));
    const failed = lines.find((l) => l.error);
    if (failed) throw new Error(`building ${ENTRYPOINT_IMAGE} failed: ${failed.error}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function withLimits(req: Launch, limits: Record<string, number>): Launch {
  req.containerConfig!.limits = Object.fromEntries(Object.entries(limits).map(([k, value]) => [k, { value }]));
  return req;
}

const code = (err: unknown) => (err as ServiceError).code;

describe("Mesos parity against a real engine", function () {
  this.timeout(120_000);
  const suite = useBerth();
  let docker: Dockerode;

  before(async function () {
    this.timeout(180_000);
    docker = suite.docker;
    // The build's FROM pulls the busybox image into the engine; keep it there for the launches.
    await buildEntrypointImage(docker, suite.images.busybox);
  });

  after(async () => {
    if (docker) await removeImage(docker, ENTRYPOINT_IMAGE);
  });

  async function launchRunning(id: string, req: Launch): Promise<string> {
    const launched = await suite.t.client.launch(req);
    assert.equal(launched.result, 1, "LAUNCHED");
    const events = await suite.t.client.collect([id], (e) => e.kind.case === "stateChanged" && (e.kind.value.state === State.RUNNING || e.kind.value.state === State.TERMINATED));
    const last = events.at(-1);
    assert.ok(last?.kind.case === "stateChanged" && last.kind.value.state === State.RUNNING, `'${id}' reached RUNNING`);
    return launched.sandboxDirectory;
  }

  async function hostConfig(id: string) {
    const status = await suite.t.client.status(id);
    return (await docker.getContainer(status.engineId).inspect()).HostConfig;
  }

  it("Default_CMD_Args: shell=false arguments without a value are handed to the image's entrypoint", async () => {
    const id = newId("cmdargs");
    const uuid = randomUUID();
    const launched = await suite.t.client.launch(launchRequest(id, { image: ENTRYPOINT_IMAGE, command: { shell: false, arguments: [uuid, "second"] }, taskId: `task-${id}` }));
    assert.equal(launched.result, 1);
    const { termination } = await suite.t.client.wait(id);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_FINISHED);
    // The entrypoint ran (its marker first) with the arguments instead of the image's CMD.
    assert.equal(await readFile(path.join(launched.sandboxDirectory, "stdout"), "utf8"), `from-entrypoint ${uuid} second\n`);
  });

  it("CommandTaskLimits: cpus limit → CFS quota without --cgroups_enable_cfs, mem limit → memory with the request reserved; Usage and Update follow", async () => {
    const id = newId("limits");
    const o: LaunchOptions = { image: suite.images.busybox, shell: "sleep 600", cpus: 0.5, memMb: 64, taskId: `task-${id}` };
    await launchRunning(id, withLimits(launchRequest(id, o), { cpus: 1, mem: 128 }));

    const hc = await hostConfig(id);
    assert.equal(hc.CpuShares, 512, "the request stays the shares");
    assert.equal(hc.CpuPeriod, 100_000);
    assert.equal(hc.CpuQuota, 100_000, "the limit is the quota");
    assert.equal(hc.Memory, 128 * MiB);
    assert.equal(hc.MemoryReservation, 64 * MiB);
    assert.equal(hc.OomScoreAdj, 1000 - Math.floor((1000 * 64 * MiB) / os.totalmem()), "Mesos' OOM score for a request below its limit");

    const usage = (await suite.t.client.usage(id)).statistics!;
    assert.equal(usage.cpusLimit, 1);
    assert.equal(usage.cpusSoftLimit, 0.5);
    assert.equal(usage.memLimitBytes, BigInt(128 * MiB));
    assert.equal(usage.memSoftLimitBytes, BigInt(64 * MiB));

    // Update keeps the limits: the new request is the shares and the reservation, the caps stay.
    await suite.t.client.update(id, [
      { name: "cpus", type: Value_Type.SCALAR, scalar: { value: 0.75 } },
      { name: "mem", type: Value_Type.SCALAR, scalar: { value: 96 } },
    ]);
    const updated = await hostConfig(id);
    assert.equal(updated.CpuShares, 768);
    assert.equal(updated.CpuQuota, 100_000);
    assert.equal(updated.Memory, 128 * MiB);
    assert.equal(updated.MemoryReservation, 96 * MiB);
    const after = (await suite.t.client.usage(id)).statistics!;
    assert.equal(after.cpusSoftLimit, 0.75);
    assert.equal(after.memSoftLimitBytes, BigInt(96 * MiB));

    // A request above the limit in force is refused and changes nothing.
    await assert.rejects(
      suite.t.client.update(id, [{ name: "cpus", type: Value_Type.SCALAR, scalar: { value: 2 } }]),
      (err) => code(err) === 3 && /^resources cpus 2 is more than its limit 1 /.test((err as ServiceError).details),
    );
    assert.equal((await hostConfig(id)).CpuShares, 768);
    await suite.t.client.destroy(id);
  });

  it("CommandTaskInfiniteLimits: infinite limits cap nothing; Usage reports the host's cpus and memory as the hard limits", async () => {
    const id = newId("inf");
    await launchRunning(id, withLimits(launchRequest(id, { image: suite.images.busybox, shell: "sleep 600", cpus: 0.5, memMb: 64 }), { cpus: Infinity, mem: Infinity }));
    const hc = await hostConfig(id);
    assert.equal(hc.CpuShares, 512);
    assert.ok(!hc.CpuQuota, `no CFS quota (CpuQuota ${hc.CpuQuota})`);
    assert.ok(!hc.Memory, `no memory limit (Memory ${hc.Memory})`);
    assert.equal(hc.MemoryReservation, 64 * MiB);
    const usage = (await suite.t.client.usage(id)).statistics!;
    assert.equal(usage.cpusLimit, os.cpus().length);
    assert.equal(usage.cpusSoftLimit, 0.5);
    assert.equal(usage.memLimitBytes, BigInt(os.totalmem()));
    assert.equal(usage.memSoftLimitBytes, BigInt(64 * MiB));
    await suite.t.client.destroy(id);
  });

  it("AllocationRoleEnvironmentVariable: MESOS_ALLOCATION_ROLE is the resources' allocation role", async () => {
    const id = newId("role");
    const req = launchRequest(id, { image: suite.images.busybox, shell: 'echo "role=$MESOS_ALLOCATION_ROLE"' });
    req.containerConfig!.resources = [
      { name: "cpus", type: Value_Type.SCALAR, scalar: { value: 0.1 }, allocationInfo: { role: "role1" } },
      { name: "mem", type: Value_Type.SCALAR, scalar: { value: 32 }, allocationInfo: { role: "role1" } },
    ];
    const launched = await suite.t.client.launch(req);
    const { termination } = await suite.t.client.wait(id);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_FINISHED);
    assert.equal(await readFile(path.join(launched.sandboxDirectory, "stdout"), "utf8"), "role=role1\n");
  });

  it("refuses a field the table refuses, or a limit below its request, with INVALID_ARGUMENT naming it, leaving nothing behind", async () => {
    const refusals: Array<[Launch, RegExp]> = [];
    const checked = launchRequest(newId("check"), { image: suite.images.busybox, shell: "true", taskId: "t-check" });
    checked.containerConfig!.taskInfo!.check = { delaySeconds: 1 };
    refusals.push([checked, /^container_config\.task_info\.check is set: /]);
    const below = withLimits(launchRequest(newId("below"), { image: suite.images.busybox, shell: "true", cpus: 2 }), { cpus: 1 });
    refusals.push([below, /resources cpus 2 is more than its limit 1 \(container_config\.limits\['cpus'\]\)/]);
    for (const [req, pattern] of refusals) {
      const id = req.containerId!.value!;
      await assert.rejects(suite.t.client.launch(req), (err) => code(err) === 3 && pattern.test((err as ServiceError).details));
      assert.ok(!(await suite.t.client.containers()).containers.some((c) => c.containerId?.value === id), `'${id}' is not recorded`);
      const engine = await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${suite.t.berth.agentId}`, `${LABEL_CONTAINER_ID}=${id}`] } });
      assert.deepEqual(engine, [], "no engine container");
      await assert.rejects(readFile(path.join(suite.t.workDir, "sandboxes", id, "stdout")), "no sandbox");
    }
  });
});
