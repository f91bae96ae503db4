// Update, Usage, Status and PruneImages through a real gRPC client against a real engine. Images
// are pulled through private tags (a proxy's own host:port), so pruning never touches the shared
// 127.0.0.1:5000 tags other suites use.
import assert from "node:assert/strict";
import type Dockerode from "dockerode";
import type { ServiceError } from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { PruneImagesRequestSchema, State } from "../../src/gen/berth/v1/containerizer_pb.js";
import { Value_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { ensureEngine, ensureTestImages, removeImage, startThrottledRegistry, type ThrottledRegistry } from "../support/engine.js";
import { launchRequest, newId, type LaunchOptions } from "../harness/launches.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";

const MiB = 1024 * 1024;
// Fast enough not to slow the ~1 MiB busybox pull noticeably; the proxy is here for its tag.
const PROXY_RATE = 512 * MiB;

const scalar = (name: string, value: number) => ({ name, type: Value_Type.SCALAR, scalar: { value } });

/** Launches and resolves once the container is RUNNING (fails if it terminates first). */
async function launchRunning(t: TestBerth, id: string, o: LaunchOptions): Promise<void> {
  const launched = await t.client.launch(launchRequest(id, o));
  assert.equal(launched.result, 1, "LAUNCHED");
  // The watch starts with a snapshot of the current state, so nothing before it is missed.
  const events = await t.client.collect([id], (e) => e.kind.case === "stateChanged" && e.kind.value.state === State.RUNNING);
  const last = events.at(-1);
  assert.ok(last?.kind.case === "stateChanged" && last.kind.value.state === State.RUNNING, `container '${id}' reached RUNNING; events: ${JSON.stringify(events.map((e) => e.kind.case))}`);
}

async function hostConfig(docker: Dockerode, t: TestBerth, id: string) {
  const status = await t.client.status(id);
  assert.notEqual(status.engineId, "");
  return (await docker.getContainer(status.engineId).inspect()).HostConfig;
}

function code(err: unknown): number | undefined {
  return (err as ServiceError).code;
}

async function imageExists(docker: Dockerode, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

describe("resources against a real engine (Update, Usage, Status, PruneImages)", function () {
  this.timeout(120_000);
  let docker: Dockerode;
  let proxyA: ThrottledRegistry;
  let proxyB: ThrottledRegistry;
  let imageA: string;
  let imageB: string;
  const berths: TestBerth[] = [];

  before(async function () {
    this.timeout(180_000);
    docker = await ensureEngine();
    await ensureTestImages(docker);
    proxyA = await startThrottledRegistry({ bytesPerSecond: PROXY_RATE });
    proxyB = await startThrottledRegistry({ bytesPerSecond: PROXY_RATE });
    imageA = `${proxyA.host}/berth-test/busybox:1`;
    imageB = `${proxyB.host}/berth-test/busybox:1`;
  });

  after(async () => {
    for (const t of berths) {
      for (const c of (await t.client.containers()).containers) if (c.state !== State.TERMINATED) await t.client.destroy(c.containerId!.value).catch(() => undefined);
      await t.close();
    }
    if (docker) for (const ref of [imageA, imageB]) if (ref) await removeImage(docker, ref);
    await proxyA?.close();
    await proxyB?.close();
  });

  async function berth(flags: Record<string, string> = {}): Promise<TestBerth> {
    const t = await startTestBerth(flags);
    berths.push(t);
    return t;
  }

  it("Usage shows the launch's limits from the cgroup; Update changes them live and in the engine; Status has the pid", async () => {
    const t = await berth();
    const id = newId("res");
    await launchRunning(t, id, { image: imageA, shell: "sleep 600", cpus: 0.5, memMb: 64 });

    const before = (await t.client.usage(id)).statistics!;
    assert.equal(before.cpusLimit, 0.5, "512 shares / 1024");
    assert.equal(before.memLimitBytes, BigInt(64 * MiB));
    assert.ok((before.processes ?? 0) >= 1, `processes ${before.processes}`);
    assert.ok(before.timestamp > Date.now() / 1000 - 60, `timestamp ${before.timestamp} is recent`);

    await t.client.update(id, [scalar("cpus", 1), scalar("mem", 128)]);
    const after = (await t.client.usage(id)).statistics!;
    assert.equal(after.cpusLimit, 1);
    assert.equal(after.memLimitBytes, BigInt(128 * MiB));
    const host = await hostConfig(docker, t, id);
    assert.equal(host.CpuShares, 1024);
    assert.equal(host.Memory, 128 * MiB);
    assert.equal(host.MemorySwap, 128 * MiB);

    const status = await t.client.status(id);
    assert.equal(status.state, State.RUNNING);
    assert.equal(status.containerStatus?.containerId?.value, id);
    assert.ok((status.containerStatus?.executorPid ?? 0) > 0, `executor_pid ${status.containerStatus?.executorPid}`);
    assert.ok(Object.keys(status.cgroupDirs).length > 0, "cgroup dirs reported");
    assert.deepEqual(status.containerStatus?.networkInfos, [], "network none: no addresses");

    await t.client.destroy(id);
    await assert.rejects(t.client.usage(id), (err) => code(err) === 9 && /TERMINATED/.test((err as Error).message));
    await assert.rejects(t.client.update(id, [scalar("cpus", 1)]), (err) => code(err) === 9 && /is TERMINATED; Update needs a RUNNING container/.test((err as Error).message));
    // proto2 optional: an unset executor_pid reads as 0.
    assert.equal((await t.client.status(id)).containerStatus?.executorPid ?? 0, 0, "no pid once terminated");
  });

  it("Update validates: unknown container NOT_FOUND, no cpus or mem INVALID_ARGUMENT", async () => {
    const t = await berth();
    await assert.rejects(t.client.update(newId("none"), [scalar("cpus", 1)]), (err) => code(err) === 5);
    const id = newId("val");
    await launchRunning(t, id, { image: imageA, shell: "sleep 600", cpus: 0.5 });
    await assert.rejects(t.client.update(id, [scalar("disk", 10)]), (err) => code(err) === 3 && /neither cpus nor mem/.test((err as Error).message));
    await assert.rejects(t.client.update(id, [scalar("mem", -5)]), (err) => code(err) === 3 && /-5/.test((err as Error).message));
    // The kernel's cpu.shares ceiling (262144 = 256 cpus): the engine takes exactly that, and one
    // more cpu is INVALID_ARGUMENT before the engine is asked (the fuzzer saw INTERNAL from runc).
    await t.client.update(id, [scalar("cpus", 256)]);
    assert.equal((await hostConfig(docker, t, id)).CpuShares, 262144);
    await assert.rejects(t.client.update(id, [scalar("cpus", 257)]), (err) => code(err) === 3 && /cpus 257 is more than 256/.test((err as Error).message));
    await t.client.destroy(id);
  });

  it("with --cgroups_enable_cfs a launch gets a CFS quota, Usage reports quota/period, and Update moves the quota", async () => {
    const t = await berth({ cgroups_enable_cfs: "true" });
    const id = newId("cfs");
    await launchRunning(t, id, { image: imageA, shell: "sleep 600", cpus: 0.5, memMb: 64 });
    const host = await hostConfig(docker, t, id);
    assert.equal(host.CpuPeriod, 100_000);
    assert.equal(host.CpuQuota, 50_000);
    assert.equal(host.CpuShares, 512);
    assert.equal((await t.client.usage(id)).statistics!.cpusLimit, 0.5);
    await t.client.update(id, [scalar("cpus", 1.5)]);
    assert.equal((await hostConfig(docker, t, id)).CpuQuota, 150_000);
    assert.equal((await t.client.usage(id)).statistics!.cpusLimit, 1.5);
    await t.client.destroy(id);
  });

  it("PruneImages removes a pulled image once its container terminated and keeps an excluded one", async () => {
    for (const ref of [imageA, imageB]) await removeImage(docker, ref);
    const t = await berth();
    for (const image of [imageA, imageB]) {
      const id = newId("prune");
      await t.client.launch(launchRequest(id, { image, shell: "true" }));
      const { termination } = await t.client.wait(id);
      assert.equal(termination?.exitCode, 0);
    }
    assert.ok((await imageExists(docker, imageA)) && (await imageExists(docker, imageB)), "both pulled");
    const live = newId("live");
    await launchRunning(t, live, { image: imageB, shell: "sleep 600" });

    const { removedImages } = await t.client.pruneImages([]);
    assert.deepEqual(removedImages, [imageA], "the image of a live container is kept");
    assert.equal(await imageExists(docker, imageA), false);
    assert.equal(await imageExists(docker, imageB), true);

    await t.client.destroy(live);
    assert.deepEqual((await t.client.pruneImages([imageB])).removedImages, [], "excluded");
    assert.equal(await imageExists(docker, imageB), true);
    assert.deepEqual((await t.client.pruneImages([])).removedImages, [imageB]);
    assert.equal(await imageExists(docker, imageB), false);
  });

  it("PruneImages refuses an excluded image without a docker name", async () => {
    const t = await berth();
    await assert.rejects(t.client.call("pruneImages", create(PruneImagesRequestSchema, { excludedImages: [{ type: 2 }] })), (err) => code(err) === 3 && /excluded_images\[0\]\.docker\.name is empty/.test((err as Error).message));
  });
});
