import { connect } from "node:net";
import { rm } from "node:fs/promises";
import { Server, ServerCredentials, type ServerWritableStream, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { Containerizer as ContainerizerDesc, file_berth_v1_containerizer } from "../gen/berth/v1/containerizer_pb.js";
import type { Containerizer } from "../containerizer/containerizer.js";
import { containerizerService } from "./containerizer-service.js";
import { reflectionService } from "./reflection.js";
import { serviceDefinition } from "./service-definition.js";
import { WatchStreams } from "./watch-writer.js";

/** The service name health reports on, besides the server as a whole (""). */
export const SERVICE_NAME = ContainerizerDesc.typeName;

/** Options of the gRPC server. */
export interface BerthServerOptions {
  /** `unix:///path` or `host:port` (repeatable). */
  listen: string[];
  watchQueueLimit: number;
}

/** Thrown when an address cannot be bound; the message names it and the cause. */
export class ListenFailed extends Error {}

async function unixSocketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** The gRPC server: Containerizer, health and reflection on every listen address. */
export class BerthServer {
  readonly health = new HealthImplementation({ "": "NOT_SERVING", [SERVICE_NAME]: "NOT_SERVING" });
  // channelz is off: its per-call bookkeeping costs every call, and Berth serves no channelz service.
  private readonly server = new Server({ "grpc.max_receive_message_length": 16 * 1024 * 1024, "grpc.enable_channelz": 0 });
  private readonly streams = new WatchStreams();
  /** The addresses actually bound (a `:0` port resolved). */
  readonly bound: string[] = [];

  constructor(containerizer: Containerizer, private readonly options: BerthServerOptions) {
    this.server.addService(serviceDefinition(ContainerizerDesc), containerizerService(containerizer, { watchQueueLimit: options.watchQueueLimit }, this.streams));
    // HealthImplementation's Watch streams end only on client cancel, so stop() would wait out
    // its grace period and clients would see CANCELLED: register them to be ended with the rest.
    this.health.addToServer({
      addService: (definition, implementation) => this.server.addService(definition as never, this.endedOnStop(implementation as UntypedServiceImplementation)),
    });
    reflectionService([file_berth_v1_containerizer]).addToServer(this.server);
  }

  private endedOnStop(health: UntypedServiceImplementation): UntypedServiceImplementation {
    const watch = health.watch as ((call: ServerWritableStream<unknown, unknown>) => void) | undefined;
    if (!watch) return health;
    return {
      ...health,
      watch: (call: ServerWritableStream<unknown, unknown>) => {
        const unregister = this.streams.add(() => {
          if (!call.cancelled) call.end();
        });
        call.on("cancelled", unregister);
        // A status set after end() is a write after end, which surfaces as 'error': never a crash.
        call.on("error", unregister);
        watch(call);
      },
    };
  }

  /** Marks the server SERVING or NOT_SERVING (follows the engine's reachability). */
  setServing(serving: boolean): void {
    const status = serving ? "SERVING" : "NOT_SERVING";
    this.health.setStatus("", status);
    this.health.setStatus(SERVICE_NAME, status);
  }

  /** Binds every listen address; a stale unix socket file is replaced, a live one is an error. */
  async start(): Promise<void> {
    for (const address of this.options.listen) {
      if (address.startsWith("unix://")) {
        const path = address.slice("unix://".length);
        if (await unixSocketInUse(path)) throw new ListenFailed(`cannot listen on ${address}: another process is serving on that socket`);
        await rm(path, { force: true });
      }
      const port = await new Promise<number>((resolve, reject) => {
        this.server.bindAsync(address, ServerCredentials.createInsecure(), (err, p) => (err ? reject(new ListenFailed(`cannot listen on ${address}: ${err.message}`)) : resolve(p)));
      });
      this.bound.push(address.startsWith("unix://") ? address : address.replace(/:0$/, `:${port}`));
    }
  }

  /** Ends Watch streams, then shuts down (forcing after `graceMs`). */
  async stop(graceMs = 5000): Promise<void> {
    this.setServing(false);
    this.streams.endAll();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
