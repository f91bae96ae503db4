import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import type Dockerode from "dockerode";
import { State, type ContainerEvent } from "../../src/gen/berth/v1/containerizer_pb.js";
import type { TestImages } from "../support/engine.js";
import { launchRequest, newId } from "../harness/launches.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";
import { useBerth } from "../harness/use-berth.js";

const isState = (s: State) => (e: ContainerEvent) => e.kind.case === "stateChanged" && (e.kind.value as { state: State }).state === s;

describe("Watch resume from a sequence number (real engine, real gRPC)", function () {
  this.timeout(60_000);
  const suite = useBerth({ watch_retention: "10000" });
  let docker: Dockerode;
  let images: TestImages;
  let t: TestBerth;
  beforeEach(() => ({ docker, images, t } = suite));

  it("a client that disconnects and resumes gets exactly what it missed, then live events", async () => {
    const id = newId("resume");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exec sleep 300" }));
    // First connection: until RUNNING, then the client goes away.
    const first = await t.client.collect([id], isState(State.RUNNING));
    const lastSeen = first.at(-1)!.sequence;
    // While it is away, the container is destroyed.
    await t.client.destroy(id);
    // Resume: no snapshot, the missed events in order, ending with the termination.
    const resumed = await t.client.collect([id], undefined, lastSeen);
    assert.ok(resumed.length >= 3);
    assert.ok(resumed.every((e) => !e.snapshot && e.sequence > lastSeen));
    for (let i = 1; i < resumed.length; i++) assert.ok(resumed[i]!.sequence > resumed[i - 1]!.sequence);
    assert.ok(resumed.some(isState(State.DESTROYING)));
    assert.equal(resumed.at(-1)?.kind.case, "termination");
  });

  it("a resume from a sequence ahead of the agent is INVALID_ARGUMENT", async () => {
    await assert.rejects(t.client.collect([], undefined, 1n << 60n), (err: { code: number; details: string }) => err.code === status.INVALID_ARGUMENT && /ahead of the last sequence/.test(err.details));
  });

  it("after a restart the sequence goes on above every earlier one, and a resume from before it is OUT_OF_RANGE", async () => {
    const id = newId("restart");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exit 0" }));
    const before = await t.client.collect([id]);
    const highest = before.reduce((m, e) => (e.sequence > m ? e.sequence : m), 0n);
    // Restart Berth on the same work dir (the in-process equivalent of a process restart).
    const workDir = t.workDir;
    t.client.close();
    await t.berth.stop();
    t = suite.t = await startTestBerth({ work_dir: workDir });
    const again = await t.client.collect([id]);
    assert.ok(again.length > 0 && again.every((e) => e.sequence > highest), "numbering never goes back");
    assert.equal(again.at(-1)?.kind.case, "termination", "the termination survived the restart");
    await assert.rejects(t.client.collect([], undefined, highest), (err: { code: number; details: string }) => err.code === status.OUT_OF_RANGE && /no longer retained/.test(err.details));
  });
});
