import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { NetworkInfo_Protocol } from "../gen/mesos/v1/mesos_pb.js";
import {
  CacheOutcome,
  ContainerEventSchema,
  ContainerSummarySchema,
  FetchResultSchema,
  State,
  StatusResponseSchema,
  TerminationSchema,
  type StatusResponse,
  type ContainerEvent as ContainerEventMessage,
  type ContainerSummary,
  type Termination as TerminationMessage,
} from "../gen/berth/v1/containerizer_pb.js";
import type { ContainerEvent } from "../containerizer/container-event.js";
import type { ContainerInfoSummary, ContainerStatusInfo } from "../containerizer/containerizer.js";
import type { ContainerState } from "../containerizer/state.js";
import type { Termination } from "../containerizer/termination.js";
import type { CacheOutcome as FetchCacheOutcome } from "../fetcher/fetcher.js";

const CACHE_OUTCOMES: Record<FetchCacheOutcome, CacheOutcome> = {
  NOT_CACHED: CacheOutcome.NOT_CACHED,
  HIT: CacheOutcome.HIT,
  MISS: CacheOutcome.MISS,
};

const STATES: Record<ContainerState, State> = {
  FETCHING: State.FETCHING,
  PULLING: State.PULLING,
  MOUNTING: State.MOUNTING,
  RUNNING: State.RUNNING,
  DESTROYING: State.DESTROYING,
  TERMINATED: State.TERMINATED,
};

/** Domain state → wire enum. */
export function stateToProto(state: ContainerState): State {
  return STATES[state];
}

/** Domain termination → wire message. */
export function terminationToProto(t: Termination): TerminationMessage {
  return create(TerminationSchema, {
    containerTermination: t.containerTermination,
    exitCode: t.exitCode,
    signal: t.signal,
    time: timestampFromDate(t.time),
  });
}

/** Domain event → wire message. */
export function eventToProto(e: ContainerEvent): ContainerEventMessage {
  const message = create(ContainerEventSchema, {
    sequence: e.sequence,
    time: timestampFromDate(e.time),
    containerId: { value: e.containerId },
    snapshot: e.snapshot,
  });
  const k = e.kind;
  switch (k.type) {
    case "state":
      message.kind = {
        case: "stateChanged",
        value: { $typeName: "berth.v1.StateChanged", state: STATES[k.state], previous: k.previous ? STATES[k.previous] : State.UNSPECIFIED, message: k.message ?? "" },
      };
      break;
    case "pull":
      message.kind = {
        case: "pullProgress",
        value: {
          $typeName: "berth.v1.PullProgress",
          image: k.progress.ref,
          layersTotal: k.progress.layersTotal,
          layersDone: k.progress.layersDone,
          bytesCurrent: BigInt(Math.max(0, Math.floor(k.progress.bytesCurrent))),
          bytesTotal: BigInt(Math.max(0, Math.floor(k.progress.bytesTotal))),
          status: k.progress.status,
          layers: k.progress.layers.map((l) => ({
            $typeName: "berth.v1.LayerProgress" as const,
            id: l.id,
            bytesCurrent: BigInt(Math.max(0, Math.floor(l.bytesCurrent))),
            bytesTotal: BigInt(Math.max(0, Math.floor(l.bytesTotal))),
            status: l.status,
          })),
        },
      };
      break;
    case "fetch":
      message.kind = {
        case: "fetchResult",
        value: create(FetchResultSchema, { uriIndex: k.result.uriIndex, uri: k.result.uri, cache: CACHE_OUTCOMES[k.result.cache], bytes: BigInt(k.result.bytes) }),
      };
      break;
    case "task_status":
      message.kind = { case: "taskStatus", value: k.status };
      break;
    case "termination":
      message.kind = { case: "termination", value: terminationToProto(k.termination) };
      break;
  }
  return message;
}

/** Domain summary → wire message. */
export function summaryToProto(s: ContainerInfoSummary): ContainerSummary {
  return create(ContainerSummarySchema, {
    containerId: { value: s.containerId },
    state: STATES[s.state],
    image: s.image,
    engineId: s.engineId ?? "",
    sandboxDirectory: s.sandbox,
  });
}

/**
 * Domain status → wire message: Mesos' ContainerStatus (id, executor pid, one NetworkInfo with the
 * engine's addresses) plus Berth's view. CgroupInfo stays unset: Mesos gives it no field for cgroup
 * dirs (only net_cls), so they go in Berth's own `cgroup_dirs`.
 */
export function statusToProto(s: ContainerStatusInfo): StatusResponse {
  const ips = s.ipAddresses ?? [];
  return create(StatusResponseSchema, {
    containerStatus: {
      containerId: { value: s.containerId },
      executorPid: s.pid,
      networkInfos:
        ips.length > 0
          ? [{ ipAddresses: ips.map((ip) => ({ protocol: ip.includes(":") ? NetworkInfo_Protocol.IPv6 : NetworkInfo_Protocol.IPv4, ipAddress: ip })) }]
          : [],
    },
    state: STATES[s.state],
    engineId: s.engineId ?? "",
    image: s.image,
    sandboxDirectory: s.sandbox,
    cgroupDirs: s.cgroupDirs ?? {},
  });
}
