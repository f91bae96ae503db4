/**
 * The client side of the `berth` CLI: one gRPC channel to a Berth server (unix socket or TCP, TLS
 * and bearer token as the server's flags ask for), promise-based unary calls and the streams.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import {
  credentials,
  makeGenericClientConstructor,
  Metadata,
  status,
  type CallOptions,
  type ChannelCredentials,
  type Client,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ServiceError,
} from "@grpc/grpc-js";
import { Containerizer } from "../gen/berth/v1/containerizer_pb.js";
import { serviceDefinition } from "../rpc/service-definition.js";

/** The connection flags every client command takes. */
export interface ConnectionOptions {
  addr?: string;
  tls_ca?: string;
  tls_cert?: string;
  tls_key?: string;
  tls_server_name?: string;
  token_file?: string;
}

/** A failure a person reads as one line: `berth: <what> failed: <CODE>: <details>`. */
export class CommandFailed extends Error {
  override readonly name = "CommandFailed";
  constructor(
    message: string,
    /** The process exit code (1 unless a container's exit code is passed on). */
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** A usage error (bad flag value, conflicting flags): exit code 2, like commander's own. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** The gRPC status code's name (`INVALID_ARGUMENT`), or the number when unknown. */
export function codeName(code: number): string {
  return (status as unknown as Record<number, string>)[code] ?? String(code);
}

/** Turns a gRPC error of `what` (an RPC name) into the one line a person reads. */
export function rpcFailure(what: string, err: unknown): CommandFailed {
  const e = err as Partial<ServiceError>;
  if (typeof e?.code === "number") {
    const details = (e.details ?? e.message ?? "").replace(/\s*\n\s*/g, " ").replace(/\s*Resolution note:\s*$/, "").trim();
    return new CommandFailed(`${what} failed: ${codeName(e.code)}${details ? `: ${details}` : ""}`);
  }
  return new CommandFailed(`${what} failed: ${err instanceof Error ? err.message : String(err)}`);
}

/** The server's default socket: `$BERTH_WORK_DIR/berth.sock` (as `serve --work_dir`), else /var/lib/berth/berth.sock. */
export function defaultAddress(env: NodeJS.ProcessEnv = process.env): string {
  const workDir = env.BERTH_WORK_DIR && env.BERTH_WORK_DIR !== "" ? path.resolve(env.BERTH_WORK_DIR) : "/var/lib/berth";
  return `unix://${path.join(workDir, "berth.sock")}`;
}

/**
 * A gRPC target from --addr: `unix:///abs/path`, `unix:relative/path`, a bare absolute socket path,
 * or HOST:PORT.
 */
export function grpcTarget(addr: string): string {
  if (addr.startsWith("unix:")) return addr;
  if (addr.startsWith("/")) return `unix://${addr}`;
  if (/^(\[[0-9a-f:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/i.test(addr)) return addr;
  throw new UsageError(`--addr '${addr}' is neither unix:///path/to/berth.sock nor HOST:PORT`);
}

function readFlagFile(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new CommandFailed(`cannot read ${flag} '${file}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The bearer token: --token_file (first non-empty line), else $BERTH_TOKEN; undefined for none. */
export function resolveToken(opts: ConnectionOptions, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (opts.token_file) {
    const line = readFlagFile(opts.token_file, "--token_file")
      .toString("utf8")
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l !== "" && !l.startsWith("#"));
    if (!line) throw new CommandFailed(`--token_file '${opts.token_file}' holds no token`);
    return line;
  }
  const token = env.BERTH_TOKEN?.trim();
  return token ? token : undefined;
}

function channelCredentials(opts: ConnectionOptions): ChannelCredentials {
  const tls = opts.tls_ca !== undefined || opts.tls_cert !== undefined || opts.tls_key !== undefined;
  if (!tls) return credentials.createInsecure();
  if ((opts.tls_cert === undefined) !== (opts.tls_key === undefined)) throw new UsageError("--tls_cert and --tls_key go together (a client certificate and its key)");
  // grpc-js hands an IP address of --addr to TLS as its server name, which Node flags with a
  // DeprecationWarning (DEP0123) on stderr; a client command's stderr is for its one error line.
  process.noDeprecation = true;
  const ca = opts.tls_ca !== undefined ? readFlagFile(opts.tls_ca, "--tls_ca") : null;
  const key = opts.tls_key !== undefined ? readFlagFile(opts.tls_key, "--tls_key") : null;
  const cert = opts.tls_cert !== undefined ? readFlagFile(opts.tls_cert, "--tls_cert") : null;
  return credentials.createSsl(ca, key, cert);
}

const ClientCtor = makeGenericClientConstructor(serviceDefinition(Containerizer), "Containerizer");

type Unary = (req: unknown, metadata: Metadata, options: CallOptions, cb: (err: ServiceError | null, res: unknown) => void) => void;

/** One channel to a Berth server. */
export class Connection {
  readonly client: Client;
  readonly target: string;
  private readonly token: string | undefined;

  constructor(opts: ConnectionOptions) {
    this.target = grpcTarget(opts.addr ?? defaultAddress());
    const creds = channelCredentials(opts);
    this.token = resolveToken(opts);
    const channelOptions: Record<string, string | number> = { "grpc.max_receive_message_length": 64 * 1024 * 1024 };
    if (opts.tls_server_name) channelOptions["grpc.ssl_target_name_override"] = opts.tls_server_name;
    this.client = new ClientCtor(this.target, creds, channelOptions) as Client;
  }

  /** The call's metadata: `authorization: Bearer <token>` when there is one. */
  metadata(): Metadata {
    const md = new Metadata();
    if (this.token !== undefined) md.set("authorization", `Bearer ${this.token}`);
    return md;
  }

  private method<T>(name: string): T {
    return ((this.client as unknown as Record<string, T>)[name] as unknown as { bind(c: Client): T }).bind(this.client);
  }

  /** A unary call; a failure becomes `<Rpc> failed: CODE: details`. */
  unary<I extends DescMessage, O>(rpc: string, schema: I, init: MessageInitShape<I>): Promise<O> {
    const fn = this.method<Unary>(rpc.charAt(0).toLowerCase() + rpc.slice(1));
    const request = create(schema, init);
    return new Promise((resolve, reject) => fn(request, this.metadata(), {}, (err, res) => (err ? reject(rpcFailure(rpc, err)) : resolve(res as O))));
  }

  /** A server stream (Watch, Logs). */
  serverStream<I extends DescMessage, O>(rpc: string, schema: I, init: MessageInitShape<I>): ClientReadableStream<O> {
    const fn = this.method<(req: MessageShape<I>, md: Metadata) => ClientReadableStream<O>>(rpc.charAt(0).toLowerCase() + rpc.slice(1));
    return fn(create(schema, init), this.metadata());
  }

  /** The bidi Exec stream. */
  exec<I, O>(): ClientDuplexStream<I, O> {
    return this.method<(md: Metadata) => ClientDuplexStream<I, O>>("exec")(this.metadata());
  }

  close(): void {
    this.client.close();
  }
}
