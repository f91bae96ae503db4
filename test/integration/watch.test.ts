import assert from "node:assert/strict";
import type Dockerode from "dockerode";
import { State, type ContainerEvent } from "../../src/gen/berth/v1/containerizer_pb.js";
import type { TestImages } from "../support/engine.js";
import { launchRequest, newId } from "../harness/launches.js";
import type { TestBerth } from "../harness/test-berth.js";
import { sequenceMark } from "../harness/berth-client.js";
import { useBerth } from "../harness/use-berth.js";

const key = (e: ContainerEvent) => `${e.sequence}:${e.containerId?.value}:${e.kind.case}`;
const isRunning = (e: ContainerEvent) => e.kind.case === "stateChanged" && (e.kind.value as { state: State }).state === State.RUNNING;

describe("Watch against a real engine", function () {
  this.timeout(60_000);
  const suite = useBerth();
  let docker: Dockerode;
  let images: TestImages;
  let t: TestBerth;
  beforeEach(() => ({ docker, images, t } = suite));

  it("a new subscriber first gets a snapshot of the current state, then live events", async () => {
    const id = newId("snap");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exec sleep 300", taskId: `task-${id}` }));
    await t.client.collect([id], isRunning);
    // A late subscriber: the container is RUNNING already.
    let destroyed: Promise<unknown> | undefined;
    const events = await t.client.collect([id], (e, all) => {
      if (all.length === 1 || (!destroyed && !e.snapshot)) destroyed ??= t.client.destroy(id);
      return e.kind.case === "termination";
    });
    const snapshot = events.filter((e) => e.snapshot);
    assert.equal(snapshot[0]?.kind.case, "stateChanged");
    assert.equal((snapshot[0]?.kind.value as { state: State }).state, State.RUNNING);
    assert.ok(snapshot.some((e) => e.kind.case === "taskStatus"), "the last task status is in the snapshot");
    const live = events.filter((e) => !e.snapshot);
    assert.ok(live.length > 0 && live.every((e) => e.sequence > snapshot.at(-1)!.sequence), "live events come after the snapshot");
    assert.equal(events.at(-1)?.kind.case, "termination");
    await destroyed;
  });

  it("two subscribers see the same sequence of events", async () => {
    const ids = [newId("two"), newId("two")];
    const done = (e: ContainerEvent, all: ContainerEvent[]) => all.filter((x) => x.kind.case === "termination" && ids.includes(x.containerId?.value ?? "")).length === 2;
    // Both resume from the current sequence: nothing after it is missed, however late they open.
    const mark = sequenceMark(t.berth);
    const a = t.client.collect([], done, mark);
    const b = t.client.collect([], done, mark);
    await Promise.all(ids.map((id) => t.client.launch(launchRequest(id, { image: images.busybox, shell: "echo hi" }))));
    const [ea, eb] = await Promise.all([a, b]);
    const mine = (es: ContainerEvent[]) => es.filter((e) => !e.snapshot && ids.includes(e.containerId?.value ?? "")).map(key);
    assert.ok(mine(ea).length >= 10);
    assert.deepEqual(mine(ea), mine(eb));
  });

  it("watching given ids ends after their terminations; watching all stays open", async () => {
    const id = newId("end");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exit 0" }));
    const forId = await t.client.collect([id]); // no `until`: resolves only when the server ends the stream
    assert.equal(forId.at(-1)?.kind.case, "termination");
    // The all-stream's snapshot holds the first container's termination. Once it has arrived,
    // a second container is launched: its events, all the way to its termination, must still
    // come on the same stream (collect rejects if the stream ends before).
    const later = newId("later");
    let launched: Promise<unknown> | undefined;
    const all = await t.client.collect([], (e) => {
      if (!launched && e.containerId?.value === id && e.kind.case === "termination") {
        launched = t.client.launch(launchRequest(later, { image: images.busybox, shell: "exit 0" }));
      }
      return e.containerId?.value === later && e.kind.case === "termination";
    });
    await launched;
    const first = all.filter((e) => e.containerId?.value === id);
    assert.ok(first.length > 0 && first.every((e) => e.snapshot), "the first container came in the snapshot");
    const second = all.filter((e) => e.containerId?.value === later);
    assert.ok(second.length > 1 && second.every((e) => !e.snapshot), "the later container's events came live");
    assert.ok(second.some(isRunning), "the later container's whole life, RUNNING included, was delivered");
    assert.ok(second[0]!.sequence > first.at(-1)!.sequence);
  });

  it("a wait for an event that never comes fails, naming what the stream showed", async () => {
    const id = newId("never");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exit 0" }));
    // The stream of one container ends after its termination: a wait for RUNNING after that, or
    // for a state it never reaches, must not pass for having waited.
    await assert.rejects(
      t.client.collect([id], (e) => e.kind.case === "stateChanged" && e.kind.value.state === State.DESTROYING),
      (err: Error) => /ended before the awaited event/.test(err.message) && err.message.includes(`${id}:termination`) && /=TERMINATED/.test(err.message),
    );
  });
});
