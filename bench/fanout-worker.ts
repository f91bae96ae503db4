// One receiving thread of the watch-fanout scenario: opens its share of the Watch streams on its
// own grpc-js channels, and reports to the main thread when all have their snapshot, the latency
// of the first live event on each, and when all have ended. The scenario runs several of these in
// its one client process so that receiving 10,000 copies is not one event loop's serial work.
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { status as grpcStatus, type Client, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { State, type WatchResponse } from "../src/gen/berth/v1/containerizer_pb.js";
import { timestampMs, wallNowMs } from "./clock.js";
import { containerizerClient, openWatch } from "./grpc-clients.js";

/** What the main thread gives a worker. */
export interface FanoutWorkerData {
  address: string;
  channels: number;
  perChannel: number;
  containerId: string;
}

/** What a worker reports. */
export type FanoutWorkerMessage =
  | { type: "opened"; streams: number }
  | { type: "delivered"; latenciesMs: number[]; notDestroying: number }
  | { type: "ended" }
  | { type: "failed"; error: string }
  | { type: "closed" };

/** The main thread asks a worker to cancel what is still open and close its channels. */
export type FanoutWorkerCommand = { type: "close" };

interface StreamRecord {
  stream: ClientReadableStream<WatchResponse>;
  opened: boolean;
  latencyMs?: number;
  liveState?: State;
  ended: boolean;
}

function run(data: FanoutWorkerData): void {
  const port = parentPort!;
  const post = (m: FanoutWorkerMessage) => port.postMessage(m);
  const clients: Client[] = [];
  const records: StreamRecord[] = [];
  let opened = 0;
  let delivered = 0;
  let ended = 0;
  let failed = false;

  const fail = (error: string) => {
    if (failed) return;
    failed = true;
    post({ type: "failed", error });
  };

  // A local subchannel pool per client: otherwise grpc-js shares one connection among equal targets.
  for (let c = 0; c < data.channels; c++) clients.push(containerizerClient(data.address, { "grpc.use_local_subchannel_pool": 1 }));
  for (const client of clients) {
    for (let s = 0; s < data.perChannel; s++) {
      const stream = openWatch(client, { containerIds: [{ value: data.containerId }] });
      const record: StreamRecord = { stream, opened: false, ended: false };
      stream.on("data", (r: WatchResponse) => {
        const event = r.event!;
        if (event.snapshot) {
          if (!record.opened) {
            record.opened = true;
            if (++opened === records.length) post({ type: "opened", streams: opened });
          }
          return;
        }
        if (record.latencyMs !== undefined) return;
        record.latencyMs = wallNowMs() - timestampMs(event.time);
        record.liveState = event.kind.case === "stateChanged" ? event.kind.value.state : undefined;
        if (++delivered === records.length) {
          post({
            type: "delivered",
            latenciesMs: records.map((x) => x.latencyMs!),
            notDestroying: records.filter((x) => x.liveState !== State.DESTROYING).length,
          });
        }
      });
      const onEnd = () => {
        if (record.ended) return;
        record.ended = true;
        if (++ended === records.length) post({ type: "ended" });
      };
      stream.on("end", onEnd);
      stream.on("error", (err: ServiceError) => {
        if (err.code !== grpcStatus.CANCELLED) fail(`${grpcStatus[err.code]} ${err.details}`);
        onEnd();
      });
      records.push(record);
    }
  }

  port.on("message", (command: FanoutWorkerCommand) => {
    if (command.type !== "close") return;
    for (const r of records) if (!r.ended) r.stream.cancel();
    for (const c of clients) c.close();
    post({ type: "closed" });
    port.close();
  });
}

if (!isMainThread) run(workerData as FanoutWorkerData);
