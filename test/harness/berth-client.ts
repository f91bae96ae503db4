import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { credentials, makeGenericClientConstructor, type CallOptions, type Client, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import {
  Containerizer,
  ContainersRequestSchema,
  DestroyRequestSchema,
  LaunchRequestSchema,
  PruneImagesRequestSchema,
  StatusRequestSchema,
  UpdateRequestSchema,
  UsageRequestSchema,
  WaitRequestSchema,
  WatchRequestSchema,
  type ContainerEvent,
  type ContainersResponse,
  type DestroyResponse,
  type LaunchResponse,
  type PruneImagesResponse,
  type UpdateResponse,
  type UsageResponse,
  type StatusResponse,
  type WaitResponse,
  type WatchResponse,
} from "../../src/gen/berth/v1/containerizer_pb.js";
import { Image_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { serviceDefinition } from "../../src/rpc/service-definition.js";

const ClientCtor = makeGenericClientConstructor(serviceDefinition(Containerizer), "Containerizer");

type Unary = (req: unknown, options: CallOptions, cb: (err: ServiceError | null, res: unknown) => void) => void;

/** A promise-based berth.v1.Containerizer client over a real gRPC channel, for tests. */
export class BerthClient {
  readonly raw: Client;

  constructor(address: string) {
    this.raw = new ClientCtor(address, credentials.createInsecure()) as Client;
  }

  private unary<T>(method: string, request: unknown, options: CallOptions = {}): Promise<T> {
    const fn = (this.raw as unknown as Record<string, Unary>)[method]!.bind(this.raw);
    return new Promise((resolve, reject) => fn(request, options, (err, res) => (err ? reject(err) : resolve(res as T))));
  }

  launch(init: MessageInitShape<typeof LaunchRequestSchema>, options?: CallOptions): Promise<LaunchResponse> {
    return this.unary("launch", create(LaunchRequestSchema, init), options);
  }

  wait(id: string, options?: CallOptions): Promise<WaitResponse> {
    return this.unary("wait", create(WaitRequestSchema, { containerId: { value: id } }), options);
  }

  destroy(id: string, options?: CallOptions): Promise<DestroyResponse> {
    return this.unary("destroy", create(DestroyRequestSchema, { containerId: { value: id } }), options);
  }

  containers(): Promise<ContainersResponse> {
    return this.unary("containers", create(ContainersRequestSchema, {}));
  }

  status(id: string): Promise<StatusResponse> {
    return this.unary("status", create(StatusRequestSchema, { containerId: { value: id } }));
  }

  update(id: string, resources: MessageInitShape<typeof UpdateRequestSchema>["resources"]): Promise<UpdateResponse> {
    return this.unary("update", create(UpdateRequestSchema, { containerId: { value: id }, resources }));
  }

  usage(id: string): Promise<UsageResponse> {
    return this.unary("usage", create(UsageRequestSchema, { containerId: { value: id } }));
  }

  /** PruneImages keeping the given docker image names. */
  pruneImages(excluded: string[] = []): Promise<PruneImagesResponse> {
    return this.unary("pruneImages", create(PruneImagesRequestSchema, { excludedImages: excluded.map((name) => ({ type: Image_Type.DOCKER, docker: { name } })) }));
  }

  /** Calls any unary method by its local name with a raw request (for bad-input tests). */
  call<T>(method: string, request: unknown, options?: CallOptions): Promise<T> {
    return this.unary(method, request, options);
  }

  watch(ids: string[] = [], fromSequence?: bigint): ClientReadableStream<WatchResponse> {
    const fn = (this.raw as unknown as Record<string, (req: unknown) => ClientReadableStream<WatchResponse>>).watch!.bind(this.raw);
    return fn(create(WatchRequestSchema, { containerIds: ids.map((value) => ({ value })), fromSequence }));
  }

  /** Collects a Watch stream's events until it ends (or `until` says stop, then cancels). */
  async collect(ids: string[], until?: (e: ContainerEvent, all: ContainerEvent[]) => boolean, fromSequence?: bigint): Promise<ContainerEvent[]> {
    const stream = this.watch(ids, fromSequence);
    const events: ContainerEvent[] = [];
    return new Promise((resolve, reject) => {
      stream.on("data", (r: WatchResponse) => {
        events.push(r.event!);
        if (until?.(r.event!, events)) {
          stream.cancel();
          resolve(events);
        }
      });
      stream.on("end", () => resolve(events));
      stream.on("error", (err: ServiceError) => (err.code === 1 ? resolve(events) : reject(err)));
    });
  }

  close(): void {
    this.raw.close();
  }
}
