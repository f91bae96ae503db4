import { closeSync, constants, fstatSync, openSync, read, close, fstat, type Stats } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import type { Subscription } from "rxjs";
import type { LiveStream, OutputRegistry, OutputStreamName } from "./live-output.js";
import { MAX_INDEX_FILE_BYTES, OutputIndex, type Segment } from "./output-index.js";
import { indexName, rotatedName } from "./rotating-file.js";

const readAt = promisify(read);
const closeFd = promisify(close);
const fstatFd = promisify(fstat) as (fd: number) => Promise<Stats>;

/** Bytes read (and sent) at a time. */
export const LOG_CHUNK_BYTES = 64 * 1024;

/** Rotated files looked for when no writer says how many there are (a terminated container). */
const MAX_ROTATED_SCAN = 1000;

// Never through a link the container planted, and never blocking on a FIFO put in a file's place.
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** One piece of output, and which stream it came from. */
export interface LogChunk {
  stream: OutputStreamName;
  data: Buffer;
}

/** What to read. */
export interface LogReadOptions {
  streams: OutputStreamName[];
  /** Only the last N lines of each stream (across its rotated files). */
  tail?: number;
  /** Keep reading new output until the container has terminated and its output is drained. */
  follow: boolean;
  /** Only output written at or after this time (ms since the epoch; see OutputIndex for the precision). */
  sinceMs?: number;
}

/** Where a reader finds the container's output and learns its end. */
export interface LogSource {
  sandbox: string;
  registry: OutputRegistry;
  /** Whether the container has terminated (its output is then final: drained before termination). */
  isTerminated(): boolean;
  /** Calls `wake` once it has terminated; returns how to stop listening. */
  onTerminated(wake: () => void): () => void;
}

/** The reader fell behind the rotation: output it had not read yet is gone. */
export class FellBehind extends Error {
  override readonly name = "FellBehind";
}

interface OpenFile {
  fd: number;
  gen: number;
  pos: number;
  indexFd?: number;
  /** The live file's index as the writer held it when the file was opened. */
  liveIndex?: OutputIndex;
  /** When its bytes were written (files opened at the start, when asked for), up to `indexed`. */
  segments?: Segment[];
  indexed?: number;
}

/**
 * One stream's files, read in order across rotations. Files are opened by name only while the
 * writer is not renaming them (names and generations agree then), and from then on read through
 * their descriptors, so a rotation after the open does not move what the cursor reads.
 */
class StreamCursor {
  live: LiveStream | undefined;
  /** Files opened and not yet read to their end, oldest first; `files[0]` is being read. */
  files: OpenFile[] = [];
  /** The generation to open once `files` is exhausted. */
  nextGen = 0;
  private scratch: Buffer | undefined;

  constructor(
    readonly name: OutputStreamName,
    private readonly sandbox: string,
  ) {}

  /**
   * Opens every file of the stream (oldest first), with their sidecars when `withIndex`.
   * Synchronous, so no rotation can start meanwhile; false (nothing opened) while one is under way.
   */
  openAll(withIndex: boolean): boolean {
    if (this.live?.rotating) return false;
    const g = this.live?.generation ?? 0;
    const limit = this.live ? this.live.maxFiles - 1 : MAX_ROTATED_SCAN;
    const opened: OpenFile[] = [];
    for (let k = 0; k <= limit; k += 1) {
      const fd = openRegular(path.join(this.sandbox, rotatedName(this.name, k)));
      if (fd === undefined) {
        if (k === 0) continue; // no live file yet
        break;
      }
      const indexFd = withIndex ? openRegular(path.join(this.sandbox, indexName(rotatedName(this.name, k)))) : undefined;
      const liveIndex = withIndex && k === 0 ? this.live?.index?.clone() : undefined;
      opened.unshift({ fd, gen: g - k, pos: 0, indexFd, liveIndex });
    }
    this.files = opened;
    this.nextGen = g + 1;
    if (opened.length === 0 || opened.at(-1)!.gen !== g) this.nextGen = g;
    return true;
  }

  /** The file the next byte comes from and its segment there, when the index knows. */
  private nextSegment(): { file: OpenFile; index: number } | undefined {
    for (const [i, f] of this.files.entries()) {
      // A file read up to what was indexed: the next byte is in the next file (if any).
      if (f.indexed !== undefined && f.pos >= f.indexed && i < this.files.length - 1) continue;
      if (!f.segments || f.indexed === undefined || f.pos >= f.indexed) return undefined;
      const at = segmentAt(f.segments, f.pos);
      return at && { file: f, index: at.index };
    }
    return undefined;
  }

  /** When the next unread byte was written, as far as the index knows (Infinity: unknown). */
  nextTime(): number {
    const next = this.nextSegment();
    return next ? next.file.segments![next.index]!.lastMs : Infinity;
  }

  /** Bytes from the read position written no later than `ms` (at least the current segment); undefined: no bound known. */
  bytesUntil(ms: number): number | undefined {
    const next = this.nextSegment();
    if (!next) return undefined;
    const segs = next.file.segments!;
    let j = next.index + 1;
    while (j < segs.length && segs[j]!.lastMs <= ms) j += 1;
    return j < segs.length ? segs[j]!.offset - next.file.pos : undefined;
  }

  /** The next chunk (at most `maxBytes`) available now; undefined at the end of what is written. Throws FellBehind. */
  async read(signal: AbortSignal, maxBytes = LOG_CHUNK_BYTES): Promise<Buffer | undefined> {
    for (;;) {
      const current = this.files[0];
      // Taken before the read: a file older than the live generation then is final at its end.
      const liveGen = this.live?.generation;
      if (current) {
        // A follow reads at the end of the file on every wake: that read allocates nothing.
        const buf = (this.scratch ??= Buffer.allocUnsafe(LOG_CHUNK_BYTES));
        const { bytesRead } = await readAt(current.fd, buf, 0, Math.max(1, Math.min(buf.length, maxBytes)), current.pos);
        if (bytesRead > 0) {
          current.pos += bytesRead;
          return Buffer.from(buf.subarray(0, bytesRead));
        }
        if (this.files.length > 1) {
          await this.closeFirst();
          continue;
        }
        if (liveGen === undefined || current.gen >= liveGen) return undefined;
      } else if (!this.live || this.nextGen > this.live.generation) {
        return undefined;
      }
      if (!(await this.openNext(signal))) return undefined;
    }
  }

  /** Opens generation `nextGen` once the writer is between rotations. */
  private async openNext(signal: AbortSignal): Promise<boolean> {
    const live = this.live!;
    // Checked again right before the open, with no wait in between.
    while (live.rotating && !live.closed) await live.settled(signal);
    const k = live.generation - this.nextGen;
    if (k < 0) return false;
    if (k > live.maxFiles - 1) throw this.fellBehindError();
    const fd = openRegular(path.join(this.sandbox, rotatedName(this.name, k)));
    if (fd === undefined) throw this.fellBehindError();
    if (this.files[0]) await this.closeFirst();
    this.files.push({ fd, gen: this.nextGen, pos: 0 });
    this.nextGen += 1;
    return true;
  }

  /** True when output this cursor has not read yet was rotated away. */
  get behind(): boolean {
    if (!this.live) return false;
    const oldestKept = this.live.generation - (this.live.maxFiles - 1);
    // The open files are safe (read through their descriptors); the next one must still exist.
    return this.files.length <= 1 && this.nextGen < oldestKept;
  }

  fellBehindError(): FellBehind {
    return new FellBehind(`the reader fell behind the rotation of '${this.name}': output it had not read yet was rotated away (at most --container_log_max_files files are kept)`);
  }

  private async closeFirst(): Promise<void> {
    const f = this.files.shift()!;
    await closeFd(f.fd).catch(() => undefined);
    if (f.indexFd !== undefined) await closeFd(f.indexFd).catch(() => undefined);
  }

  /** Sets where reading starts: since (per file index) and tail (last N lines); keeps the files' segments when `withIndex`. */
  async position(options: LogReadOptions, withIndex: boolean): Promise<void> {
    const sizes = await Promise.all(this.files.map((f) => fstatFd(f.fd)));
    const lows = this.files.map(() => 0);
    if (withIndex) {
      for (let i = 0; i < this.files.length; i += 1) {
        const f = this.files[i]!;
        const st = sizes[i]!;
        const index = f.liveIndex ?? (await this.readIndexFd(f.indexFd, st.size));
        // Bytes past what the index knows: written since (live) or before it was last saved.
        index.cover(st.size, f.liveIndex ? Date.now() : Math.floor(st.mtimeMs));
        f.segments = index.entries;
        f.indexed = st.size;
        if (options.sinceMs !== undefined) lows[i] = Math.min(index.startOffset(options.sinceMs), st.size);
      }
    }
    let startFile = 0;
    let startPos = lows[0] ?? 0;
    // Files wholly before `since` are skipped.
    while (startFile < this.files.length - 1 && lows[startFile]! >= sizes[startFile]!.size) {
      startFile += 1;
      startPos = lows[startFile]!;
    }
    if (options.tail !== undefined) {
      const found = await tailStart(
        this.files.map((f, i) => ({ fd: f.fd, lo: i < startFile ? sizes[i]!.size : i === startFile ? startPos : lows[i]!, size: sizes[i]!.size })),
        options.tail,
      );
      if (found.file > startFile || (found.file === startFile && found.pos > startPos)) {
        startFile = found.file;
        startPos = found.pos;
      }
    }
    for (let i = 0; i < startFile; i += 1) await this.closeFirst();
    if (this.files[0]) this.files[0].pos = startPos;
    for (let i = 1; i < this.files.length; i += 1) this.files[i]!.pos = lows[startFile + i] ?? 0;
    for (const f of this.files) {
      if (f.indexFd !== undefined) await closeFd(f.indexFd).catch(() => undefined);
      f.indexFd = undefined;
      f.liveIndex = undefined;
    }
  }

  private async readIndexFd(fd: number | undefined, size: number): Promise<OutputIndex> {
    if (fd === undefined) return new OutputIndex();
    const buf = Buffer.allocUnsafe(MAX_INDEX_FILE_BYTES);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await readAt(fd, buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return OutputIndex.parse(buf.subarray(0, n).toString("utf8"), size);
  }

  async close(): Promise<void> {
    while (this.files.length > 0) await this.closeFirst();
  }
}

/** The segment holding `pos` (the last one starting at or before it). */
function segmentAt(segments: Segment[], pos: number): { index: number } | undefined {
  let lo = 0;
  let hi = segments.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (segments[mid]!.offset <= pos) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found < 0 ? undefined : { index: found };
}

function openRegular(file: string): number | undefined {
  let fd: number;
  try {
    fd = openSync(file, READ_FLAGS);
  } catch {
    return undefined;
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    return undefined;
  }
  return fd;
}

/**
 * Where the last `n` lines of the files start (reading `[lo, size)` of each, oldest first). A last
 * line without its newline counts as a line.
 */
export async function tailStart(files: Array<{ fd: number; lo: number; size: number }>, n: number): Promise<{ file: number; pos: number }> {
  const last = files.length - 1;
  if (n === 0) return { file: Math.max(last, 0), pos: files[last]?.size ?? 0 };
  let need = n;
  let skipTrailing: boolean | undefined;
  const buf = Buffer.allocUnsafe(LOG_CHUNK_BYTES);
  for (let i = last; i >= 0; i -= 1) {
    const f = files[i]!;
    let pos = f.size;
    while (pos > f.lo) {
      const start = Math.max(f.lo, pos - buf.length);
      const { bytesRead } = await readAt(f.fd, buf, 0, pos - start, start);
      for (let j = bytesRead - 1; j >= 0; j -= 1) {
        if (skipTrailing === undefined) {
          // The newline ending the very last line ends it; it does not begin another.
          skipTrailing = buf[j] === 0x0a;
          if (skipTrailing) continue;
        }
        if (buf[j] === 0x0a) {
          need -= 1;
          if (need === 0) return { file: i, pos: start + j + 1 };
        }
      }
      pos = start;
    }
  }
  const first = files.findIndex((f) => f.size > f.lo);
  return first < 0 ? { file: Math.max(last, 0), pos: files[last]?.size ?? 0 } : { file: first, pos: files[first]!.lo };
}

/**
 * Reads a container's output from its sandbox: each asked stream from where `since`/`tail` put it,
 * across rotated files, then — with `follow` — what the writer appends, told by the writer itself
 * (no polling), until the container has terminated and every byte is read. With both streams, what
 * was already written comes in the order it was written (to the index's millisecond); newer output
 * takes turns a chunk at a time, so neither stream starves the other.
 *
 * `overrun` settles when a reader that is not being consumed fell so far behind that output it has
 * not read yet was rotated away; reading then also fails with FellBehind. `return()` (a cancelled
 * call) closes every file.
 */
export class LogReader implements AsyncIterable<LogChunk> {
  readonly overrun: Promise<FellBehind>;
  private reportOverrun!: (err: FellBehind) => void;
  private readonly cursors: StreamCursor[];
  private readonly subscriptions: Subscription[] = [];
  private readonly liveSubs = new Map<LiveStream, Subscription>();
  private wake: (() => void) | undefined;
  private readonly abort = new AbortController();

  constructor(
    private readonly source: LogSource,
    private readonly options: LogReadOptions,
  ) {
    this.overrun = new Promise((resolve) => (this.reportOverrun = resolve));
    this.cursors = options.streams.map((s) => new StreamCursor(s, source.sandbox));
    // Subscribed before any file is opened: a writer that opens later is seen at once.
    this.subscriptions.push(
      source.registry.opened$.subscribe((sandbox) => {
        if (sandbox === source.sandbox) this.attachLive();
      }),
    );
    this.attachLive();
    const stop = source.onTerminated(() => this.poke());
    this.subscriptions.push({ unsubscribe: stop } as Subscription);
  }

  private attachLive(): void {
    for (const c of this.cursors) {
      if (c.live) continue;
      const live = this.source.registry.get(this.source.sandbox, c.name);
      if (!live) continue;
      c.live = live;
      this.liveSubs.set(
        live,
        live.changed$.subscribe(() => {
          if (c.behind) this.reportOverrun(c.fellBehindError());
          this.poke();
        }),
      );
    }
    this.poke();
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<LogChunk> {
    const signal = this.abort.signal;
    const aborted = new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
    aborted.catch(() => undefined);
    try {
      // The index serves `since`, and with both streams the order of what was already written.
      const withIndex = this.options.sinceMs !== undefined || this.cursors.length > 1;
      for (const c of this.cursors) {
        while (!c.openAll(withIndex)) await c.live!.settled(signal);
        await c.position(this.options, withIndex);
      }
      for (;;) {
        // Armed before reading: a change during the reads wakes the wait at once.
        const changed = new Promise<void>((resolve) => (this.wake = resolve));
        const ended = this.source.isTerminated() && this.cursors.every((c) => !c.live || c.live.closed);
        // The stream whose next unread byte was written first goes first, up to where the other's
        // begins; without an index (output newer than the start, or one stream) they take turns.
        const active = [...this.cursors];
        for (let turn = 0; active.length > 0; turn += 1) {
          let pick = turn % active.length;
          for (let i = 0; i < active.length; i += 1) if (active[i]!.nextTime() < active[pick]!.nextTime()) pick = i;
          const c = active[pick]!;
          const otherMs = Math.min(...active.filter((o) => o !== c).map((o) => o.nextTime()));
          const data = await c.read(signal, Number.isFinite(otherMs) ? c.bytesUntil(otherMs) : undefined);
          if (!data) {
            active.splice(pick, 1);
            continue;
          }
          yield { stream: c.name, data };
        }
        if (!this.options.follow || ended) return;
        await Promise.race([changed, aborted]);
      }
    } finally {
      this.dispose();
      await Promise.all(this.cursors.map((c) => c.close()));
    }
  }

  /** Stops reading and frees everything (idempotent). */
  dispose(): void {
    if (!this.abort.signal.aborted) this.abort.abort(new Error("log reader closed"));
    for (const s of this.subscriptions) s.unsubscribe();
    for (const s of this.liveSubs.values()) s.unsubscribe();
    this.liveSubs.clear();
    this.poke();
  }
}
