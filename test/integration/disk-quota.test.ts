// The `disk` resource as Mesos' disk/du isolator enforces it, against the real engine: the task
// writes into its sandbox with dd from /dev/zero (bounded by count), Berth measures the sandbox
// every --container_disk_watch_interval, reports it in Usage, and with
// --enforce_container_disk_quota kills the container past its disk.
import assert from "node:assert/strict";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { LaunchResult, State, type ContainerEvent, type LaunchRequestSchema } from "../../src/gen/berth/v1/containerizer_pb.js";
import { TaskState, TaskStatus_Reason, Value_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { describeTermination } from "../harness/fault-berth.js";
import { pollUntil } from "../harness/engine-control.js";
import { launchRequest, newId } from "../harness/launches.js";
import { useBerth } from "../harness/use-berth.js";

const MiB = 1024 * 1024;

/** A task that writes `mib` MiB into its sandbox, then sleeps; its `disk` resource is `diskMb`. */
function writerLaunch(id: string, image: string, mib: number, diskMb: number): MessageInitShape<typeof LaunchRequestSchema> {
  const req = launchRequest(id, { image, shell: `dd if=/dev/zero of="$MESOS_SANDBOX/fill" bs=1048576 count=${mib} 2>/dev/null && touch "$MESOS_SANDBOX/written" && sleep 60`, taskId: id });
  req.containerConfig!.resources = [...(req.containerConfig!.resources ?? []), { name: "disk", type: Value_Type.SCALAR, scalar: { value: diskMb } }];
  return req;
}

const isTermination = (id: string) => (e: ContainerEvent) => e.containerId?.value === id && e.kind.case === "termination";

describe("disk quota (disk/du) enforced against a real engine", function () {
  this.timeout(120_000);
  const s = useBerth({ enforce_container_disk_quota: "true", container_disk_watch_interval: "100ms" });

  it("a task writing past its disk is killed: TASK_FAILED, REASON_CONTAINER_LIMITATION_DISK, limited_resources disk", async () => {
    const id = newId("disk-over");
    assert.equal((await s.t.client.launch(writerLaunch(id, s.images.busybox, 8, 2))).result, LaunchResult.LAUNCHED);
    const events = await s.t.client.collect([id], isTermination(id));
    const last = events.at(-1)!;
    assert.ok(last.kind.case === "termination");
    const t = last.kind.value;
    const ct = t.containerTermination!;
    assert.equal(ct.state, TaskState.TASK_FAILED, describeTermination(t));
    assert.equal(ct.reason, TaskStatus_Reason.CONTAINER_LIMITATION_DISK, describeTermination(t));
    assert.deepEqual(ct.limitedResources.map((r) => [r.name, r.scalar?.value]), [["disk", 2]]);
    assert.match(ct.message, /^Disk usage \([\d.]+ MiB\) exceeds quota: the sandbox outgrew its disk resource of 2 MB$/);
    const final = events.flatMap((e) => (e.kind.case === "taskStatus" ? [e.kind.value] : [])).at(-1);
    assert.equal(final?.state, TaskState.TASK_FAILED);
    assert.equal(final?.reason, TaskStatus_Reason.CONTAINER_LIMITATION_DISK);
  });

  it("a task within its disk runs on, and Usage reports disk_used_bytes and disk_limit_bytes", async () => {
    const id = newId("disk-within");
    assert.equal((await s.t.client.launch(writerLaunch(id, s.images.busybox, 1, 16))).result, LaunchResult.LAUNCHED);
    try {
      await pollUntil(async () => ((await s.t.client.usage(id).catch(() => undefined))?.statistics?.diskUsedBytes ?? 0n) >= BigInt(MiB), 30_000, "Usage reports the 1 MiB written");
      const usage = (await s.t.client.usage(id)).statistics!;
      assert.equal(usage.diskLimitBytes, BigInt(16 * MiB));
      assert.ok(usage.diskUsedBytes! < BigInt(16 * MiB));
      assert.equal((await s.t.client.status(id)).state, State.RUNNING);
    } finally {
      await s.t.client.destroy(id);
    }
  });
});

describe("disk usage without --enforce_container_disk_quota (the default)", function () {
  this.timeout(120_000);
  const s = useBerth({ container_disk_watch_interval: "100ms" });

  it("a sandbox past its disk is only reported in Usage; the task keeps running", async () => {
    const id = newId("disk-report");
    assert.equal((await s.t.client.launch(writerLaunch(id, s.images.busybox, 4, 1))).result, LaunchResult.LAUNCHED);
    try {
      await pollUntil(async () => ((await s.t.client.usage(id).catch(() => undefined))?.statistics?.diskUsedBytes ?? 0n) >= BigInt(4 * MiB), 30_000, "Usage reports the 4 MiB written");
      const usage = (await s.t.client.usage(id)).statistics!;
      assert.equal(usage.diskLimitBytes, BigInt(MiB));
      assert.ok(usage.diskUsedBytes! > usage.diskLimitBytes!, "over its disk");
      assert.equal((await s.t.client.status(id)).state, State.RUNNING, "not killed");
    } finally {
      const t = (await s.t.client.destroy(id)).termination!;
      assert.equal(t.containerTermination?.state, TaskState.TASK_KILLED, "ended by the Destroy, not by the quota");
    }
  });
});
