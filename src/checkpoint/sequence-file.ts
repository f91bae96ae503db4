import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "./atomic-file.js";
import { DiskFailed, DiskHealth, diskFailure } from "./disk-health.js";

/** How many sequence numbers one durable reservation covers. */
const BLOCK = 100_000n;

/** Writes `data` to `file` durably (write, fsync, rename, fsync the dir); injectable for tests. */
export type DurableWrite = (file: string, data: Uint8Array) => Promise<void>;

/** Options of SequenceFile.open. */
export interface SequenceFileOptions {
  /** Numbers per reservation (default 100,000); the next block is reserved once half of this one is used. */
  block?: bigint;
  /** Default writeFileAtomic. */
  write?: DurableWrite;
  /** Where failed and recovered reservations are reported. */
  health?: DiskHealth;
}

/**
 * The per-agent event sequence, never going back across restarts. Numbers are handed out from a
 * block whose upper bound is on disk before any number of it is used; after a restart numbering
 * resumes at that bound. `next()` stays synchronous: the next block is reserved asynchronously
 * (off the event loop) once half of the current one is used, so no number is ever handed out
 * beyond what is durable, and none waits for a disk write. When the reservation fails (a full or
 * failing disk), `next()` throws DiskFailed once the durable block is used up, and a later call
 * tries again.
 */
export class SequenceFile {
  private current: bigint;
  private reserved: bigint;
  private pending: Promise<void> | undefined;
  private failure: DiskFailed | undefined;
  private readonly block: bigint;
  private readonly write: DurableWrite;
  readonly health: DiskHealth;

  private constructor(
    private readonly file: string,
    start: bigint,
    options: SequenceFileOptions,
  ) {
    this.current = start;
    this.reserved = start;
    this.block = options.block ?? BLOCK;
    if (this.block < 2n) throw new RangeError(`sequence block ${this.block} is below 2`);
    this.write = options.write ?? writeFileAtomic;
    this.health = options.health ?? new DiskHealth();
  }

  /** Reads the file (absent: start at 0) and durably reserves the first block. */
  static async open(file: string, options: SequenceFileOptions = {}): Promise<SequenceFile> {
    let start = 0n;
    try {
      const text = (await readFile(file, "utf8")).trim();
      if (!/^\d+$/.test(text)) throw new Error(`sequence file '${file}' holds '${text.slice(0, 40)}', not a number`);
      start = BigInt(text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    const sequence = new SequenceFile(file, start, options);
    sequence.reserveAhead();
    await sequence.pending;
    if (sequence.failure) throw sequence.failure;
    return sequence;
  }

  /** The last number handed out (0 before any). */
  get last(): bigint {
    return this.current;
  }

  /** Resolves once no reservation is in flight (for tests and orderly shutdown). */
  async settled(): Promise<void> {
    while (this.pending) await this.pending;
  }

  /** Hands out the next number; throws DiskFailed when it is not durably reserved (the disk failed). */
  next(): bigint {
    if (this.current + 1n > this.reserved) {
      this.reserveAhead();
      throw new DiskFailed(
        `event sequence number ${this.current + 1n} is not durably reserved yet (reserved up to ${this.reserved}` +
          (this.failure ? `; ${this.failure.message})` : "; a reservation is in flight)"),
        { cause: this.failure },
      );
    }
    this.current += 1n;
    if (this.reserved - this.current <= this.block / 2n) this.reserveAhead();
    return this.current;
  }

  private reserveAhead(): void {
    if (this.pending) return;
    const upTo = this.current + this.block;
    this.pending = this.write(this.file, new TextEncoder().encode(`${upTo}\n`)).then(
      () => {
        if (upTo > this.reserved) this.reserved = upTo;
        this.failure = undefined;
        this.pending = undefined;
        this.health.succeeded();
      },
      (err: unknown) => {
        this.failure = diskFailure(`reserving event sequence numbers up to ${upTo} in '${this.file}'`, err);
        this.pending = undefined;
        this.health.failed(this.failure);
      },
    );
  }
}
