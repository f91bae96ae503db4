import { stat } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { EngineRequestFailed, type LogStreams } from "../docker/engine-port.js";
import type { OutputRegistry } from "./live-output.js";
import { NO_ROTATION, RotatingFile, type RotationOptions, type WriterWarning } from "./rotating-file.js";

/** How long to wait before asking a (restarting) engine for the logs again. */
const REATTACH_RETRY_MS = 1000;

/** File names of a container's output in its sandbox, as Mesos names them. */
export const STDOUT_FILE = "stdout";
export const STDERR_FILE = "stderr";

/** A container's two output files, open for appending (and rotating). */
export interface OutputFiles {
  stdout: RotatingFile;
  stderr: RotatingFile;
}

/** Opens the sandbox's `stdout` and `stderr` for appending, rotating them as `rotation` says. */
export async function openOutputFiles(sandbox: string, rotation: RotationOptions = NO_ROTATION, warn?: WriterWarning): Promise<OutputFiles> {
  const [stdout, stderr] = await Promise.allSettled([RotatingFile.open(sandbox, STDOUT_FILE, rotation, { warn }), RotatingFile.open(sandbox, STDERR_FILE, rotation, { warn })]);
  if (stdout.status === "fulfilled" && stderr.status === "fulfilled") return { stdout: stdout.value, stderr: stderr.value };
  if (stdout.status === "fulfilled") await stdout.value.close();
  if (stderr.status === "fulfilled") await stderr.value.close();
  throw stdout.status === "rejected" ? stdout.reason : (stderr as PromiseRejectedResult).reason;
}

/**
 * Copies a container's stdout and stderr into its sandbox files. Resolves once both streams have
 * ended and every byte is written (the files stay open: a re-attach appends to them), so a
 * termination published after the files are closed never truncates the output. Each stream is read
 * as fast as the files take it; a rotation in between is a few renames.
 */
export function captureOutput(streams: LogStreams, files: OutputFiles, warn?: WriterWarning): Promise<void> {
  return Promise.all([copy(streams.stdout, files.stdout, warn), copy(streams.stderr, files.stderr, warn)]).then(() => undefined);
}

/**
 * How long the unfinished last line of a chunk is held back for the rest of it. An attach hands
 * the output over in the pieces the engine read it in (a line may span two), and a rotation cuts
 * only at a line end it has seen: a line whose two pieces arrive within this time is never split
 * across files. A line still unfinished after it (a prompt) is written as it is.
 */
const PARTIAL_LINE_HOLD_MS = 50;
/** An unfinished line longer than this is written at once (a rotation would cut it anyway). */
const PARTIAL_LINE_MAX = 64 * 1024;
const NEWLINE = 0x0a;

/**
 * Copies one stream into its file: each chunk is written before the next is read (the stream is
 * paused meanwhile, so a slow file holds the output back in the engine, not in Berth's heap).
 * Plain listeners rather than `for await`: every live container has two of these for its whole
 * life, and an async iterator (with its end-of-stream listeners and generator) costs several
 * times the memory of the copy itself. Resolves once the stream ended and every byte is written;
 * rejects (after writing what it held) when the stream failed or closed before its end.
 */
// A file that cannot be written (a full disk) loses that stream's output, but the stream is still
// read to its end: the engine's two streams share one connection, and a stalled one would stall both.
function copy(source: Readable, file: RotatingFile, warn?: WriterWarning): Promise<void> {
  let failed = false;
  let held: Buffer | undefined;
  let timer: NodeJS.Timeout | undefined;
  // Writes are applied in call order, so a held piece written by the timer stays in place.
  const write = async (data: Buffer): Promise<void> => {
    if (failed || data.length === 0) return;
    try {
      await file.write(data);
    } catch (err) {
      failed = true;
      warn?.("could not write container output to the sandbox; the rest of this stream is dropped", err);
    }
  };
  const release = (): Buffer => {
    clearTimeout(timer);
    timer = undefined;
    const piece = held ?? Buffer.alloc(0);
    held = undefined;
    return piece;
  };
  return new Promise<void>((resolve, reject) => {
    let over = false;
    const settle = (err?: Error): void => {
      if (over) return;
      over = true;
      source.off("data", onData);
      source.off("end", onEnd);
      source.off("error", onError);
      source.off("close", onClose);
      void write(release()).then(() => (err ? reject(err) : resolve()));
    };
    const onData = (chunk: Buffer | string): void => {
      if (failed) return;
      const piece = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      let data = held ? Buffer.concat([release(), piece]) : piece;
      const lineEnd = data.lastIndexOf(NEWLINE);
      if (lineEnd < data.length - 1 && data.length - lineEnd - 1 <= PARTIAL_LINE_MAX) {
        held = Buffer.from(data.subarray(lineEnd + 1));
        data = data.subarray(0, lineEnd + 1);
        timer = setTimeout(() => void write(release()), PARTIAL_LINE_HOLD_MS);
      }
      if (data.length === 0) return;
      source.pause();
      void write(data).then(() => {
        if (!over) source.resume();
      });
    };
    const onEnd = (): void => settle();
    const onError = (err: Error): void => settle(err);
    // After 'end' this is a no-op; before it, the stream was destroyed without its end.
    const onClose = (): void => settle(source.errored ?? new Error("output stream closed before its end"));
    if (source.readableEnded) return settle();
    if (source.destroyed) return settle(source.errored ?? new Error("output stream closed before its end"));
    source.on("data", onData);
    // `on`, not `once` (a bound wrapper each): settle() removes all four.
    source.on("end", onEnd);
    source.on("error", onError);
    source.on("close", onClose);
  });
}

/**
 * Where output capture stopped: the later modification time of the sandbox's stdout/stderr files,
 * as a fractional Unix time. Following from there re-captures at most the lines of that instant and
 * loses none the engine logged meanwhile (while Berth was down, or its logs stream was broken).
 */
export async function outputWatermark(sandbox: string): Promise<number | undefined> {
  const times = await Promise.all(
    [STDOUT_FILE, STDERR_FILE].map((f) =>
      stat(path.join(sandbox, f)).then(
        (s) => s.mtimeMs,
        () => undefined,
      ),
    ),
  );
  const known = times.filter((t): t is number => t !== undefined);
  return known.length > 0 ? Math.max(...known) / 1000 : undefined;
}

/** Options of followOutput. */
export interface FollowOutputOptions {
  /** Ends the capture (and any wait for a re-attach). */
  signal: AbortSignal;
  /** Where the first follow starts (a fractional Unix time); undefined: from the container's start. */
  since?: number;
  /**
   * The first streams, already asked for (an attach made before the container's start); `open`
   * then serves only the re-attaches after a broken stream.
   */
  first?: Promise<LogStreams>;
  /** Told each time the logs stream broke and capture re-attaches. */
  onReattach?: (err: Error, since: number | undefined) => void;
  /** Size rotation of the files (default: none). */
  rotation?: RotationOptions;
  /** Where readers (Logs) find the open files' writers. */
  registry?: OutputRegistry;
  /** Told what the writer could not do without failing (a rotation the sandbox's contents refused). */
  warn?: WriterWarning;
}

/**
 * Captures a container's output into its sandbox (rotating the files by size) for as long as the
 * engine has some: the first streams are `options.first` (a launch's attach, made before the
 * start) or `open(since)` (the engine's logs, for a container adopted after a restart); when a
 * stream breaks before its end (an engine restart with live-restore: the container still runs),
 * capture follows the engine's logs again from where the sandbox files stopped,
 * retrying while the engine is unreachable, until the stream ends or `signal` aborts. `attached`
 * settles once the first request is answered; `done` once capture is over (rejecting when the first
 * request failed).
 */
export function followOutput(open: (since: number | undefined) => Promise<LogStreams>, sandbox: string, options: FollowOutputOptions): { attached: Promise<void>; done: Promise<void> } {
  const first = options.first ?? open(options.since);
  const done = (async () => {
    let streams = await first;
    let files: OutputFiles;
    try {
      files = await openOutputFiles(sandbox, options.rotation, options.warn);
    } catch (err) {
      streams.stdout.destroy();
      streams.stderr.destroy();
      throw err;
    }
    const unregister = options.registry?.register(sandbox, { stdout: files.stdout.live, stderr: files.stderr.live });
    try {
      await follow(streams, files);
    } finally {
      // Closed before `done` settles: a termination (published after it) finds the files final.
      await Promise.allSettled([files.stdout.close(), files.stderr.close()]);
      unregister?.();
    }
  })();
  async function follow(streams: LogStreams, files: OutputFiles): Promise<void> {
    for (;;) {
      await captureOutput(streams, files, options.warn);
      const broke = await streams.interrupted;
      if (broke === undefined || options.signal.aborted) return;
      for (;;) {
        const since = await outputWatermark(sandbox);
        options.onReattach?.(broke, since);
        try {
          streams = await open(since);
          break;
        } catch (err) {
          // The container is gone from the engine: nothing more to capture.
          if (options.signal.aborted || (err instanceof EngineRequestFailed && err.statusCode === 404)) return;
        }
        try {
          await delay(REATTACH_RETRY_MS, undefined, { signal: options.signal });
        } catch {
          return;
        }
      }
    }
  }
  return {
    attached: first.then(
      () => undefined,
      () => undefined,
    ),
    done,
  };
}
