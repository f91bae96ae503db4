import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type Dockerode from "dockerode";
import { LaunchResult, State } from "../../src/gen/berth/v1/containerizer_pb.js";
import { TaskState } from "../../src/gen/mesos/v1/mesos_pb.js";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import { ensureEngine, ensureTestImages, removeTestContainers, type TestImages } from "../support/engine.js";
import type { BerthClient } from "../harness/berth-client.js";
import { pollUntil } from "../harness/engine-control.js";
import { describeTermination, EventWitness, FaultAgent, recoveryTotals, withDeadline } from "../harness/fault-berth.js";
import { launchRequest } from "../harness/launches.js";
import { plantOrphan as plantOrphanIn } from "../harness/engine-leftovers.js";

describe("two berth agents on one engine, one killed with SIGKILL and restarted", function () {
  this.timeout(180_000);
  let docker: Dockerode;
  let images: TestImages;
  const dirs: string[] = [];
  const agents: FaultAgent[] = [];
  const clients: BerthClient[] = [];
  const suffix = `${process.pid}-${Date.now().toString(36)}`;
  const idA = `fault-two-a-${suffix}`;
  const idB = `fault-two-b-${suffix}`;
  // An agent no berth serves: its containers are nobody's here to remove.
  const idC = `fault-two-c-${suffix}`;

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const a of agents) await a.kill9();
    for (const id of [idA, idB, idC]) await removeTestContainers(docker, { [LABEL_AGENT_ID]: id });
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  async function startAgent(agentId: string): Promise<{ agent: FaultAgent; client: BerthClient }> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "berth-fault-two-"));
    dirs.push(dir);
    const agent = new FaultAgent(dir, agentId, ["--docker_stop_timeout", "1secs"]);
    agents.push(agent);
    const client = await agent.start();
    clients.push(client);
    return { agent, client };
  }

  async function launchSleepers(client: BerthClient, ids: string[]): Promise<Map<string, string>> {
    const witness = new EventWitness(client);
    try {
      for (const id of ids) assert.equal((await client.launch(launchRequest(id, { image: images.busybox, shell: "sleep 300", taskId: id }))).result, LaunchResult.LAUNCHED);
      for (const id of ids) {
        await withDeadline(
          witness.until((e) => e.containerId?.value === id && e.kind.case === "stateChanged" && e.kind.value.state === State.RUNNING),
          60_000,
          `'${id}' reaching RUNNING`,
        );
      }
    } finally {
      witness.close();
    }
    return engineIds(client);
  }

  async function engineIds(client: BerthClient): Promise<Map<string, string>> {
    return new Map((await client.containers()).containers.map((s) => [s.containerId!.value, s.engineId]));
  }

  const plantOrphan = (agentId: string, containerId: string, options?: { start: boolean }) => plantOrphanIn(docker, images.busybox, agentId, containerId, "fault-two-agents", options);

  async function engineState(id: string): Promise<{ running: boolean } | undefined> {
    try {
      const info = await docker.getContainer(id).inspect();
      return { running: info.State.Running };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
  }

  it("the restarted agent adopts its own and removes its orphan; the other agent's containers, orphan and Waits are untouched", async () => {
    const a = await startAgent(idA);
    const b = await startAgent(idB);
    const aIds = ["two-a-1", "two-a-2"];
    const bIds = ["two-b-1", "two-b-2"];
    const aEngine = await launchSleepers(a.client, aIds);
    const bEngine = await launchSleepers(b.client, bIds);
    // B's Wait stays open across A's death and restart.
    const bWait = b.client.wait(bIds[0]!, { deadline: Date.now() + 120_000 });

    await a.agent.kill9();
    const orphanA = await plantOrphan(idA, "two-orphan-a");
    // Not started: B, serving, removes it as soon as the engine reports its creation (a start would race that).
    const orphanB = await plantOrphan(idB, "two-orphan-b", { start: false });
    const orphanC = await plantOrphan(idC, "two-orphan-c");

    const aClient = await a.agent.start();
    clients.push(aClient);
    const totals = recoveryTotals(a.agent);
    assert.equal(totals.adopted, 2, `A adopted its two running containers: ${JSON.stringify(totals)}`);
    assert.equal(totals.orphansRemoved, 1, `A removed exactly one orphan: ${JSON.stringify(totals)}`);

    // A: its own, adopted with the same engine ids, running.
    const aAfter = new Map((await aClient.containers()).containers.map((s) => [s.containerId!.value, s]));
    for (const id of aIds) {
      assert.equal(aAfter.get(id)?.state, State.RUNNING, `A's '${id}' is RUNNING after the restart`);
      assert.equal(aAfter.get(id)?.engineId, aEngine.get(id), `A's '${id}' keeps its engine container`);
      assert.deepEqual(await engineState(aEngine.get(id)!), { running: true });
    }
    assert.ok(!aAfter.has("two-orphan-a"), "the orphan is not taken for a container of A");
    await pollUntil(async () => (await engineState(orphanA)) === undefined, 15_000, "A's orphan is gone from the engine");

    // B: untouched, everything still running with the same engine ids, its orphan left alone.
    assert.deepEqual(await engineIds(b.client), bEngine, "B's containers keep their engine ids");
    for (const id of bIds) assert.deepEqual(await engineState(bEngine.get(id)!), { running: true }, `B's '${id}' still runs`);
    assert.deepEqual(await engineState(orphanC), { running: true }, "a container of another agent is not A's to remove");
    // B, serving, removes the unowned container carrying its own label as soon as the engine reports it.
    await pollUntil(async () => (await engineState(orphanB)) === undefined, 15_000, "B removed the container with its label that none of its launches owns");
    assert.ok(b.agent.current?.running, "B's berth kept serving");

    // B's Wait opened before A's death is answered when B destroys the container.
    const destroyed = (await b.client.destroy(bIds[0]!, { deadline: Date.now() + 60_000 })).termination!;
    assert.equal(destroyed.containerTermination?.state, TaskState.TASK_KILLED, describeTermination(destroyed));
    const waited = (await withDeadline(bWait, 10_000, "B's Wait opened before A's kill")).termination!;
    assert.equal(describeTermination(waited), describeTermination(destroyed));

    // A's adopted containers are A's to destroy and wait on.
    for (const id of aIds) {
      const t = (await aClient.destroy(id, { deadline: Date.now() + 60_000 })).termination!;
      assert.equal(t.containerTermination?.state, TaskState.TASK_KILLED, `${id}: ${describeTermination(t)}`);
      assert.equal((await aClient.wait(id)).termination?.containerTermination?.state, TaskState.TASK_KILLED);
    }
    await pollUntil(
      async () => (await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${idA}`] } })).length === 0,
      15_000,
      "no engine container of A is left",
    );
    assert.deepEqual(await engineState(bEngine.get(bIds[1]!)!), { running: true }, "B's other container still runs");
  });
});
