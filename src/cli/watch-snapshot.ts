/**
 * When did each container reach its current state? The Containers/Status RPCs carry no times; a
 * Watch's snapshot does (its state and termination events keep their original times). The snapshot
 * comes first and whole, so it is complete at the first live event, at the stream's end (every
 * watched container terminated), or once every watched container's state is in.
 */
import type { ClientReadableStream } from "@grpc/grpc-js";
import { State, WatchRequestSchema, type ContainerEvent, type Termination, type WatchResponse } from "../gen/berth/v1/containerizer_pb.js";
import type { Connection } from "./connection.js";
import { timestamp } from "./format.js";

/** What the snapshot says of one container. */
export interface Snapshot {
  state?: State;
  /** When it entered that state. */
  since?: Date;
  termination?: Termination;
}

/** How long a snapshot may take before the CLI shows what it has (times left out). */
const SNAPSHOT_BUDGET_MS = 5000;

/** The snapshot of `ids` (an empty map for none). Never fails: a failed Watch leaves the times out. */
export function watchSnapshot(conn: Connection, ids: string[]): Promise<Map<string, Snapshot>> {
  const result = new Map<string, Snapshot>();
  if (ids.length === 0) return Promise.resolve(result);
  return new Promise((resolve) => {
    const stream: ClientReadableStream<WatchResponse> = conn.serverStream("Watch", WatchRequestSchema, { containerIds: ids.map((value) => ({ value })) });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.cancel();
      resolve(result);
    };
    const timer = setTimeout(finish, SNAPSHOT_BUDGET_MS);
    stream.on("data", (r: WatchResponse) => {
      const e: ContainerEvent | undefined = r.event;
      if (!e || !e.snapshot) return finish();
      const id = e.containerId?.value ?? "";
      const s = result.get(id) ?? {};
      if (e.kind.case === "stateChanged") {
        s.state = e.kind.value.state;
        s.since = timestamp(e.time);
      } else if (e.kind.case === "termination") s.termination = e.kind.value;
      result.set(id, s);
      const complete = (i: string) => {
        const c = result.get(i);
        return c?.state !== undefined && (c.state !== State.TERMINATED || c.termination !== undefined);
      };
      if (ids.every(complete)) finish();
    });
    stream.on("end", finish);
    stream.on("error", finish);
  });
}
