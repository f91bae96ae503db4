import { create, toBinary } from "@bufbuild/protobuf";
import type { ServerUnaryCall, ServerWritableStream, UntypedServiceImplementation, sendUnaryData } from "@grpc/grpc-js";
import {
  DestroyResponseSchema,
  LaunchResponseSchema,
  LaunchResult,
  PruneImagesResponseSchema,
  UpdateResponseSchema,
  UsageResponseSchema,
  WaitResponseSchema,
  ContainersResponseSchema,
  type ContainersRequest,
  type ContainersResponse,
  type DestroyRequest,
  type LaunchRequest,
  type PruneImagesRequest,
  type StatusRequest,
  type UpdateRequest,
  type UsageRequest,
  type WaitRequest,
  type WatchRequest,
} from "../gen/berth/v1/containerizer_pb.js";
import { Image_Type, type ContainerID, type Image } from "../gen/mesos/v1/mesos_pb.js";
import type { ContainerInfoSummary, Containerizer } from "../containerizer/containerizer.js";
import { InvalidRequest } from "../containerizer/errors.js";
import { statusToProto, summaryToProto, terminationToProto } from "./convert.js";
import { toStatus } from "./error-status.js";
import { PreEncoded } from "./service-definition.js";
import type { WatchLimits } from "./watch-limits.js";
import { pipeEvents, type WatchStreams } from "./watch-writer.js";
import { logsHandler } from "./logs-handler.js";
import { execHandler, execSyncHandler } from "./exec-handler.js";

/**
 * Encodes Containers() responses. A repeated field's encoding is the concatenation of its
 * elements' encodings, so each summary is kept encoded as a one-element response (tag and length
 * included) for as long as the domain hands out the same summary object (it does until the
 * container changes), and a response is those bytes joined. When no summary changed since the last
 * call (the same objects in the same order), the last response's bytes are answered as they are:
 * with hundreds of containers, polling then costs a comparison per container and allocates nothing.
 */
export class ContainersEncoder {
  private readonly encoded = new WeakMap<ContainerInfoSummary, Uint8Array>();
  private last: { list: ContainerInfoSummary[]; response: PreEncoded } | undefined;

  encode(list: ContainerInfoSummary[]): PreEncoded {
    const last = this.last;
    if (last && last.list.length === list.length && last.list.every((s, i) => s === list[i])) return last.response;
    const parts = list.map((s) => {
      let bytes = this.encoded.get(s);
      if (!bytes) {
        bytes = toBinary(ContainersResponseSchema, create(ContainersResponseSchema, { containers: [summaryToProto(s)] }));
        this.encoded.set(s, bytes);
      }
      return bytes;
    });
    const response = new PreEncoded(Buffer.concat(parts));
    this.last = { list, response };
    return response;
  }
}

/** Options of the gRPC edge. */
export interface ServiceOptions {
  /** Events a Watch client may fall behind by before its stream is ended. */
  watchQueueLimit: number;
  /** Open Watch streams, in total and per connection (none when undefined). */
  watchLimits?: WatchLimits;
}

function requireId(id: ContainerID | undefined, field = "container_id"): string {
  if (!id) throw new InvalidRequest(`${field} is missing`);
  return id.value;
}

/**
 * The docker name of an excluded image. Only `docker.name` is read: Image.type is a proto2 enum
 * whose unset value reads as APPC, so a type check would refuse clients that only set the name.
 */
function dockerImageName(image: Image, i: number): string {
  const name = image.docker?.name ?? "";
  if (name.trim() === "") {
    throw new InvalidRequest(`excluded_images[${i}].docker.name is empty (type ${Image_Type[image.type] ?? image.type}); PruneImages keeps Docker images named there`);
  }
  return name;
}

/** Runs an async handler and answers its result or its error's status (grpc-js does not catch rejections). */
function unary<Req, Res>(fn: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    fn(call.request, call).then(
      (response) => callback(null, response),
      (err: unknown) => callback(toStatus(err)),
    );
  };
}

/**
 * A unary handler that may wait long (Wait, Destroy): it gets a signal aborted when the client
 * cancels or its deadline passes. Short calls do without: an AbortController and a listener per
 * call were a visible share of a Usage() call.
 */
function cancellableUnary<Req, Res>(fn: (request: Req, signal: AbortSignal) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const abort = new AbortController();
    call.on("cancelled", () => abort.abort(new Error("call cancelled")));
    unary((request: Req) => fn(request, abort.signal))(call, callback);
  };
}

/** Who called, for the log of a refused launch: the connection, and under mutual TLS the client certificate's CN. */
function callerOf(call: ServerUnaryCall<unknown, unknown>): string {
  const cn = call.getAuthContext?.()?.sslPeerCertificate?.subject?.CN;
  return cn ? `${call.getPeer()} (client certificate CN=${cn})` : call.getPeer();
}

/** The berth.v1.Containerizer handlers: decode, hand to the domain, encode. No logic lives here. */
export function containerizerService(containerizer: Containerizer, options: ServiceOptions, streams: WatchStreams): UntypedServiceImplementation {
  const containers = new ContainersEncoder();
  return {
    launch: unary(async (req: LaunchRequest, call) => {
      const id = requireId(req.containerId);
      const outcome = await containerizer.launch({
        containerId: id,
        peer: callerOf(call),
        nested: req.containerId?.parent !== undefined,
        config: req.containerConfig,
        environment: req.environment,
      });
      if (outcome.result === "NOT_SUPPORTED") return create(LaunchResponseSchema, { result: LaunchResult.NOT_SUPPORTED });
      return create(LaunchResponseSchema, {
        result: outcome.result === "LAUNCHED" ? LaunchResult.LAUNCHED : LaunchResult.ALREADY_LAUNCHED,
        sandboxDirectory: outcome.sandbox,
        firstSequence: outcome.firstSequence,
      });
    }),

    wait: cancellableUnary(async (req: WaitRequest, signal) => {
      const termination = await containerizer.wait(requireId(req.containerId), signal);
      return create(WaitResponseSchema, { termination: terminationToProto(termination) });
    }),

    destroy: cancellableUnary(async (req: DestroyRequest, signal) => {
      const termination = await containerizer.destroy(requireId(req.containerId), signal);
      return create(DestroyResponseSchema, { termination: terminationToProto(termination) });
    }),

    watch: (call: ServerWritableStream<WatchRequest, unknown>) => {
      let release: (() => void) | undefined;
      try {
        const ids = call.request.containerIds.map((id, i) => requireId(id, `container_ids[${i}]`));
        release = options.watchLimits?.acquire(call.getPeer());
        pipeEvents(call, containerizer.watch(ids, call.request.fromSequence), options.watchQueueLimit, streams, release);
      } catch (err) {
        release?.();
        call.emit("error", toStatus(err));
      }
    },

    containers: unary(async (_req: ContainersRequest) => containers.encode(containerizer.list()) as unknown as ContainersResponse),

    status: unary(async (req: StatusRequest) => statusToProto(await containerizer.status(requireId(req.containerId)))),

    update: unary(async (req: UpdateRequest) => {
      await containerizer.update(requireId(req.containerId), req.resources);
      return create(UpdateResponseSchema, {});
    }),

    usage: unary(async (req: UsageRequest) => create(UsageResponseSchema, { statistics: await containerizer.usage(requireId(req.containerId)) })),

    pruneImages: unary(async (req: PruneImagesRequest) => {
      const excluded = req.excludedImages.map((image, i) => dockerImageName(image, i));
      return create(PruneImagesResponseSchema, { removedImages: await containerizer.pruneImages(excluded) });
    }),

    logs: logsHandler(containerizer, streams, options.watchLimits),
    execSync: execSyncHandler(containerizer, streams),
    exec: execHandler(containerizer, streams),
  };
}
