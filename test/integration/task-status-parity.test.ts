// Where Berth answered differently from Mesos' docker executor, against the real engine:
// TASK_RUNNING's container_status and inspect `data`; the TaskStatuses of terminations recovery
// decides and of adopted tasks; and --docker_kill_orphans=false leaving unknown labelled
// containers alone across a restart.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type Dockerode from "dockerode";
import { LaunchResult, type ContainerEvent } from "../../src/gen/berth/v1/containerizer_pb.js";
import { TaskState, TaskStatus_Reason, type TaskStatus } from "../../src/gen/mesos/v1/mesos_pb.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { ensureEngine, ensureTestImages, removeTestContainers, type TestImages } from "../support/engine.js";
import type { BerthClient } from "../harness/berth-client.js";
import { EventWitness, FaultAgent, withDeadline } from "../harness/fault-berth.js";
import { launchRequest, newId } from "../harness/launches.js";
import { useBerth } from "../harness/use-berth.js";
import { plantOrphan as plantOrphanIn } from "../harness/engine-leftovers.js";

const taskStatusOf = (e: ContainerEvent): TaskStatus | undefined => (e.kind.case === "taskStatus" ? e.kind.value : undefined);
const isTaskRunning = (id: string) => (e: ContainerEvent) => e.containerId?.value === id && taskStatusOf(e)?.state === TaskState.TASK_RUNNING;

describe("TASK_RUNNING as Mesos' docker executor sends it, against a real engine", function () {
  this.timeout(120_000);
  const s = useBerth();

  it("carries container_status (container id, executor pid) and the engine's inspect JSON array in data", async () => {
    const id = newId("parity");
    const secret = `s3cret-${id}`;
    assert.equal((await s.t.client.launch(launchRequest(id, { image: s.images.busybox, shell: "sleep 60", taskId: id, environment: { API_TOKEN: secret } }))).result, LaunchResult.LAUNCHED);
    try {
      const events = await s.t.client.collect([id], isTaskRunning(id));
      const running = taskStatusOf(events.at(-1)!)!;
      const engineId = (await s.t.client.status(id)).engineId;
      const inspect = await s.docker.getContainer(engineId).inspect();
      assert.equal(running.containerStatus?.containerId?.value, id);
      assert.equal(running.containerStatus?.executorPid, inspect.State.Pid, "executor_pid is the container's init pid");
      // Network NONE: no address, so no NetworkInfo (Mesos' executor adds one only with an address).
      assert.deepEqual(running.containerStatus?.networkInfos, []);
      const data = JSON.parse(new TextDecoder().decode(running.data)) as Array<{ Id: string; State: { Running: boolean }; Config: { Labels: Record<string, string> } }>;
      assert.ok(Array.isArray(data) && data.length === 1, "docker inspect's JSON array with the one container");
      assert.equal(data[0]!.Id, engineId);
      assert.equal(data[0]!.State.Running, true);
      assert.equal(data[0]!.Config.Labels[LABEL_CONTAINER_ID], id);
      // The environment's names are there, its values never (a task's secrets stay out of events).
      const env = (data[0]!.Config as unknown as { Env: string[] }).Env;
      assert.ok(env.includes("API_TOKEN=***"), JSON.stringify(env));
      assert.ok(!new TextDecoder().decode(running.data).includes(secret));
    } finally {
      await s.t.client.destroy(id);
    }
  });
});

describe("task statuses and orphans across a SIGKILL and restart of berth serve", function () {
  this.timeout(180_000);
  let docker: Dockerode;
  let images: TestImages;
  const dirs: string[] = [];
  const agents: FaultAgent[] = [];
  const clients: BerthClient[] = [];
  const suffix = `${process.pid}-${Date.now().toString(36)}`;

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const a of agents) {
      await a.kill9();
      await removeTestContainers(docker, { [LABEL_AGENT_ID]: a.agentId });
    }
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  async function agentWith(name: string, flags: string[] = []): Promise<FaultAgent> {
    const dir = await mkdtemp(path.join(os.tmpdir(), `berth-${name}-`));
    dirs.push(dir);
    const agent = new FaultAgent(dir, `${name}-${suffix}`, ["--docker_stop_timeout", "1secs", "--docker_remove_delay", "0secs", ...flags]);
    agents.push(agent);
    return agent;
  }

  async function start(agent: FaultAgent): Promise<BerthClient> {
    const client = await agent.start();
    clients.push(client);
    return client;
  }

  const plantOrphan = (agentId: string, containerId: string, options?: { start: boolean }) => plantOrphanIn(docker, images.busybox, agentId, containerId, "task-status-parity", options);

  async function engineRunning(id: string): Promise<boolean | undefined> {
    try {
      return (await docker.getContainer(id).inspect()).State.Running;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
  }

  it("an adopted task's Watch snapshot holds its TASK_RUNNING; a vanished one ends TASK_LOST with its TaskStatus", async () => {
    const agent = await agentWith("parity-restart");
    const first = await start(agent);
    const adopted = "parity-adopted";
    const vanished = "parity-vanished";
    const witness = new EventWitness(first);
    for (const id of [adopted, vanished]) assert.equal((await first.launch(launchRequest(id, { image: images.busybox, shell: "sleep 300", taskId: id }))).result, LaunchResult.LAUNCHED);
    for (const id of [adopted, vanished]) await withDeadline(witness.until(isTaskRunning(id)), 60_000, `TASK_RUNNING of '${id}'`);
    witness.close();
    const engineIds = new Map((await first.containers()).containers.map((c) => [c.containerId!.value, c.engineId]));
    await agent.kill9();
    // Gone from the engine while Berth was down: its fate is unknowable.
    await docker.getContainer(engineIds.get(vanished)!).remove({ force: true });

    const second = await start(agent);
    const snapshot = await second.collect([adopted], (e) => !e.snapshot || isTaskRunning(adopted)(e));
    const running = snapshot.at(-1)!;
    assert.ok(running.snapshot && isTaskRunning(adopted)(running), `the snapshot holds TASK_RUNNING: ${snapshot.map((e) => e.kind.case).join(",")}`);
    const status = taskStatusOf(running)!;
    assert.equal(status.containerStatus?.containerId?.value, adopted);
    assert.equal(JSON.parse(new TextDecoder().decode(status.data))[0].Id, engineIds.get(adopted), "with the engine's inspect");

    const lost = await second.collect([vanished]);
    const statuses = lost.flatMap((e) => (taskStatusOf(e) ? [taskStatusOf(e)!] : []));
    assert.equal(statuses.at(-1)?.state, TaskState.TASK_LOST, `statuses: ${statuses.map((x) => TaskState[x.state]).join(",")}`);
    assert.equal(statuses.at(-1)?.reason, TaskStatus_Reason.AGENT_RESTARTED);
    assert.ok(lost.some((e) => e.kind.case === "termination"));
    await second.destroy(adopted);
  });

  it("--docker_kill_orphans=false: a labelled container without a record survives the restart (and is logged)", async () => {
    const agent = await agentWith("orphans-kept", ["--docker_kill_orphans=false"]);
    await start(agent);
    await agent.kill9();
    const orphan = await plantOrphan(agent.agentId, "never-launched-here");
    const client = await start(agent);
    assert.equal(await engineRunning(orphan), true, "left alone by recovery");
    // One created while Berth serves is left alone too (a default Berth removes it on its `create`
    // event). The events stream is ordered: once a later container's exit was seen, so was that.
    const late = await plantOrphan(agent.agentId, "created-while-serving", { start: false });
    const probe = "orphans-kept-probe";
    assert.equal((await client.launch(launchRequest(probe, { image: images.busybox, shell: "exit 0", taskId: probe }))).result, LaunchResult.LAUNCHED);
    assert.equal((await client.wait(probe)).termination?.containerTermination?.state, TaskState.TASK_FINISHED);
    assert.equal(await engineRunning(late), false, "still there, never started");
    const line = agent.current!.stderr.split("\n").find((l) => l.includes(orphan) && l.includes("--docker_kill_orphans=false"));
    assert.ok(line, "recovery logs what it leaves alone");
    const done = agent.current!.stderr.split("\n").find((l) => l.includes('"recovery done"'))!;
    assert.equal(JSON.parse(done).orphansKept, 1);
    assert.equal(JSON.parse(done).orphansRemoved, 0);
  });

  it("--docker_kill_orphans=true (the default): the same container is removed by recovery", async () => {
    const agent = await agentWith("orphans-killed");
    await start(agent);
    await agent.kill9();
    const orphan = await plantOrphan(agent.agentId, "never-launched-here");
    await start(agent);
    assert.equal(await engineRunning(orphan), undefined, "removed by recovery");
  });
});
