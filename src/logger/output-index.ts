/**
 * When the bytes of one output file were written: a short list of segments, each the offset where
 * it starts and the times of its first and last write. Logs' `since` starts a file at the first
 * segment whose last write is at or after the asked time, so it never drops a byte written after
 * it, and shows at most the rest of one segment from before.
 *
 * A write in the same millisecond as the segment's last one extends it; a later write starts a new
 * segment. Past `maxSegments` neighbouring segments are merged pairwise (the list halves): the index
 * stays bounded however long a file lives, precise for slow writers (each write its own segment) and
 * coarser only for very chatty ones (a segment per 1/512 of the file at worst).
 */
export interface Segment {
  offset: number;
  firstMs: number;
  lastMs: number;
}

/** Segments kept per file by default: with the sidecar's ~30 bytes a line, ≤ 32 KB per file. */
export const DEFAULT_MAX_SEGMENTS = 1024;

const HEADER = "berth-output-index 1";

/** A sidecar is at most a few tens of KB; a larger one (planted by the container) is read only this far. */
export const MAX_INDEX_FILE_BYTES = 256 * 1024;

export class OutputIndex {
  private segments: Segment[] = [];
  /** Bytes the index covers (the file's size when it was last recorded). */
  end = 0;

  constructor(readonly maxSegments = DEFAULT_MAX_SEGMENTS) {
    if (maxSegments < 2) throw new Error(`an output index keeps at least 2 segments, not ${maxSegments}`);
  }

  /** Records `bytes` written at `offset` (the file's end) at `nowMs`. */
  record(offset: number, bytes: number, nowMs: number): void {
    const last = this.segments.at(-1);
    // Same millisecond (or a clock that stepped back): the last segment takes it, so times stay monotonic.
    if (!last || nowMs > last.lastMs) this.segments.push({ offset, firstMs: nowMs, lastMs: nowMs });
    this.end = offset + bytes;
    if (this.segments.length > this.maxSegments) this.thin();
  }

  /**
   * Bytes the file holds beyond what was recorded (written by a process that stopped before it
   * recorded them, or by another writer such as the fetcher) get one segment ending at `lastMs`.
   */
  cover(size: number, lastMs: number): void {
    if (size <= this.end) return;
    const last = this.segments.at(-1);
    if (!last || lastMs > last.lastMs) this.segments.push({ offset: this.end, firstMs: lastMs, lastMs });
    this.end = size;
    if (this.segments.length > this.maxSegments) this.thin();
  }

  /** The offset from which every byte was written at or after `sinceMs` (`end` when none was). */
  startOffset(sinceMs: number): number {
    for (const s of this.segments) if (s.lastMs >= sinceMs) return s.offset;
    return this.end;
  }

  /** The segments, oldest first (a copy). */
  get entries(): Segment[] {
    return this.segments.map((s) => ({ ...s }));
  }

  /** The time of the last recorded write, if any. */
  get lastMs(): number | undefined {
    return this.segments.at(-1)?.lastMs;
  }

  get size(): number {
    return this.segments.length;
  }

  /** A copy, for a reader that must not see later writes change it. */
  clone(): OutputIndex {
    const copy = new OutputIndex(this.maxSegments);
    copy.segments = this.segments.map((s) => ({ ...s }));
    copy.end = this.end;
    return copy;
  }

  private thin(): void {
    const merged: Segment[] = [];
    for (let i = 0; i < this.segments.length; i += 2) {
      const a = this.segments[i]!;
      const b = this.segments[i + 1];
      merged.push(b ? { offset: a.offset, firstMs: a.firstMs, lastMs: b.lastMs } : a);
    }
    this.segments = merged;
  }

  /** The sidecar text. */
  serialize(): string {
    return `${HEADER}\n${this.segments.map((s) => `${s.offset} ${s.firstMs} ${s.lastMs}\n`).join("")}end ${this.end}\n`;
  }

  /**
   * Reads a sidecar. The container can write into its sandbox, so the text is not trusted: lines
   * that do not parse, go backwards or point past `fileSize` end the index there (the rest of the
   * file then counts as written at the file's modification time — shown rather than lost).
   */
  static parse(text: string, fileSize: number, maxSegments = DEFAULT_MAX_SEGMENTS): OutputIndex {
    const index = new OutputIndex(maxSegments);
    const lines = text.split("\n");
    if (lines[0] !== HEADER) return index;
    let end = 0;
    for (const line of lines.slice(1)) {
      const endMatch = /^end (\d+)$/.exec(line);
      if (endMatch) {
        const e = Number(endMatch[1]);
        if (e >= end && e <= fileSize && index.segments.length > 0) end = e;
        break;
      }
      const m = /^(\d+) (\d+) (\d+)$/.exec(line);
      if (!m) break;
      const [offset, firstMs, lastMs] = [Number(m[1]), Number(m[2]), Number(m[3])];
      const prev = index.segments.at(-1);
      const first = prev === undefined && offset !== 0;
      if (first || offset > fileSize || firstMs > lastMs || (prev && (offset < prev.offset || firstMs <= prev.lastMs))) break;
      if (index.segments.length >= maxSegments * 2) break;
      index.segments.push({ offset, firstMs, lastMs });
      end = offset;
    }
    index.end = end;
    while (index.segments.length > maxSegments) index.thin();
    return index;
  }
}
