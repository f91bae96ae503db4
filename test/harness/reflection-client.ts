import { createRequire } from "node:module";
import path from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { credentials, makeGenericClientConstructor, type Client, type ClientDuplexStream, type ServiceDefinition, type ServiceError } from "@grpc/grpc-js";
// Tests only: proto-loader reads the reflection protos that @grpc/reflection ships; Berth's own
// code never depends on it.
import { loadSync } from "@grpc/proto-loader";

/** The two reflection protocol versions grpcurl and friends speak. */
export type ReflectionVersion = "v1" | "v1alpha";

// proto-loader with keepCase: false and oneofs: true gives camelCase fields and a virtual
// `messageResponse` naming the set member.
interface ReflectionResponse {
  messageResponse?: "fileDescriptorResponse" | "listServicesResponse" | "errorResponse" | string;
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  listServicesResponse?: { service: { name: string }[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

type ReflectionRequest = { host?: string } & ({ listServices: string } | { fileContainingSymbol: string } | { fileByFilename: string });

const reflectionBuild = path.resolve(path.dirname(createRequire(import.meta.url).resolve("@grpc/reflection")), "..");

function reflectionServiceDefinition(version: ReflectionVersion): ServiceDefinition {
  const file = path.join(reflectionBuild, "proto", "grpc", "reflection", version, "reflection.proto");
  const pkg = loadSync(file, { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true });
  const service = pkg[`grpc.reflection.${version}.ServerReflection`];
  if (!service || !("ServerReflectionInfo" in service)) throw new Error(`no grpc.reflection.${version}.ServerReflection service in '${file}'`);
  return service as ServiceDefinition;
}

function describeRequest(request: ReflectionRequest): string {
  const [key, value] = Object.entries(request).find(([k]) => k !== "host")!;
  return `${key} '${String(value)}'`;
}

/**
 * A reflection client speaking ServerReflectionInfo over one bidi stream, one request at a time
 * (as grpcurl does), so each response is matched to the request that caused it.
 */
export class ReflectionClient {
  readonly raw: Client;
  private stream: ClientDuplexStream<ReflectionRequest, ReflectionResponse> | undefined;
  private readonly pending: { resolve: (r: ReflectionResponse) => void; reject: (e: Error) => void }[] = [];

  constructor(address: string, readonly version: ReflectionVersion = "v1") {
    const Ctor = makeGenericClientConstructor(reflectionServiceDefinition(version), `ServerReflection${version}`);
    this.raw = new Ctor(address, credentials.createInsecure());
  }

  private open(): ClientDuplexStream<ReflectionRequest, ReflectionResponse> {
    if (this.stream) return this.stream;
    const call = (this.raw as unknown as Record<string, () => ClientDuplexStream<ReflectionRequest, ReflectionResponse>>).ServerReflectionInfo!.call(this.raw);
    const failAll = (err: Error) => {
      this.stream = undefined;
      for (const p of this.pending.splice(0)) p.reject(err);
    };
    call.on("data", (response: ReflectionResponse) => this.pending.shift()?.resolve(response));
    call.on("error", (err: ServiceError) => failAll(new Error(`reflection ${this.version} stream failed: ${err.code} ${err.details}`)));
    call.on("end", () => failAll(new Error(`reflection ${this.version} stream ended by the server`)));
    this.stream = call;
    return call;
  }

  private ask(request: ReflectionRequest): Promise<ReflectionResponse> {
    const call = this.open();
    return new Promise<ReflectionResponse>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      call.write(request);
    }).then((response) => {
      if (response.messageResponse === "errorResponse" || response.errorResponse) {
        const e = response.errorResponse!;
        throw new Error(`reflection ${this.version} ${describeRequest(request)} answered error ${e.errorCode}: ${e.errorMessage}`);
      }
      return response;
    });
  }

  /** `list_services`: the fully-qualified names of the served services. */
  async listServices(): Promise<string[]> {
    const response = await this.ask({ listServices: "*" });
    if (!response.listServicesResponse) throw new Error(`reflection ${this.version} list_services answered ${String(response.messageResponse)}`);
    return response.listServicesResponse.service.map((s) => s.name);
  }

  /** `file_containing_symbol`: the file declaring `symbol`, possibly followed by some of its dependencies. */
  async fileContainingSymbol(symbol: string): Promise<FileDescriptorProto[]> {
    return this.files(await this.ask({ fileContainingSymbol: symbol }), `file_containing_symbol '${symbol}'`);
  }

  /** `file_by_filename`: the named file, possibly followed by some of its dependencies. */
  async fileByFilename(name: string): Promise<FileDescriptorProto[]> {
    return this.files(await this.ask({ fileByFilename: name }), `file_by_filename '${name}'`);
  }

  private files(response: ReflectionResponse, what: string): FileDescriptorProto[] {
    if (!response.fileDescriptorResponse) throw new Error(`reflection ${this.version} ${what} answered ${String(response.messageResponse)}`);
    return response.fileDescriptorResponse.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
  }

  /** Half-closes the stream and closes the channel. */
  close(): void {
    this.stream?.end();
    this.stream = undefined;
    this.raw.close();
  }
}

/** What grpcurl's resolution collected: every file by name, and the file names it had to ask for. */
export interface ResolvedFiles {
  files: Map<string, FileDescriptorProto>;
  /** The file names requested with `file_by_filename`, in order. */
  requested: string[];
}

/**
 * Resolves `symbol` the way grpcurl does: `file_containing_symbol`, then `file_by_filename` for
 * every `dependency` not seen yet, until the import closure is complete.
 */
export async function resolveSymbol(client: ReflectionClient, symbol: string): Promise<ResolvedFiles> {
  const files = new Map<string, FileDescriptorProto>();
  const requested: string[] = [];
  const add = (list: FileDescriptorProto[]) => list.forEach((f) => files.set(f.name, f));
  add(await client.fileContainingSymbol(symbol));
  // Bounded: each round requests a name never requested before, and names come from a finite set.
  for (;;) {
    const missing = [...files.values()].flatMap((f) => f.dependency).find((dep) => !files.has(dep) && !requested.includes(dep));
    if (missing === undefined) break;
    requested.push(missing);
    add(await client.fileByFilename(missing));
  }
  const unresolved = [...files.values()].flatMap((f) => f.dependency.filter((dep) => !files.has(dep)).map((dep) => `${f.name} → ${dep}`));
  if (unresolved.length > 0) throw new Error(`reflection ${client.version} left imports unresolved: ${unresolved.join(", ")}`);
  return { files, requested };
}
