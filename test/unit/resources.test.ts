// Update, Usage, Status and PruneImages of the containerizer over a fake engine and a fake cgroup
// reader: what reaches the engine, what is checkpointed, what is cached.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { create, isFieldSet } from "@bufbuild/protobuf";
import { pino } from "pino";
import { filter, firstValueFrom } from "rxjs";
import { CheckpointStore } from "../../src/checkpoint/checkpoint-store.js";
import { Containerizer, type ContainerizerOptions, type LaunchInput } from "../../src/containerizer/containerizer.js";
import { ContainerNotFound, FailedPrecondition, InvalidRequest } from "../../src/containerizer/errors.js";
import type { StatsSource } from "../../src/containerizer/runtime-facts.js";
import { canonicalImageRef } from "../../src/containerizer/pulled-images.js";
import { EventMonitor } from "../../src/docker/event-monitor.js";
import { ImagePuller } from "../../src/docker/image-puller.js";
import { agentLabels } from "../../src/docker/names.js";
import type { ResourceUpdate } from "../../src/docker/engine-port.js";
import { ContainerConfigSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import { ResourceSchema, ResourceStatisticsSchema, Value_Type, type Resource, type ResourceStatistics } from "../../src/gen/mesos/v1/mesos_pb.js";
import type { CgroupPaths } from "../../src/stats/cgroup-stats.js";
import { CgroupNotFound } from "../../src/stats/cgroup-stats.js";
import { FakeEngine } from "../harness/fake-engine.js";
import { fakeRig } from "../harness/fake-rig.js";
import { launchRequest, newId, type LaunchOptions } from "../harness/launches.js";

const PRESENT = "registry.invalid/fake/present:1";
const MiB = 1024 * 1024;

/** Counts resolves and reads; answers fixed statistics for any dirs. */
class FakeStats implements StatsSource {
  readonly resolved: number[] = [];
  readonly released: CgroupPaths[] = [];
  reads = 0;
  gone = false;
  /** A cgroup without the cpu and memory limit files (a controller not mounted): no limits read. */
  noLimits = false;

  async resolve(pid: number): Promise<CgroupPaths> {
    this.resolved.push(pid);
    return { version: 1, dirs: { cpu: `/fake/cpu/docker/${pid}`, memory: `/fake/memory/docker/${pid}` } };
  }

  async read(paths: CgroupPaths): Promise<ResourceStatistics> {
    this.reads += 1;
    if (this.gone) throw new CgroupNotFound(`cgroup v1 dirs ${JSON.stringify(paths.dirs)} no longer hold any statistics file`);
    if (this.noLimits) return create(ResourceStatisticsSchema, { timestamp: Date.now() / 1000, processes: 1 });
    return create(ResourceStatisticsSchema, { timestamp: Date.now() / 1000, processes: 1, cpusLimit: 0.5, memLimitBytes: BigInt(64 * MiB) });
  }

  release(paths: CgroupPaths): void {
    this.released.push(paths);
  }
}

interface Rig {
  engine: FakeEngine;
  monitor: EventMonitor;
  cz: Containerizer;
  stats: FakeStats;
  store: CheckpointStore;
  workDir: string;
}

const rigs: Rig[] = [];

async function rig(options: Partial<ContainerizerOptions> = {}, reuse?: { workDir: string; engine: FakeEngine }): Promise<Rig> {
  const engine = reuse?.engine ?? new FakeEngine({ images: [PRESENT] });
  const workDir = reuse?.workDir ?? (await mkdtemp(path.join(tmpdir(), "berth-resources-unit-")));
  const store = new CheckpointStore(path.join(workDir, "meta"));
  await store.init();
  const stats = new FakeStats();
  const { monitor, cz } = await fakeRig(engine, workDir, options, { checkpoints: store, stats });
  const r = { engine, monitor, cz, stats, store, workDir };
  rigs.push(r);
  return r;
}

async function teardown(r: Rig): Promise<void> {
  r.engine.releaseAll();
  for (const c of r.cz.list()) if (c.state !== "TERMINATED") await r.cz.destroy(c.containerId).catch(() => undefined);
  await r.cz.idle();
  r.cz.shutdown();
  await r.monitor.stop();
  await r.store.flush();
}

afterEach(async () => {
  const dirs = new Set<string>();
  for (const r of rigs.splice(0)) {
    await teardown(r);
    dirs.add(r.workDir);
  }
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function input(id: string, o: Partial<LaunchOptions> = {}): LaunchInput {
  const req = launchRequest(id, { image: PRESENT, shell: "sleep 1000", ...o });
  return { containerId: id, nested: false, config: create(ContainerConfigSchema, req.containerConfig), environment: {} };
}

function scalar(name: string, value: number): Resource {
  return create(ResourceSchema, { name, type: Value_Type.SCALAR, scalar: { value } });
}

function stateIs(cz: Containerizer, id: string, state: string): Promise<unknown> {
  return firstValueFrom(cz.watch([id]).pipe(filter((e) => e.kind.type === "state" && e.kind.state === state)));
}

async function launchRunning(r: Rig, id: string, o: Partial<LaunchOptions> = {}): Promise<string> {
  assert.equal((await r.cz.launch(input(id, o))).result, "LAUNCHED");
  await stateIs(r.cz, id, "RUNNING");
  const engineId = r.cz.list().find((c) => c.containerId === id)?.engineId;
  assert.ok(engineId);
  return engineId;
}

async function checkpointed(r: Rig, id: string) {
  await r.store.flush();
  const cp = (await r.store.load()).containers.find((c) => c.containerId === id);
  assert.ok(cp, `container '${id}' is checkpointed`);
  return cp;
}

function scalars(resources: Resource[]): Record<string, number> {
  return Object.fromEntries(resources.map((x) => [x.name, x.scalar?.value ?? NaN]));
}

describe("resources: Update, Usage, Status, PruneImages over a fake engine", function () {
  this.timeout(10_000);

  describe("Update", () => {
    it("sends shares, memory and an equal swap in one engine call and checkpoints the new resources", async () => {
      const r = await rig();
      const id = newId("upd");
      const engineId = await launchRunning(r, id, { cpus: 0.5, memMb: 64 });
      await r.cz.update(id, [scalar("cpus", 1), scalar("mem", 128)]);
      const calls = r.engine.calls("updateContainer");
      assert.equal(calls.length, 1, "memory and swap go in one update (moby#22167)");
      assert.equal(calls[0]!.args[0], engineId);
      assert.deepEqual(calls[0]!.args[1], { CpuShares: 1024, Memory: 128 * MiB, MemorySwap: 128 * MiB } satisfies ResourceUpdate);
      assert.deepEqual(scalars((await checkpointed(r, id)).resources), { cpus: 1, mem: 128 });
    });

    it("applies Mesos' floors: 2 shares and 32 MB", async () => {
      const r = await rig();
      const id = newId("floor");
      await launchRunning(r, id, { cpus: 1, memMb: 64 });
      await r.cz.update(id, [scalar("cpus", 0.001), scalar("mem", 1)]);
      assert.deepEqual(r.engine.calls("updateContainer")[0]!.args[1], { CpuShares: 2, Memory: 32 * MiB, MemorySwap: 32 * MiB });
    });

    it("with cgroupsEnableCfs, adds a CFS quota (100 ms period, cpus × period, at least 1 ms) at launch and on Update", async () => {
      const r = await rig({ cgroupsEnableCfs: true });
      const id = newId("cfs");
      const engineId = await launchRunning(r, id, { cpus: 0.5, memMb: 64 });
      const created = r.engine.container(engineId).spec.HostConfig;
      assert.equal(created.CpuShares, 512);
      assert.equal(created.CpuPeriod, 100_000);
      assert.equal(created.CpuQuota, 50_000);
      await r.cz.update(id, [scalar("cpus", 2)]);
      assert.deepEqual(r.engine.calls("updateContainer")[0]!.args[1], { CpuShares: 2048, CpuPeriod: 100_000, CpuQuota: 200_000 });
      await r.cz.update(id, [scalar("cpus", 0.001)]);
      assert.deepEqual(r.engine.calls("updateContainer")[1]!.args[1], { CpuShares: 2, CpuPeriod: 100_000, CpuQuota: 1_000 });
    });

    it("without the flag, neither launch nor Update sets a CFS quota", async () => {
      const r = await rig();
      const id = newId("nocfs");
      const engineId = await launchRunning(r, id, { cpus: 0.5 });
      assert.equal(r.engine.container(engineId).spec.HostConfig.CpuQuota, undefined);
      await r.cz.update(id, [scalar("cpus", 2)]);
      assert.deepEqual(r.engine.calls("updateContainer")[0]!.args[1], { CpuShares: 2048 });
    });

    it("an Update naming only mem keeps the cpus in force (engine and checkpoint)", async () => {
      const r = await rig();
      const id = newId("memonly");
      await launchRunning(r, id, { cpus: 0.5, memMb: 64 });
      await r.cz.update(id, [scalar("mem", 256)]);
      assert.deepEqual(r.engine.calls("updateContainer")[0]!.args[1], { Memory: 256 * MiB, MemorySwap: 256 * MiB });
      assert.deepEqual(scalars((await checkpointed(r, id)).resources), { mem: 256, cpus: 0.5 });
    });

    it("concurrent Updates reach the engine and the checkpoint in call order", async () => {
      const r = await rig();
      const id = newId("order");
      await launchRunning(r, id, { cpus: 1, memMb: 64 });
      const held = r.engine.hold("updateContainer");
      const first = r.cz.update(id, [scalar("cpus", 2), scalar("mem", 100)]);
      const second = r.cz.update(id, [scalar("cpus", 3), scalar("mem", 200)]);
      await held.entered;
      assert.equal(r.engine.calls("updateContainer").length, 1, "the second waits for the first");
      held();
      await Promise.all([first, second]);
      assert.deepEqual(r.engine.calls("updateContainer").map((c) => (c.args[1] as ResourceUpdate).CpuShares), [2048, 3072]);
      assert.deepEqual(scalars((await checkpointed(r, id)).resources), { cpus: 3, mem: 200 });
    });

    it("refuses a container that is not RUNNING with FAILED_PRECONDITION naming the state, and sends nothing", async () => {
      const r = await rig();
      const id = newId("pulling");
      const pull = r.engine.hold("pullImage");
      await r.cz.launch(input(id, { image: "registry.invalid/fake/absent:1", cpus: 1 }));
      await pull.entered;
      await assert.rejects(r.cz.update(id, [scalar("cpus", 2)]), (err: Error) => err instanceof FailedPrecondition && /is PULLING; Update needs a RUNNING container/.test(err.message));
      await r.cz.destroy(id);
      await assert.rejects(r.cz.update(id, [scalar("cpus", 2)]), (err: Error) => err instanceof FailedPrecondition && /is TERMINATED/.test(err.message));
      assert.deepEqual(r.engine.calls("updateContainer"), []);
    });

    it("refuses unknown containers, resources without cpus or mem, and invalid values", async () => {
      const r = await rig();
      await assert.rejects(r.cz.update("nope", [scalar("cpus", 1)]), ContainerNotFound);
      const id = newId("bad");
      await launchRunning(r, id, { cpus: 1 });
      await assert.rejects(r.cz.update(id, [scalar("disk", 10)]), (err: Error) => err instanceof InvalidRequest && /\['disk'\] name neither cpus nor mem/.test(err.message));
      await assert.rejects(r.cz.update(id, []), InvalidRequest);
      await assert.rejects(r.cz.update(id, [scalar("cpus", -1)]), (err: Error) => err instanceof InvalidRequest && /resources\[0\] \('cpus'\) scalar value -1/.test(err.message));
      assert.deepEqual(r.engine.calls("updateContainer"), []);
    });
  });

  describe("Usage", () => {
    it("inspects once and resolves the cgroup once for many calls, reading the cgroup each time", async () => {
      const r = await rig();
      const id = newId("usage");
      const engineId = await launchRunning(r, id, { cpus: 0.5, memMb: 64 });
      const inspectsBefore = r.engine.calls("inspectContainer").length;
      const concurrent = await Promise.all([r.cz.usage(id), r.cz.usage(id), r.cz.usage(id)]);
      for (let i = 0; i < 5; i++) await r.cz.usage(id);
      assert.equal(r.engine.calls("inspectContainer").length - inspectsBefore, 1, "one inspect for eight Usage calls");
      assert.deepEqual(r.stats.resolved, [r.engine.container(engineId).pid], "one resolve, of the container's pid");
      assert.equal(r.stats.reads, 8);
      assert.equal(concurrent[0]!.cpusLimit, 0.5);
      assert.ok(concurrent[0]!.timestamp > 0);
      const status = await r.cz.status(id);
      assert.equal(status.pid, r.engine.container(engineId).pid);
      assert.equal(r.engine.calls("inspectContainer").length - inspectsBefore, 1, "Status shares the cached inspect");
    });

    it("a cgroup that shows no limits falls back to the launch's resources (the unset proto2 fields read 0, not undefined)", async () => {
      const r = await rig();
      r.stats.noLimits = true;
      const id = newId("usage-nolimits");
      await launchRunning(r, id, { cpus: 0.25, memMb: 48 });
      const u = await r.cz.usage(id);
      assert.equal(u.cpusLimit, 0.25);
      assert.equal(u.memLimitBytes, BigInt(48 * MiB));
      const bare = newId("usage-noresources");
      await launchRunning(r, bare);
      const none = await r.cz.usage(bare);
      assert.equal(isFieldSet(none, ResourceStatisticsSchema.field.cpusLimit), false, "no limit anywhere: none reported");
      assert.equal(isFieldSet(none, ResourceStatisticsSchema.field.memLimitBytes), false);
    });

    it("refuses a container that is not RUNNING, and forgets the cached pid and releases the cgroup once it terminates", async () => {
      const r = await rig();
      const id = newId("usage-end");
      const engineId = await launchRunning(r, id);
      await r.cz.usage(id);
      const pid = r.engine.container(engineId).pid;
      assert.equal(r.stats.released.length, 0, "nothing released while it runs");
      r.engine.exit(engineId, 0);
      await r.cz.wait(id);
      await assert.rejects(r.cz.usage(id), (err: Error) => err instanceof FailedPrecondition && /is TERMINATED; Usage needs a RUNNING container/.test(err.message));
      assert.equal((await r.cz.status(id)).pid, undefined);
      assert.deepEqual(r.stats.released.map((p) => p.dirs.cpu), [`/fake/cpu/docker/${pid}`], "the dirs read for it were released once");
    });

    it("a cgroup that vanished before the exit was seen is FAILED_PRECONDITION, and the cache is dropped", async () => {
      const r = await rig();
      const id = newId("usage-gone");
      await launchRunning(r, id);
      await r.cz.usage(id);
      r.stats.gone = true;
      await assert.rejects(r.cz.usage(id), (err: Error) => err instanceof FailedPrecondition && /has no readable cgroup/.test(err.message));
      assert.equal(r.stats.released.length, 1, "the dropped dirs were released");
      r.stats.gone = false;
      await r.cz.usage(id);
      assert.equal(r.stats.resolved.length, 2, "resolved again after the failure");
    });
  });

  describe("Status", () => {
    it("reports pid, the engine's addresses and the cgroup dirs of a running container", async () => {
      const r = await rig();
      const id = newId("status");
      const engineId = await launchRunning(r, id);
      r.engine.container(engineId).ipAddresses = ["10.0.0.7", "fd00::7"];
      const s = await r.cz.status(id);
      assert.equal(s.state, "RUNNING");
      assert.equal(s.pid, r.engine.container(engineId).pid);
      assert.deepEqual(s.ipAddresses, ["10.0.0.7", "fd00::7"]);
      assert.deepEqual(s.cgroupDirs, { cpu: `/fake/cpu/docker/${s.pid}`, memory: `/fake/memory/docker/${s.pid}` });
    });
  });

  describe("PruneImages", () => {
    it("removes only images Berth pulled that no live container uses and that are not excluded", async () => {
      const r = await rig();
      const [used, unused, excluded] = ["used", "unused", "excluded"].map((n) => `registry.invalid/fake/${n}:1`) as [string, string, string];
      const live = newId("live");
      await launchRunning(r, live, { image: used });
      for (const image of [unused, excluded]) {
        const id = newId("done");
        const engineId = await launchRunning(r, id, { image });
        r.engine.exit(engineId, 0);
        await r.cz.wait(id);
      }
      // Present before Berth ran: never Berth's to remove.
      const foreign = newId("foreign");
      const foreignEngineId = await launchRunning(r, foreign, { image: PRESENT });
      r.engine.exit(foreignEngineId, 0);
      await r.cz.wait(foreign);

      const removed = await r.cz.pruneImages([excluded]);
      assert.deepEqual(removed, [unused]);
      assert.deepEqual(r.engine.calls("removeImage").map((c) => c.args[0]), [unused], "nothing else was even tried");
      assert.ok(r.engine.images.has(used) && r.engine.images.has(excluded) && r.engine.images.has(PRESENT));
      assert.deepEqual(await r.cz.pruneImages([excluded]), [], "a removed image is forgotten");
    });

    it("keeps, and does not report, an image the engine says is in use", async () => {
      const r = await rig();
      const image = "registry.invalid/fake/shared:1";
      const id = newId("shared");
      const engineId = await launchRunning(r, id, { image });
      r.engine.exit(engineId, 0);
      await r.cz.wait(id);
      await r.cz.destroy(id); // answers once Berth's engine container is removed
      // Someone else runs a container of it.
      await r.engine.createContainer({ name: "other-client", Image: image, Labels: {}, Env: [], HostConfig: { NetworkMode: "none", Mounts: [] } });
      assert.deepEqual(await r.cz.pruneImages([]), []);
      assert.ok(r.engine.images.has(image));
      await r.engine.removeContainer([...r.engine.containers.keys()][0]!);
      assert.deepEqual(await r.cz.pruneImages([]), [image], "still recorded, so a later prune removes it");
    });

    it("compares references in Docker's canonical form", async () => {
      assert.equal(canonicalImageRef("busybox"), "docker.io/library/busybox:latest");
      assert.equal(canonicalImageRef("docker.io/library/busybox:latest"), "docker.io/library/busybox:latest");
      assert.equal(canonicalImageRef("me/app"), "docker.io/me/app:latest");
      assert.equal(canonicalImageRef("127.0.0.1:5000/x/y:1"), "127.0.0.1:5000/x/y:1");
      assert.equal(canonicalImageRef("localhost/y"), "localhost/y:latest");
      assert.equal(canonicalImageRef(`a.io/y@sha256:${"0".repeat(64)}`), `a.io/y@sha256:${"0".repeat(64)}`);
    });

    it("remembers what it pulled across a restart (the agent checkpoint)", async () => {
      const first = await rig();
      const image = "registry.invalid/fake/durable:1";
      const id = newId("durable");
      const engineId = await launchRunning(first, id, { image });
      first.engine.exit(engineId, 0);
      await first.cz.wait(id);
      await teardown(first);
      rigs.splice(rigs.indexOf(first), 1);
      const second = await rig({}, { workDir: first.workDir, engine: first.engine });
      await second.cz.loadPulledImages();
      assert.deepEqual(await second.cz.pruneImages([]), [image]);
    });
  });
});
