import assert from "node:assert/strict";
import { status, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { LaunchResult, State, WatchRequestSchema, type ContainerEvent, type WatchResponse } from "../../src/gen/berth/v1/containerizer_pb.js";
import type { TestImages } from "../support/engine.js";
import { describeEvents, sequenceMark } from "../harness/berth-client.js";
import { launchRequest, newId } from "../harness/launches.js";
import type { TestBerth } from "../harness/test-berth.js";
import { useBerth } from "../harness/use-berth.js";

const stateOf = (e: ContainerEvent) => (e.kind.case === "stateChanged" ? State[(e.kind.value as { state: State }).state] : undefined);
const states = (events: ContainerEvent[]) => events.flatMap((e) => (stateOf(e) ? [stateOf(e)!] : []));

/** Every event of a stream until it ends OK (rejects on an error status). */
function drain(stream: ClientReadableStream<WatchResponse>): Promise<ContainerEvent[]> {
  const events: ContainerEvent[] = [];
  return new Promise((resolve, reject) => {
    stream.on("data", (r: WatchResponse) => events.push(r.event!));
    stream.on("end", () => resolve(events));
    stream.on("error", (err: ServiceError) => reject(new Error(`Watch failed (${status[err.code]} ${err.details}) after ${describeEvents(events)}`, { cause: err })));
  });
}

/** Resolves once the server has sent the stream's response headers: the Watch is subscribed. */
function subscribed(stream: ClientReadableStream<WatchResponse>): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once("metadata", () => resolve());
    stream.once("error", reject);
  });
}

describe("Watch before Launch (issue 9 item 12; real engine, real gRPC)", function () {
  this.timeout(60_000);
  const suite = useBerth();
  let images: TestImages;
  let t: TestBerth;
  beforeEach(() => ({ images, t } = suite));

  it("a Watch opened before the Launch waits, then gets every event from the first (FETCHING) through the termination, then ends", async () => {
    const id = newId("before");
    const stream = t.client.watch([id]);
    const events = drain(stream);
    // Headers arrive once the Watch is subscribed, although it has nothing to send yet.
    await subscribed(stream);
    const launched = await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exit 0" }));
    assert.equal(launched.result, LaunchResult.LAUNCHED);
    const got = await events;
    const what = describeEvents(got);
    assert.ok(got.length > 0, "the stream delivered the container's events");
    assert.ok(got.every((e) => !e.snapshot && e.containerId?.value === id), what);
    assert.equal(got[0]!.sequence, launched.firstSequence, `the first event is the one Launch named: ${what}`);
    assert.deepEqual(states(got), ["FETCHING", "PULLING", "MOUNTING", "RUNNING", "TERMINATED"], what);
    assert.equal(got.at(-1)!.kind.case, "termination", what);
    for (let i = 1; i < got.length; i++) assert.ok(got[i]!.sequence > got[i - 1]!.sequence, what);
  });

  it("a client that launched first resumes from first_sequence - 1 and gets all of the container's events, no gap", async () => {
    const id = newId("first-seq");
    const mark = sequenceMark(t.berth);
    // Another container's events interleave, so "all of X's" is more than "everything since".
    const other = newId("other");
    await t.client.launch(launchRequest(other, { image: images.busybox, shell: "exit 0" }));
    const launched = await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exit 0" }));
    assert.equal(launched.result, LaunchResult.LAUNCHED);
    assert.ok(launched.firstSequence > mark, `first_sequence ${launched.firstSequence} is after the mark ${mark}`);
    const resumed = await t.client.collect([id], undefined, launched.firstSequence - 1n);
    // Everything of X since a mark taken before either launch: the reference.
    const reference = await t.client.collect([id], undefined, mark);
    const what = describeEvents(resumed);
    assert.equal(resumed[0]!.sequence, launched.firstSequence, what);
    assert.equal(stateOf(resumed[0]!), "FETCHING", what);
    assert.equal(resumed.at(-1)!.kind.case, "termination", what);
    assert.ok(resumed.every((e) => !e.snapshot), what);
    assert.deepEqual(
      resumed.map((e) => e.sequence),
      reference.map((e) => e.sequence),
      `resumed ${what} vs all of X ${describeEvents(reference)}`,
    );
    await t.client.wait(other);
    // ALREADY_LAUNCHED names the same first event.
    const again = await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exit 0" }));
    assert.equal(again.result, LaunchResult.ALREADY_LAUNCHED);
    assert.equal(again.firstSequence, launched.firstSequence);
  });

  it("a Watch of an id never launched stays quiet until the client's deadline (no NOT_FOUND)", async () => {
    const fn = (t.client.raw as unknown as Record<string, (req: unknown, options: { deadline: number }) => ClientReadableStream<WatchResponse>>).watch!.bind(t.client.raw);
    const stream = fn(create(WatchRequestSchema, { containerIds: [{ value: newId("typo") }] }), { deadline: Date.now() + 1000 });
    await assert.rejects(drain(stream), (err: Error) => {
      const cause = err.cause as ServiceError;
      assert.equal(cause.code, status.DEADLINE_EXCEEDED, err.message);
      assert.match(err.message, /after none$/);
      return true;
    });
  });
});
