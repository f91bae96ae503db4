/** Runs one command in a running container to its end, as CRI's ExecSync does. */
import type { Readable } from "node:stream";
import type { EnginePort } from "../docker/engine-port.js";
import { execCreateSpec, EXEC_SYNC_FIELDS, type ExecCommand, type ExecFieldNames } from "./exec-spec.js";
import { ExecProcess } from "./exec-process.js";

/** An ExecSync: the command, its stdin, and its bounds. */
export interface ExecSyncOptions extends ExecCommand {
  /** Written to the process's stdin, which is then closed; unset or empty: no stdin at all. */
  stdin?: Buffer;
  /** The process (and what it forked) is SIGKILLed when it runs longer. */
  timeoutMs: number;
  /** stdout and stderr each keep at most this many bytes; the rest is read and dropped. */
  maxOutputBytes: number;
}

/** The outcome of an ExecSync. */
export interface ExecSyncResult {
  /** The engine's exit code: 128+N when the process died of signal N (137 after a timeout's SIGKILL). */
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** The timeout passed and the process was killed (confirmed through the engine's inspect). */
  timedOut: boolean;
}

/** Keeps the first `max` bytes of a stream and drains the rest, so the process is never blocked on a full pipe. */
function capture(stream: Readable, max: number): { done: Promise<void>; result(): { bytes: Buffer; truncated: boolean } } {
  const chunks: Buffer[] = [];
  let kept = 0;
  let truncated = false;
  stream.on("data", (chunk: Buffer) => {
    const room = max - kept;
    if (chunk.length > room) truncated = true;
    if (room > 0) {
      const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
      chunks.push(part);
      kept += part.length;
    }
  });
  const done = new Promise<void>((resolve) => {
    stream.once("end", resolve);
    stream.once("close", resolve);
    stream.once("error", () => resolve());
  });
  return { done, result: () => ({ bytes: Buffer.concat(chunks, kept), truncated }) };
}

/**
 * Runs `options.argv` in the engine container `engineId` (which must be running: the engine
 * answers 409 otherwise, raised as EngineRequestFailed) and resolves with its exit code and
 * output. On timeout the process tree is SIGKILLed from the host and the result says
 * `timedOut`; when `signal` aborts, the process is killed the same way and the promise rejects
 * with the signal's reason. Validation errors are InvalidRequest naming `fields`' names.
 */
export async function execSync(engine: EnginePort, engineId: string, options: ExecSyncOptions, signal: AbortSignal, fields: ExecFieldNames = EXEC_SYNC_FIELDS): Promise<ExecSyncResult> {
  const withStdin = options.stdin !== undefined && options.stdin.length > 0;
  const spec = execCreateSpec(options, { tty: false, stdin: withStdin }, fields);
  signal.throwIfAborted();
  const started = Date.now();
  const proc = await ExecProcess.start(engine, engineId, spec, signal);
  try {
    const out = capture(proc.stdout, options.maxOutputBytes);
    const err = capture(proc.stderr, options.maxOutputBytes);
    if (proc.stdin) {
      // A process that exits without reading its stdin is fine: write errors are not its outcome.
      proc.stdin.on("error", () => undefined);
      proc.stdin.end(options.stdin);
    }
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const interrupted = new Promise<"timeout" | "aborted">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, options.timeoutMs - (Date.now() - started)));
      onAbort = () => resolve("aborted");
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
    // Over when the output has ended and the engine reports the exit (a process may close its
    // output and run on), unless the timeout or the caller comes first.
    const stopPolling = new AbortController();
    const over = Promise.all([out.done, err.done])
      .then(() => proc.exited(stopPolling.signal))
      .then((code) => ({ code }));
    over.catch(() => undefined);
    const outcome = await Promise.race([over, interrupted]);
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort!);
    stopPolling.abort();
    let exitCode: number;
    if (typeof outcome === "object") {
      exitCode = outcome.code;
    } else {
      const state = await proc.kill();
      if (outcome === "aborted") throw signal.reason;
      exitCode = state.exitCode ?? 137;
    }
    const o = out.result();
    const e = err.result();
    return { exitCode, stdout: o.bytes, stderr: e.bytes, stdoutTruncated: o.truncated, stderrTruncated: e.truncated, timedOut: outcome === "timeout" };
  } finally {
    proc.close();
  }
}
