import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import type Dockerode from "dockerode";
import { LaunchResult, State, type Termination } from "../../src/gen/berth/v1/containerizer_pb.js";
import { TaskState } from "../../src/gen/mesos/v1/mesos_pb.js";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import { ensureEngine, ensureTestImages, REGISTRY, registryAnswers, removeTestContainers, type TestImages } from "../support/engine.js";
import type { BerthClient } from "../harness/berth-client.js";
import { enginePing, ensureEngineRunning, pidsOf, pollUntil, startEngine, stopEngine } from "../harness/engine-control.js";
import { describeTermination, EventWitness, FaultAgent, grpcCode, healthCheck, withDeadline } from "../harness/fault-berth.js";
import { launchRequest } from "../harness/launches.js";

/** Ignores SIGTERM as PID 1: the engine's shutdown has to SIGKILL it after its stop timeout. */
const STUBBORN = "sleep 300";
/** Ends with its own exit code on SIGTERM, within a second. */
const trapping = (code: number) => `trap "exit ${code}" TERM; while :; do sleep 1; done`;

/** Resolves with the call's gRPC error code; fails if the call succeeds. */
async function failureCode(call: Promise<unknown>, what: string): Promise<number | undefined> {
  try {
    await call;
  } catch (err) {
    return grpcCode(err);
  }
  assert.fail(`${what} succeeded while the engine was down`);
}

describe("the Docker engine restarting under a serving berth", function () {
  this.timeout(300_000);
  let docker: Dockerode;
  let images: TestImages;
  let workDir: string;
  let agent: FaultAgent;
  let client: BerthClient;
  let witness: EventWitness;
  let registryPids: number[];
  const agentId = `fault-engine-${process.pid}-${Date.now().toString(36)}`;

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
    registryPids = await pidsOf("docker-registry");
    assert.ok(await registryAnswers(), `the registry at ${REGISTRY} answers before any restart`);
    workDir = await mkdtemp(path.join(os.tmpdir(), "berth-fault-engine-"));
    agent = new FaultAgent(workDir, agentId, ["--docker_stop_timeout", "1secs", "--launch_timeout", "30secs"]);
    client = await agent.start();
    witness = new EventWitness(client);
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed" && agent) console.log(`---- berth stderr (last lines) ----\n${agent.stderrTail(60)}`);
  });

  after(async () => {
    // Whatever happened, later tests in this process need the engine up and healthy.
    agent?.resume();
    await ensureEngineRunning();
    witness?.close();
    client?.close();
    await agent?.kill9();
    docker = await ensureEngine();
    await removeTestContainers(docker, { [LABEL_AGENT_ID]: agentId });
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  /** Launches each (id → shell) and waits until all run; returns their engine ids. */
  async function launchRunning(shells: Record<string, string>): Promise<Map<string, string>> {
    for (const [id, shell] of Object.entries(shells)) {
      const r = await client.launch(launchRequest(id, { image: images.busybox, shell, taskId: id }));
      assert.equal(r.result, LaunchResult.LAUNCHED, `Launch '${id}'`);
    }
    for (const id of Object.keys(shells)) {
      await withDeadline(
        witness.until((e) => e.containerId?.value === id && e.kind.case === "stateChanged" && e.kind.value.state === State.RUNNING),
        60_000,
        `'${id}' reaching RUNNING`,
      );
    }
    const summaries = (await client.containers()).containers;
    return new Map(Object.keys(shells).map((id) => [id, summaries.find((s) => s.containerId?.value === id)!.engineId]));
  }

  /** While the engine is down: health NOT_SERVING, Launch UNAVAILABLE, engine-free calls still answer. */
  async function checkOutage(): Promise<void> {
    await pollUntil(async () => (await healthCheck(agent.address)) === "NOT_SERVING", 30_000, "berth's health is NOT_SERVING");
    const id = `er-during-outage-${Date.now().toString(36)}`;
    assert.equal(await failureCode(client.launch(launchRequest(id, { image: images.busybox, shell: "exit 0" })), "Launch"), status.UNAVAILABLE, "Launch answers UNAVAILABLE");
    await client.containers();
  }

  /** After the restart: SERVING, every container's Wait answered, none left in the engine. */
  async function fatesAfterRestart(ids: string[]): Promise<Map<string, Termination>> {
    assert.ok(await enginePing(), "the engine answers again");
    await pollUntil(async () => (await healthCheck(agent.address)) === "SERVING", 30_000, "berth's health is SERVING again");
    const fates = new Map<string, Termination>();
    for (const id of ids) {
      fates.set(id, (await withDeadline(client.wait(id, { deadline: Date.now() + 60_000 }), 65_000, `Wait '${id}' after the restart`)).termination!);
    }
    const filters = { label: [`${LABEL_AGENT_ID}=${agentId}`] };
    await pollUntil(async () => (await docker.listContainers({ all: true, filters })).length === 0, 20_000, "no engine container of the agent is left").catch(
      async (err: Error) => {
        const left = await docker.listContainers({ all: true, filters });
        assert.fail(`${err.message}; left: ${left.map((r) => `${r.Id.slice(0, 12)} ${r.Labels["berth.container_id"]} ${r.State}`).join(", ")}`);
      },
    );
    return fates;
  }

  async function launchWorks(id: string): Promise<void> {
    assert.equal((await client.launch(launchRequest(id, { image: images.busybox, shell: "exit 0", taskId: id }))).result, LaunchResult.LAUNCHED);
    const t = (await client.wait(id, { deadline: Date.now() + 60_000 })).termination!;
    assert.equal(t.containerTermination?.state, TaskState.TASK_FINISHED, describeTermination(t));
  }

  it("engine stopped with a destroy racing its shutdown: every fate reported, NOT_SERVING then SERVING, launches work again", async () => {
    const ids = { stubborn: "er1-stubborn", trapper: "er1-trap-7", doomed: "er1-destroyed" };
    await launchRunning({ [ids.stubborn]: STUBBORN, [ids.trapper]: trapping(7), [ids.doomed]: trapping(9) });
    assert.equal(await healthCheck(agent.address), "SERVING");
    // A Wait opened before the outage must be answered after it.
    const earlyWait = client.wait(ids.stubborn, { deadline: Date.now() + 240_000 });

    const stopping = stopEngine();
    // Destroy while the engine shuts down: answered with the termination, or UNAVAILABLE and finished later.
    const destroy = client.destroy(ids.doomed, { deadline: Date.now() + 60_000 }).then(
      (r) => r.termination,
      (err) => grpcCode(err),
    );
    try {
      await stopping;
      const answer = await destroy;
      assert.ok(typeof answer !== "number" || answer === status.UNAVAILABLE, `Destroy during the shutdown answered code ${answer}`);
      await checkOutage();
    } finally {
      await startEngine();
    }
    const fates = await fatesAfterRestart(Object.values(ids));
    const all = [...fates].map(([id, t]) => `${id}: ${describeTermination(t)}`).join("\n");
    const early = (await earlyWait).termination!;
    assert.equal(describeTermination(early), describeTermination(fates.get(ids.stubborn)), "the Wait opened before the outage got the same termination");
    assert.equal(fates.get(ids.stubborn)!.containerTermination?.state, TaskState.TASK_FAILED, all);
    assert.equal(fates.get(ids.stubborn)!.signal, 9, `the engine's shutdown SIGKILLed the stubborn one\n${all}`);
    assert.equal(fates.get(ids.trapper)!.exitCode, 7, `the trapping container's own exit code\n${all}`);
    assert.equal(fates.get(ids.doomed)!.containerTermination?.state, TaskState.TASK_KILLED, `the destroyed one ends KILLED\n${all}`);
    await launchWorks("er1-after");
  });

  it("engine stopped while berth is paused (its exits read only once the engine is gone): nothing left in the engine", async () => {
    const ids = { stubborn: "er2-stubborn", trapper: "er2-trap-5" };
    await launchRunning({ [ids.stubborn]: STUBBORN, [ids.trapper]: trapping(5) });
    agent.pause();
    try {
      await stopEngine();
    } finally {
      agent.resume();
    }
    try {
      await checkOutage();
    } finally {
      await startEngine();
    }
    const fates = await fatesAfterRestart(Object.values(ids));
    const all = [...fates].map(([id, t]) => `${id}: ${describeTermination(t)}`).join("\n");
    assert.equal(fates.get(ids.stubborn)!.signal, 9, all);
    assert.equal(fates.get(ids.trapper)!.exitCode, 5, all);
    await launchWorks("er2-after");
  });

  it("the registry was never touched by the engine restarts", async () => {
    assert.deepEqual(await pidsOf("docker-registry"), registryPids, "the registry process is the same");
    assert.ok(await registryAnswers(), `the registry at ${REGISTRY} still answers`);
  });
});
