import { Metadata, status, type ServerWritableStream } from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { LogsResponseSchema, LogStream, type LogsRequest } from "../gen/berth/v1/containerizer_pb.js";
import type { ContainerLogs, Containerizer } from "../containerizer/containerizer.js";
import { InvalidRequest } from "../containerizer/errors.js";
import type { LogReadOptions } from "../logger/log-reader.js";
import { toStatus, type StatusError } from "./error-status.js";
import { SHUTDOWN_REASON, type WatchStreams } from "./watch-writer.js";
import type { WatchLimits } from "./watch-limits.js";

/** The request's selection in the domain's terms; InvalidRequest names the field and value. */
export function logsQuery(req: LogsRequest): { containerId: string; query: LogReadOptions } {
  if (!req.containerId) throw new InvalidRequest("container_id is missing");
  let streams: LogReadOptions["streams"];
  if (req.stream === LogStream.UNSPECIFIED) streams = ["stdout", "stderr"];
  else if (req.stream === LogStream.STDOUT) streams = ["stdout"];
  else if (req.stream === LogStream.STDERR) streams = ["stderr"];
  else throw new InvalidRequest(`stream ${req.stream} is not a LogStream (LOG_STREAM_STDOUT = 1, LOG_STREAM_STDERR = 2, or unset for both)`);
  let sinceMs: number | undefined;
  if (req.since) {
    const { seconds, nanos } = req.since;
    if (seconds < 0n || nanos < 0 || nanos > 999_999_999) throw new InvalidRequest(`since ${seconds}s ${nanos}ns is not a time at or after the Unix epoch (nanos 0..999999999)`);
    if (seconds > 253_402_300_799n) throw new InvalidRequest(`since ${seconds}s is after year 9999`);
    // Milliseconds is the index's unit; rounding down shows at most the rest of that millisecond.
    sinceMs = Number(seconds) * 1000 + Math.floor(nanos / 1_000_000);
  }
  return { containerId: req.containerId.value, query: { streams, tail: req.tail, follow: req.follow, sinceMs } };
}

const STREAMS = { stdout: LogStream.STDOUT, stderr: LogStream.STDERR } as const;

/**
 * The Logs handler: decodes, asks the domain for a reader, and writes its chunks with the
 * transport's back-pressure (the next chunk is read only once the last was taken, so a stream holds
 * one chunk in memory). A client that stops reading while the container keeps writing is cut with
 * RESOURCE_EXHAUSTED once output it has not received was rotated away; a cancelled call closes
 * every file; server shutdown ends the stream with UNAVAILABLE. A Logs stream holds files open for as
 * long as it follows, so it counts against the same limits as a Watch stream (--max_watch_streams
 * and --max_watch_streams_per_connection).
 */
export function logsHandler(containerizer: Containerizer, open?: WatchStreams, limits?: WatchLimits) {
  return (call: ServerWritableStream<LogsRequest, unknown>): void => {
    void serveLogs(containerizer, call, open, limits);
  };
}

async function serveLogs(containerizer: Containerizer, call: ServerWritableStream<LogsRequest, unknown>, open: WatchStreams | undefined, limits: WatchLimits | undefined): Promise<void> {
  let logs: ContainerLogs;
  let release: (() => void) | undefined;
  try {
    const { containerId, query } = logsQuery(call.request);
    release = limits?.acquire(call.getPeer());
    logs = await containerizer.logs(containerId, query);
  } catch (err) {
    release?.();
    call.emit("error", toStatus(err));
    return;
  }
  let done = false;
  let wakeDrain: (() => void) | undefined;
  const iterator = logs[Symbol.asyncIterator]();
  const finish = (error?: StatusError): void => {
    if (done) return;
    done = true;
    unregister?.();
    release?.();
    logs.close();
    void iterator.return?.(undefined).catch(() => undefined);
    wakeDrain?.();
    if (error) call.emit("error", { ...error, metadata: error.metadata ?? new Metadata() });
    else if (!call.cancelled) call.end();
  };
  const unregister = open?.add(() => finish({ code: status.UNAVAILABLE, details: `${SHUTDOWN_REASON}; ask for the Logs again once it is back` }));
  call.on("cancelled", () => finish());
  call.on("close", () => finish());
  call.on("error", () => finish());
  if (call.cancelled) return finish();
  logs.overrun.then((err) => finish(toStatus(err)));
  const onDrain = () => wakeDrain?.();
  call.on("drain", onDrain);
  try {
    while (!done) {
      const next = await iterator.next();
      if (done) break;
      if (next.done) {
        finish();
        break;
      }
      const chunk = next.value;
      if (!call.write(create(LogsResponseSchema, { stream: STREAMS[chunk.stream], data: chunk.data }))) {
        await new Promise<void>((resolve) => (wakeDrain = resolve));
        wakeDrain = undefined;
      }
    }
  } catch (err) {
    finish(toStatus(err));
  } finally {
    call.off("drain", onDrain);
  }
}
