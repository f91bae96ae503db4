// TaskInfo.max_completion_time against the real engine: the task is killed when it runs past it,
// ends TASK_FAILED with REASON_MAX_COMPLETION_TIME_REACHED, and the deadline survives a SIGKILL
// and restart of `berth serve`.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { LaunchResult, State, type LaunchRequestSchema, type ContainerEvent } from "../../src/gen/berth/v1/containerizer_pb.js";
import { TaskState, TaskStatus_Reason } from "../../src/gen/mesos/v1/mesos_pb.js";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import type Dockerode from "dockerode";
import { ensureEngine, ensureTestImages, removeTestContainers, type TestImages } from "../support/engine.js";
import type { BerthClient } from "../harness/berth-client.js";
import { describeTermination, EventWitness, FaultAgent, withDeadline } from "../harness/fault-berth.js";
import { launchRequest, newId } from "../harness/launches.js";
import { useBerth } from "../harness/use-berth.js";

/** A `sleep 60` task that may run `maxMs` at most. */
function deadlineLaunch(id: string, image: string, maxNs: bigint): MessageInitShape<typeof LaunchRequestSchema> {
  const req = launchRequest(id, { image, shell: "sleep 60", taskId: id });
  (req.containerConfig!.taskInfo as { maxCompletionTime?: unknown }).maxCompletionTime = { nanoseconds: maxNs };
  return req;
}

const isTermination = (id: string) => (e: ContainerEvent) => e.containerId?.value === id && e.kind.case === "termination";

function terminalTaskStatus(events: ContainerEvent[], id: string) {
  const statuses = events.flatMap((e) => (e.containerId?.value === id && e.kind.case === "taskStatus" ? [e.kind.value] : []));
  return statuses.at(-1);
}

describe("max_completion_time against a real engine", function () {
  this.timeout(120_000);
  const s = useBerth();

  it("a task past its max_completion_time is killed: TASK_FAILED, REASON_MAX_COMPLETION_TIME_REACHED, its engine container removed", async () => {
    const id = newId("deadline");
    assert.equal((await s.t.client.launch(deadlineLaunch(id, s.images.busybox, 1_000_000_000n))).result, LaunchResult.LAUNCHED);
    const events = await s.t.client.collect([id], isTermination(id));
    const last = events.at(-1)!;
    assert.ok(last.kind.case === "termination");
    const termination = last.kind.value;
    assert.equal(termination.containerTermination?.state, TaskState.TASK_FAILED, describeTermination(termination));
    assert.equal(termination.containerTermination?.reason, TaskStatus_Reason.MAX_COMPLETION_TIME_REACHED);
    assert.match(termination.containerTermination!.message, /max_completion_time of 1s/);
    assert.equal(termination.signal, 9, "killed with SIGKILL, as Mesos' docker executor kills it");
    const final = terminalTaskStatus(events, id);
    assert.equal(final?.state, TaskState.TASK_FAILED);
    assert.equal(final?.reason, TaskStatus_Reason.MAX_COMPLETION_TIME_REACHED);
    const ran = events.find((e) => e.kind.case === "stateChanged" && e.kind.value.state === State.RUNNING);
    assert.ok(ran, "it ran before it was killed");
    const engineId = (await s.t.client.status(id)).engineId;
    // Destroy of a terminated container answers once its engine container is removed.
    assert.equal((await s.t.client.destroy(id)).termination?.containerTermination?.reason, TaskStatus_Reason.MAX_COMPLETION_TIME_REACHED);
    const left = await s.docker.listContainers({ all: true, filters: { label: [`berth.container_id=${id}`] } });
    assert.deepEqual(left.map((c) => c.Id), [], `no engine container left (engine id '${engineId}')`);
  });

  it("a negative max_completion_time is INVALID_ARGUMENT naming the field, and nothing is launched", async () => {
    const id = newId("negative");
    await assert.rejects(s.t.client.launch(deadlineLaunch(id, s.images.busybox, -5n)), (err: ServiceError) => {
      assert.equal(err.code, status.INVALID_ARGUMENT);
      assert.match(err.details, /task_info\.max_completion_time\.nanoseconds -5 is negative/);
      return true;
    });
    assert.equal((await s.t.client.containers()).containers.some((c) => c.containerId?.value === id), false);
    const left = await s.docker.listContainers({ all: true, filters: { label: [`berth.container_id=${id}`] } });
    assert.equal(left.length, 0);
  });
});

describe("max_completion_time across a SIGKILL and restart of berth serve", function () {
  this.timeout(120_000);
  const s = {} as { docker: Dockerode; images: TestImages };
  let workDir: string;
  let agent: FaultAgent;
  const clients: BerthClient[] = [];
  const agentId = `deadline-restart-${process.pid}-${Date.now().toString(36)}`;

  before(async () => {
    s.docker = await ensureEngine();
    s.images = await ensureTestImages(s.docker);
    workDir = await mkdtemp(path.join(os.tmpdir(), "berth-deadline-restart-"));
    agent = new FaultAgent(workDir, agentId, ["--docker_stop_timeout", "1secs", "--docker_remove_delay", "0secs"]);
  });

  after(async () => {
    for (const c of clients) c.close();
    await agent?.kill9();
    if (s.docker) await removeTestContainers(s.docker, { [LABEL_AGENT_ID]: agentId });
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("the deadline, counted from the start, is kept by the restarted berth and still kills the task", async () => {
    const first = await agent.start();
    clients.push(first);
    const id = "deadline-across-restart";
    const witness = new EventWitness(first);
    assert.equal((await first.launch(deadlineLaunch(id, s.images.busybox, 3_000_000_000n))).result, LaunchResult.LAUNCHED);
    await withDeadline(
      witness.until((e) => e.containerId?.value === id && e.kind.case === "taskStatus" && e.kind.value.state === TaskState.TASK_RUNNING),
      60_000,
      "TASK_RUNNING",
    );
    witness.close();
    // Killed before the deadline: the first berth never fires it.
    await agent.kill9();
    const second = await agent.start();
    clients.push(second);
    const after = new EventWitness(second);
    try {
      await withDeadline(after.until(isTermination(id)), 60_000, "the termination after the restart");
      const t = after.terminations.get(id);
      assert.equal(t?.containerTermination?.state, TaskState.TASK_FAILED, describeTermination(t));
      assert.equal(t?.containerTermination?.reason, TaskStatus_Reason.MAX_COMPLETION_TIME_REACHED, describeTermination(t));
      const final = terminalTaskStatus(after.events, id);
      assert.equal(final?.reason, TaskStatus_Reason.MAX_COMPLETION_TIME_REACHED);
    } finally {
      after.close();
    }
  });
});
