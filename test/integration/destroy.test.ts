import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readdir } from "node:fs/promises";
import type Dockerode from "dockerode";
import { State, type ContainerEvent } from "../../src/gen/berth/v1/containerizer_pb.js";
import { TaskState, TaskStatus_Reason } from "../../src/gen/mesos/v1/mesos_pb.js";
import type { EnginePort } from "../../src/docker/engine-port.js";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import { ensureEngine, ensureTestImages, removeImage, startThrottledRegistry, type TestImages, type ThrottledRegistry } from "../support/engine.js";
import { launchRequest, newId } from "../harness/launches.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";

const isState = (s: State) => (e: ContainerEvent) => e.kind.case === "stateChanged" && (e.kind.value as { state: State }).state === s;

/** Waits (bounded by the test's timeout) until `probe` holds, re-checking on a short interval. */
async function eventually(probe: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("destroy in every state, against a real engine", function () {
  this.timeout(180_000);
  let docker: Dockerode;
  let images: TestImages;
  let t: TestBerth;
  let pulls = 0;
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
              return (...args: Parameters<EnginePort["pullImage"]>) => {
                pulls += 1;
                return target.pullImage(...args);
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

    it("concurrent launches of one image share one pull; destroying one waiter does not stop the others", async () => {
      const image = `${slow.host}/berth-test/busybox:1`;
      await removeImage(docker, image);
      pulls = 0;
      const ids = [newId("share"), newId("share"), newId("share")];
      await Promise.all(ids.map((id) => t.client.launch(launchRequest(id, { image, shell: "exit 0" }))));
      await t.client.destroy(ids[0]!);
      const results = await Promise.all(ids.slice(1).map((id) => t.client.wait(id)));
      for (const r of results) assert.equal(r.termination?.containerTermination?.state, TaskState.TASK_FINISHED);
      assert.equal(pulls, 1, "one engine pull for three launches");
      await removeImage(docker, image);
    });
  });

  it("destroy during MOUNTING removes whatever was created and reports TASK_KILLED", async () => {
    const id = newId("d-mount");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exec sleep 300" }));
    // Destroy from inside the event handler, the moment MOUNTING is seen.
    let destroyed: ReturnType<typeof t.client.destroy> | undefined;
    const events = await t.client.collect([id], (e) => {
      if (!destroyed && isState(State.MOUNTING)(e)) destroyed = t.client.destroy(id);
      return e.kind.case === "termination";
    });
    assert.ok(destroyed, "MOUNTING was observed");
    const { termination } = await destroyed;
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_KILLED);
    const seen = events.filter((e) => e.kind.case === "stateChanged" && !e.snapshot).map((e) => (e.kind.value as { state: State }).state);
    assert.deepEqual(seen.slice(-2), [State.DESTROYING, State.TERMINATED]);
    assert.ok(!seen.includes(State.RUNNING) || seen.indexOf(State.RUNNING) < seen.indexOf(State.DESTROYING), "no RUNNING after DESTROYING");
    await nothingLeftInEngine();
  });

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
