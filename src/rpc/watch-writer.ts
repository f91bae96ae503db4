import { Metadata, status, type ServerWritableStream } from "@grpc/grpc-js";
import type { Observable, Subscription } from "rxjs";
import { WatchResponseSchema } from "../gen/berth/v1/containerizer_pb.js";
import type { ContainerEvent } from "../containerizer/container-event.js";
import { eventToProto } from "./convert.js";
import { preEncode, type PreEncoded } from "./service-definition.js";

// One event is fanned out to every Watch stream: encode it once, share the bytes.
const encoded = new WeakMap<ContainerEvent, PreEncoded>();

function encode(event: ContainerEvent): PreEncoded {
  let bytes = encoded.get(event);
  if (!bytes) {
    bytes = preEncode(WatchResponseSchema, { $typeName: "berth.v1.WatchResponse", event: eventToProto(event) });
    encoded.set(event, bytes);
  }
  return bytes;
}

/** Every open Watch stream, so shutdown can end them before the server goes. */
export class WatchStreams {
  private readonly ends = new Set<() => void>();

  add(end: () => void): () => void {
    this.ends.add(end);
    return () => this.ends.delete(end);
  }

  /** Ends every open stream with OK. */
  endAll(): void {
    for (const end of [...this.ends]) end();
  }
}

/**
 * Writes events to a Watch call with a bounded queue: while the client reads, events flow; when
 * it stops reading, up to `maxQueued` wait in memory, and past that the stream is ended with
 * RESOURCE_EXHAUSTED so that one slow client never holds memory or delays the others.
 */
export function pipeEvents(call: ServerWritableStream<unknown, unknown>, events: Observable<ContainerEvent>, maxQueued: number, streams: WatchStreams): void {
  const queue: PreEncoded[] = [];
  let writable = true;
  let done = false;
  let completed = false;
  let subscription: Subscription | undefined;

  const finish = (error?: { code: status; details: string }) => {
    if (done) return;
    done = true;
    unregister();
    subscription?.unsubscribe();
    call.off("drain", flush);
    if (error) call.emit("error", { ...error, metadata: new Metadata() });
    else if (!call.cancelled) call.end();
  };
  const unregister = streams.add(() => finish());

  function flush(): void {
    writable = true;
    while (writable && queue.length > 0) writable = call.write(queue.shift()!);
    if (queue.length === 0 && completed) finish();
  }

  call.on("drain", flush);
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
      const bytes = encode(event);
      if (writable && queue.length === 0) {
        writable = call.write(bytes);
        return;
      }
      if (queue.length >= maxQueued) {
        finish({ code: status.RESOURCE_EXHAUSTED, details: `watch client is not reading: more than ${maxQueued} events queued; reconnect and Watch again` });
        return;
      }
      queue.push(bytes);
    },
    error: (err: unknown) => finish({ code: status.INTERNAL, details: err instanceof Error ? err.message : String(err) }),
    complete: () => {
      completed = true;
      if (queue.length === 0) finish();
    },
  });
  // The stream may have ended while subscribing (a snapshot larger than the queue, or a watch
  // whose containers had all terminated); finish() could not release what it did not have yet.
  if (done) subscription.unsubscribe();
}
