import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { credentials, makeGenericClientConstructor, type CallOptions, type Client, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import {
  Containerizer,
  ContainersRequestSchema,
  DestroyRequestSchema,
  LaunchRequestSchema,
  PruneImagesRequestSchema,
  State,
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

  usage(id: string, options?: CallOptions): Promise<UsageResponse> {
    return this.unary("usage", create(UsageRequestSchema, { containerId: { value: id } }), options);
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

  /**
   * Collects a Watch stream's events. Without `until`, resolves with everything once the stream
   * ends (and rejects on any error). With `until`, resolves (and cancels the stream) at the first
   * event for which it holds; a stream that ends or fails before that rejects, naming what it saw,
   * so a "wait for RUNNING" never silently carries on.
   */
  async collect(ids: string[], until?: (e: ContainerEvent, all: ContainerEvent[]) => boolean, fromSequence?: bigint): Promise<ContainerEvent[]> {
    const stream = this.watch(ids, fromSequence);
    const events: ContainerEvent[] = [];
    let settled = false;
    const what = () => `Watch(${ids.length ? ids.join(",") : "all"}${fromSequence !== undefined ? ` from ${fromSequence}` : ""})`;
    return new Promise((resolve, reject) => {
      const fail = (why: string, cause?: unknown) => {
        if (settled) return;
        settled = true;
        reject(new Error(`${what()} ${why} after ${events.length} events: ${describeEvents(events)}`, { cause }));
      };
      stream.on("data", (r: WatchResponse) => {
        if (settled) return;
        events.push(r.event!);
        if (until?.(r.event!, events)) {
          settled = true;
          stream.cancel();
          resolve(events);
        }
      });
      stream.on("end", () => {
        if (!until) {
          settled = true;
          resolve(events);
        } else fail("ended before the awaited event");
      });
      stream.on("error", (err: ServiceError) => {
        if (settled) return;
        if (!until) {
          settled = true;
          reject(err);
        } else fail(`failed (${err.code} ${err.details}) before the awaited event`, err);
      });
    });
  }

  close(): void {
    this.raw.close();
  }
}

/** A short readable form of events for failure messages: `seq:id:kind[=STATE]`. */
export function describeEvents(events: ContainerEvent[]): string {
  return events
    .map((e) => {
      const detail = e.kind.case === "stateChanged" ? `=${State[e.kind.value.state]}` : e.kind.case === "taskStatus" ? `=${e.kind.value.state}` : "";
      return `${e.sequence}:${e.containerId?.value}:${e.kind.case}${detail}${e.snapshot ? "(snapshot)" : ""}`;
    })
    .join(" ") || "none";
}

/**
 * The last sequence number Berth handed out. A Watch resumed from it (`collect(ids, until, mark)`)
 * gets every later event whenever the server gets round to opening it: the way to watch "from
 * now" without sleeping until the stream is open.
 */
export function sequenceMark(berth: { containerizer: { lastSequence: bigint } }): bigint {
  return berth.containerizer.lastSequence;
}
