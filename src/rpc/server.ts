import { connect } from "node:net";
import { rm } from "node:fs/promises";
import { Metadata, Server, ServerCredentials, status, type ServerInterceptor, type ServerWritableStream, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { pino, type Logger } from "pino";
import type { Observable } from "rxjs";
import { Containerizer as ContainerizerDesc, file_berth_v1_containerizer } from "../gen/berth/v1/containerizer_pb.js";
import type { Containerizer } from "../containerizer/containerizer.js";
import { containerizerService } from "./containerizer-service.js";
import { bearerTokenInterceptor, type TokenStore } from "./auth.js";
import { healthFileDescriptor } from "./health-descriptor.js";
import { reflectionService } from "./reflection.js";
import { decodedInHandlers } from "./request-decoding.js";
import { serviceDefinition } from "./service-definition.js";
import { isLoopback, listenHost, listenUnix, tcpCredentials, type TransportSettings, type UnixListener } from "./transport.js";
import { WatchLimits } from "./watch-limits.js";
import { WatchStreams } from "./watch-writer.js";

/** The service name health reports on, besides the server as a whole (""). */
export const SERVICE_NAME = ContainerizerDesc.typeName;

/** Options of the gRPC server. */
export interface BerthServerOptions {
  /** `unix:///path` or `host:port` (repeatable). */
  listen: string[];
  watchQueueLimit: number;
  /** TLS for TCP listeners and the unix socket's group (default: plaintext loopback, socket 0600). */
  transport?: TransportSettings;
  /** Bearer tokens every call but health needs (default: none needed). */
  tokens?: TokenStore;
  /** Size of one request message; larger ones are RESOURCE_EXHAUSTED (default 1 MiB). */
  maxRequestBytes?: number;
  /** Watch streams open at once, in total (default 1024). */
  maxWatchStreams?: number;
  /** Watch streams open at once on one connection (default 64). */
  maxWatchStreamsPerConnection?: number;
  /** Where refusals and transport warnings go (default: nowhere). */
  log?: Logger;
  /** Interceptors run before the token check (metrics: they see its refusals too). */
  interceptors?: ServerInterceptor[];
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
  private readonly server: Server;
  private readonly streams = new WatchStreams();
  private readonly log: Logger;
  private readonly unixListeners: UnixListener[] = [];
  private readonly watchLimits: WatchLimits;
  /** False until recovery is done: the addresses are bound, but Containerizer calls answer UNAVAILABLE. */
  private ready = false;
  /** The addresses actually bound (a `:0` port resolved). */
  readonly bound: string[] = [];

  constructor(containerizer: Containerizer, private readonly options: BerthServerOptions) {
    this.log = options.log ?? pino({ level: "silent" });
    // Token checks are an interceptor, so no handler knows about them; without tokens there is no
    // interceptor at all (each one costs every call).
    const interceptors: ServerInterceptor[] = [...(options.interceptors ?? []), ...(options.tokens ? [bearerTokenInterceptor(options.tokens, this.log.child({ component: "auth" }))] : [])];
    this.server = new Server({
      // A request larger than this is RESOURCE_EXHAUSTED from grpc-js as soon as its length prefix
      // is read, before it is buffered (grpc-js words it "Received message larger than max (N vs M)";
      // it answers from below the interceptors, so Berth cannot add the flag's name).
      "grpc.max_receive_message_length": options.maxRequestBytes ?? 1024 * 1024,
      // channelz is off: its per-call bookkeeping costs every call, and Berth serves no channelz service.
      "grpc.enable_channelz": 0,
      interceptors,
    });
    this.watchLimits = new WatchLimits({ maxStreams: options.maxWatchStreams ?? 1024, maxStreamsPerConnection: options.maxWatchStreamsPerConnection ?? 64 });
    const definition = serviceDefinition(ContainerizerDesc);
    this.addService(definition, this.untilReady(definition, containerizerService(containerizer, { watchQueueLimit: options.watchQueueLimit, watchLimits: this.watchLimits }, this.streams)));
    // HealthImplementation's Watch streams end only on client cancel, so stop() would wait out
    // its grace period and clients would see CANCELLED: register them to be ended with the rest.
    this.health.addToServer({
      addService: (definition, implementation) => this.addService(definition as ServiceDefinition, this.endedOnStop(implementation as UntypedServiceImplementation)),
    });
    // Health is served through reflection too: `grpcurl … grpc.health.v1.Health/Check` needs no proto file.
    reflectionService([file_berth_v1_containerizer], [healthFileDescriptor()]).addToServer(this.server);
  }

  /**
   * Berth binds its addresses before recovery (so a taken address fails a start before anything
   * touches the engine) but answers Containerizer calls only once recovery is done: before that
   * they are UNAVAILABLE, and health says NOT_SERVING. Health and reflection answer throughout.
   */
  private untilReady(definition: ServiceDefinition, implementation: UntypedServiceImplementation): UntypedServiceImplementation {
    const gated: UntypedServiceImplementation = {};
    const refusal = () => ({ code: status.UNAVAILABLE, details: "berth is starting: recovering its containers; retry shortly", metadata: new Metadata() });
    for (const [name, handler] of Object.entries(implementation)) {
      const streaming = definition[name]?.responseStream === true;
      const h = handler as (...args: unknown[]) => void;
      const wrapped = streaming
        ? (call: ServerWritableStream<unknown, unknown>): void => {
            if (this.ready) h(call);
            else call.emit("error", refusal());
          }
        : (call: unknown, callback: (err: unknown) => void): void => {
            if (this.ready) h(call, callback);
            else callback(refusal());
          };
      gated[name] = wrapped as UntypedServiceImplementation[string];
    }
    return gated;
  }

  /** Lets Containerizer calls through (recovery is done); health still follows setServing. */
  markReady(): void {
    this.ready = true;
  }

  /** Adds a service whose requests are decoded in its handlers: bad bytes are INVALID_ARGUMENT, not INTERNAL. */
  private addService(definition: ServiceDefinition, implementation: UntypedServiceImplementation): void {
    const decoded = decodedInHandlers(definition, implementation);
    this.server.addService(decoded.definition, decoded.implementation);
  }

  /** How many berth.v1 Watch streams are open, and every change of it. */
  get watchStreamsOpen$(): Observable<number> {
    return this.watchLimits.open$;
  }

  /** Re-reads the bearer token file (SIGHUP); on failure the tokens in use stay. Returns how many are in use. */
  async reloadTokens(): Promise<number | undefined> {
    return this.options.tokens?.reload();
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

  /**
   * Binds every listen address; a stale unix socket file is replaced, a live one is an error.
   * Unix sockets are plaintext (their file mode guards them: 0600, or 0660 for --socket_group);
   * TCP listeners use TLS when it is configured, and plaintext only on loopback (resolveTransport
   * refused the rest), with a warning saying who can reach it.
   */
  async start(): Promise<void> {
    const transport = this.options.transport ?? {};
    for (const address of this.options.listen) {
      if (address.startsWith("unix://")) {
        const path = address.slice("unix://".length);
        if (await unixSocketInUse(path)) throw new ListenFailed(`cannot listen on ${address}: another process is serving on that socket`);
        await rm(path, { force: true });
        const injector = this.server.createConnectionInjector(ServerCredentials.createInsecure());
        const listener = await listenUnix(path, transport.socketGid, (socket) => injector.injectConnection(socket)).catch((err: Error) => {
          injector.destroy();
          throw new ListenFailed(`cannot listen on ${address}: ${err.message}`);
        });
        this.unixListeners.push(listener);
        this.bound.push(address);
        continue;
      }
      const port = await new Promise<number>((resolve, reject) => {
        this.server.bindAsync(address, tcpCredentials(transport), (err, p) => (err ? reject(new ListenFailed(`cannot listen on ${address}: ${bindFailure(err)}`)) : resolve(p)));
      });
      const bound = address.replace(/:0$/, `:${port}`);
      this.bound.push(bound);
      if (!transport.tls && isLoopback(listenHost(address))) {
        this.log.warn(
          { listen: bound },
          "serving TCP without TLS on loopback: every local user and every container on the HOST network can call this API (use a unix socket, or --tls_cert/--tls_key with --tls_client_ca or --auth_token_file)",
        );
      }
    }
  }

  /** Ends Watch streams, then shuts down (forcing after `graceMs`). */
  async stop(graceMs = 5000): Promise<void> {
    this.setServing(false);
    this.streams.endAll();
    // No new unix connections; the open ones close with the server's sessions below.
    for (const listener of this.unixListeners.splice(0)) listener.close();
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

/**
 * The cause of a failed TCP bind in a few words. grpc-js wraps it ("No address added out of total 1
 * resolved errors: [listen EADDRINUSE: address already in use 127.0.0.1:5051]"); the errno is what a
 * person acts on.
 */
export function bindFailure(err: Error): string {
  const errno = /\b(E[A-Z]+)\b/.exec(err.message)?.[1];
  switch (errno) {
    case "EADDRINUSE":
      return "address already in use (EADDRINUSE)";
    case "EACCES":
      return "permission denied (EACCES)";
    case "EADDRNOTAVAIL":
      return "no such local address (EADDRNOTAVAIL)";
    default:
      return /\[(.*)\]/.exec(err.message)?.[1] ?? err.message;
  }
}
