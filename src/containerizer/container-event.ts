import type { TaskStatus } from "../gen/mesos/v1/mesos_pb.js";
import type { PullProgressSummary } from "../docker/image-puller.js";
import type { FetchedUri } from "../fetcher/fetcher.js";
import type { ContainerState } from "./state.js";
import type { Termination } from "./termination.js";

/** What happened: a state change, pull progress, a fetched URI, a Mesos TaskStatus or the termination. */
export type EventKind =
  | { type: "state"; state: ContainerState; previous?: ContainerState; message?: string }
  | { type: "pull"; progress: PullProgressSummary }
  /** One URI placed in the sandbox during FETCHING (with its cache outcome). */
  | { type: "fetch"; result: FetchedUri }
  | { type: "task_status"; status: TaskStatus }
  | { type: "termination"; termination: Termination };

/** One event of one container, numbered per agent. */
export interface ContainerEvent {
  sequence: bigint;
  time: Date;
  containerId: string;
  /** True for the events a new Watch subscriber receives first. */
  snapshot: boolean;
  kind: EventKind;
}
