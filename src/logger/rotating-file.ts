import { constants } from "node:fs";
import { lstat, open, rename, unlink, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { LiveStream } from "./live-output.js";
import { MAX_INDEX_FILE_BYTES, OutputIndex } from "./output-index.js";

/** How large a sandbox output file grows and how many are kept (the live one included). */
export interface RotationOptions {
  maxSize: number;
  maxFiles: number;
}

/** No rotation (the files grow as before). */
export const NO_ROTATION: RotationOptions = { maxSize: Number.MAX_SAFE_INTEGER, maxFiles: 1 };

/** How often, at most, the live file's index is written to its sidecar. */
const INDEX_FLUSH_MS = 1000;

const NEWLINE = 0x0a;

// The container can write into its sandbox: never through a link it planted, and never blocking on
// a FIFO it put in a file's place (a blocked open would hold a libuv thread for good).
const APPEND = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** The name of the `k`-th file of `name` (0: the live one): `stdout`, `stdout.1`, … */
export function rotatedName(name: string, k: number): string {
  return k === 0 ? name : `${name}.${k}`;
}

/** The name of the time-index sidecar of a file (hidden, beside it in the sandbox). */
export function indexName(fileName: string): string {
  return `.${fileName}.times`;
}

/** What the writer reports without failing the capture (a sandbox the container tampered with). */
export type WriterWarning = (message: string, err: unknown) => void;

/**
 * Appends a container output stream to its sandbox file and rotates it by size as Mesos'
 * logrotate container logger does: `stdout` is live, `stdout.1` the one before, up to
 * `stdout.<maxFiles-1>`; the oldest goes. A rotation cuts at the last line end that fits, so no
 * line is split across files unless it alone is longer than what fits (then it is cut at the size);
 * every byte is written exactly once. A rotation is a few renames and an open: the engine stream
 * keeps flowing.
 *
 * The file is opened in append mode and its existing size counted (the fetcher writes to
 * `stderr` before the container starts; a restarted Berth re-attaches to files it wrote before).
 * Beside each file a small sidecar `.stdout.times` records when its bytes were written (see
 * OutputIndex) for Logs' `since`.
 */
export class RotatingFile {
  private size: number;
  private endsWithNewline: boolean;
  private index: OutputIndex;
  private lastFlushMs = 0;
  private indexDirty = false;
  private queue: Promise<void> = Promise.resolve();
  private closedFile = false;
  /** Rotated files there are (`stdout.1` … `stdout.<rotated>`): a rotation renames only those. */
  private rotated: number;

  private constructor(
    private readonly sandbox: string,
    private readonly name: string,
    private readonly rotation: RotationOptions,
    private handle: FileHandle,
    size: number,
    endsWithNewline: boolean,
    index: OutputIndex,
    rotated: number,
    readonly live: LiveStream,
    private readonly now: () => number,
    private readonly warn: WriterWarning,
  ) {
    this.size = size;
    this.endsWithNewline = endsWithNewline;
    this.index = index;
    this.rotated = rotated;
    live.index = index;
  }

  /** Opens (creating it when absent) the live file `name` of `sandbox` for appending. */
  static async open(sandbox: string, name: string, rotation: RotationOptions, options: { now?: () => number; warn?: WriterWarning } = {}): Promise<RotatingFile> {
    if (!(rotation.maxSize >= 1) || !(rotation.maxFiles >= 1)) throw new Error(`bad rotation: max size ${rotation.maxSize}, max files ${rotation.maxFiles}`);
    const now = options.now ?? Date.now;
    const handle = await open(path.join(sandbox, name), APPEND, 0o644);
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new Error(`sandbox output '${name}' is not a regular file`);
      let endsWithNewline = true;
      if (stat.size > 0) {
        const last = Buffer.alloc(1);
        // An append-mode descriptor still reads at a position (O_WRONLY does not allow it: reopen).
        const reader = await open(path.join(sandbox, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
        try {
          await reader.read(last, 0, 1, stat.size - 1);
        } finally {
          await reader.close();
        }
        endsWithNewline = last[0] === NEWLINE;
      }
      const index = await readIndex(sandbox, name, stat.size, stat.mtimeMs);
      let rotated = 0;
      while (rotated < rotation.maxFiles - 1 && (await exists(path.join(sandbox, rotatedName(name, rotated + 1))))) rotated += 1;
      return new RotatingFile(sandbox, name, rotation, handle, stat.size, endsWithNewline, index, rotated, new LiveStream(rotation.maxFiles), now, options.warn ?? (() => undefined));
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Appends `chunk`, rotating as often as it needs to. Writes are applied in call order. */
  write(chunk: Uint8Array): Promise<void> {
    const next = this.queue.then(() => this.writeNow(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Writes the index and closes the file; readers are told the writer is done. */
  close(): Promise<void> {
    const next = this.queue.then(async () => {
      if (this.closedFile) return;
      this.closedFile = true;
      try {
        await this.flushIndex(this.name).catch((err: unknown) => this.warn("could not write the output's time index", err));
      } finally {
        await this.handle.close();
        this.live.close();
      }
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async writeNow(chunk: Buffer): Promise<void> {
    if (this.closedFile) throw new Error(`sandbox output '${this.name}' is closed`);
    let rest = chunk;
    while (rest.length > 0) {
      const room = this.rotation.maxSize - this.size;
      if (rest.length <= room) {
        await this.append(rest);
        break;
      }
      // Cut at the last line end that fits; with none, rotate before the chunk when the file ends
      // a line, else (a line longer than what fits) cut at the size.
      const lineEnd = room > 0 ? rest.lastIndexOf(NEWLINE, room - 1) : -1;
      let cut: number;
      if (lineEnd >= 0) cut = lineEnd + 1;
      else if (this.size > 0 && this.endsWithNewline) cut = 0;
      else cut = room;
      if (cut > 0) await this.append(rest.subarray(0, cut));
      await this.rotate();
      rest = rest.subarray(cut);
    }
    const now = this.now();
    if (this.indexDirty && now - this.lastFlushMs >= INDEX_FLUSH_MS) {
      this.lastFlushMs = now;
      await this.flushIndex(this.name).catch((err: unknown) => this.warn("could not write the output's time index", err));
    }
  }

  private async append(data: Buffer): Promise<void> {
    let written = 0;
    while (written < data.length) {
      const { bytesWritten } = await this.handle.write(data, written, data.length - written);
      written += bytesWritten;
    }
    this.index.record(this.size, data.length, this.now());
    this.indexDirty = true;
    this.size += data.length;
    this.endsWithNewline = data[data.length - 1] === NEWLINE;
    this.live.changed();
  }

  /** live → .1 → .2 …; the oldest is replaced. Readers wait while `rotating` is set. */
  private async rotate(): Promise<void> {
    const { maxFiles } = this.rotation;
    this.live.rotating = true;
    try {
      // The finished file's index goes with it: written under the live name, then renamed along.
      await this.flushIndex(this.name).catch((err: unknown) => this.warn("could not write the output's time index", err));
      await this.handle.close();
      let kept = true;
      if (maxFiles === 1) {
        await this.remove(this.name);
        await this.remove(indexName(this.name));
      } else {
        const top = Math.min(this.rotated + 1, maxFiles - 1);
        for (let k = top; k >= 1; k -= 1) {
          const from = rotatedName(this.name, k - 1);
          const to = rotatedName(this.name, k);
          await this.move(indexName(from), indexName(to));
          const moved = await this.move(from, to);
          if (k === 1) kept = moved;
        }
        this.rotated = top;
      }
      // A live file that could not be moved away (the container put a directory where it goes) is
      // truncated: the bound on the sandbox's output holds even then.
      this.handle = await open(path.join(this.sandbox, this.name), kept ? APPEND : APPEND | constants.O_TRUNC, 0o644);
      if (!(await this.handle.stat()).isFile()) {
        await this.handle.close();
        throw new Error(`sandbox output '${this.name}' was replaced by something that is not a regular file`);
      }
      this.size = 0;
      this.endsWithNewline = true;
      this.index = new OutputIndex(this.index.maxSegments);
      this.indexDirty = false;
      this.live.index = this.index;
      this.live.generation += 1;
    } finally {
      this.live.rotating = false;
      this.live.changed();
    }
  }

  private async move(from: string, to: string): Promise<boolean> {
    try {
      await rename(path.join(this.sandbox, from), path.join(this.sandbox, to));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") this.warn(`could not rotate sandbox output '${from}' to '${to}'`, err);
      return false;
    }
  }

  private async remove(name: string): Promise<void> {
    await unlink(path.join(this.sandbox, name)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") this.warn(`could not remove sandbox output '${name}'`, err);
    });
  }

  /** Replaces the sidecar of `fileName` (written aside, then renamed: never half-written). */
  private async flushIndex(fileName: string): Promise<void> {
    if (!this.indexDirty) return;
    this.indexDirty = false;
    const target = indexName(fileName);
    const temp = `${target}.tmp`;
    const h = await open(path.join(this.sandbox, temp), constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o644);
    try {
      await h.writeFile(this.index.serialize());
    } finally {
      await h.close();
    }
    await rename(path.join(this.sandbox, temp), path.join(this.sandbox, target));
  }
}

async function exists(file: string): Promise<boolean> {
  return lstat(file).then(
    () => true,
    () => false,
  );
}

/** The sidecar of a file, or (none, unreadable, or not ours) an index covering what it holds as written at its mtime. */
export async function readIndex(sandbox: string, name: string, size: number, mtimeMs: number): Promise<OutputIndex> {
  let index = new OutputIndex();
  try {
    const h = await open(path.join(sandbox, indexName(name)), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      const st = await h.stat();
      if (st.isFile()) index = OutputIndex.parse(await readBounded(h, st.size), size);
    } finally {
      await h.close();
    }
  } catch {
    // No sidecar: written by something else (the fetcher), or by an older Berth.
  }
  index.cover(size, Math.floor(mtimeMs));
  return index;
}

/**
 * The start of a sidecar, at most MAX_INDEX_FILE_BYTES of it (and no more than its size when it was
 * opened: a sidecar is usually a few hundred bytes, and a restart opens two per adopted container).
 */
async function readBounded(h: FileHandle, size: number): Promise<string> {
  const buf = Buffer.alloc(Math.min(size, MAX_INDEX_FILE_BYTES));
  let n = 0;
  for (;;) {
    const { bytesRead } = await h.read(buf, n, buf.length - n, n);
    if (bytesRead === 0 || n + bytesRead >= buf.length) {
      n += bytesRead;
      break;
    }
    n += bytesRead;
  }
  return buf.subarray(0, n).toString("utf8");
}
