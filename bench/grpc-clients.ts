import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { credentials, makeGenericClientConstructor, type ChannelOptions, type Client, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { Containerizer, ContainersRequestSchema, WatchRequestSchema, type ContainersResponse, type WatchResponse } from "../src/gen/berth/v1/containerizer_pb.js";
import { serviceDefinition } from "../src/rpc/service-definition.js";

const ContainerizerClient = makeGenericClientConstructor(serviceDefinition(Containerizer), "Containerizer");
const HealthClient = makeGenericClientConstructor(healthService, "Health");

/**
 * Channel options for a client that must notice a server coming up at once: grpc-js backs off
 * 1 s (and more) after a refused connect, which would be counted as recovery time.
 */
export const FAST_RECONNECT: ChannelOptions = {
  "grpc.initial_reconnect_backoff_ms": 10,
  "grpc.max_reconnect_backoff_ms": 50,
};

/** A raw berth.v1.Containerizer client on its own channel with the given options. */
export function containerizerClient(address: string, options: ChannelOptions = {}): Client {
  return new ContainerizerClient(address, credentials.createInsecure(), options) as Client;
}

/** A raw grpc.health.v1.Health client. */
export function healthClient(address: string, options: ChannelOptions = {}): Client {
  return new HealthClient(address, credentials.createInsecure(), options) as Client;
}

type UnaryFn = (req: unknown, options: { deadline: Date }, cb: (err: ServiceError | null, res: unknown) => void) => void;

/** Calls a unary method by its local name with a deadline. */
export function unary<T>(client: Client, method: string, request: unknown, deadlineMs: number): Promise<T> {
  const fn = (client as unknown as Record<string, UnaryFn>)[method];
  if (!fn) throw new Error(`client has no method '${method}'`);
  return new Promise((resolve, reject) =>
    fn.call(client, request, { deadline: new Date(Date.now() + deadlineMs) }, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

/** Containers() on a raw client. */
export function listContainers(client: Client, deadlineMs = 5000): Promise<ContainersResponse> {
  return unary(client, "containers", create(ContainersRequestSchema, {}), deadlineMs);
}

/** Health Check of the whole server (""); the status as a string (SERVING, NOT_SERVING, ...). */
export async function healthStatus(client: Client, deadlineMs = 1000): Promise<string> {
  const res = await unary<{ status: string }>(client, "Check", { service: "" }, deadlineMs);
  return res.status;
}

/** Opens a Watch stream on a raw client. */
export function openWatch(client: Client, request: MessageInitShape<typeof WatchRequestSchema>): ClientReadableStream<WatchResponse> {
  const fn = (client as unknown as Record<string, (req: unknown) => ClientReadableStream<WatchResponse>>).watch!;
  return fn.call(client, create(WatchRequestSchema, request));
}
