import { Metadata, status, type ServerWritableStream } from "@grpc/grpc-js";
import type { Observable, Subscription } from "rxjs";
import { WatchResponseSchema } from "../gen/berth/v1/containerizer_pb.js";
import type { ContainerEvent } from "../containerizer/container-event.js";
import { eventToProto } from "./convert.js";
import { preEncode, type PreEncoded } from "./service-definition.js";

// One event is fanned out to every Watch stream in one synchronous delivery (each stream encodes
// it as it queues it): encode it once, share the bytes. Only the last event's bytes are kept: a
// cache keyed by every event kept its bytes for as long as the event lived — the journal keeps
// the last 10,000, each container its last state — although no stream would write them again
// (snapshots are copies, and a resume re-encodes at most what it replays).
let lastEncoded: { event: ContainerEvent; bytes: PreEncoded } | undefined;

function encode(event: ContainerEvent): PreEncoded {
  if (lastEncoded?.event === event) return lastEncoded.bytes;
  const bytes = preEncode(WatchResponseSchema, { $typeName: "berth.v1.WatchResponse", event: eventToProto(event) });
  lastEncoded = { event, bytes };
  return bytes;
}

/** Why the server ended the open streams (shown to Watch clients with UNAVAILABLE). */
export const SHUTDOWN_REASON = "berth is shutting down";

/** Every open Watch stream, so shutdown can end them before the server goes. */
export class WatchStreams {
  private readonly ends = new Set<() => void>();

  add(end: () => void): () => void {
    this.ends.add(end);
    return () => this.ends.delete(end);
  }

  /**
   * Ends every open stream because the server is going away: berth.v1 Watch streams with
   * UNAVAILABLE (never OK, which a client could not tell from "every watched container
   * terminated"), so the client reconnects and resumes with from_sequence.
   */
  endAll(): void {
    for (const end of [...this.ends]) end();
  }
}

/** Writes one turn of the event loop may do across all Watch streams before yielding. */
export const WRITES_PER_TURN = 256;

/**
 * Spreads a fan-out over turns of the event loop. HTTP/2 sessions flush what was written to their
 * sockets only when the loop turns, so 10,000 writes in one synchronous loop meant the first
 * client saw nothing until the last copy was written. Up to WRITES_PER_TURN writes go out at once
 * (a small fan-out is as immediate as before); past that, streams wait their turn in order and the
 * loop yields between slices, so the first copies are on the wire, and being read, while the rest
 * are written.
 */
class WriteTurns {
  private left = WRITES_PER_TURN;
  private turnScheduled = false;
  private waiting: Array<() => void> = [];

  /** Takes one write of this turn's budget; false when it is spent. */
  take(): boolean {
    this.scheduleTurn();
    if (this.left === 0) return false;
    this.left -= 1;
    return true;
  }

  /** Calls `resume` in a later turn, after the streams that were waiting before it. */
  defer(resume: () => void): void {
    this.waiting.push(resume);
    this.scheduleTurn();
  }

  private scheduleTurn(): void {
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    setImmediate(() => this.turn());
  }

  private turn(): void {
    this.turnScheduled = false;
    this.left = WRITES_PER_TURN;
    const waiting = this.waiting;
    this.waiting = [];
    let i = 0;
    // Each resumed stream writes what it can of the budget; once spent, the rest keep their order.
    while (i < waiting.length && this.left > 0) waiting[i++]!();
    if (i < waiting.length) this.waiting = waiting.slice(i).concat(this.waiting);
    if (this.waiting.length > 0) this.scheduleTurn();
  }
}

const turns = new WriteTurns();

/**
 * Writes events to a Watch call with a bounded queue: while the client reads, events flow; when
 * it stops reading, up to `maxQueued` wait in memory, and past that the stream is ended with
 * RESOURCE_EXHAUSTED so that one slow client never holds memory or delays the others. Events
 * waiting only for their turn in a large fan-out (see WriteTurns) do not count against the limit.
 * `onDone` runs once when the stream ends, however it ends (a Watch slot is released there).
 */
export function pipeEvents(call: ServerWritableStream<unknown, unknown>, events: Observable<ContainerEvent>, maxQueued: number, streams: WatchStreams, onDone?: () => void): void {
  const queue: Array<{ bytes: PreEncoded; sequence: bigint }> = [];
  // The last sequence written to this client: where it resumes after a shutdown.
  let lastWritten: bigint | undefined;
  let writable = true;
  let deferred = false;
  let done = false;
  let completed = false;
  let subscription: Subscription | undefined;

  const finish = (error?: { code: status; details: string }) => {
    if (done) return;
    done = true;
    unregister();
    onDone?.();
    subscription?.unsubscribe();
    call.off("drain", onDrain);
    if (error) call.emit("error", { ...error, metadata: new Metadata() });
    else if (!call.cancelled) call.end();
  };
  const unregister = streams.add(() =>
    finish({
      code: status.UNAVAILABLE,
      details:
        lastWritten === undefined
          ? `${SHUTDOWN_REASON}; Watch again (with from_sequence set to the last sequence received, if any) once it is back`
          : `${SHUTDOWN_REASON}; Watch again with from_sequence ${lastWritten} (the last sequence sent on this stream) once it is back`,
    }),
  );

  function flush(): void {
    if (done) return;
    while (writable && queue.length > 0) {
      if (!turns.take()) {
        deferred = true;
        turns.defer(resume);
        return;
      }
      const next = queue.shift()!;
      lastWritten = next.sequence;
      writable = call.write(next.bytes);
    }
    if (queue.length === 0 && completed) finish();
  }

  function resume(): void {
    deferred = false;
    flush();
  }

  function onDrain(): void {
    writable = true;
    if (!deferred) flush();
  }

  call.on("drain", onDrain);
  call.on("cancelled", () => finish());
  call.on("close", () => finish());
  call.on("error", () => finish());

  // A client that cancelled before the handler ran gets no further 'cancelled' event.
  if (call.cancelled) {
    finish();
    return;
  }

  subscription = events.subscribe({
    next: (event) => {
      if (done) return;
      // Only a transport that stopped taking writes means the client is not reading.
      if (!writable && queue.length >= maxQueued) {
        finish({ code: status.RESOURCE_EXHAUSTED, details: `watch client is not reading: more than ${maxQueued} events queued; reconnect and Watch again` });
        return;
      }
      queue.push({ bytes: encode(event), sequence: event.sequence });
      if (!deferred) flush();
    },
    error: (err: unknown) => finish({ code: status.INTERNAL, details: err instanceof Error ? err.message : String(err) }),
    complete: () => {
      completed = true;
      if (queue.length === 0) finish();
    },
  });
  // The stream may have ended while subscribing (a snapshot larger than the queue, or a watch
  // whose containers had all terminated); finish() could not release what it did not have yet.
  if (done) {
    subscription.unsubscribe();
    return;
  }
  // Response headers say "subscribed": a client may launch now and miss nothing, even when the
  // stream has nothing to send yet (a Watch of a container not launched yet).
  if (lastWritten === undefined && typeof call.sendMetadata === "function") call.sendMetadata(new Metadata());
}
