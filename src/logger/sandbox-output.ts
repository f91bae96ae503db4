import { constants, createWriteStream } from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type { LogStreams } from "../docker/engine-port.js";

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
