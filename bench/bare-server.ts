/**
 * A bare grpc-js server: the floor the fan-out and Containers() figures stand beside. It serves
 * berth.v1.Containerizer with no logic at all — Containers() answers bytes encoded before the run
 * (Berth's own response, captured), Watch answers one snapshot event and keeps the stream, and
 * Destroy encodes one DESTROYING event once and writes the same bytes to every open Watch stream,
 * then ends them — so a figure beside it measures what Berth adds, not gRPC.
 *
 * Run as a child process, like Berth: `node dist/bench/bare-server.js <socket> [<containers.bin>]`;
 * it prints "listening" on stdout once bound.
 */
import { readFileSync } from "node:fs";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Server, ServerCredentials, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from "@grpc/grpc-js";
import { Containerizer, ContainersResponseSchema, DestroyResponseSchema, State, WatchResponseSchema, type DestroyRequest, type WatchRequest } from "../src/gen/berth/v1/containerizer_pb.js";
import { PreEncoded, preEncode, serviceDefinition } from "../src/rpc/service-definition.js";
import { rssKib } from "./bench-berth.js";
import { withDeadline } from "./deadline.js";

const START_MS = 30_000;
const STOP_MS = 10_000;

function serve(socket: string, containersFile: string | undefined): void {
  const containers = containersFile ? new PreEncoded(readFileSync(containersFile)) : preEncode(ContainersResponseSchema, create(ContainersResponseSchema, {}));
  const streams = new Set<ServerWritableStream<WatchRequest, unknown>>();
  // Berth's server options that matter for speed: no channelz.
  const server = new Server({ "grpc.enable_channelz": 0 });
  server.addService(serviceDefinition(Containerizer), {
    containers: (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => callback(null, containers),
    watch: (call: ServerWritableStream<WatchRequest, unknown>) => {
      streams.add(call);
      call.on("cancelled", () => streams.delete(call));
      const snapshot = create(WatchResponseSchema, {
        event: { sequence: 1n, time: timestampFromMs(Date.now()), containerId: call.request.containerIds[0], snapshot: true, kind: { case: "stateChanged", value: { state: State.RUNNING, previous: State.MOUNTING } } },
      });
      call.write(snapshot);
    },
    destroy: (call: ServerUnaryCall<DestroyRequest, unknown>, callback: sendUnaryData<unknown>) => {
      const event = preEncode(
        WatchResponseSchema,
        create(WatchResponseSchema, {
          event: { sequence: 2n, time: timestampFromMs(Date.now()), containerId: call.request.containerId, kind: { case: "stateChanged", value: { state: State.DESTROYING, previous: State.RUNNING } } },
        }),
      );
      const open = [...streams];
      streams.clear();
      for (const s of open) s.write(event);
      for (const s of open) s.end();
      callback(null, create(DestroyResponseSchema, {}));
    },
  });
  server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (err) => {
    if (err) {
      process.stderr.write(`bare-server: cannot bind ${socket}: ${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write("listening\n");
  });
  process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
}

/** The bare server in a child process. */
export class BareServer {
  private constructor(
    readonly child: ChildProcess,
    readonly address: string,
    private readonly exited: Promise<void>,
  ) {}

  /** Spawns it on `socket` (answering Containers() with the bytes of `containersFile`) and waits until it listens. */
  static async start(socket: string, containersFile?: string): Promise<BareServer> {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), socket, ...(containersFile ? [containersFile] : [])], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
    const listening = new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout!.setEncoding("utf8").on("data", (c: string) => {
        out += c;
        if (out.includes("listening")) resolve();
      });
      void exited.then(() => reject(new Error(`bare server exited before listening: ${stderr.slice(-500)}`)));
    });
    try {
      await withDeadline(listening, START_MS, "the bare grpc-js server listening");
    } catch (err) {
      child.kill("SIGKILL");
      throw err;
    }
    return new BareServer(child, `unix://${socket}`, exited);
  }

  rssKib(): number {
    return rssKib(this.child.pid!);
  }

  async stop(): Promise<void> {
    this.child.kill("SIGTERM");
    try {
      await withDeadline(this.exited, STOP_MS, "the bare server exiting");
    } catch {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) serve(process.argv[2]!, process.argv[3]);
