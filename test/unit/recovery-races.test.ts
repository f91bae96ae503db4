/**
 * An exit at any point of a recovery is seen (issue 10, "possible missed exit after a restart"),
 * forced with the fake engine: the container dies while recovery's calls are held, just after its
 * listing, or while the engine has answered the events subscription but not yet subscribed (the
 * real engine flushes its answer's headers before it subscribes: a `die` in between is lost unless
 * the stream asks for a replay with `since`).
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { mock } from "node:test";
import { create } from "@bufbuild/protobuf";
import { filter, firstValueFrom } from "rxjs";
import { pino } from "pino";
import { CheckpointStore } from "../../src/checkpoint/checkpoint-store.js";
import type { ContainerizerOptions, LaunchInput } from "../../src/containerizer/containerizer.js";
import type { EngineEvent } from "../../src/docker/engine-port.js";
import { EventMonitor } from "../../src/docker/event-monitor.js";
import { agentLabels } from "../../src/docker/names.js";
import { ContainerConfigSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import { TaskState } from "../../src/gen/mesos/v1/mesos_pb.js";
import { FakeEngine } from "../harness/fake-engine.js";
import { closeRig, FAKE_AGENT, fakeRig, type FakeRig } from "../harness/fake-rig.js";
import { launchRequest, newId, type LaunchOptions } from "../harness/launches.js";
import { pollUntil } from "../harness/engine-control.js";
import type { OutputRegistry } from "../../src/logger/live-output.js";

const IMAGE = "registry.invalid/fake/busybox:1";

interface Rig extends FakeRig {
  workDir: string;
}

const open: Rig[] = [];

/** A rig with checkpoints under <workDir>/meta; a second rig over the same dir and engine is a restart. */
async function rig(reuse?: { engine: FakeEngine; workDir: string }, options: Partial<ContainerizerOptions> = {}): Promise<Rig> {
  const engine = reuse?.engine ?? new FakeEngine({ images: [IMAGE] });
  const workDir = reuse?.workDir ?? (await mkdtemp(path.join(tmpdir(), "berth-recovery-races-")));
  const store = new CheckpointStore(path.join(workDir, "meta"));
  await store.init();
  const r = { ...(await fakeRig(engine, workDir, options, { checkpoints: store, log: pino({ level: "silent" }) })), workDir };
  open.push(r);
  return r;
}

/** Stops a rig as a killed Berth leaves things: containers keep running, nothing destroyed. */
async function crash(r: Rig): Promise<void> {
  open.splice(open.indexOf(r), 1);
  r.cz.shutdown();
  await r.monitor.stop();
}

function input(id: string, o: Partial<LaunchOptions> = {}): LaunchInput {
  const req = launchRequest(id, { image: IMAGE, taskId: `task-${id}`, ...o });
  return { containerId: id, nested: false, config: create(ContainerConfigSchema, req.containerConfig), environment: {} };
}

/** Launches on `r` and waits for RUNNING; the engine id. */
async function launchRunning(r: Rig, id: string): Promise<string> {
  assert.equal((await r.cz.launch(input(id))).result, "LAUNCHED");
  await firstValueFrom(r.cz.watch([id]).pipe(filter((e) => e.kind.type === "state" && e.kind.state === "RUNNING")));
  return (await r.cz.status(id)).engineId!;
}

/**
 * Makes the next events subscription behave as the real engine's: it answers first (the monitor is
 * connected) and subscribes only once `subscribe()` is called, replaying from `since` then.
 */
function answerBeforeSubscribing(engine: FakeEngine): { subscribe(): void } {
  const inner = engine.events.bind(engine);
  let subscribe!: () => void;
  const subscribed = new Promise<void>((resolve) => (subscribe = resolve));
  let used = false;
  engine.events = (labels, since, signal, onSubscribed) => {
    if (used) return inner(labels, since, signal, onSubscribed);
    used = true;
    return (async function* () {
      onSubscribed?.();
      await subscribed;
      yield* inner(labels, since, signal);
    })();
  };
  return { subscribe };
}

/** Runs `after(rows)` once the next listing has been answered, before recovery sees the rows. */
function afterListing(engine: FakeEngine, after: () => void): void {
  const inner = engine.listContainers.bind(engine);
  engine.listContainers = async (labels) => {
    engine.listContainers = inner;
    const rows = await inner(labels);
    after();
    return rows;
  };
}

describe("recovery races: an exit at any point of a recovery is seen (fake engine)", () => {
  afterEach(async () => {
    for (const r of open.splice(0)) await closeRig(r, r.workDir);
  });

  it("the first events stream asks for a replay from its opening: a die between the engine's answer and its subscription is delivered", async () => {
    const engine = new FakeEngine({ images: [IMAGE] });
    const late = answerBeforeSubscribing(engine);
    const monitor = new EventMonitor({ engine, labels: agentLabels(FAKE_AGENT), backoff: { initialMs: 2, maxMs: 10 } });
    const seen: EngineEvent[] = [];
    monitor.events$.subscribe((e) => seen.push(e));
    try {
      monitor.start();
      await firstValueFrom(monitor.connected$.pipe(filter(Boolean)));
      const labels = agentLabels(FAKE_AGENT);
      const id = await engine.createContainer({ name: "victim", Image: IMAGE, Labels: labels } as never);
      await engine.startContainer(id);
      engine.exit(id, 3);
      late.subscribe();
      // A later event marks the point by which the earlier ones, replayed, have come through.
      const markerSeen = firstValueFrom(monitor.events$.pipe(filter((e) => e.attributes.name === "marker")));
      await engine.createContainer({ name: "marker", Image: IMAGE, Labels: labels } as never);
      await markerSeen;
      assert.deepEqual(
        seen.filter((e) => e.id === id).map((e) => [e.action, e.attributes.exitCode]),
        [
          ["create", undefined],
          ["start", undefined],
          ["die", "3"],
        ],
      );
      assert.equal(engine.calls("events")[0]!.args[1] !== undefined, true, "the first stream names a since");
    } finally {
      engine.releaseAll();
      await monitor.stop();
    }
  });

  it("a container that dies just after recovery listed it, while the engine has answered the events subscription but not subscribed, terminates", async () => {
    const first = await rig();
    const id = newId("after-listing");
    const engineId = await launchRunning(first, id);
    await crash(first);
    const late = answerBeforeSubscribing(first.engine);
    const second = await rig({ engine: first.engine, workDir: first.workDir });
    afterListing(first.engine, () => {
      first.engine.exit(engineId, 7);
      late.subscribe();
    });
    const report = await second.cz.recover();
    assert.equal(report.adopted, 1, "listed running, adopted");
    const t = await second.cz.wait(id);
    assert.equal(t.exitCode, 7);
    assert.equal(t.containerTermination.state, TaskState.TASK_FAILED);
  });

  it("a die the engine's stream never delivers (between the listing and the bind, its replay ring moved on) is learnt by recovery's inspect of the adopted container", async () => {
    const first = await rig();
    const id = newId("lost-die");
    const engineId = await launchRunning(first, id);
    await crash(first);
    const late = answerBeforeSubscribing(first.engine);
    const second = await rig({ engine: first.engine, workDir: first.workDir });
    afterListing(first.engine, () => {
      first.engine.exit(engineId, 0);
      first.engine.forgetHistory();
      late.subscribe();
    });
    const report = await second.cz.recover();
    assert.equal(report.adopted, 1);
    const inspected = first.engine.calls("inspectContainer").filter((c) => c.args[0] === engineId);
    assert.ok(inspected.length >= 1, "the adopted container was inspected after its bind");
    const t = await second.cz.wait(id);
    assert.equal(t.containerTermination.state, TaskState.TASK_FINISHED);
  });

  for (const [what, method] of [
    ["the listing is held (the die comes before it: listed exited)", "listContainers"],
    ["recovery's inspect of the adopted container is held", "inspectContainer"],
    ["the checkpoint load is over and the removal of a leftover is held", "removeContainer"],
  ] as const) {
    it(`a container that dies while ${what} terminates`, async () => {
      const first = await rig();
      const id = newId("held");
      const engineId = await launchRunning(first, id);
      await crash(first);
      // A leftover of this agent without a record: recovery removes it (a removal to hold).
      const orphan = await first.engine.createContainer({ name: `orphan-${id}`, Image: IMAGE, Labels: agentLabels(FAKE_AGENT) } as never);
      // Held before the second Berth exists: its events stream may see the leftover's creation and
      // remove it before recovery does; whichever removes it is the one held.
      const hold = first.engine.hold(method);
      const second = await rig({ engine: first.engine, workDir: first.workDir });
      const recovered = second.cz.recover();
      await hold.entered;
      first.engine.exit(engineId, 0);
      hold();
      await recovered;
      const t = await second.cz.wait(id);
      assert.equal(t.containerTermination.state, TaskState.TASK_FINISHED);
      assert.equal(first.engine.containers.has(orphan), false, "the leftover was removed");
    });
  }

  it("shutdown() ends every output capture and closes its files without a termination; the container keeps running and a restart adopts it", async () => {
    const first = await rig();
    const id = newId("shutdown");
    const engineId = await launchRunning(first, id);
    const sandbox = (await first.cz.status(id)).sandbox;
    const c = first.engine.container(engineId);
    c.stdout.write("before\n");
    const registry = (first.cz as unknown as { outputs: OutputRegistry }).outputs;
    await pollUntil(async () => (await readFile(path.join(sandbox, "stdout"), "utf8").catch(() => "")) === "before\n", 10_000, "output reaches the sandbox");
    assert.ok(registry.get(sandbox, "stdout"), "the capture's writer is open while Berth runs");
    const events: string[] = [];
    first.cz.watch([id]).subscribe((e) => events.push(e.kind.type));
    await crash(first);
    await first.cz.closed();
    assert.equal(registry.get(sandbox, "stdout"), undefined, "the capture's files are closed");
    assert.equal(registry.get(sandbox, "stderr"), undefined);
    assert.equal(c.status, "running", "the container keeps running");
    assert.ok(!events.includes("termination"), "no termination was published");
    assert.equal(first.engine.calls("stopContainer").length + first.engine.calls("killContainer").length + first.engine.calls("removeContainer").length, 0);
    const second = await rig({ engine: first.engine, workDir: first.workDir });
    assert.equal((await second.cz.recover()).adopted, 1);
    first.engine.exit(engineId, 0);
    assert.equal((await second.cz.wait(id)).containerTermination.state, TaskState.TASK_FINISHED);
  });

  it("shutdown() forgets a removal waiting for --docker_remove_delay: the stopped Berth removes nothing afterwards", async () => {
    const r = await rig(undefined, { removeDelayMs: 60_000 });
    const id = newId("delayed-remove");
    const engineId = await launchRunning(r, id);
    // Node's mock timers stand in for the 60 s (only setTimeout; the test passes none of its own).
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      r.engine.exit(engineId, 0);
      assert.equal((await r.cz.wait(id)).containerTermination.state, TaskState.TASK_FINISHED);
      // Destroy of a terminated container answers once its removal is scheduled.
      await r.cz.destroy(id);
      assert.equal(r.engine.calls("removeContainer").length, 0, "the removal waits for the delay");
      await crash(r);
      await r.cz.closed();
      mock.timers.tick(60_000);
      assert.equal(r.engine.calls("removeContainer").length, 0, "nothing was removed after the stop");
      assert.ok(r.engine.containers.has(engineId), "the exited engine container is left for the next start's recovery");
    } finally {
      mock.timers.reset();
    }
    const second = await rig({ engine: r.engine, workDir: r.workDir });
    const report = await second.cz.recover();
    assert.equal(report.restoredTerminated, 1);
    assert.ok(!r.engine.containers.has(engineId), "recovery removed the leftover");
  });

  for (const [stage, method] of [
    ["PULLING", "pullImage"],
    ["MOUNTING", "createContainer"],
  ] as const) {
    it(`shutdown() stops a launch in ${stage} where it is, recording and publishing nothing more; the next start abandons it`, async () => {
      const r = await rig();
      const id = newId(`stopped-${stage.toLowerCase()}`);
      if (method === "pullImage") r.engine.images.clear();
      const hold = r.engine.hold(method);
      const kinds: string[] = [];
      r.cz.watch([id]).subscribe((e) => kinds.push(e.kind.type === "state" ? `state:${e.kind.state}` : e.kind.type));
      assert.equal((await r.cz.launch(input(id))).result, "LAUNCHED");
      await hold.entered;
      const seenAtStop = kinds.length;
      await crash(r);
      hold(); // the engine answers after all (a create it carried out leaves a container behind)
      await r.cz.closed();
      await r.cz.idle(); // the launch's pipeline is over
      assert.deepEqual(kinds.slice(seenAtStop), [], "nothing published after the stop");
      assert.ok(!kinds.includes("termination"));
      const record = (await new CheckpointStore(path.join(r.workDir, "meta")).load()).containers.find((cp) => cp.containerId === id)!;
      assert.equal(record.termination, undefined, "no termination recorded");
      assert.equal(r.engine.calls("startContainer").length, 0, "nothing started");
      assert.equal(r.engine.calls("removeContainer").length, 0, "nothing removed by the stopped Berth");
      if (method === "pullImage") assert.equal(r.engine.calls("createContainer").length, 0, "nothing created");
      const second = await rig({ engine: r.engine, workDir: r.workDir });
      r.engine.addImage(IMAGE);
      assert.equal((await second.cz.recover()).abandoned, 1);
      const t = await second.cz.wait(id);
      assert.equal(t.containerTermination.state, TaskState.TASK_FAILED);
      assert.match(t.containerTermination.message, /Berth restarted during/);
      assert.equal([...r.engine.containers.values()].filter((c) => c.labels["berth.container_id"] === id).length, 0, "recovery removed what the launch had created");
    });
  }
});
