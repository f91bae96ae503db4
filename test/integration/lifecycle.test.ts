import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import type Dockerode from "dockerode";
import { State, type ContainerEvent } from "../../src/gen/berth/v1/containerizer_pb.js";
import { isFieldSet } from "@bufbuild/protobuf";
import { TaskState, TaskStatusSchema, TaskStatus_Reason, type TaskStatus } from "../../src/gen/mesos/v1/mesos_pb.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { removeImage, type TestImages } from "../support/engine.js";
import { launchRequest, newId } from "../harness/launches.js";
import type { TestBerth } from "../harness/test-berth.js";
import { sequenceMark } from "../harness/berth-client.js";
import { pollUntil } from "../harness/engine-control.js";
import { useBerth } from "../harness/use-berth.js";

function states(events: ContainerEvent[]): State[] {
  return events.filter((e) => e.kind.case === "stateChanged" && !e.snapshot).map((e) => (e.kind.value as { state: State }).state);
}

async function engineContainers(docker: Dockerode, agentId: string, containerId: string) {
  return docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${agentId}`, `${LABEL_CONTAINER_ID}=${containerId}`] } });
}

describe("lifecycle against a real engine", function () {
  this.timeout(120_000);
  const suite = useBerth();
  let docker: Dockerode;
  let images: TestImages;
  let t: TestBerth;
  beforeEach(() => ({ docker, images, t } = suite));

  it("a task exiting 0 goes FETCHING → PULLING → MOUNTING → RUNNING → TERMINATED with TASK_FINISHED, output in the sandbox", async () => {
    await removeImage(docker, images.busybox);
    const id = newId("ok");
    const launched = await t.client.launch(launchRequest(id, { image: images.busybox, shell: "echo hello-out; echo hello-err >&2", taskId: `task-${id}` }));
    assert.equal(launched.result, 1);
    const { termination } = await t.client.wait(id);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_FINISHED);
    assert.equal(termination?.containerTermination?.status, 0);
    assert.equal(termination?.exitCode, 0);
    assert.equal(await readFile(path.join(launched.sandboxDirectory, "stdout"), "utf8"), "hello-out\n");
    assert.equal(await readFile(path.join(launched.sandboxDirectory, "stderr"), "utf8"), "hello-err\n");
    // Removed at once (remove delay 0): right after the termination is published.
    const deadline = Date.now() + 10_000;
    while ((await engineContainers(docker, t.berth.agentId, id)).length > 0) {
      assert.ok(Date.now() < deadline, "container removed after its termination");
      await new Promise((r) => setTimeout(r, 20));
    }
    const byId = await t.client.collect([id]);
    const mine = byId.filter((e) => e.containerId?.value === id);
    assert.ok(mine.every((e) => e.snapshot), "terminated container: the watch is the snapshot and ends");
    assert.equal(mine.at(-1)?.kind.case, "termination");
  });

  it("watch shows every state in order, pull progress, task statuses, and the termination last", async () => {
    await removeImage(docker, images.busybox);
    const id = newId("order");
    // Resumed from the current sequence: every later event comes, however late the stream opens.
    const events = t.client.collect([], (e) => e.containerId?.value === id && e.kind.case === "termination", sequenceMark(t.berth));
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exit 0", taskId: `task-${id}` }));
    const all = (await events).filter((e) => e.containerId?.value === id);
    assert.deepEqual(states(all), [State.FETCHING, State.PULLING, State.MOUNTING, State.RUNNING, State.TERMINATED]);
    assert.ok(all.some((e) => e.kind.case === "pullProgress"), "pull progress published while PULLING");
    const tasks = all.filter((e) => e.kind.case === "taskStatus").map((e) => (e.kind.value as { state: TaskState }).state);
    assert.deepEqual(tasks, [TaskState.TASK_STARTING, TaskState.TASK_RUNNING, TaskState.TASK_FINISHED]);
    const finished = all.filter((e) => e.kind.case === "taskStatus").at(-1)!.kind.value as TaskStatus;
    assert.equal(isFieldSet(finished, TaskStatusSchema.field.reason), false, "a plain exit carries no reason");
    assert.equal(all.at(-1)?.kind.case, "termination");
    for (let i = 1; i < all.length; i++) assert.ok(all[i]!.sequence > all[i - 1]!.sequence, "sequence strictly increases");
  });

  it("exit code 3 is TASK_FAILED with raw wait status 768", async () => {
    const id = newId("exit3");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exit 3" }));
    const { termination } = await t.client.wait(id);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_FAILED);
    assert.equal(termination?.containerTermination?.status, 3 << 8);
    assert.equal(termination?.exitCode, 3);
    assert.match(termination?.containerTermination?.message ?? "", /exited with status 3/);
  });

  it("a death by SIGKILL from outside Berth reports raw status 9, signal 9 and TASK_FAILED", async () => {
    const id = newId("sig");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exec sleep 300" }));
    await t.client.collect([id], (e) => e.kind.case === "stateChanged" && (e.kind.value as { state: State }).state === State.RUNNING);
    const { engineId } = await t.client.status(id);
    await docker.getContainer(engineId).kill({ signal: "SIGKILL" });
    const { termination } = await t.client.wait(id);
    assert.equal(termination?.containerTermination?.status, 9);
    assert.equal(termination?.signal, 9);
    assert.equal(termination?.exitCode, undefined);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_FAILED);
    assert.match(termination?.containerTermination?.message ?? "", /terminated by signal 9/);
  });

  it("a child's signal death passed on by the shell (exit 128+N) is reported as that signal", async () => {
    const id = newId("sig2");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "sh -c 'kill -TERM $$'; exit $?" }));
    const { termination } = await t.client.wait(id);
    assert.equal(termination?.containerTermination?.status, 15);
    assert.equal(termination?.signal, 15);
  });

  it("destroy during RUNNING kills with SIGTERM (the task sees it, signal 15), reports TASK_KILLED, removes the container; a second destroy answers the same", async () => {
    const id = newId("kill");
    // The shell is PID 1, which no signal it handles can kill: it records the TERM in its sandbox
    // and passes it on as a shell does (exit 128+15), which the engine reports as 143.
    const launched = await t.client.launch(
      launchRequest(id, { image: images.busybox, shell: `trap 'echo got-TERM > "$MESOS_SANDBOX/term"; exit 143' TERM; echo trapped; sleep 300 & wait`, taskId: `task-${id}` }),
    );
    // The trap is set once "trapped" is written (RUNNING alone does not say the shell got that far).
    await pollUntil(async () => (await readFile(path.join(launched.sandboxDirectory, "stdout"), "utf8").catch(() => "")) === "trapped\n", 30_000, "the task set its TERM trap");
    const [first, second] = await Promise.all([t.client.destroy(id), t.client.destroy(id)]);
    assert.equal(first.termination?.containerTermination?.state, TaskState.TASK_KILLED);
    assert.equal(await readFile(path.join(launched.sandboxDirectory, "term"), "utf8"), "got-TERM\n", "the task received SIGTERM");
    assert.equal(first.termination?.signal, 15, `killed by SIGTERM, not SIGKILL: ${first.termination?.containerTermination?.message}`);
    assert.equal(first.termination?.containerTermination?.status, 15);
    assert.deepEqual(second.termination, first.termination);
    const again = await t.client.destroy(id);
    assert.deepEqual(again.termination, first.termination);
    assert.deepEqual(await engineContainers(docker, t.berth.agentId, id), []);
    assert.equal((await t.client.wait(id)).termination?.containerTermination?.state, TaskState.TASK_KILLED);
  });

  it("a container that ignores SIGTERM gets it first, then is SIGKILLed after the task's kill_policy grace period", async () => {
    const id = newId("grace");
    const launched = await t.client.launch(
      launchRequest(id, { image: images.busybox, shell: `trap 'echo got-TERM > "$MESOS_SANDBOX/term"' TERM; echo ready; while true; do sleep 0.1; done`, taskId: `task-${id}`, gracePeriodMs: 2000 }),
    );
    await pollUntil(async () => (await readFile(path.join(launched.sandboxDirectory, "stdout"), "utf8").catch(() => "")) === "ready\n", 30_000, "the task set its TERM trap");
    const { termination } = await t.client.destroy(id);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_KILLED);
    assert.equal(await readFile(path.join(launched.sandboxDirectory, "term"), "utf8"), "got-TERM\n", "SIGTERM came first");
    assert.equal(termination?.signal, 9);
  });

  it("an OOM kill reports REASON_CONTAINER_LIMITATION_MEMORY", async () => {
    const id = newId("oom");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "tail /dev/zero", memMb: 32 }));
    const { termination } = await t.client.wait(id);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_FAILED);
    assert.equal(termination?.containerTermination?.reason, TaskStatus_Reason.CONTAINER_LIMITATION_MEMORY);
  });

  it("environment values with '=' and newlines arrive intact; MESOS_SANDBOX is set and mounted", async () => {
    const id = newId("env");
    const value = "a=b=c\nsecond line";
    const launched = await t.client.launch(
      launchRequest(id, {
        image: images.busybox,
        shell: 'printf "%s" "$TRICKY" > "$MESOS_SANDBOX/tricky"; echo "$MESOS_SANDBOX" > "$MESOS_SANDBOX/where"',
        environment: { TRICKY: value },
      }),
    );
    await t.client.wait(id);
    assert.equal(await readFile(path.join(launched.sandboxDirectory, "tricky"), "utf8"), value);
    assert.equal(await readFile(path.join(launched.sandboxDirectory, "where"), "utf8"), "/mnt/mesos/sandbox\n");
  });

  it("status reports the init pid while running; containers lists it with state, image and engine id", async () => {
    const id = newId("status");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exec sleep 300" }));
    await t.client.collect([id], (e) => e.kind.case === "stateChanged" && (e.kind.value as { state: State }).state === State.RUNNING);
    const status = await t.client.status(id);
    assert.equal(status.state, State.RUNNING);
    assert.ok((status.containerStatus?.executorPid ?? 0) > 0);
    const list = await t.client.containers();
    const row = list.containers.find((c) => c.containerId?.value === id);
    assert.equal(row?.state, State.RUNNING);
    assert.equal(row?.image, images.busybox);
    assert.equal(row?.engineId, status.engineId);
    await t.client.destroy(id);
  });
});
