import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readdir } from "node:fs/promises";
import type Dockerode from "dockerode";
import { State, type ContainerEvent } from "../../src/gen/berth/v1/containerizer_pb.js";
import { TaskState, TaskStatus_Reason } from "../../src/gen/mesos/v1/mesos_pb.js";
import type { CreateSpec, EnginePort } from "../../src/docker/engine-port.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { ensureEngine, ensureTestImages, removeImage, startThrottledRegistry, type TestImages, type ThrottledRegistry } from "../support/engine.js";
import { launchRequest, newId } from "../harness/launches.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";
import { sequenceMark } from "../harness/berth-client.js";

const isState = (s: State) => (e: ContainerEvent) => e.kind.case === "stateChanged" && (e.kind.value as { state: State }).state === s;

/** Waits (bounded by the test's timeout) until `probe` holds, re-checking on a short interval. */
async function eventually(probe: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An engine call held on its way in: `reached` resolves when Berth makes it, `release()` lets it through. */
class Hold {
  readonly reached: Promise<void>;
  private reach!: () => void;
  private open!: () => void;
  private readonly opened = new Promise<void>((resolve) => (this.open = resolve));
  constructor() {
    this.reached = new Promise<void>((resolve) => (this.reach = resolve));
  }
  arrive(): Promise<void> {
    this.reach();
    return this.opened;
  }
  release(): void {
    this.open();
  }
}

const stateOf = (e: ContainerEvent) => (e.kind.value as { state: State }).state;

describe("destroy in every state, against a real engine", function () {
  this.timeout(180_000);
  let docker: Dockerode;
  let images: TestImages;
  let t: TestBerth;
  let pulls = 0;
  // Engine calls the test holds (by `method:container id` or `pullImage:ref`), and which
  // container each engine id was created for.
  const holds = new Map<string, Hold>();
  const created = new Map<string, string>();
  // An HTTP server that accepts a request and never answers: a fetch that hangs.
  let hanging: Server;
  let hangingUrl: string;

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
    t = await startTestBerth({ launch_timeout: "1mins" }, {
      wrapEngine: (engine: EnginePort): EnginePort =>
        new Proxy(engine, {
          get(target, prop, receiver) {
            const value = Reflect.get(target, prop, receiver) as unknown;
            if (prop === "pullImage") {
              return async (...args: Parameters<EnginePort["pullImage"]>) => {
                pulls += 1;
                await holds.get(`pullImage:${args[0]}`)?.arrive();
                await target.pullImage(...args);
                await holds.get(`pullImage-done:${args[0]}`)?.arrive();
              };
            }
            if (prop === "createContainer") {
              return async (spec: CreateSpec) => {
                const id = spec.Labels[LABEL_CONTAINER_ID] ?? "";
                await holds.get(`createContainer:${id}`)?.arrive();
                const engineId = await target.createContainer(spec);
                created.set(engineId, id);
                return engineId;
              };
            }
            if (prop === "startContainer") {
              return async (engineId: string) => {
                await holds.get(`startContainer:${created.get(engineId)}`)?.arrive();
                return target.startContainer(engineId);
              };
            }
            return typeof value === "function" ? value.bind(target) : value;
          },
        }),
    });
    hanging = createServer(() => {});
    await new Promise<void>((r) => hanging.listen(0, "127.0.0.1", r));
    hangingUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/artifact.bin`;
  });
  after(async () => {
    hanging?.closeAllConnections();
    hanging?.close();
    await t?.close();
  });

  async function nothingLeftInEngine(): Promise<void> {
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${t.berth.agentId}`] } });
    assert.deepEqual(left.map((c) => c.Names), [], "no engine container left behind");
  }

  it("destroy during FETCHING stops the download, reports TASK_KILLED, leaves no container and no partial file", async () => {
    const id = newId("d-fetch");
    const launched = await t.client.launch(launchRequest(id, { image: images.busybox, command: { shell: true, value: "true", uris: [{ value: hangingUrl }] } }));
    await t.client.collect([id], isState(State.FETCHING));
    const { termination } = await t.client.destroy(id);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_KILLED);
    assert.match(termination?.containerTermination?.message ?? "", /FETCHING/);
    await nothingLeftInEngine();
    assert.deepEqual((await readdir(launched.sandboxDirectory)).sort(), ["stderr", "stdout"], "only the documented empty output files stay");
  });

  describe("through a throttled registry", () => {
    let slow: ThrottledRegistry;
    before(async () => {
      slow = await startThrottledRegistry({ bytesPerSecond: 1024 * 1024 });
    });
    after(async () => {
      await slow?.close();
    });

    it("destroy during PULLING aborts the engine transfer at once and leaves no container", async () => {
      const image = `${slow.host}/berth-test/big:1`;
      await removeImage(docker, image);
      const id = newId("d-pull");
      await t.client.launch(launchRequest(id, { image }));
      await t.client.collect([id], (e) => e.kind.case === "pullProgress" && (e.kind.value as { bytesCurrent: bigint }).bytesCurrent > 0n);
      const before = slow.bytesSent();
      assert.ok(before > 0, "bytes were flowing");
      const { termination } = await t.client.destroy(id);
      assert.equal(termination?.containerTermination?.state, TaskState.TASK_KILLED);
      assert.match(termination?.containerTermination?.message ?? "", /PULLING/);
      // The transfer stops: the byte count settles well short of the 64 MiB layer.
      let last = slow.bytesSent();
      let stableSince = Date.now();
      await eventually(() => {
        const now = slow.bytesSent();
        if (now !== last) {
          last = now;
          stableSince = Date.now();
        }
        return Date.now() - stableSince > 1500;
      }, "the transfer to stop");
      assert.ok(last < 48 * 1024 * 1024, `transfer stopped early (sent ${last} bytes)`);
      await nothingLeftInEngine();
      await removeImage(docker, image);
    });

    it("concurrent launches of one image share one pull; destroying one waiter that had joined it does not stop the others", async () => {
      const image = `${slow.host}/berth-test/busybox:1`;
      await removeImage(docker, image);
      pulls = 0;
      // The engine pull is held until all three are PULLING, so none can miss its start, and its
      // end is held until the destroy is answered, so the destroy lands in the shared pull.
      const start = new Hold();
      const end = new Hold();
      holds.set(`pullImage:${image}`, start);
      holds.set(`pullImage-done:${image}`, end);
      try {
        const ids = [newId("share"), newId("share"), newId("share")];
        const mark = sequenceMark(t.berth);
        await Promise.all(ids.map((id) => t.client.launch(launchRequest(id, { image, shell: "exit 0" }))));
        await start.reached;
        await t.client.collect(ids, (_, all) => ids.every((id) => all.some((e) => e.containerId?.value === id && isState(State.PULLING)(e))), mark);
        start.release();
        await end.reached;
        // Every waiter, the one about to be destroyed included, got the progress of the one engine pull.
        const progressed = await t.client.collect(ids, (_, all) => ids.every((id) => all.some((e) => e.containerId?.value === id && e.kind.case === "pullProgress")), mark);
        assert.equal(pulls, 1, "one engine pull, shared by the three");
        const last = (id: string) => progressed.filter((e) => e.containerId?.value === id && e.kind.case === "pullProgress").at(-1)?.kind.value as { bytesCurrent: bigint; bytesTotal: bigint } | undefined;
        assert.ok(ids.every((id) => last(id) !== undefined), "each waiter saw the pull's progress");
        assert.ok(!progressed.some((e) => e.kind.case === "termination" || isState(State.MOUNTING)(e)), "all three still PULLING before the destroy");
        const { termination } = await t.client.destroy(ids[0]!);
        assert.equal(termination?.containerTermination?.state, TaskState.TASK_KILLED);
        assert.match(termination?.containerTermination?.message ?? "", /PULLING/, "destroyed while waiting on the pull");
        end.release();
        const results = await Promise.all(ids.slice(1).map((id) => t.client.wait(id)));
        for (const r of results) assert.equal(r.termination?.containerTermination?.state, TaskState.TASK_FINISHED);
        assert.equal(pulls, 1, "one engine pull for three launches");
      } finally {
        start.release();
        end.release();
        holds.delete(`pullImage:${image}`);
        holds.delete(`pullImage-done:${image}`);
        await removeImage(docker, image);
      }
    });
  });

  for (const call of ["createContainer", "startContainer"] as const) {
    it(`destroy during MOUNTING (${call} in flight) removes whatever was created and reports TASK_KILLED, never RUNNING`, async () => {
      const id = newId("d-mount");
      // The engine call is held once Berth makes it: the destroy lands while the container is
      // MOUNTING, and the call completes only after Berth has taken the destroy.
      const hold = new Hold();
      holds.set(`${call}:${id}`, hold);
      try {
        const mark = sequenceMark(t.berth);
        const launched = await t.client.launch(launchRequest(id, { image: images.busybox, shell: 'echo ran > "$MESOS_SANDBOX/ran"; exec sleep 300' }));
        await hold.reached;
        assert.equal((await t.client.status(id)).state, State.MOUNTING);
        const destroyed = t.client.destroy(id);
        await t.client.collect([id], isState(State.DESTROYING), mark);
        hold.release();
        const { termination } = await destroyed;
        assert.equal(termination?.containerTermination?.state, TaskState.TASK_KILLED);
        const events = await t.client.collect([id], undefined, mark);
        const seen = events.filter((e) => e.kind.case === "stateChanged").map(stateOf);
        assert.deepEqual(seen.slice(-3), [State.MOUNTING, State.DESTROYING, State.TERMINATED], `states ${seen.map((s) => State[s]).join(" → ")}`);
        assert.ok(!seen.includes(State.RUNNING), "never RUNNING");
        const engineId = [...created].find(([, c]) => c === id)?.[0];
        assert.ok(engineId, "the held create went through to the engine");
        await assert.rejects(docker.getContainer(engineId).inspect(), (err: { statusCode?: number }) => err.statusCode === 404, "the created container is removed");
        await nothingLeftInEngine();
        // Destroyed before the start was asked for: the task's process never ran.
        if (call === "createContainer") assert.deepEqual((await readdir(launched.sandboxDirectory)).sort(), ["stderr", "stdout"], "the task never ran");
      } finally {
        hold.release();
        holds.delete(`${call}:${id}`);
      }
    });
  }

  it("destroy of a terminated container answers its termination; unknown ids are NOT_FOUND", async () => {
    const id = newId("d-done");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exit 0" }));
    const waited = await t.client.wait(id);
    const destroyed = await t.client.destroy(id);
    assert.deepEqual(destroyed.termination, waited.termination);
    await assert.rejects(t.client.destroy(newId("nope")), (err: { code: number; details: string }) => err.code === 5 && /is not known/.test(err.details));
  });

  it("a launch that outlives --launch_timeout in FETCHING is destroyed with REASON_CONTAINER_LAUNCH_FAILED naming the stage", async () => {
    const quick = await startTestBerth({ launch_timeout: "1secs" });
    try {
      const id = newId("timeout");
      await quick.client.launch(launchRequest(id, { image: images.busybox, command: { shell: true, value: "true", uris: [{ value: hangingUrl }] } }));
      const { termination } = await quick.client.wait(id);
      assert.equal(termination?.containerTermination?.state, TaskState.TASK_FAILED);
      assert.equal(termination?.containerTermination?.reason, TaskStatus_Reason.CONTAINER_LAUNCH_FAILED);
      assert.match(termination?.containerTermination?.message ?? "", /FETCHING/);
      assert.match(termination?.containerTermination?.message ?? "", /1s/);
    } finally {
      await quick.close();
    }
  });

  it("a pull that makes no progress for --pull_activity_timeout fails the launch with a clear reason", async () => {
    const stalled = await startThrottledRegistry({ bytesPerSecond: 1 });
    const quick = await startTestBerth({ pull_activity_timeout: "2secs" });
    try {
      const image = `${stalled.host}/berth-test/big:1`;
      await removeImage(docker, image);
      const id = newId("stall");
      await quick.client.launch(launchRequest(id, { image }));
      const { termination } = await quick.client.wait(id);
      assert.equal(termination?.containerTermination?.state, TaskState.TASK_FAILED);
      assert.equal(termination?.containerTermination?.reason, TaskStatus_Reason.CONTAINER_LAUNCH_FAILED);
      assert.match(termination?.containerTermination?.message ?? "", /PULLING.*no progress for 2s/);
    } finally {
      await quick.close();
      await stalled.close();
    }
  });
});
