import type { ClientReadableStream, ServiceError } from "@grpc/grpc-js";
import { State, type ContainerEvent, type WatchResponse } from "../src/gen/berth/v1/containerizer_pb.js";
import type { BerthClient } from "../test/harness/berth-client.js";
import { timestampMs, wallNowMs } from "./clock.js";
import { DeadlineExceeded, withDeadline } from "./deadline.js";

/** One Watch event with its receipt time (wall-clock ms). */
export interface TimedBerthEvent {
  event: ContainerEvent;
  receivedMs: number;
  /** The event's own `time` (when Berth published it), wall-clock ms. */
  publishedMs: number;
}

interface Waiter {
  id: string;
  match: (e: ContainerEvent) => boolean;
  resolve: (e: TimedBerthEvent) => void;
  reject: (err: Error) => void;
}

/** True when the event says the container reached `state` (a state change or, for TERMINATED, the termination). */
export function reached(e: ContainerEvent, state: State): boolean {
  if (e.kind.case === "stateChanged") return e.kind.value.state === state;
  return state === State.TERMINATED && e.kind.case === "termination";
}

/**
 * One Watch stream over all containers (empty ids), kept open for a scenario: every event is
 * stamped on arrival, and waiters resolve on the first matching event of a container, seen
 * before or after they asked.
 */
export class BerthEventTap {
  /** Events per container id, in arrival order. */
  private readonly byId = new Map<string, TimedBerthEvent[]>();
  private readonly waiters: Waiter[] = [];
  private readonly stream: ClientReadableStream<WatchResponse>;
  private ended: Error | undefined;
  /** Live (non-snapshot) events received. */
  live = 0;

  constructor(client: BerthClient) {
    this.stream = client.watch([]);
    this.stream.on("data", (r: WatchResponse) => this.onEvent(r.event!));
    this.stream.on("error", (err: ServiceError) => this.end(new Error(`Watch stream failed: ${err.code} ${err.details}`)));
    this.stream.on("end", () => this.end(new Error("Watch stream ended by the server")));
  }

  private onEvent(event: ContainerEvent): void {
    const timed = { event, receivedMs: wallNowMs(), publishedMs: timestampMs(event.time) };
    if (!event.snapshot) this.live += 1;
    const id = event.containerId?.value ?? "";
    let list = this.byId.get(id);
    if (!list) this.byId.set(id, (list = []));
    list.push(timed);
    for (const w of [...this.waiters]) {
      if (w.id === id && w.match(event)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(timed);
      }
    }
  }

  private end(err: Error): void {
    if (this.ended) return;
    this.ended = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /** The first event of container `id` matching (already received or to come); rejects after `ms`. */
  async waitFor(id: string, match: (e: ContainerEvent) => boolean, ms: number, what: string): Promise<TimedBerthEvent> {
    const seen = this.byId.get(id)?.find((t) => match(t.event));
    if (seen) return seen;
    if (this.ended) throw this.ended;
    let waiter: Waiter | undefined;
    const arrived = new Promise<TimedBerthEvent>((resolve, reject) => {
      waiter = { id, match, resolve, reject };
      this.waiters.push(waiter);
    });
    try {
      return await withDeadline(arrived, ms, `container '${id}' ${what}`);
    } catch (err) {
      if (err instanceof DeadlineExceeded) {
        const states = (this.byId.get(id) ?? []).map((t) => (t.event.kind.case === "stateChanged" ? State[t.event.kind.value.state] : t.event.kind.case)).join(",");
        this.waiters.splice(this.waiters.indexOf(waiter!), 1);
        throw new DeadlineExceeded(`${err.message}; events seen: [${states}]`);
      }
      throw err;
    }
  }

  /** Waits for `id` to reach `state`; a launch that failed instead (TERMINATED first) rejects with its message. */
  async waitState(id: string, state: State, ms: number): Promise<TimedBerthEvent> {
    const t = await this.waitFor(id, (e) => reached(e, state) || reached(e, State.TERMINATED), ms, `reaching ${State[state]}`);
    if (!reached(t.event, state)) {
      const k = t.event.kind;
      const term = k.case === "termination" ? k.value.containerTermination?.message : k.case === "stateChanged" ? k.value.message : "";
      throw new Error(`container '${id}' terminated before reaching ${State[state]}: ${term}`);
    }
    return t;
  }

  /** Forgets the events of a container (long runs keep memory flat). */
  forget(id: string): void {
    this.byId.delete(id);
  }

  close(): void {
    this.stream.cancel();
  }
}
