import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setImmediate as tick } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { filter, firstValueFrom, lastValueFrom, toArray } from "rxjs";
import { ContainerConfigSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import { ContainerInfo_Type, TaskState, TaskStatus_Reason, VolumeSchema, Volume_Mode, Volume_Source_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import type { CreateSpec } from "../../src/docker/engine-port.js";
import { defaultPolicy } from "../../src/policy/policy.js";
import { CheckpointStore } from "../../src/checkpoint/checkpoint-store.js";
import { EngineRequestFailed } from "../../src/docker/engine-port.js";
import { EventMonitor } from "../../src/docker/event-monitor.js";
import { ImagePuller } from "../../src/docker/image-puller.js";
import { Containerizer, type ContainerizerOptions, type LaunchInput } from "../../src/containerizer/containerizer.js";
import type { ContainerEvent } from "../../src/containerizer/container-event.js";
import { Cancelled, ContainerNotFound, EngineUnavailable, InvalidRequest, PermissionDenied, ResourceExhausted } from "../../src/containerizer/errors.js";
import type { ContainerState } from "../../src/containerizer/state.js";
import type { FetchFn } from "../../src/containerizer/launch-pipeline.js";
import { launchRequest, newId, type LaunchOptions } from "../harness/launches.js";
import { FakeEngine } from "../harness/fake-engine.js";
import { closeRig, fakeRig } from "../harness/fake-rig.js";

const IMAGE = "registry.invalid/fake/busybox:1";

/** A Containerizer over a FakeEngine, with a real EventMonitor and ImagePuller and a temp workDir. */
interface Rig {
  engine: FakeEngine;
  monitor: EventMonitor;
  puller: ImagePuller;
  cz: Containerizer;
  workDir: string;
}

const rigs: Rig[] = [];

async function rig(options: Partial<ContainerizerOptions> = {}, fetch: FetchFn = async () => {}): Promise<Rig> {
  const engine = new FakeEngine({ images: [IMAGE] });
  const workDir = await mkdtemp(path.join(tmpdir(), "berth-cz-unit-"));
  const r = { ...(await fakeRig(engine, workDir, options, { fetch })), workDir };
  rigs.push(r);
  return r;
}

function connected(monitor: EventMonitor, up = true): Promise<boolean> {
  return firstValueFrom(monitor.connected$.pipe(filter((c) => c === up)));
}

function input(id: string, o: Partial<LaunchOptions> = {}): LaunchInput {
  const req = launchRequest(id, { image: IMAGE, ...o });
  return { containerId: id, nested: false, config: create(ContainerConfigSchema, req.containerConfig), environment: {} };
}

const isState = (s: ContainerState) => (e: ContainerEvent) => e.kind.type === "state" && e.kind.state === s;

/** Resolves with the first event of `id` matching `pred` (snapshot included). */
function eventOf(cz: Containerizer, id: string, pred: (e: ContainerEvent) => boolean): Promise<ContainerEvent> {
  return firstValueFrom(cz.watch([id]).pipe(filter(pred)));
}

/** Every event of `id` from now until its termination. */
function allEvents(cz: Containerizer, id: string): Promise<ContainerEvent[]> {
  return lastValueFrom(cz.watch([id]).pipe(toArray()));
}

/** Launches and waits until RUNNING; returns the engine id. */
async function launchRunning(r: Rig, id: string, o: Partial<LaunchOptions> = {}): Promise<string> {
  assert.equal((await r.cz.launch(input(id, o))).result, "LAUNCHED");
  await eventOf(r.cz, id, isState("RUNNING"));
  const engineId = (await r.cz.status(id)).engineId;
  assert.ok(engineId, "a running container has an engine id");
  return engineId;
}

function states(events: ContainerEvent[]): string[] {
  return events.flatMap((e) => (e.kind.type === "state" ? [e.kind.state] : []));
}

afterEach(async function () {
  for (const r of rigs.splice(0)) await closeRig(r, r.workDir);
});

describe("Containerizer over a fake engine", function () {
  this.timeout(10_000);

  describe("destroy during the launch", () => {
    it("destroy while createContainer is in flight answers TASK_KILLED only after the created container is removed", async () => {
      const r = await rig();
      const id = newId("create");
      const create = r.engine.hold("createContainer");
      // launch() records the container synchronously, so a watch right after it misses nothing.
      const launched = r.cz.launch(input(id));
      const events = allEvents(r.cz, id);
      await launched;
      await create.entered;
      assert.equal((await r.cz.status(id)).state, "MOUNTING");

      let answered = false;
      const destroyed = r.cz.destroy(id).finally(() => (answered = true));
      await tick();
      assert.equal(answered, false, "Destroy must not answer while the create is in flight");
      assert.equal((await r.cz.status(id)).state, "DESTROYING");

      create();
      const t = await destroyed;
      assert.equal(t.containerTermination.state, TaskState.TASK_KILLED);
      assert.match(t.containerTermination.message, /destroyed while MOUNTING/);

      const [createCall] = r.engine.calls("createContainer");
      const removes = r.engine.calls("removeContainer");
      assert.equal(removes.length, 1);
      assert.ok(createCall!.settledAt! < removes[0]!.enteredAt, "remove comes after the create resolved");
      assert.notEqual(removes[0]!.settledAt, undefined, "the remove finished before Destroy answered");
      assert.equal(removes[0]!.args[0], createCall!.result, "the created container is the one removed");
      assert.deepEqual(r.engine.calls("startContainer"), [], "a destroyed container is never started");
      assert.equal(r.engine.containers.size, 0, "nothing is left in the engine");
      assert.deepEqual(states(await events), ["FETCHING", "PULLING", "MOUNTING", "DESTROYING", "TERMINATED"]);
    });

    it("destroy while startContainer is in flight kills and removes the container after the start, with no RUNNING after DESTROYING", async () => {
      const r = await rig();
      const id = newId("start");
      const start = r.engine.hold("startContainer");
      const launched = r.cz.launch(input(id, { taskId: "task-start" }));
      const events = allEvents(r.cz, id);
      await launched;
      await start.entered;
      const destroyed = r.cz.destroy(id);
      start();
      const t = await destroyed;
      assert.equal(t.containerTermination.state, TaskState.TASK_KILLED);
      assert.equal(t.signal, 9);

      const order = r.engine.methods().filter((m) => ["startContainer", "killContainer", "removeContainer"].includes(m));
      assert.deepEqual(order, ["startContainer", "killContainer", "removeContainer"]);
      assert.ok(r.engine.calls("startContainer")[0]!.settledAt! < r.engine.calls("killContainer")[0]!.enteredAt);
      assert.equal(r.engine.containers.size, 0, "nothing is left in the engine");

      const all = await events;
      assert.deepEqual(states(all), ["FETCHING", "PULLING", "MOUNTING", "DESTROYING", "TERMINATED"]);
      const taskStates = all.flatMap((e) => (e.kind.type === "task_status" ? [e.kind.status.state] : []));
      assert.deepEqual(taskStates, [TaskState.TASK_STARTING, TaskState.TASK_KILLED], "no TASK_RUNNING for a container destroyed while starting");
    });

    it("destroy during PULLING aborts the engine pull and creates nothing", async () => {
      const r = await rig();
      const image = "registry.invalid/fake/absent:2";
      const id = newId("pull");
      const pull = r.engine.hold("pullImage");
      await r.cz.launch(input(id, { image }));
      const call = await pull.entered;
      const signal = call.args[2] as AbortSignal;
      assert.equal(signal.aborted, false);
      assert.equal((await r.cz.status(id)).state, "PULLING");

      const t = await r.cz.destroy(id);
      assert.equal(t.containerTermination.state, TaskState.TASK_KILLED);
      assert.match(t.containerTermination.message, /destroyed while PULLING/);
      assert.equal(signal.aborted, true, "the engine pull request was dropped");
      assert.equal(r.puller.activePulls, 0);
      assert.deepEqual(r.engine.calls("createContainer"), []);
      assert.equal(r.engine.images.has(image), false);
      assert.equal(r.engine.containers.size, 0);
    });

    it("destroy while RUNNING stops the container: SIGTERM exit reports TASK_KILLED with signal 15", async () => {
      const r = await rig();
      const id = newId("stop");
      const engineId = await launchRunning(r, id);
      const t = await r.cz.destroy(id);
      assert.equal(t.containerTermination.state, TaskState.TASK_KILLED);
      assert.equal(t.signal, 15);
      assert.deepEqual(r.engine.calls("stopContainer").map((c) => c.args), [[engineId, 3]]);
      assert.equal(r.engine.containers.size, 0);
    });

    it("destroy of a container that ignores SIGTERM ends with SIGKILL after the grace period", async () => {
      const r = await rig();
      const id = newId("stubborn");
      const engineId = await launchRunning(r, id, { taskId: "task-stubborn", gracePeriodMs: 2000 });
      r.engine.container(engineId).ignoresSigterm = true;
      const t = await r.cz.destroy(id);
      assert.equal(t.containerTermination.state, TaskState.TASK_KILLED);
      assert.equal(t.signal, 9);
      assert.deepEqual(r.engine.calls("stopContainer")[0]!.args, [engineId, 2], "the task's kill policy sets the grace");
    });

    it("destroy is idempotent and answers the same termination after the end", async () => {
      const r = await rig();
      const id = newId("twice");
      await launchRunning(r, id);
      const [a, b] = await Promise.all([r.cz.destroy(id), r.cz.destroy(id)]);
      const c = await r.cz.destroy(id);
      assert.equal(a, b);
      assert.equal(a, c);
    });
  });

  describe("launch failures", () => {
    it("an engine error on create fails the launch with CONTAINER_LAUNCH_FAILED naming MOUNTING and the engine's message", async () => {
      const r = await rig();
      const id = newId("create-fails");
      r.engine.failNext("createContainer", new EngineRequestFailed("invalid mount config for type \"bind\"", 400));
      await r.cz.launch(input(id));
      const t = await r.cz.wait(id);
      const ct = t.containerTermination;
      assert.equal(ct.state, TaskState.TASK_FAILED);
      assert.equal(ct.reason, TaskStatus_Reason.CONTAINER_LAUNCH_FAILED);
      assert.match(ct.message, /MOUNTING/);
      assert.match(ct.message, /invalid mount config for type "bind"/);
      assert.equal(r.engine.containers.size, 0, "nothing is left in the engine");
      assert.deepEqual(r.engine.calls("startContainer"), []);
    });

    it("a failed pull fails the launch during PULLING with the engine's message", async () => {
      const r = await rig();
      const id = newId("pull-fails");
      r.engine.hold("pullImage").fail(new Error("manifest for registry.invalid/fake/nope:1 not found"));
      await r.cz.launch(input(id, { image: "registry.invalid/fake/nope:1" }));
      const ct = (await r.cz.wait(id)).containerTermination;
      assert.equal(ct.state, TaskState.TASK_FAILED);
      assert.equal(ct.reason, TaskStatus_Reason.CONTAINER_LAUNCH_FAILED);
      assert.match(ct.message, /during PULLING/);
      assert.match(ct.message, /manifest for registry\.invalid\/fake\/nope:1 not found/);
      assert.deepEqual(r.engine.calls("createContainer"), []);
    });
  });

  describe("exits", () => {
    it("exit 0 is TASK_FINISHED, and output written before the die is in the sandbox stdout file when the termination is published", async () => {
      const r = await rig();
      const id = newId("exit0");
      const engineId = await launchRunning(r, id);
      const { sandbox } = (await r.cz.list()).find((c) => c.containerId === id)!;
      let seenAtTermination: { stdout: string; stderr: string } | undefined;
      const watched = r.cz.watch([id]).subscribe((e) => {
        if (e.kind.type === "termination" && !e.snapshot) {
          seenAtTermination = {
            stdout: readFileSync(path.join(sandbox, "stdout"), "utf8"),
            stderr: readFileSync(path.join(sandbox, "stderr"), "utf8"),
          };
        }
      });
      const c = r.engine.container(engineId);
      c.stdout.write("hello from the task\n");
      c.stdout.write("x".repeat(256 * 1024) + "\n");
      c.stderr.write("a warning\n");
      r.engine.exit(engineId, 0);
      const t = await r.cz.wait(id);
      watched.unsubscribe();
      assert.equal(t.containerTermination.state, TaskState.TASK_FINISHED);
      assert.equal(t.exitCode, 0);
      assert.equal(t.containerTermination.status, 0);
      assert.ok(seenAtTermination, "the termination event was published");
      assert.ok(seenAtTermination.stdout.startsWith("hello from the task\n"));
      assert.equal(seenAtTermination.stdout.length, "hello from the task\n".length + 256 * 1024 + 1, "all of stdout is in the file");
      assert.equal(seenAtTermination.stderr, "a warning\n");
      // The removal follows the published termination; Destroy answers once it is done.
      await r.cz.destroy(id);
      assert.equal(r.engine.containers.size, 0, "removed after the exit (remove delay 0)");
    });

    it("exit 3 is TASK_FAILED with exit code 3", async () => {
      const r = await rig();
      const id = newId("exit3");
      const engineId = await launchRunning(r, id);
      r.engine.exit(engineId, 3);
      const t = await r.cz.wait(id);
      assert.equal(t.containerTermination.state, TaskState.TASK_FAILED);
      assert.equal(t.containerTermination.message, "Container exited with status 3");
      assert.equal(t.exitCode, 3);
      assert.equal(t.signal, undefined);
      assert.equal(t.containerTermination.status, 3 << 8);
    });

    it("an oom event then die 137 is TASK_FAILED with CONTAINER_LIMITATION_MEMORY and the memory limit", async () => {
      const r = await rig();
      const id = newId("oom");
      const engineId = await launchRunning(r, id, { memMb: 64 });
      r.engine.oom(engineId);
      const t = await r.cz.wait(id);
      const ct = t.containerTermination;
      assert.equal(ct.state, TaskState.TASK_FAILED);
      assert.equal(ct.reason, TaskStatus_Reason.CONTAINER_LIMITATION_MEMORY);
      assert.equal(t.signal, 9);
      assert.deepEqual(ct.limitedResources.map((res) => [res.name, res.scalar?.value]), [["mem", 64]]);
    });

    it("a die 137 whose oom event was missed is still an OOM when inspect says oomKilled", async () => {
      const r = await rig();
      const id = newId("oom-missed");
      const engineId = await launchRunning(r, id);
      // OOM-killed without the oom event reaching Berth: only the engine's state knows.
      const c = r.engine.container(engineId);
      c.oomKilled = true;
      await r.engine.killContainer(engineId, "SIGKILL");
      const ct = (await r.cz.wait(id)).containerTermination;
      assert.equal(ct.reason, TaskStatus_Reason.CONTAINER_LIMITATION_MEMORY);
    });
  });

  describe("watch", () => {
    it("a new subscriber first receives a snapshot of each watched container, then live events", async () => {
      const r = await rig();
      const running = newId("w-run");
      const mounting = newId("w-mount");
      const runningEngineId = await launchRunning(r, running, { taskId: "task-w" });
      const create = r.engine.hold("createContainer");
      await r.cz.launch(input(mounting));
      await create.entered;

      const seen: ContainerEvent[] = [];
      const sub = r.cz.watch([]).subscribe((e) => seen.push(e));
      const snapshot = seen.splice(0);
      assert.ok(snapshot.every((e) => e.snapshot), "everything before any live event is a snapshot");
      assert.deepEqual(
        snapshot.map((e) => [e.containerId, e.kind.type === "state" ? e.kind.state : e.kind.type === "task_status" ? TaskState[e.kind.status.state] : e.kind.type]),
        [
          [running, "RUNNING"],
          [running, "TASK_RUNNING"],
          [mounting, "MOUNTING"],
        ],
      );

      r.engine.exit(runningEngineId, 0);
      await r.cz.wait(running);
      assert.ok(seen.length > 0 && seen.every((e) => !e.snapshot), "then live events");
      assert.deepEqual(states(seen), ["TERMINATED"]);
      sub.unsubscribe();
      create();
    });

    it("two subscribers see identical sequences, strictly increasing, with the termination last", async () => {
      const r = await rig();
      const id = newId("w-two");
      const launched = launchRunning(r, id, { taskId: "task-two" });
      const a = allEvents(r.cz, id);
      const b = allEvents(r.cz, id);
      const engineId = await launched;
      r.engine.exit(engineId, 0);
      const [ea, eb] = await Promise.all([a, b]);
      assert.deepEqual(ea, eb);
      for (let i = 1; i < ea.length; i++) assert.ok(ea[i]!.sequence > ea[i - 1]!.sequence, `sequence increases at ${i}`);
      assert.equal(ea.at(-1)!.kind.type, "termination");
      assert.deepEqual(states(ea), ["FETCHING", "PULLING", "MOUNTING", "RUNNING", "TERMINATED"]);
    });

    it("a watch of specific ids completes after their termination; a watch of all does not", async () => {
      const r = await rig();
      const id = newId("w-complete");
      const engineId = await launchRunning(r, id);
      let specificDone = false;
      let allDone = false;
      const all: ContainerEvent[] = [];
      const s1 = r.cz.watch([id]).subscribe({ complete: () => (specificDone = true) });
      const s2 = r.cz.watch([]).subscribe({ next: (e) => all.push(e), complete: () => (allDone = true) });
      r.engine.exit(engineId, 0);
      await r.cz.wait(id);
      // Completion is delivered synchronously with the termination event.
      assert.equal(specificDone, true);
      assert.equal(allDone, false);
      assert.equal(all.at(-1)!.kind.type, "termination");
      s1.unsubscribe();
      s2.unsubscribe();
      // Watching a container that has already terminated: its snapshot, then completion.
      const late = await lastValueFrom(r.cz.watch([id]).pipe(toArray()));
      assert.ok(late.every((e) => e.snapshot));
      assert.equal(late.at(-1)!.kind.type, "termination");
    });

    it("the termination is the last event of a container, even when Destroy and Wait come afterwards", async () => {
      const r = await rig();
      const id = newId("w-last");
      const all: ContainerEvent[] = [];
      const sub = r.cz.watch([]).subscribe((e) => all.push(e));
      const engineId = await launchRunning(r, id);
      r.engine.exit(engineId, 3);
      await r.cz.wait(id);
      await r.cz.destroy(id);
      await r.cz.wait(id);
      await r.cz.idle();
      sub.unsubscribe();
      const mine = all.filter((e) => e.containerId === id);
      assert.equal(mine.filter((e) => e.kind.type === "termination").length, 1);
      assert.equal(mine.at(-1)!.kind.type, "termination");
    });

    it("watching an id not launched yet waits for it, then delivers its events from its first (FETCHING) through its termination", async () => {
      const r = await rig();
      const id = newId("w-before");
      const seen: ContainerEvent[] = [];
      let completed = false;
      const done = new Promise<void>((resolve, reject) =>
        r.cz.watch([id]).subscribe({
          next: (e) => seen.push(e),
          error: reject,
          complete: () => {
            completed = true;
            resolve();
          },
        }),
      );
      await tick();
      assert.equal(seen.length, 0, "nothing to say before the launch");
      assert.equal(completed, false, "the stream stays open for a container not launched yet");
      const outcome = await r.cz.launch(input(id));
      assert.equal(outcome.result, "LAUNCHED");
      await eventOf(r.cz, id, isState("RUNNING"));
      await r.cz.destroy(id);
      await done;
      assert.equal(seen[0]!.snapshot, false);
      assert.equal(seen[0]!.sequence, outcome.result === "LAUNCHED" ? outcome.firstSequence : -1n, "the first event is the one Launch named");
      assert.deepEqual(states(seen).slice(0, 1), ["FETCHING"]);
      assert.ok(states(seen).includes("RUNNING"));
      assert.equal(seen.at(-1)!.kind.type, "termination");
      assert.ok(seen.every((e) => e.containerId === id && !e.snapshot));
    });

    it("Launch answers its first event's sequence: a resume from one less gets every event of the container", async () => {
      const r = await rig();
      const other = newId("w-other");
      const id = newId("w-first");
      const all: ContainerEvent[] = [];
      const sub = r.cz.watch([]).subscribe((e) => all.push(e));
      await launchRunning(r, other);
      const outcome = await r.cz.launch(input(id));
      assert.equal(outcome.result, "LAUNCHED");
      const first = outcome.result === "LAUNCHED" ? outcome.firstSequence : 0n;
      await eventOf(r.cz, id, isState("RUNNING"));
      await r.cz.destroy(id);
      sub.unsubscribe();
      const resumed = await lastValueFrom(r.cz.watch([id], first - 1n).pipe(toArray()));
      const mine = all.filter((e) => e.containerId === id && !e.snapshot);
      assert.deepEqual(resumed.map((e) => e.sequence), mine.map((e) => e.sequence), "no gap, nothing extra");
      assert.equal(resumed[0]!.sequence, first);
      assert.equal(resumed.at(-1)!.kind.type, "termination");
      const again = await r.cz.launch(input(id));
      assert.deepEqual(again, { result: "ALREADY_LAUNCHED", sandbox: again.result === "NOT_SUPPORTED" ? "" : again.sandbox, firstSequence: first });
    });

    it("a resume naming an id not launched yet waits for it too", async () => {
      const r = await rig();
      const id = newId("w-resume-before");
      const from = r.cz.lastSequence;
      const events = lastValueFrom(r.cz.watch([id], from).pipe(toArray()));
      await launchRunning(r, id);
      await r.cz.destroy(id);
      const got = await events;
      assert.deepEqual(states(got).slice(0, 1), ["FETCHING"]);
      assert.equal(got.at(-1)!.kind.type, "termination");
    });

    it("a subscriber that destroys on a snapshot event still sees the DESTROYING it caused", async () => {
      const r = await rig();
      const id = newId("w-reentrant");
      await launchRunning(r, id);
      const seen: ContainerEvent[] = [];
      const done = new Promise<void>((resolve) =>
        r.cz.watch([id]).subscribe({
          next: (e) => {
            seen.push(e);
            if (e.snapshot && isState("RUNNING")(e)) void r.cz.destroy(id);
          },
          complete: resolve,
        }),
      );
      await done;
      assert.deepEqual(states(seen), ["RUNNING", "DESTROYING", "TERMINATED"]);
    });
  });

  describe("launch", () => {
    it("a launch while the engine events stream is down is refused with EngineUnavailable", async () => {
      const r = await rig();
      r.engine.setReachable(false);
      await connected(r.monitor, false);
      await assert.rejects(r.cz.launch(input(newId("down"))), EngineUnavailable);
      assert.equal(r.cz.list().length, 0, "a refused launch records nothing");
      r.engine.setReachable(true);
      await connected(r.monitor);
      assert.equal((await r.cz.launch(input(newId("up")))).result, "LAUNCHED");
    });

    it("a second launch of the same id is ALREADY_LAUNCHED with the same sandbox", async () => {
      const r = await rig();
      const id = newId("dup");
      const first = await r.cz.launch(input(id));
      const second = await r.cz.launch(input(id));
      assert.equal(second.result, "ALREADY_LAUNCHED");
      assert.equal(first.result === "LAUNCHED" && second.result === "ALREADY_LAUNCHED" && first.sandbox === second.sandbox, true);
    });

    it("a nested container is NOT_SUPPORTED", async () => {
      const r = await rig();
      const outcome = await r.cz.launch({ ...input(newId("nested")), nested: true });
      assert.equal(outcome.result, "NOT_SUPPORTED");
      assert.equal(r.cz.list().length, 0);
    });

    it("a MESOS container type is NOT_SUPPORTED", async () => {
      const r = await rig();
      const i = input(newId("mesos"));
      i.config!.containerInfo!.type = ContainerInfo_Type.MESOS;
      const outcome = await r.cz.launch(i);
      assert.equal(outcome.result, "NOT_SUPPORTED");
      assert.match(outcome.result === "NOT_SUPPORTED" ? outcome.reason : "", /MESOS/);
      assert.equal(r.cz.list().length, 0);
      assert.deepEqual(r.engine.log.filter((c) => c.method !== "events"), [], "the engine is not touched");
    });
  });

  describe("admission: policy and limits", () => {
    /** A rig whose log lines are kept, and whose checkpoints go to <workDir>/meta. */
    async function admissionRig(options: Partial<ContainerizerOptions> = {}, fetch: FetchFn = async () => {}) {
      const engine = new FakeEngine({ images: [IMAGE] });
      const workDir = await mkdtemp(path.join(tmpdir(), "berth-cz-unit-"));
      const store = new CheckpointStore(path.join(workDir, "meta"));
      await store.init();
      const lines: Array<Record<string, unknown>> = [];
      const log = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
      const r = { ...(await fakeRig(engine, workDir, options, { checkpoints: store, log, fetch })), workDir };
      rigs.push(r);
      return { r, lines };
    }

    it("a refused launch answers PermissionDenied, is logged with the container id and the caller, and leaves nothing behind", async () => {
      const { r, lines } = await admissionRig();
      const outside = path.join(r.workDir, "elsewhere", "sandbox");
      const id = newId("refused");
      const i = input(id);
      i.config!.directory = outside;
      i.peer = "unix:test-peer";
      await assert.rejects(r.cz.launch(i), (e: unknown) => e instanceof PermissionDenied && e.rule === "sandbox_roots" && e.field === "container_config.directory" && e.value === outside);
      const hostVolume = input(newId("refused"));
      hostVolume.config!.containerInfo!.volumes = [create(VolumeSchema, { containerPath: "/h", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: "/" } } })];
      await assert.rejects(r.cz.launch(hostVolume), (e: unknown) => e instanceof PermissionDenied && e.rule === "engine_socket");
      assert.equal(r.cz.list().length, 0, "nothing recorded");
      assert.equal(existsSync(path.join(r.workDir, "elsewhere")), false, "no directory made");
      assert.deepEqual(readdirSync(path.join(r.workDir, "meta", "containers")), [], "no checkpoint");
      assert.equal(existsSync(path.join(r.workDir, "sandboxes")), false, "no sandbox");
      assert.deepEqual(r.engine.log.filter((c) => c.method !== "events"), [], "the engine is not touched");
      const refusal = lines.find((l) => l.container_id === id);
      assert.ok(refusal, "the refusal is logged with the container id");
      assert.equal(refusal.peer, "unix:test-peer");
      assert.equal(refusal.rule, "sandbox_roots");
      assert.equal(refusal.level, 40, "at warn");
    });

    it("a policy opens what it lists", async () => {
      const { r } = await admissionRig({ policy: { ...defaultPolicy(), sandboxRoots: [path.join(tmpdir())] } });
      const i = input(newId("chosen"));
      const chosen = await mkdtemp(path.join(tmpdir(), "berth-chosen-"));
      i.config!.directory = path.join(chosen, "sb");
      try {
        const outcome = await r.cz.launch(i);
        assert.equal(outcome.result, "LAUNCHED");
        assert.equal(outcome.result === "LAUNCHED" && outcome.sandbox, path.join(chosen, "sb"));
      } finally {
        await r.cz.destroy(i.containerId).catch(() => undefined);
        await rm(chosen, { recursive: true, force: true });
      }
    });

    it("a chosen sandbox inside another container's sandbox is refused", async () => {
      const { r } = await admissionRig();
      const a = newId("outer");
      const outcome = await r.cz.launch(input(a));
      assert.equal(outcome.result, "LAUNCHED");
      const inner = input(newId("inner"));
      inner.config!.directory = path.join(outcome.result === "LAUNCHED" ? outcome.sandbox : "", "nested");
      await assert.rejects(r.cz.launch(inner), (e: unknown) => e instanceof InvalidRequest && /lies inside or holds the sandbox/.test(e.message));
    });

    it("past --max_containers live containers a launch is ResourceExhausted; a terminated one frees its place", async () => {
      const { r } = await admissionRig({ limits: { maxContainers: 2 } });
      const firstId = newId("live");
      const first = await launchRunning(r, firstId);
      await launchRunning(r, newId("live"));
      const third = newId("third");
      await assert.rejects(r.cz.launch(input(third)), (e: unknown) => e instanceof ResourceExhausted && e.limit === "--max_containers" && /2 containers are live/.test(e.message));
      assert.equal(r.cz.list().some((c) => c.containerId === third), false);
      r.engine.exit(first, 0);
      await r.cz.wait(firstId);
      assert.equal((await r.cz.launch(input(third))).result, "LAUNCHED");
    });

    it("per-launch limits name their flag and record nothing", async () => {
      const { r } = await admissionRig({ limits: { maxEnvironmentEntries: 2, maxUris: 1, maxVolumes: 1 } });
      const env = { ...input(newId("env")), environment: { A: "1", B: "2", C: "3" } };
      await assert.rejects(r.cz.launch(env), (e: unknown) => e instanceof ResourceExhausted && e.limit === "--max_environment_entries");
      const uris = input(newId("uris"), { command: { shell: true, value: "true", uris: [{ value: "https://example.com/a" }, { value: "https://example.com/b" }] } });
      await assert.rejects(r.cz.launch(uris), (e: unknown) => e instanceof ResourceExhausted && e.limit === "--max_uris");
      const vols = input(newId("vols"));
      vols.config!.containerInfo!.volumes = [create(VolumeSchema, { containerPath: "/a", mode: Volume_Mode.RW }), create(VolumeSchema, { containerPath: "/b", mode: Volume_Mode.RW })];
      await assert.rejects(r.cz.launch(vols), (e: unknown) => e instanceof ResourceExhausted && e.limit === "--max_volumes");
      assert.equal(r.cz.list().length, 0);
    });

    it("the default pids limit reaches the engine", async () => {
      const { r } = await admissionRig({ defaultPidsLimit: 321 });
      await launchRunning(r, newId("pids"));
      assert.equal((r.engine.calls("createContainer")[0]!.args[0] as CreateSpec).HostConfig.PidsLimit, 321);
    });

    it("the sandbox, its output files and what was fetched belong to a numeric task user", async () => {
      const { r } = await admissionRig({}, async (_uris, sandbox) => {
        await mkdir(path.join(sandbox, "fetched-dir"));
        await writeFile(path.join(sandbox, "fetched-dir", "file"), "x");
      });
      const id = newId("rootowned");
      await launchRunning(r, id);
      const owned = newId("owned");
      // A URI, so the fetcher (the fake above) runs: a launch without URIs fetches nothing.
      const j = input(owned, { command: { shell: true, value: "true", uris: [{ value: "https://example.com/fetched" }] } });
      j.config!.user = "1234:2345";
      j.config!.containerInfo!.volumes = [create(VolumeSchema, { containerPath: "/v", hostPath: "vol/deep", mode: Volume_Mode.RW })];
      assert.equal((await r.cz.launch(j)).result, "LAUNCHED");
      await eventOf(r.cz, owned, isState("RUNNING"));
      const sandbox = (await r.cz.status(owned)).sandbox;
      for (const p of ["", "stdout", "stderr", "fetched-dir", "fetched-dir/file", "vol", "vol/deep"]) {
        const st = statSync(path.join(sandbox, p));
        assert.deepEqual([st.uid, st.gid], [1234, 2345], `${p || "the sandbox"} is the task user's`);
      }
      // Without a user the sandbox stays root's.
      assert.equal(statSync((await r.cz.status(id)).sandbox).uid, 0);
    });
  });

  describe("the launch record", () => {
    /** A store whose first save (the launch record) waits until released. */
    class HeldFirstSave extends CheckpointStore {
      release!: () => void;
      private readonly gate = new Promise<void>((resolve) => (this.release = resolve));
      private first = true;
      override async save(checkpoint: Parameters<CheckpointStore["save"]>[0]): Promise<void> {
        if (this.first) {
          this.first = false;
          await this.gate;
        }
        return super.save(checkpoint);
      }
    }

    it("the create may overlap the record's fsync, but nothing starts and LAUNCHED is not answered before it is durable", async () => {
      const engine = new FakeEngine({ images: [IMAGE] });
      const workDir = await mkdtemp(path.join(tmpdir(), "berth-cz-unit-"));
      const store = new HeldFirstSave(path.join(workDir, "meta"));
      await store.init();
      const r = { ...(await fakeRig(engine, workDir, {}, { checkpoints: store })), workDir };
      rigs.push(r);
      const id = newId("record");
      let answered = false;
      const launched = r.cz.launch(input(id)).then((o) => ((answered = true), o));
      await eventOf(r.cz, id, isState("MOUNTING"));
      for (let i = 0; i < 200 && !engine.calls("createContainer").some((c) => c.settledAt !== undefined); i++) await tick();
      assert.equal(engine.calls("createContainer").length, 1, "created while the record is being written");
      assert.equal(engine.calls("startContainer").length, 0, "not started before the record is durable");
      assert.equal(answered, false, "LAUNCHED waits for the record");
      store.release();
      assert.equal((await launched).result, "LAUNCHED");
      await eventOf(r.cz, id, isState("RUNNING"));
      assert.ok(engine.calls("startContainer")[0]!.enteredAt > engine.calls("createContainer")[0]!.settledAt!);
    });
  });

  describe("launch storms (at most 8 creates/starts in flight)", () => {
    const SLOTS = 8;

    it("a launch queued behind Berth's own bound longer than the launch timeout still runs; the clock runs only in the engine call", async () => {
      const r = await rig({ launchTimeoutMs: 1500 });
      const holds = Array.from({ length: SLOTS }, () => r.engine.hold("createContainer"));
      const first = Array.from({ length: SLOTS }, () => newId("storm-held"));
      for (const id of first) assert.equal((await r.cz.launch(input(id))).result, "LAUNCHED");
      await Promise.all(holds.map((h) => h.entered));
      const queued = newId("storm-queued");
      assert.equal((await r.cz.launch(input(queued))).result, "LAUNCHED");
      const running = eventOf(r.cz, queued, isState("RUNNING"));
      // The held creates outlive their own timeout; the queued launch waits all that time.
      await Promise.all(first.map((id) => eventOf(r.cz, id, isState("DESTROYING"))));
      assert.equal(r.cz.list().find((c) => c.containerId === queued)?.state, "MOUNTING", "still waiting for a slot, not timed out");
      for (const h of holds) h();
      await running;
      for (const id of first) {
        const t = await r.cz.wait(id);
        assert.match(t.containerTermination.message, /timed out during MOUNTING/);
      }
    });

    it("a launch destroyed while queued for a slot terminates at once and never reaches the engine", async () => {
      const r = await rig();
      const holds = Array.from({ length: SLOTS }, () => r.engine.hold("createContainer"));
      for (let i = 0; i < SLOTS; i++) await r.cz.launch(input(newId("storm-fill")));
      await Promise.all(holds.map((h) => h.entered));
      const queued = newId("storm-destroyed");
      await r.cz.launch(input(queued));
      await eventOf(r.cz, queued, isState("MOUNTING"));
      const creates = r.engine.calls("createContainer").length;
      await r.cz.destroy(queued);
      assert.equal(r.engine.calls("createContainer").length, creates, "no create was sent for it");
      for (const h of holds) h();
    });

    it("starts are served before queued creates, so a storm brings containers up as it goes", async () => {
      const r = await rig();
      const n = SLOTS * 3;
      const ids = Array.from({ length: n }, () => newId("storm-order"));
      // The first two rounds of creates are held: the first round's starts then queue behind the
      // second round's creates, beside the third round's, and must be served first (the fake's
      // creates are instant, so without this the order would only tell which path has fewer ticks).
      const holds = Array.from({ length: SLOTS }, () => r.engine.hold("createContainer"));
      const second = Array.from({ length: SLOTS }, () => r.engine.hold("createContainer"));
      for (const id of ids) await r.cz.launch(input(id));
      await Promise.all(holds.map((h) => h.entered));
      for (const h of holds) h();
      await Promise.all(second.map((h) => h.entered));
      // The first round attaches, then asks for a slot to start in: wait until all of them have.
      for (let i = 0; i < 1000 && r.engine.calls("attachOutput").filter((c) => c.settledAt !== undefined).length < SLOTS; i++) await tick();
      for (let i = 0; i < 20; i++) await tick();
      for (const h of second) h();
      await Promise.all(ids.map((id) => eventOf(r.cz, id, isState("RUNNING"))));
      const order = r.engine.methods().filter((m) => m === "createContainer" || m === "startContainer");
      const firstStart = order.indexOf("startContainer");
      const lastCreate = order.lastIndexOf("createContainer");
      assert.ok(firstStart < lastCreate, `a start came before the last create: ${order.join(",")}`);
    });
  });

  describe("engine events stream loss", () => {
    it("a die missed while the stream was down is found by inspection after the reconnect", async () => {
      const r = await rig();
      const id = newId("missed");
      const engineId = await launchRunning(r, id);
      const inspectsBefore = r.engine.calls("inspectContainer").length;
      r.engine.dropEventStream();
      // The die happens while nobody listens, and the engine has forgotten it by the reconnect.
      r.engine.exit(engineId, 7);
      r.engine.forgetHistory();
      const t = await r.cz.wait(id);
      assert.equal(t.containerTermination.state, TaskState.TASK_FAILED);
      assert.equal(t.exitCode, 7);
      assert.ok(r.engine.calls("inspectContainer").length > inspectsBefore, "found by inspection");
      assert.ok(r.engine.calls("events").length >= 2, "the monitor reconnected");
    });

    it("a die missed while the stream was down is replayed with since= when the engine still has it", async () => {
      const r = await rig();
      const id = newId("replayed");
      const engineId = await launchRunning(r, id);
      r.engine.dropEventStream();
      r.engine.exit(engineId, 5);
      assert.equal((await r.cz.wait(id)).exitCode, 5);
      const resubscribe = r.engine.calls("events")[1]!;
      assert.equal(typeof resubscribe.args[1], "bigint", "the reconnect asks for a replay");
    });
  });

  describe("termination retention", () => {
    it("with retention 2 the oldest terminated container is forgotten and live ones never are", async () => {
      const r = await rig({ terminationRetention: 2 });
      const live = newId("live");
      await launchRunning(r, live);
      const ids = [newId("ret-a"), newId("ret-b"), newId("ret-c")];
      for (const id of ids) {
        const engineId = await launchRunning(r, id);
        r.engine.exit(engineId, 0);
        await r.cz.wait(id);
        await settled(r.cz, id);
      }
      await assert.rejects(r.cz.wait(ids[0]!), ContainerNotFound);
      await assert.rejects(r.cz.destroy(ids[0]!), ContainerNotFound);
      assert.equal((await r.cz.wait(ids[1]!)).containerTermination.state, TaskState.TASK_FINISHED);
      assert.equal((await r.cz.wait(ids[2]!)).containerTermination.state, TaskState.TASK_FINISHED);
      assert.equal((await r.cz.status(live)).state, "RUNNING", "a live container is never forgotten");
      assert.deepEqual(r.cz.list().map((c) => c.containerId).sort(), [live, ids[1]!, ids[2]!].sort());
    });
  });

  describe("wait", () => {
    it("Wait with an aborted signal rejects with Cancelled and leaves the container alone", async () => {
      const r = await rig();
      const id = newId("wait-cancel");
      const engineId = await launchRunning(r, id);
      const before = r.engine.log.length;

      const ac = new AbortController();
      const waiting = r.cz.wait(id, ac.signal);
      ac.abort();
      await assert.rejects(waiting, Cancelled);
      const pre = new AbortController();
      pre.abort();
      await assert.rejects(r.cz.wait(id, pre.signal), Cancelled);

      assert.equal((await r.cz.status(id)).state, "RUNNING");
      assert.deepEqual(r.engine.log.slice(before).map((c) => c.method).filter((m) => m !== "inspectContainer"), [], "no engine call was made");
      r.engine.exit(engineId, 0);
      assert.equal((await r.cz.wait(id)).containerTermination.state, TaskState.TASK_FINISHED);
    });
  });
});

/**
 * Retention runs when the pipeline's promise settles, a few microtasks after the termination was
 * published; one macrotask turn lets those run (idle() would also wait for the live container).
 */
async function settled(cz: Containerizer, id: string): Promise<void> {
  await tick();
  assert.equal(cz.list().find((c) => c.containerId === id)?.state ?? "forgotten", "TERMINATED");
}
