import { create } from "@bufbuild/protobuf";
import type { ServerUnaryCall, ServerWritableStream, UntypedServiceImplementation, sendUnaryData } from "@grpc/grpc-js";
import {
  ContainersResponseSchema,
  DestroyResponseSchema,
  LaunchResponseSchema,
  LaunchResult,
  StatusResponseSchema,
  WaitResponseSchema,
  type ContainersRequest,
  type DestroyRequest,
  type LaunchRequest,
  type StatusRequest,
  type WaitRequest,
  type WatchRequest,
} from "../gen/berth/v1/containerizer_pb.js";
import type { ContainerID } from "../gen/mesos/v1/mesos_pb.js";
import type { Containerizer } from "../containerizer/containerizer.js";
import { InvalidRequest } from "../containerizer/errors.js";
import { stateToProto, summaryToProto, terminationToProto } from "./convert.js";
import { toStatus, unimplemented } from "./error-status.js";
import { pipeEvents, type WatchStreams } from "./watch-writer.js";

/** Options of the gRPC edge. */
export interface ServiceOptions {
  /** Events a Watch client may fall behind by before its stream is ended. */
  watchQueueLimit: number;
}

function requireId(id: ContainerID | undefined, field = "container_id"): string {
  if (!id) throw new InvalidRequest(`${field} is missing`);
  return id.value;
}

/** Runs an async handler and answers its result or its error's status (grpc-js does not catch rejections). */
function unary<Req, Res>(fn: (request: Req, signal: AbortSignal) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const abort = new AbortController();
    call.on("cancelled", () => abort.abort(new Error("call cancelled")));
    fn(call.request, abort.signal).then(
      (response) => callback(null, response),
      (err: unknown) => callback(toStatus(err)),
    );
  };
}

/** The berth.v1.Containerizer handlers: decode, hand to the domain, encode. No logic lives here. */
export function containerizerService(containerizer: Containerizer, options: ServiceOptions, streams: WatchStreams): UntypedServiceImplementation {
  return {
    launch: unary(async (req: LaunchRequest) => {
      const id = requireId(req.containerId);
      const outcome = await containerizer.launch({
        containerId: id,
        nested: req.containerId?.parent !== undefined,
        config: req.containerConfig,
        environment: req.environment,
      });
      if (outcome.result === "NOT_SUPPORTED") return create(LaunchResponseSchema, { result: LaunchResult.NOT_SUPPORTED });
      return create(LaunchResponseSchema, {
        result: outcome.result === "LAUNCHED" ? LaunchResult.LAUNCHED : LaunchResult.ALREADY_LAUNCHED,
        sandboxDirectory: outcome.sandbox,
      });
    }),

    wait: unary(async (req: WaitRequest, signal) => {
      const termination = await containerizer.wait(requireId(req.containerId), signal);
      return create(WaitResponseSchema, { termination: terminationToProto(termination) });
    }),

    destroy: unary(async (req: DestroyRequest, signal) => {
      const termination = await containerizer.destroy(requireId(req.containerId), signal);
      return create(DestroyResponseSchema, { termination: terminationToProto(termination) });
    }),

    watch: (call: ServerWritableStream<WatchRequest, unknown>) => {
      try {
        const ids = call.request.containerIds.map((id, i) => requireId(id, `container_ids[${i}]`));
        pipeEvents(call, containerizer.watch(ids, call.request.fromSequence), options.watchQueueLimit, streams);
      } catch (err) {
        call.emit("error", toStatus(err));
      }
    },

    containers: unary(async (_req: ContainersRequest) => create(ContainersResponseSchema, { containers: containerizer.list().map(summaryToProto) })),

    status: unary(async (req: StatusRequest) => {
      const s = await containerizer.status(requireId(req.containerId));
      return create(StatusResponseSchema, {
        containerStatus: { containerId: { value: s.containerId }, executorPid: s.pid },
        state: stateToProto(s.state),
        engineId: s.engineId ?? "",
        image: s.image,
        sandboxDirectory: s.sandbox,
      });
    }),

    update: (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => callback(unimplemented("Update")),
    usage: (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => callback(unimplemented("Usage")),
    pruneImages: (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => callback(unimplemented("PruneImages")),
  };
}
