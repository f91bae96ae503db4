import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { status, type ServerWritableStream } from "@grpc/grpc-js";
import { Subject } from "rxjs";
import type { ContainerEvent } from "../../src/containerizer/container-event.js";
import { pipeEvents, WatchStreams } from "../../src/rpc/watch-writer.js";

/** A Watch call as pipeEvents sees it; records how it ended. */
class EndCall extends EventEmitter {
  cancelled = false;
  ended = false;
  writes = 0;
  readonly errors: { code: number; details: string }[] = [];

  constructor() {
    super();
    this.on("error", (e: { code: number; details: string }) => this.errors.push(e));
  }

  write(): boolean {
    this.writes += 1;
    return true;
  }

  end(): void {
    this.ended = true;
  }

  get asCall(): ServerWritableStream<unknown, unknown> {
    return this as unknown as ServerWritableStream<unknown, unknown>;
  }
}

function event(sequence: bigint): ContainerEvent {
  return { sequence, time: new Date(), containerId: "c1", snapshot: false, kind: { type: "state", state: "RUNNING", previous: "MOUNTING" } };
}

describe("Watch streams ended by a shutdown", () => {
  it("end UNAVAILABLE (not OK) naming from_sequence and the last sequence sent", () => {
    const streams = new WatchStreams();
    const events = new Subject<ContainerEvent>();
    const call = new EndCall();
    pipeEvents(call.asCall, events, 4, streams);
    events.next(event(41n));
    events.next(event(42n));
    assert.equal(call.writes, 2);
    streams.endAll();
    assert.equal(call.ended, false, "a shutdown is not a normal end (OK)");
    assert.equal(call.errors.length, 1);
    assert.equal(call.errors[0]!.code, status.UNAVAILABLE);
    assert.match(call.errors[0]!.details, /shutting down.*from_sequence 42/);
    assert.equal(events.observed, false, "the subscription is released");
  });

  it("a stream that sent nothing yet still ends UNAVAILABLE and names from_sequence", () => {
    const streams = new WatchStreams();
    const call = new EndCall();
    pipeEvents(call.asCall, new Subject<ContainerEvent>(), 4, streams);
    streams.endAll();
    assert.deepEqual(call.errors.map((e) => e.code), [status.UNAVAILABLE]);
    assert.match(call.errors[0]!.details, /from_sequence/);
  });

  it("a stream whose watched containers all terminated still ends OK", () => {
    const streams = new WatchStreams();
    const events = new Subject<ContainerEvent>();
    const call = new EndCall();
    pipeEvents(call.asCall, events, 4, streams);
    events.next(event(7n));
    events.complete();
    assert.equal(call.ended, true);
    assert.deepEqual(call.errors, []);
  });
});
