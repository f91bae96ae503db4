// max_completion_time, the disk/du watcher, TASK_RUNNING's container_status and data, recovery's
// task statuses and --docker_kill_orphans, over the fake engine (the real engine's tests are in
// test/integration/deadlines.test.ts, disk-quota.test.ts and task-status-parity.test.ts).
import assert from "node:assert/strict";
import { link, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { filter, firstValueFrom, lastValueFrom, toArray } from "rxjs";
import { CheckpointStore } from "../../src/checkpoint/checkpoint-store.js";
import { ContainerConfigSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import {
  DurationInfoSchema,
  NetworkInfo_Protocol,
  ResourceSchema,
  ResourceStatisticsSchema,
  TaskState,
  TaskStatus_Reason,
  Value_Type,
  type TaskStatus,
} from "../../src/gen/mesos/v1/mesos_pb.js";
import type { ContainerizerOptions, LaunchInput } from "../../src/containerizer/containerizer.js";
import type { ContainerEvent } from "../../src/containerizer/container-event.js";
import { InvalidRequest } from "../../src/containerizer/errors.js";
import { measureDiskUsage } from "../../src/containerizer/disk-usage.js";
import { inspectData } from "../../src/containerizer/running-status.js";
import type { StatsSource } from "../../src/containerizer/runtime-facts.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { EngineUnreachable } from "../../src/docker/engine-port.js";
import { FakeEngine } from "../harness/fake-engine.js";
import { closeRig, FAKE_AGENT, fakeRig, type FakeRig } from "../harness/fake-rig.js";
import { pollUntil } from "../harness/engine-control.js";
import { launchRequest, newId, type LaunchOptions } from "../harness/launches.js";

const IMAGE = "registry.invalid/fake/busybox:1";
const MiB = 1024 * 1024;

/** Usage without cgroups: the fake engine's containers have none. */
const fakeStats: StatsSource = {
  resolve: async () => ({ version: 2, dirs: { unified: "/nonexistent" } }),
  read: async () => create(ResourceStatisticsSchema, { timestamp: Date.now() / 1000 }),
  release: () => undefined,
};

interface Rig extends FakeRig {
  workDir: string;
  lines: Array<Record<string, unknown>>;
}

const open: Rig[] = [];

/** A rig with checkpoints under <workDir>/meta (a second rig over the same dir and engine is a restart). */
async function rig(options: Partial<ContainerizerOptions> = {}, reuse?: { engine: FakeEngine; workDir: string }): Promise<Rig> {
  const engine = reuse?.engine ?? new FakeEngine({ images: [IMAGE] });
  const workDir = reuse?.workDir ?? (await mkdtemp(path.join(tmpdir(), "berth-limits-unit-")));
  const store = new CheckpointStore(path.join(workDir, "meta"));
  await store.init();
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const r = { ...(await fakeRig(engine, workDir, options, { checkpoints: store, log, stats: fakeStats })), workDir, lines };
  open.push(r);
  return r;
}

/** Stops a rig as a killed Berth would leave things: containers keep running, nothing destroyed. */
async function crash(r: Rig): Promise<void> {
  open.splice(open.indexOf(r), 1);
  r.cz.shutdown();
  await r.monitor.stop();
}

function input(id: string, o: Partial<LaunchOptions> = {}, extra: { maxCompletionNs?: bigint; diskMb?: number } = {}): LaunchInput {
  const req = launchRequest(id, { image: IMAGE, taskId: `task-${id}`, ...o });
  const config = create(ContainerConfigSchema, req.containerConfig);
  if (extra.maxCompletionNs !== undefined) config.taskInfo!.maxCompletionTime = create(DurationInfoSchema, { nanoseconds: extra.maxCompletionNs });
  if (extra.diskMb !== undefined) config.resources.push(create(ResourceSchema, { name: "disk", type: Value_Type.SCALAR, scalar: { value: extra.diskMb } }));
  return { containerId: id, nested: false, config, environment: {} };
}

function eventOf(r: Rig, id: string, pred: (e: ContainerEvent) => boolean): Promise<ContainerEvent> {
  return firstValueFrom(r.cz.watch([id]).pipe(filter(pred)));
}

const isRunning = (e: ContainerEvent) => e.kind.type === "state" && e.kind.state === "RUNNING";
const taskStatusOf = (e: ContainerEvent | undefined): TaskStatus | undefined => (e?.kind.type === "task_status" ? e.kind.status : undefined);
const isTaskState = (s: TaskState) => (e: ContainerEvent) => taskStatusOf(e)?.state === s;

async function launchRunning(r: Rig, i: LaunchInput): Promise<string> {
  assert.equal((await r.cz.launch(i)).result, "LAUNCHED");
  await eventOf(r, i.containerId, isRunning);
  return (await r.cz.status(i.containerId)).engineId!;
}

describe("container limits, task statuses and orphans (fake engine)", () => {
  afterEach(async () => {
    for (const r of open.splice(0)) await closeRig(r, r.workDir);
  });

  describe("max_completion_time", () => {
    it("a negative max_completion_time is refused naming the field and leaves nothing", async () => {
      const r = await rig();
      const id = newId("neg");
      await assert.rejects(r.cz.launch(input(id, {}, { maxCompletionNs: -1n })), (e: unknown) => e instanceof InvalidRequest && /task_info\.max_completion_time\.nanoseconds -1 is negative/.test(e.message));
      assert.equal(r.cz.list().length, 0);
      assert.deepEqual(r.engine.log.filter((c) => c.method !== "events"), []);
    });

    it("a task past its max_completion_time is SIGKILLed and ends TASK_FAILED with REASON_MAX_COMPLETION_TIME_REACHED", async () => {
      const r = await rig();
      const id = newId("deadline");
      const all = firstValueFrom(r.cz.watch([id]).pipe(toArray()));
      assert.equal((await r.cz.launch(input(id, {}, { maxCompletionNs: 50_000_000n }))).result, "LAUNCHED");
      const t = await r.cz.wait(id);
      assert.equal(t.containerTermination.state, TaskState.TASK_FAILED);
      assert.equal(t.containerTermination.reason, TaskStatus_Reason.MAX_COMPLETION_TIME_REACHED);
      assert.match(t.containerTermination.message, /max_completion_time of 50ms/);
      assert.equal(t.signal, 9);
      assert.deepEqual(r.engine.calls("killContainer").map((c) => c.args[1]), ["SIGKILL"]);
      const terminal = (await all).map(taskStatusOf).filter((s) => s !== undefined).at(-1)!;
      assert.equal(terminal.state, TaskState.TASK_FAILED);
      assert.equal(terminal.reason, TaskStatus_Reason.MAX_COMPLETION_TIME_REACHED);
    });

    it("a limit kill the engine could not carry out is stopped again by a Destroy, and keeps the limit's reason", async () => {
      const r = await rig();
      const id = newId("killfails");
      r.engine.failNext("killContainer", new EngineUnreachable("engine down"));
      assert.equal((await r.cz.launch(input(id, {}, { maxCompletionNs: 20_000_000n }))).result, "LAUNCHED");
      await eventOf(r, id, (e) => e.kind.type === "state" && e.kind.state === "DESTROYING");
      await pollUntil(() => r.engine.calls("killContainer").some((c) => c.error !== undefined), 5000, "the kill failed");
      const t = await r.cz.destroy(id);
      assert.equal(t.containerTermination.reason, TaskStatus_Reason.MAX_COMPLETION_TIME_REACHED);
      assert.equal(r.engine.calls("stopContainer").length, 1, "Destroy stopped it");
    });

    it("a task that ends first is not killed; its deadline goes with it", async () => {
      const r = await rig();
      const id = newId("quick");
      const engineId = await launchRunning(r, input(id, {}, { maxCompletionNs: 3_600_000_000_000n }));
      r.engine.exit(engineId, 0);
      const t = await r.cz.wait(id);
      assert.equal(t.containerTermination.state, TaskState.TASK_FINISHED);
      assert.equal(r.engine.calls("killContainer").length, 0);
    });

    it("survives a restart counted from the recorded start: one passed while Berth was down fires at once", async () => {
      const first = await rig();
      const id = newId("restart");
      await launchRunning(first, input(id, {}, { maxCompletionNs: 3_600_000_000_000n }));
      await crash(first);
      // The record says it started two hours ago: its one-hour deadline passed while Berth was down.
      const store = new CheckpointStore(path.join(first.workDir, "meta"));
      const cp = (await store.load()).containers.find((c) => c.containerId === id)!;
      assert.ok(cp.startedAt, "the RUNNING record keeps the start");
      cp.startedAt = { ...cp.startedAt, seconds: cp.startedAt.seconds - 7200n };
      await store.save(cp);
      const second = await rig({}, { engine: first.engine, workDir: first.workDir });
      await second.cz.recover();
      const t = await second.cz.wait(id);
      assert.equal(t.containerTermination.reason, TaskStatus_Reason.MAX_COMPLETION_TIME_REACHED);
      assert.equal(t.containerTermination.state, TaskState.TASK_FAILED);
    });

    it("a limit kill caught by a restart still ends with the limit's reason", async () => {
      const first = await rig();
      const id = newId("midkill");
      const engineId = await launchRunning(first, input(id, {}, { maxCompletionNs: 3_600_000_000_000n }));
      // The record of a kill in progress: DESTROYING with the limitation, the container still up.
      const store = new CheckpointStore(path.join(first.workDir, "meta"));
      await crash(first);
      const cp = (await store.load()).containers.find((c) => c.containerId === id)!;
      cp.state = "DESTROYING";
      cp.limitation = "max_completion_time";
      await store.save(cp);
      assert.equal(first.engine.container(engineId).status, "running");
      const second = await rig({}, { engine: first.engine, workDir: first.workDir });
      await second.cz.recover();
      const t = await second.cz.wait(id);
      assert.equal(t.containerTermination.reason, TaskStatus_Reason.MAX_COMPLETION_TIME_REACHED);
    });
  });

  describe("disk usage (disk/du)", () => {
    let dir: string;
    beforeEach(async () => (dir = await mkdtemp(path.join(tmpdir(), "berth-du-"))));
    afterEach(async () => rm(dir, { recursive: true, force: true }));

    it("counts allocated blocks, each hard-linked file once, and never follows a symbolic link", async () => {
      const outside = await mkdtemp(path.join(tmpdir(), "berth-du-outside-"));
      try {
        await writeFile(path.join(outside, "big"), Buffer.alloc(4 * MiB, 1));
        const empty = await measureDiskUsage(dir);
        await mkdir(path.join(dir, "a", "b"), { recursive: true });
        await writeFile(path.join(dir, "a", "b", "one"), Buffer.alloc(MiB, 1));
        await link(path.join(dir, "a", "b", "one"), path.join(dir, "hard"));
        await symlink(path.join(outside, "big"), path.join(dir, "link-to-big"));
        await symlink(outside, path.join(dir, "link-to-dir"));
        const u = await measureDiskUsage(dir);
        assert.equal(u.partial, false);
        assert.ok(u.bytes >= BigInt(MiB) + empty.bytes, `${u.bytes} counts the 1 MiB file`);
        assert.ok(u.bytes < BigInt(2 * MiB), `${u.bytes}: the hard link once, the links' targets not at all`);
      } finally {
        await rm(outside, { recursive: true, force: true });
      }
    });

    it("stops at maxEntries and says the figure is a lower bound; a vanished root is zero", async () => {
      for (let i = 0; i < 20; i++) await writeFile(path.join(dir, `f${i}`), "x");
      const u = await measureDiskUsage(dir, { maxEntries: 5 });
      assert.equal(u.partial, true);
      assert.equal(u.entries, 5);
      assert.deepEqual(await measureDiskUsage(path.join(dir, "missing")), { bytes: 0n, entries: 0, partial: false });
    });

    it("an aborted walk stops", async () => {
      for (let i = 0; i < 10; i++) await writeFile(path.join(dir, `f${i}`), "x");
      const ac = new AbortController();
      ac.abort(new Error("stop"));
      await assert.rejects(measureDiskUsage(dir, { signal: ac.signal }), /stop/);
    });

    it("with --enforce_container_disk_quota a sandbox past its disk is killed: TASK_FAILED, REASON_CONTAINER_LIMITATION_DISK, limited_resources disk", async () => {
      const r = await rig({ diskWatchIntervalMs: 10, enforceDiskQuota: true });
      const id = newId("disk");
      await launchRunning(r, input(id, {}, { diskMb: 1 }));
      const sandbox = (await r.cz.status(id)).sandbox;
      await writeFile(path.join(sandbox, "big"), Buffer.alloc(3 * MiB, 1));
      const t = await r.cz.wait(id);
      const ct = t.containerTermination;
      assert.equal(ct.state, TaskState.TASK_FAILED);
      assert.equal(ct.reason, TaskStatus_Reason.CONTAINER_LIMITATION_DISK);
      assert.deepEqual(ct.limitedResources.map((l) => [l.name, l.scalar?.value]), [["disk", 1]]);
      assert.match(ct.message, /^Disk usage \([\d.]+ [KM]iB\) exceeds quota: the sandbox outgrew its disk resource of 1 MB$/);
    });

    it("without the flag the usage is reported in Usage and logged once, and the container keeps running", async () => {
      const r = await rig({ diskWatchIntervalMs: 10, enforceDiskQuota: false });
      const id = newId("report");
      await launchRunning(r, input(id, {}, { diskMb: 1 }));
      const sandbox = (await r.cz.status(id)).sandbox;
      await writeFile(path.join(sandbox, "big"), Buffer.alloc(2 * MiB, 1));
      await pollUntil(async () => ((await r.cz.usage(id)).diskUsedBytes ?? 0n) >= BigInt(2 * MiB), 10_000, "Usage reports the 2 MiB");
      await writeFile(path.join(sandbox, "bigger"), Buffer.alloc(2 * MiB, 1));
      await pollUntil(async () => ((await r.cz.usage(id)).diskUsedBytes ?? 0n) >= BigInt(4 * MiB), 10_000, "Usage reports the next 2 MiB");
      const usage = await r.cz.usage(id);
      assert.equal(usage.diskLimitBytes, BigInt(MiB));
      assert.equal((await r.cz.status(id)).state, "RUNNING");
      assert.equal(r.lines.filter((l) => /not enforced/.test(String(l.msg))).length, 1, "logged once, measured at least twice over");
      assert.equal(r.engine.calls("killContainer").length, 0);
    });
  });

  describe("task statuses as Mesos sends them", () => {
    it("TASK_RUNNING carries container_status (id, network infos, executor pid) and the engine's inspect JSON in data", async () => {
      const r = await rig();
      const id = newId("running");
      const i = input(id);
      const origCreate = r.engine.createContainer.bind(r.engine);
      r.engine.createContainer = async (spec) => {
        const engineId = await origCreate(spec);
        r.engine.container(engineId).ipAddresses = ["192.0.2.7", "2001:db8::7"];
        return engineId;
      };
      assert.equal((await r.cz.launch(i)).result, "LAUNCHED");
      const running = taskStatusOf(await eventOf(r, id, isTaskState(TaskState.TASK_RUNNING)))!;
      const engineId = (await r.cz.status(id)).engineId!;
      assert.equal(running.containerStatus?.containerId?.value, id);
      assert.equal(running.containerStatus?.executorPid, r.engine.container(engineId).pid);
      const nets = running.containerStatus!.networkInfos;
      assert.equal(nets.length, 1);
      assert.deepEqual(nets[0]!.ipAddresses.map((a) => [a.ipAddress, a.protocol]), [["192.0.2.7", NetworkInfo_Protocol.IPv4], ["2001:db8::7", NetworkInfo_Protocol.IPv6]]);
      const data = JSON.parse(new TextDecoder().decode(running.data)) as Array<{ Id: string }>;
      assert.ok(Array.isArray(data) && data.length === 1, "docker inspect's array");
      assert.equal(data[0]!.Id, engineId);
    });

    it("data keeps the environment's names but never its values", () => {
      const raw = JSON.stringify({ Id: "abc", Config: { Env: ["SECRET=hunter2", "MESOS_SANDBOX=/mnt/mesos/sandbox", "NOVALUE"] } });
      const data = JSON.parse(new TextDecoder().decode(inspectData(raw))) as Array<{ Id: string; Config: { Env: string[] } }>;
      assert.deepEqual(data, [{ Id: "abc", Config: { Env: ["SECRET=***", "MESOS_SANDBOX=***", "NOVALUE"] } }]);
      assert.equal(inspectData("not json"), undefined);
    });

    it("an inspect that fails leaves TASK_RUNNING without data; the task runs", async () => {
      const r = await rig();
      const id = newId("noinspect");
      r.engine.failNext("inspectContainer", new Error("inspect broke"));
      assert.equal((await r.cz.launch(input(id))).result, "LAUNCHED");
      const running = taskStatusOf(await eventOf(r, id, isTaskState(TaskState.TASK_RUNNING)))!;
      assert.equal(running.data.length, 0);
      assert.equal(running.containerStatus?.containerId?.value, id);
    });

    it("after a restart: an adopted task's snapshot has its TASK_RUNNING, a vanished one ends TASK_LOST with its TaskStatus", async () => {
      const first = await rig();
      const adopted = newId("adopted");
      const vanished = newId("vanished");
      await launchRunning(first, input(adopted));
      const gone = await launchRunning(first, input(vanished));
      await crash(first);
      first.engine.containers.delete(gone);
      const second = await rig({}, { engine: first.engine, workDir: first.workDir });
      const report = await second.cz.recover();
      assert.equal(report.adopted, 1);
      assert.equal(report.vanished, 1);
      const running = taskStatusOf(await eventOf(second, adopted, (e) => e.snapshot && isTaskState(TaskState.TASK_RUNNING)(e)));
      assert.equal(running?.containerStatus?.containerId?.value, adopted);
      assert.ok(running!.data.length > 0, "with the engine's inspect");
      const lost = await lastValueFrom(second.cz.watch([vanished]).pipe(toArray()));
      const statuses = lost.map(taskStatusOf).filter((s) => s !== undefined);
      assert.equal(statuses.at(-1)?.state, TaskState.TASK_LOST);
      assert.equal(statuses.at(-1)?.reason, TaskStatus_Reason.AGENT_RESTARTED);
    });

    it("a launch abandoned mid-way by a restart publishes its TASK_FAILED", async () => {
      const first = await rig();
      const id = newId("abandoned");
      const held = first.engine.hold("startContainer");
      assert.equal((await first.cz.launch(input(id))).result, "LAUNCHED");
      await held.entered;
      await crash(first);
      const second = await rig({}, { engine: first.engine, workDir: first.workDir });
      const report = await second.cz.recover();
      assert.equal(report.abandoned, 1);
      const events = await lastValueFrom(second.cz.watch([id]).pipe(toArray()));
      const final = events.map(taskStatusOf).filter((s) => s !== undefined).at(-1);
      assert.equal(final?.state, TaskState.TASK_FAILED);
      assert.equal(final?.reason, TaskStatus_Reason.CONTAINER_LAUNCH_FAILED);
    });
  });

  describe("--docker_kill_orphans", () => {
    async function plantOrphan(engine: FakeEngine): Promise<string> {
      const foreign = newId("foreign");
      const engineId = await engine.createContainer({ name: `other-${foreign}`, Image: IMAGE, Labels: { [LABEL_AGENT_ID]: FAKE_AGENT, [LABEL_CONTAINER_ID]: foreign }, Env: [], HostConfig: { NetworkMode: "none", Mounts: [] } });
      await engine.startContainer(engineId);
      return engineId;
    }

    it("false: recovery leaves a labelled container without a record alone, and logs it", async () => {
      const engine = new FakeEngine({ images: [IMAGE] });
      const orphan = await plantOrphan(engine);
      const r = await rig({ killOrphans: false }, { engine, workDir: await mkdtemp(path.join(tmpdir(), "berth-limits-unit-")) });
      const report = await r.cz.recover();
      assert.equal(report.orphansRemoved, 0);
      assert.equal(report.orphansKept, 1);
      assert.equal(engine.containers.get(orphan)?.status, "running");
      assert.ok(r.lines.some((l) => l.engine_id === orphan && /left alone|leaving alone/.test(String(l.msg))));
      // Created while Berth runs: still left alone. The events stream is ordered, so once a later
      // container's exit has been routed, the orphan's `create` has been too.
      const late = await plantOrphan(engine);
      const after = newId("after");
      engine.exit(await launchRunning(r, input(after)), 0);
      await r.cz.wait(after);
      assert.equal(engine.containers.get(late)?.status, "running");
      assert.equal(engine.calls("removeContainer").filter((c) => c.args[0] === late || c.args[0] === orphan).length, 0);
    });

    it("true (the default): it is removed", async () => {
      const engine = new FakeEngine({ images: [IMAGE] });
      const orphan = await plantOrphan(engine);
      const r = await rig({}, { engine, workDir: await mkdtemp(path.join(tmpdir(), "berth-limits-unit-")) });
      const report = await r.cz.recover();
      // Recovery removes it, unless the events stream's replay from its opening showed the
      // orphan's creation first and the live path removed it (a second removal of a gone container is harmless).
      assert.equal(engine.containers.has(orphan), false);
      assert.ok(engine.calls("removeContainer").some((c) => c.args[0] === orphan));
      assert.ok(report.orphansRemoved <= 1);
    });
  });
});
