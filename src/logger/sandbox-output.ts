import { constants, createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { setTimeout as delay } from "node:timers/promises";
import { EngineRequestFailed, type LogStreams } from "../docker/engine-port.js";

/** How long to wait before asking a (restarting) engine for the logs again. */
const REATTACH_RETRY_MS = 1000;

/** File names of a container's output in its sandbox, as Mesos names them. */
export const STDOUT_FILE = "stdout";
export const STDERR_FILE = "stderr";

/**
 * Copies a container's stdout and stderr into the `stdout` and `stderr` files of its sandbox
 * (appending). Resolves once both streams have ended and every byte is flushed and the files
 * closed, so a termination published after it never truncates the output.
 */
export async function captureOutput(streams: LogStreams, sandbox: string): Promise<void> {
  await Promise.all([
    pipeline(streams.stdout, appendNoFollow(path.join(sandbox, STDOUT_FILE))),
    pipeline(streams.stderr, appendNoFollow(path.join(sandbox, STDERR_FILE))),
  ]);
}

// The container writes into its sandbox too: a symlink it planted at `stdout` must not make Berth
// append to a host file, so the output files are never opened through a link.
function appendNoFollow(file: string) {
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;
  // Node accepts numeric open flags here; its typings only declare the string form.
  return createWriteStream(file, { flags: flags as unknown as string, mode: 0o644 });
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
  /** Told each time the logs stream broke and capture re-attaches. */
  onReattach?: (err: Error, since: number | undefined) => void;
}

/**
 * Captures a container's output into its sandbox for as long as the engine has some: `open(since)`
 * asks the engine for the logs; when the stream breaks before its end (an engine restart with
 * live-restore: the container still runs), capture re-attaches from where the sandbox files stopped,
 * retrying while the engine is unreachable, until the stream ends or `signal` aborts. `attached`
 * settles once the first request is answered; `done` once capture is over (rejecting when the first
 * request failed).
 */
export function followOutput(open: (since: number | undefined) => Promise<LogStreams>, sandbox: string, options: FollowOutputOptions): { attached: Promise<void>; done: Promise<void> } {
  const first = open(options.since);
  const done = (async () => {
    let streams = await first;
    for (;;) {
      await captureOutput(streams, sandbox);
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
  })();
  return {
    attached: first.then(
      () => undefined,
      () => undefined,
    ),
    done,
  };
}
