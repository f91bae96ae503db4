import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { fromBinary } from "@bufbuild/protobuf";
import type { ServerWritableStream } from "@grpc/grpc-js";
import { concat, of, Subject } from "rxjs";
import { WatchResponseSchema } from "../../src/gen/berth/v1/containerizer_pb.js";
import type { ContainerEvent } from "../../src/containerizer/container-event.js";
import { PreEncoded } from "../../src/rpc/service-definition.js";
import { pipeEvents, WatchStreams, WRITES_PER_TURN } from "../../src/rpc/watch-writer.js";
import { setImmediate as nextTurn } from "node:timers/promises";

/** A Watch call as pipeEvents sees it: write() answers `accepting`, like a Writable past its high-water mark. */
class FakeCall extends EventEmitter {
  cancelled = false;
  accepting = true;
  ended = false;
  readonly writes: PreEncoded[] = [];
  readonly errors: { code: number; details: string }[] = [];

  constructor() {
    super();
    this.on("error", (e: { code: number; details: string }) => this.errors.push(e));
  }

  write(chunk: PreEncoded): boolean {
    if (this.ended) throw new Error("write after end");
    this.writes.push(chunk);
    return this.accepting;
  }

  end(): void {
    this.ended = true;
  }

  /** The client reads again: the transport drains. */
  drain(): void {
    this.accepting = true;
    this.emit("drain");
  }

  cancel(): void {
    this.cancelled = true;
    this.emit("cancelled");
  }

  /** The sequence numbers written, decoded from the bytes. */
  sequences(): bigint[] {
    return this.writes.map((w) => fromBinary(WatchResponseSchema, w.bytes).event!.sequence);
  }

  get asCall(): ServerWritableStream<unknown, unknown> {
    return this as unknown as ServerWritableStream<unknown, unknown>;
  }
}

let seq = 0n;
function event(containerId = "c1"): ContainerEvent {
  seq += 1n;
  return { sequence: seq, time: new Date(), containerId, snapshot: false, kind: { type: "state", state: "RUNNING", previous: "MOUNTING" } };
}

describe("pipeEvents (Watch writer)", () => {
  it("events flow to the client while it reads, in order, and a completed source ends the stream OK", () => {
    const call = new FakeCall();
    const events = new Subject<ContainerEvent>();
    pipeEvents(call.asCall, events, 4, new WatchStreams());
    const sent = [event(), event(), event()];
    for (const e of sent) events.next(e);
    assert.deepEqual(call.sequences(), sent.map((e) => e.sequence));
    events.complete();
    assert.equal(call.ended, true);
    assert.deepEqual(call.errors, []);
  });

  it("a slow client gets the queued events on drain, in order, and the stream ends only after them", () => {
    const call = new FakeCall();
    const events = new Subject<ContainerEvent>();
    pipeEvents(call.asCall, events, 4, new WatchStreams());
    call.accepting = false;
    const sent = [event(), event(), event()];
    for (const e of sent) events.next(e);
    assert.equal(call.writes.length, 1, "after a full write, events wait in the queue");
    events.complete();
    assert.equal(call.ended, false, "the queue is delivered before the end");
    call.drain();
    assert.deepEqual(call.sequences(), sent.map((e) => e.sequence));
    assert.equal(call.ended, true);
  });

  it("a client that stops reading gets at most maxQueued queued, then RESOURCE_EXHAUSTED, and the subscription is released", () => {
    const call = new FakeCall();
    const events = new Subject<ContainerEvent>();
    const maxQueued = 3;
    pipeEvents(call.asCall, events, maxQueued, new WatchStreams());
    call.accepting = false;
    events.next(event()); // written; the transport is now full
    for (let i = 0; i < maxQueued; i++) events.next(event());
    assert.equal(call.errors.length, 0, "up to maxQueued events wait");
    assert.equal(events.observed, true);
    events.next(event());
    assert.equal(call.errors.length, 1);
    assert.equal(call.errors[0]!.code, 8, "RESOURCE_EXHAUSTED");
    assert.match(call.errors[0]!.details, /more than 3 events queued/);
    assert.equal(events.observed, false, "the subscription is released");
    call.drain();
    assert.equal(call.writes.length, 1, "nothing more is written after the stream failed");
  });

  it("a snapshot larger than the queue ends the stream during subscribe and still releases the subscription", () => {
    const call = new FakeCall();
    call.accepting = false;
    const live = new Subject<ContainerEvent>();
    pipeEvents(call.asCall, concat(of(event(), event(), event(), event()), live), 2, new WatchStreams());
    assert.equal(call.errors[0]?.code, 8);
    assert.equal(live.observed, false);
  });

  it("client cancel releases the subscription and does not end the call", () => {
    const call = new FakeCall();
    const events = new Subject<ContainerEvent>();
    const streams = new WatchStreams();
    pipeEvents(call.asCall, events, 4, streams);
    assert.equal(events.observed, true);
    call.cancel();
    assert.equal(events.observed, false);
    assert.equal(call.ended, false, "a cancelled call is not ended by the server");
    streams.endAll();
    assert.equal(call.ended, false, "a cancelled stream is no longer registered");
  });

  it("a call already cancelled before piping subscribes to nothing", () => {
    const call = new FakeCall();
    call.cancelled = true;
    const events = new Subject<ContainerEvent>();
    pipeEvents(call.asCall, events, 4, new WatchStreams());
    assert.equal(events.observed, false);
  });

  it("WatchStreams.endAll ends every open stream UNAVAILABLE and releases their subscriptions", () => {
    const streams = new WatchStreams();
    const events = new Subject<ContainerEvent>();
    const calls = [new FakeCall(), new FakeCall(), new FakeCall()];
    for (const c of calls) pipeEvents(c.asCall, events, 4, streams);
    calls[1]!.cancel();
    streams.endAll();
    assert.deepEqual(calls.map((c) => c.errors.map((e) => e.code)), [[14], [], [14]], "a shutdown is UNAVAILABLE, the cancelled one is left alone");
    assert.ok(calls.every((c) => !c.ended));
    assert.equal(events.observed, false);
  });

  it("one event is encoded once for many streams: the same bytes are written to each", () => {
    const events = new Subject<ContainerEvent>();
    const calls = [new FakeCall(), new FakeCall(), new FakeCall()];
    for (const c of calls) pipeEvents(c.asCall, events, 4, new WatchStreams());
    const e = event("shared");
    events.next(e);
    const [first, ...rest] = calls.map((c) => c.writes[0]!);
    assert.ok(first instanceof PreEncoded);
    for (const w of rest) {
      assert.equal(w, first);
      assert.equal(w.bytes, first.bytes, "the same Buffer instance");
    }
    const decoded = fromBinary(WatchResponseSchema, first.bytes).event!;
    assert.equal(decoded.sequence, e.sequence);
    assert.equal(decoded.containerId?.value, "shared");
  });

  it("a slow client does not delay the others", () => {
    const events = new Subject<ContainerEvent>();
    const slow = new FakeCall();
    const fast = new FakeCall();
    slow.accepting = false;
    pipeEvents(slow.asCall, events, 2, new WatchStreams());
    pipeEvents(fast.asCall, events, 2, new WatchStreams());
    for (let i = 0; i < 10; i++) events.next(event());
    assert.equal(fast.writes.length, 10);
    assert.equal(slow.errors[0]?.code, 8);
    assert.equal(events.observed, true, "the fast client is still subscribed");
  });

  it("a fan-out beyond one turn's writes goes out in slices, in order, with nothing counted against the queue limit", async () => {
    const events = new Subject<ContainerEvent>();
    const n = WRITES_PER_TURN * 2 + 10;
    const calls = Array.from({ length: n }, () => new FakeCall());
    for (const c of calls) pipeEvents(c.asCall, events, 1, new WatchStreams());
    await nextTurn();
    const a = event();
    const b = event();
    events.next(a);
    events.next(b);
    const written = () => calls.filter((c) => c.writes.length > 0).length;
    assert.equal(written(), WRITES_PER_TURN, "one turn's worth written at once");
    assert.ok(calls.slice(0, WRITES_PER_TURN).every((c) => c.writes.length === 1), "the first streams first");
    for (let turn = 0; turn < 10 && calls.some((c) => c.writes.length < 2); turn++) await nextTurn();
    for (const c of calls) {
      assert.deepEqual(c.sequences(), [a.sequence, b.sequence], "every stream got both events, in order");
      assert.deepEqual(c.errors, [], "waiting for a turn is not a slow client");
    }
    events.complete();
    await nextTurn();
    assert.ok(calls.every((c) => c.ended));
  });
});
