import { create } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { Metadata, status, type ServerDuplexStream, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import type { Readable } from "node:stream";
import { ExecResponseSchema, ExecSyncResponseSchema, type ExecRequest, type ExecResponse, type ExecStart, type ExecSyncRequest, type ExecSyncResponse } from "../gen/berth/v1/containerizer_pb.js";
import type { ContainerID } from "../gen/mesos/v1/mesos_pb.js";
import type { Containerizer } from "../containerizer/containerizer.js";
import { Cancelled, InvalidRequest } from "../containerizer/errors.js";
import type { ExecSession } from "../exec/exec-session.js";
import { toStatus, type StatusError } from "./error-status.js";
import type { WatchStreams } from "./watch-writer.js";

/** The status of an exec call ended because Berth stops (its process was killed first). */
function shuttingDown(): StatusError {
  return { code: status.UNAVAILABLE, details: "berth is shutting down; the exec'd process was killed", metadata: new Metadata() };
}

function isStatus(err: unknown): err is StatusError {
  return typeof err === "object" && err !== null && !(err instanceof Error) && typeof (err as StatusError).code === "number";
}

function requireId(id: ContainerID | undefined, field: string): string {
  if (!id) throw new InvalidRequest(`${field} is missing`);
  return id.value;
}

/** A request's Duration in ms; undefined when unset. */
function durationMs(d: Duration | undefined, field: string): number | undefined {
  if (d === undefined) return undefined;
  if (d.seconds < 0n || d.nanos < 0) throw new InvalidRequest(`${field} ${d.seconds}s ${d.nanos}ns is negative`);
  const ms = Number(d.seconds) * 1000 + d.nanos / 1e6;
  if (!(ms >= 1)) throw new InvalidRequest(`${field} ${d.seconds}s ${d.nanos}ns is under 1 ms; leave it unset for the default`);
  // setTimeout takes at most 2^31-1 ms (~24.8 days).
  if (ms > 2_147_483_647) throw new InvalidRequest(`${field} ${d.seconds}s is longer than 24 days`);
  return Math.ceil(ms);
}

/**
 * ExecSync: the command runs to its end (or its timeout) and the output comes back capped. When
 * Berth stops meanwhile (`streams.endAll()`), the process is killed and the call answers UNAVAILABLE.
 */
export function execSyncHandler(containerizer: Containerizer, streams: WatchStreams) {
  return (call: ServerUnaryCall<ExecSyncRequest, ExecSyncResponse>, callback: sendUnaryData<ExecSyncResponse>): void => {
    const abort = new AbortController();
    let stopping = false;
    const release = streams.add(() => {
      stopping = true;
      abort.abort(new Cancelled("berth is shutting down"));
    });
    call.on("cancelled", () => abort.abort(new Cancelled("ExecSync was cancelled by its caller; the process was killed")));
    const run = async (): Promise<ExecSyncResponse> => {
      const req = call.request;
      const result = await containerizer.execSync(
        requireId(req.containerId, "container_id"),
        {
          argv: req.command,
          env: req.environment,
          user: req.user || undefined,
          workingDir: req.workingDir || undefined,
          stdin: req.stdin.length > 0 ? Buffer.from(req.stdin.buffer, req.stdin.byteOffset, req.stdin.byteLength) : undefined,
          timeoutMs: durationMs(req.timeout, "timeout"),
        },
        abort.signal,
      );
      return create(ExecSyncResponseSchema, {
        exitCode: result.exitCode,
        stdout: result.stdout,
        stderr: result.stderr,
        stdoutTruncated: result.stdoutTruncated,
        stderrTruncated: result.stderrTruncated,
        timedOut: result.timedOut,
      });
    };
    run()
      .then(
        (response) => callback(null, response),
        (err: unknown) => callback(stopping ? shuttingDown() : toStatus(err)),
      )
      .finally(release);
  };
}

function startInput(start: ExecStart) {
  return {
    argv: start.command,
    env: start.environment,
    user: start.user || undefined,
    workingDir: start.workingDir || undefined,
    tty: start.tty,
    stdin: start.stdin,
    size: start.size ? { rows: start.size.rows, columns: start.size.columns } : undefined,
    timeoutMs: durationMs(start.timeout, "start.timeout"),
  };
}

function ended(stream: Readable): Promise<void> {
  return new Promise((resolve) => {
    if (stream.readableEnded) return resolve();
    stream.once("end", resolve);
    stream.once("close", resolve);
  });
}

/**
 * Exec: the first message starts the process, later ones feed its stdin, resize its TTY or close
 * its stdin; output chunks go out as they come and the exit code last. The call's own flow
 * control is honoured both ways: output is paused while the call's write() says the client is
 * behind, and requests are not read while the process's stdin is full. A cancelled call (client
 * gone or deadline passed) kills the process; so does the start's timeout, after which the exit
 * code (137) is sent and the call ends DEADLINE_EXCEEDED. A half-close by the client closes the
 * process's stdin and the output keeps coming. When Berth stops, the process is killed and the
 * call ends UNAVAILABLE (once it is gone, so the server's graceful shutdown waits for the kill).
 */
export function execHandler(containerizer: Containerizer, streams: WatchStreams) {
  return (call: ServerDuplexStream<ExecRequest, ExecResponse>): void => {
    const abort = new AbortController();
    let session: ExecSession | undefined;
    let started = false;
    let over = false;

    const release = streams.add(() => {
      if (over) return;
      over = true;
      release();
      abort.abort(new Cancelled("berth is shutting down"));
      void (session?.cancel() ?? Promise.resolve()).then(() => call.emit("error", shuttingDown()));
    });
    const finish = (err?: unknown): void => {
      if (over) return;
      over = true;
      release();
      abort.abort(new Cancelled("Exec ended"));
      void session?.cancel();
      if (err !== undefined) call.emit("error", isStatus(err) ? err : toStatus(err));
      else call.end();
    };
    call.on("cancelled", () => {
      over = true;
      release();
      abort.abort(new Cancelled("Exec was cancelled by its caller; the process was killed"));
      void session?.cancel();
    });
    // A request that did not decode (request-decoding.ts answers INVALID_ARGUMENT) or a failed write.
    call.on("error", () => {
      if (over) return;
      over = true;
      release();
      abort.abort(new Cancelled("Exec failed"));
      void session?.cancel();
    });

    const send = (response: ExecResponse, source?: Readable): void => {
      if (over) return;
      if (!call.write(response) && source) {
        source.pause();
        call.once("drain", () => source.resume());
      }
    };

    const pump = (s: ExecSession): void => {
      s.stdout.on("data", (chunk: Buffer) => send(create(ExecResponseSchema, { kind: { case: "stdout", value: chunk } }), s.stdout));
      s.stderr.on("data", (chunk: Buffer) => send(create(ExecResponseSchema, { kind: { case: "stderr", value: chunk } }), s.stderr));
      Promise.all([s.exit, ended(s.stdout), ended(s.stderr)]).then(
        ([exit]) => {
          if (over) return;
          send(create(ExecResponseSchema, { kind: { case: "exitCode", value: exit.exitCode } }));
          if (exit.timedOut) finish({ code: status.DEADLINE_EXCEEDED, details: "start.timeout passed; the process was killed (exit code 137)", metadata: new Metadata() });
          else finish();
        },
        (err: unknown) => finish(err),
      );
    };

    const handle = async (req: ExecRequest): Promise<void> => {
      const kind = req.kind;
      if (!started) {
        if (kind.case !== "start") {
          throw new InvalidRequest(`the first message of an Exec must be 'start', got ${kind.case === undefined ? "an empty message" : `'${kind.case}'`}`);
        }
        started = true;
        const start = kind.value;
        session = await containerizer.exec(requireId(start.containerId, "start.container_id"), startInput(start), abort.signal);
        if (over) {
          await session.cancel();
          return;
        }
        pump(session);
        return;
      }
      const s = session!;
      switch (kind.case) {
        case "start":
          throw new InvalidRequest("'start' may only be the first message of an Exec");
        case "stdin":
          if (!s.writeStdin(kind.value)) await s.stdinDrained();
          return;
        case "resize":
          await s.resize({ rows: kind.value.rows, columns: kind.value.columns });
          return;
        case "closeStdin":
          if (!kind.value) throw new InvalidRequest("close_stdin is false; send close_stdin: true to close the process's stdin");
          s.closeStdin();
          return;
        default:
          throw new InvalidRequest("an ExecRequest sets none of start, stdin, resize, close_stdin");
      }
    };

    // One request at a time: the next is not read until this one is done (stdin back-pressure).
    call.on("data", (req: ExecRequest) => {
      if (over) return;
      call.pause();
      handle(req).then(
        () => {
          if (!over) call.resume();
        },
        (err: unknown) => finish(err),
      );
    });
    call.on("end", () => {
      if (over) return;
      if (!started) finish(new InvalidRequest("the Exec call ended before its 'start' message"));
      else session?.closeStdin();
    });
  };
}
