/**
 * The domain's races and error codes (issue 9 items 1, 2, 7, 8, 10, 14), forced with the fake
 * engine's held calls and a checkpoint store whose writes the test holds.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, watch } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { filter, firstValueFrom, lastValueFrom, toArray } from "rxjs";
import { CheckpointStore } from "../../src/checkpoint/checkpoint-store.js";
import type { ContainerEvent } from "../../src/containerizer/container-event.js";
import { Containerizer, toDomainError, type ContainerizerOptions, type LaunchInput } from "../../src/containerizer/containerizer.js";
import { AlreadyExists, ContainerNotFound, EngineFailed, EngineUnavailable, FailedPrecondition, InvalidRequest, StorageFailed } from "../../src/containerizer/errors.js";
import type { FetchFn } from "../../src/containerizer/launch-pipeline.js";
import type { ContainerState } from "../../src/containerizer/state.js";
import { EngineRequestFailed, EngineUnreachable } from "../../src/docker/engine-port.js";
import type { EventMonitor } from "../../src/docker/event-monitor.js";
import type { ContainerCheckpoint } from "../../src/gen/berth/checkpoint/v1/checkpoint_pb.js";
import { ContainerConfigSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import { ResourceSchema, TaskState, Value_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { toStatus } from "../../src/rpc/error-status.js";
import { FakeEngine, type EngineCall, type EngineMethod } from "../harness/fake-engine.js";
import { closeRig, fakeRig } from "../harness/fake-rig.js";
import { launchRequest, newId, type LaunchOptions } from "../harness/launches.js";

const IMAGE = "registry.invalid/fake/busybox:1";

interface Rig {
  engine: FakeEngine;
  monitor: EventMonitor;
  cz: Containerizer;
  workDir: string;
  store?: CheckpointStore;
}

const rigs: Rig[] = [];

async function rig(options: Partial<ContainerizerOptions> = {}, extra: { fetch?: FetchFn; store?: boolean } = {}): Promise<Rig> {
  const engine = new FakeEngine({ images: [IMAGE] });
  const workDir = await mkdtemp(path.join(tmpdir(), "berth-races-unit-"));
  let store: CheckpointStore | undefined;
  if (extra.store) {
    store = new CheckpointStore(path.join(workDir, "meta"));
    await store.init();
  }
  const built = await fakeRig(engine, workDir, options, { fetch: extra.fetch ?? (async () => {}), ...(store ? { checkpoints: store } : {}) });
  const r: Rig = { engine, monitor: built.monitor, cz: built.cz, workDir, store };
  rigs.push(r);
  return r;
}

function input(id: string, o: Partial<LaunchOptions> = {}): LaunchInput {
  const req = launchRequest(id, { image: IMAGE, ...o });
  return { containerId: id, nested: false, config: create(ContainerConfigSchema, req.containerConfig), environment: {} };
}

const isState = (s: ContainerState) => (e: ContainerEvent) => e.kind.type === "state" && e.kind.state === s;

function eventOf(cz: Containerizer, id: string, pred: (e: ContainerEvent) => boolean): Promise<ContainerEvent> {
  return firstValueFrom(cz.watch([id]).pipe(filter(pred)));
}

function allEvents(cz: Containerizer, id: string): Promise<ContainerEvent[]> {
  return lastValueFrom(cz.watch([id]).pipe(toArray()));
}

function states(events: ContainerEvent[]): string[] {
  return events.flatMap((e) => (e.kind.type === "state" ? [e.kind.state] : []));
}

async function launchRunning(r: Rig, id: string, o: Partial<LaunchOptions> = {}): Promise<string> {
  assert.equal((await r.cz.launch(input(id, o))).result, "LAUNCHED");
  await eventOf(r.cz, id, isState("RUNNING"));
  const engineId = (await r.cz.status(id)).engineId;
  assert.ok(engineId);
  return engineId;
}

/** Resolves with the first call of `method` (already made or still to come) matching `pred`. */
async function callMatching(engine: FakeEngine, method: EngineMethod, pred: (c: EngineCall) => boolean): Promise<EngineCall> {
  for (let n = 1; ; n += 1) {
    const call = await engine.nextCall(method, n);
    if (pred(call)) return call;
  }
}

/** A promise and its resolver. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves once `dir` no longer exists (watching its parent: no polling). */
function gone(dir: string): Promise<void> {
  return new Promise((resolve) => {
    const w = watch(path.dirname(dir), () => {
      if (!existsSync(dir)) {
        w.close();
        resolve();
      }
    });
    if (!existsSync(dir)) {
      w.close();
      resolve();
    }
  });
}

function mem(mb: number) {
  return create(ResourceSchema, { name: "mem", type: Value_Type.SCALAR, scalar: { value: mb } });
}

afterEach(async function () {
  for (const r of rigs.splice(0)) await closeRig(r, r.workDir);
});

describe("domain races and error codes (issue 9)", function () {
  this.timeout(10_000);

  describe("item 1: a create that times out", () => {
    it("a container the engine creates after Berth gave up on the create is removed without a reconnect", async () => {
      const r = await rig();
      const complete = r.engine.createTimesOut(new EngineUnreachable("engine at fake://engine did not answer create container within 1 ms"));
      const id = newId("late-create");
      await r.cz.launch(input(id));
      const t = await r.cz.wait(id);
      assert.equal(t.containerTermination.state, TaskState.TASK_FAILED);
      assert.match(t.containerTermination.message, /MOUNTING/);
      // The engine carries the create out after all.
      const destroyed = firstValueFrom(r.monitor.events$.pipe(filter((e) => e.action === "destroy")));
      const engineId = complete();
      assert.equal(r.engine.containers.size, 1);
      assert.equal((await destroyed).id, engineId);
      assert.equal(r.engine.containers.size, 0, "the late container is gone");
      assert.equal(r.engine.subscriberCount, 1, "no events stream was dropped: no reconnect sweep did it");
    });

    it("a create that failed without an answer but was carried out is removed by name before the launch fails", async () => {
      const r = await rig();
      const complete = r.engine.createTimesOut(new EngineUnreachable("engine at fake://engine did not answer create container within 1 ms"));
      const removal = r.engine.hold("removeContainer");
      const id = newId("created-timeout");
      await r.cz.launch(input(id));
      const call = await removal.entered;
      // The engine had in fact made it by the time Berth asks to remove it by its name.
      complete();
      removal();
      const t = await r.cz.wait(id);
      assert.equal(t.containerTermination.state, TaskState.TASK_FAILED);
      assert.match(String(call.args[0]), new RegExp(id));
      assert.equal(r.engine.containers.size, 0);
    });

    it("the reconnect sweep removes a late-created container whose create event was lost and whose id is forgotten", async () => {
      const r = await rig({ terminationRetention: 0 });
      const complete = r.engine.createTimesOut(new EngineUnreachable("engine at fake://engine did not answer create container within 1 ms"));
      const id = newId("late-forgotten");
      const creating = r.engine.hold("createContainer");
      await r.cz.launch(input(id));
      const ended = eventOf(r.cz, id, (e) => e.kind.type === "termination");
      await creating.entered;
      creating();
      await ended;
      await r.cz.idle();
      assert.ok(!r.cz.list().some((c) => c.containerId === id), "retention 0: the id is forgotten");
      // The engine creates it while the events stream is down, and its ring moves on.
      r.engine.dropEventStream();
      const engineId = complete();
      r.engine.forgetHistory();
      await callMatching(r.engine, "removeContainer", (c) => c.args[0] === engineId);
      assert.ok(!r.engine.containers.has(engineId), "the stray container is gone");
    });
  });

  describe("item 2: an exit followed by a Destroy (MESOS-7975)", () => {
    it("a Destroy that arrives while the output of a process that exited on its own drains reports the exit, not TASK_KILLED, and never DESTROYING", async () => {
      const r = await rig();
      const id = newId("exit-then-destroy");
      const engineId = await launchRunning(r, id);
      r.engine.container(engineId).keepsOutputOpen = true;
      const events = allEvents(r.cz, id);
      const died = firstValueFrom(r.monitor.events$.pipe(filter((e) => e.id === engineId && e.action === "die")));
      r.engine.exit(engineId, 3);
      // The containerizer subscribed to the monitor first: the exit is known once this resolves.
      await died;
      const destroyed = r.cz.destroy(id);
      // The output ends only now: the termination was not published before the Destroy.
      r.engine.container(engineId).stdout.end();
      r.engine.container(engineId).stderr.end();
      const t = await destroyed;
      assert.equal(t.containerTermination.state, TaskState.TASK_FAILED, t.containerTermination.message);
      assert.equal(t.exitCode, 3);
      assert.ok(!states(await events).includes("DESTROYING"), `states: ${states(await events).join(" → ")}`);
    });
  });

  describe("item 7: reconcile after an events gap", () => {
    it("finds the lost exit of a started container still in MOUNTING (its RUNNING record being written)", async () => {
      const r = await rig({}, { store: true });
      const store = r.store!;
      const save = store.save.bind(store);
      const runningSave = deferred();
      const release = deferred();
      store.save = (cp: ContainerCheckpoint) => {
        if (cp.state !== "RUNNING") return save(cp);
        runningSave.resolve();
        return save(cp).then(() => release.promise);
      };
      const id = newId("mounting-gap");
      const started = firstValueFrom(r.monitor.events$.pipe(filter((e) => e.action === "start")));
      await r.cz.launch(input(id));
      const engineId = (await started).id;
      await runningSave.promise;
      assert.equal((await r.cz.status(id)).state, "MOUNTING");
      // The stream breaks, the process dies in the gap, and the engine's event ring moves on.
      const reconciled = r.engine.nextCall("listContainers");
      r.engine.dropEventStream();
      r.engine.exit(engineId, 7);
      r.engine.forgetHistory();
      await reconciled;
      const inspected = r.engine.calls("inspectContainer").some((c) => c.args[0] === engineId);
      release.resolve();
      assert.ok(inspected, "reconcile inspects the MOUNTING container");
      const t = await r.cz.wait(id);
      assert.equal(t.exitCode, 7);
      assert.equal(t.containerTermination.state, TaskState.TASK_FAILED);
    });
  });

  describe("item 8: retention eviction", () => {
    it("a relaunch of an id being evicted keeps its new sandbox and record", async () => {
      let relaunching = false;
      let released = false;
      let free = (): void => undefined;
      let sandboxX = "";
      const fetch: FetchFn = async (_uris, sandbox) => {
        // Unfixed, the relaunch runs during the eviction: let the eviction go on now and wait
        // until it removed the sandbox, so what follows shows the loss.
        if (relaunching && sandbox === sandboxX && !released) {
          free();
          await gone(sandbox);
        }
      };
      const r = await rig({ terminationRetention: 1 }, { store: true, fetch });
      const store = r.store!;
      const x = newId("evicted");
      const engineX = await launchRunning(r, x);
      sandboxX = (await r.cz.status(x)).sandbox;
      r.engine.exit(engineX, 0);
      await r.cz.wait(x);
      await r.cz.idle();

      // The eviction of x: its record goes, then (held here) its sandbox.
      const remove = store.remove.bind(store);
      const evicting = deferred();
      const gate = deferred();
      free = () => {
        released = true;
        gate.resolve();
      };
      store.remove = (id: string) => {
        if (id !== x) return remove(id);
        evicting.resolve();
        return remove(id).then(() => gate.promise);
      };
      const y = newId("evicts");
      const engineY = await launchRunning(r, y);
      r.engine.exit(engineY, 0);
      await r.cz.wait(y);
      await evicting.promise;

      relaunching = true;
      const launching = r.cz.launch(input(x));
      // Fixed, the relaunch is not even registered until the eviction is over.
      if (!r.cz.list().some((c) => c.containerId === x)) free();
      assert.equal((await launching).result, "LAUNCHED");
      const engineX2 = (await eventOf(r.cz, x, isState("RUNNING")), (await r.cz.status(x)).engineId!);
      r.engine.container(engineX2).stdout.write("second run\n");
      r.engine.exit(engineX2, 0);
      await r.cz.wait(x);
      await r.cz.idle();
      assert.ok(existsSync(sandboxX), "the relaunch's sandbox exists");
      assert.equal(readFileSync(path.join(sandboxX, "stdout"), "utf8"), "second run\n");
      const records = (await store.load()).containers.map((cp) => cp.containerId);
      assert.ok(records.includes(x), `records: ${records.join(", ")}`);
    });

    it("a launch whose record failed takes no retention place: a later container of that id is not evicted early", async () => {
      const r = await rig({ terminationRetention: 1 }, { store: true });
      const store = r.store!;
      const save = store.save.bind(store);
      let failOnce = true;
      store.save = (cp: ContainerCheckpoint) => {
        if (failOnce) {
          failOnce = false;
          return Promise.reject(Object.assign(new Error(`ENOSPC: no space left on device, open '${store.dir}/containers/x.tmp'`), { code: "ENOSPC" }));
        }
        return save(cp);
      };
      const x = newId("unrecorded");
      await assert.rejects(r.cz.launch(input(x)));
      await r.cz.idle();
      const engineX = await launchRunning(r, x);
      r.engine.exit(engineX, 0);
      await r.cz.wait(x);
      await r.cz.idle();
      const t = await r.cz.wait(x).catch((err: unknown) => err);
      assert.ok(!(t instanceof ContainerNotFound), "the one retained terminated container is still known");
    });
  });

  describe("item 10: error codes a client can act on", () => {
    it("Update below the container's current usage is FAILED_PRECONDITION with the engine's cause", async () => {
      const r = await rig();
      const id = newId("update-usage");
      const engineId = await launchRunning(r, id, { memMb: 100 });
      r.engine.failNext(
        "updateContainer",
        new EngineRequestFailed(
          `engine answered 500 to update container '${engineId}': Cannot update container ${engineId}: runc did not terminate successfully: exit status 1: unable to set memory limit to 10485760 (current usage: 42373120, peak usage: 43765760)\n: unknown`,
          500,
        ),
      );
      const err = await r.cz.update(id, [mem(10)]).catch((e: unknown) => e);
      assert.ok(err instanceof FailedPrecondition, String(err));
      assert.equal(toStatus(err).code, status.FAILED_PRECONDITION);
      assert.match(toStatus(err).details, /current usage: 42373120/);
    });

    it("an Update value the engine refuses as a bad parameter is INVALID_ARGUMENT", async () => {
      const r = await rig();
      const id = newId("update-bad");
      await launchRunning(r, id, { memMb: 100 });
      r.engine.failNext("updateContainer", new EngineRequestFailed("engine answered 400 to update container: Minimum memory limit allowed is 6MB", 400));
      const err = await r.cz.update(id, [mem(1)]).catch((e: unknown) => e);
      assert.ok(err instanceof InvalidRequest, String(err));
      assert.equal(toStatus(err).code, status.INVALID_ARGUMENT);
      assert.match(toStatus(err).details, /Minimum memory limit allowed is 6MB/);
    });

    it("a name conflict the engine reports is ALREADY_EXISTS", () => {
      const err = toDomainError(new EngineRequestFailed('engine answered 409 to create container \'x\': Conflict. The container name "/x" is already in use by container "abc"', 409));
      assert.ok(err instanceof AlreadyExists);
      assert.equal(toStatus(err).code, status.ALREADY_EXISTS);
    });

    it("a stop the engine refuses is INTERNAL with its cause; only an unreachable engine makes Destroy UNAVAILABLE", async () => {
      const r = await rig();
      const a = newId("stop-refused");
      await launchRunning(r, a);
      r.engine.failNext("stopContainer", new EngineRequestFailed("engine answered 500 to stop container: cannot stop container: permission denied", 500));
      const refused = await r.cz.destroy(a).catch((e: unknown) => e);
      assert.ok(refused instanceof EngineFailed, String(refused));
      assert.equal(toStatus(refused).code, status.INTERNAL);
      assert.match(toStatus(refused).details, /permission denied/);
      assert.doesNotMatch(toStatus(refused).details, /may be retried/);

      const b = newId("stop-unreachable");
      await launchRunning(r, b);
      r.engine.failNext("stopContainer", new EngineUnreachable("engine at fake://engine unreachable during stop container: ECONNREFUSED"));
      const unreachable = await r.cz.destroy(b).catch((e: unknown) => e);
      assert.ok(unreachable instanceof EngineUnavailable, String(unreachable));
      assert.equal(toStatus(unreachable).code, status.UNAVAILABLE);
      assert.match(toStatus(unreachable).details, /may be retried/);
    });

    it("a launch whose record cannot be written is a disk failure naming the path, not the engine being unavailable", async () => {
      const r = await rig({}, { store: true });
      const store = r.store!;
      store.save = () => Promise.reject(Object.assign(new Error(`ENOSPC: no space left on device, write '${store.dir}/containers/c.tmp'`), { code: "ENOSPC" }));
      const err = await r.cz.launch(input(newId("disk-full"))).catch((e: unknown) => e);
      assert.ok(err instanceof StorageFailed, String(err));
      assert.ok(!(err instanceof EngineUnavailable));
      assert.equal(toStatus(err).code, status.UNAVAILABLE);
      assert.ok(toStatus(err).details.includes(store.dir), toStatus(err).details);
      assert.match(toStatus(err).details, /ENOSPC/);
      assert.doesNotMatch(toStatus(err).details, /engine/i);
    });

    it("a termination that cannot be recorded is still answered, and the exited container stays in the engine as the evidence of its exit", async () => {
      const r = await rig({}, { store: true });
      const store = r.store!;
      const id = newId("unrecorded-exit");
      const engineId = await launchRunning(r, id);
      const save = store.save.bind(store);
      store.save = (cp: ContainerCheckpoint) =>
        cp.termination ? Promise.reject(Object.assign(new Error(`ENOSPC: no space left on device, write '${store.dir}/containers/x.tmp'`), { code: "ENOSPC" })) : save(cp);
      r.engine.exit(engineId, 3);
      const t = await r.cz.wait(id);
      assert.equal(t.exitCode, 3);
      await r.cz.idle();
      assert.equal(r.engine.calls("removeContainer").filter((c) => c.args[0] === engineId).length, 0, "not removed while its termination is unrecorded");
      assert.ok(r.engine.containers.has(engineId));
    });

    it("no docker-layer error leaves the domain untranslated", async () => {
      const r = await rig();
      const id = newId("untranslated");
      await launchRunning(r, id);
      r.engine.failNext("updateContainer", new EngineRequestFailed("engine answered 500 to update container: something broke", 500));
      const err = await r.cz.update(id, [mem(64)]).catch((e: unknown) => e);
      assert.ok(err instanceof EngineFailed, String(err));
      assert.ok(!(err instanceof EngineRequestFailed));
    });
  });

  describe("item 14: Destroy's answer with --docker_remove_delay", () => {
    it("Destroy answers once the removal is scheduled (the exited container stays for the delay), and the README says so", async () => {
      const r = await rig({ removeDelayMs: 3_600_000 });
      const id = newId("remove-delay");
      const engineId = await launchRunning(r, id);
      const t = await r.cz.destroy(id);
      assert.equal(t.containerTermination.state, TaskState.TASK_KILLED);
      assert.equal(r.engine.container(engineId).status, "exited", "the exited container stays for the delay");
      const readme = readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../README.md"), "utf8");
      const row = readme.split("\n").find((l) => l.startsWith("| `Destroy("));
      assert.ok(row, "README has a Destroy row");
      assert.match(row, /--docker_remove_delay/, row);
    });
  });
});
