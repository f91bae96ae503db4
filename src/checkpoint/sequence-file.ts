import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import path from "node:path";

/** How many sequence numbers one durable reservation covers. */
const BLOCK = 100_000n;

/**
 * The per-agent event sequence, never going back across restarts. Numbers are handed out from a
 * block whose upper bound is on disk before any number of it is used; after a restart numbering
 * resumes at that bound. The write is synchronous (once per 100,000 events) so that `next()` can
 * stay synchronous and no number is ever handed out beyond what is durable.
 */
export class SequenceFile {
  private current: bigint;
  private reserved: bigint;

  constructor(private readonly file: string) {
    let start = 0n;
    try {
      const text = readFileSync(file, "utf8").trim();
      if (!/^\d+$/.test(text)) throw new Error(`sequence file '${file}' holds '${text.slice(0, 40)}', not a number`);
      start = BigInt(text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    this.current = start;
    this.reserved = start;
  }

  /** The last number handed out (0 before any). */
  get last(): bigint {
    return this.current;
  }

  /** Hands out the next number. */
  next(): bigint {
    this.current += 1n;
    if (this.current > this.reserved) this.reserve(this.current + BLOCK);
    return this.current;
  }

  private reserve(upTo: bigint): void {
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, `${upTo}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    const dir = openSync(path.dirname(this.file), "r");
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    this.reserved = upTo;
  }
}
