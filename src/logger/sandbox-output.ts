import { createWriteStream } from "node:fs";
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
    pipeline(streams.stdout, createWriteStream(path.join(sandbox, STDOUT_FILE), { flags: "a" })),
    pipeline(streams.stderr, createWriteStream(path.join(sandbox, STDERR_FILE), { flags: "a" })),
  ]);
}
