// The engine's log stream, split for output capture with back-pressure. It lives beside the
// adapter (it is the engine's wire format), so docker/ never imports logger/.
import type { Readable, Writable } from "node:stream";

// The engine's multiplexed log stream: frames of an 8-byte header (stream type, three zero bytes,
// payload length as big-endian uint32) followed by the payload.
const HEADER_BYTES = 8;
const STDERR_TYPE = 2;
const SYSTEMERR_TYPE = 3;

/**
 * Follows `source` into writables while honouring their back-pressure: when a write returns false
 * the source is paused until every full writable has drained, so a chatty container on a slow
 * disk waits in the engine (which buffers per container) instead of growing Berth's heap.
 */
class PausingWriter {
  private readonly full = new Set<Writable>();

  constructor(private readonly source: Readable) {}

  write(target: Writable, chunk: Buffer): void {
    if (target.write(chunk) || this.full.has(target)) return;
    this.full.add(target);
    this.source.pause();
    const resume = (): void => {
      target.off("drain", resume);
      target.off("close", resume);
      this.full.delete(target);
      if (this.full.size === 0) this.source.resume();
    };
    target.on("drain", resume);
    // A destroyed target never drains: do not hold the other stream hostage.
    target.on("close", resume);
  }
}

/** Splits the engine's multiplexed log stream into stdout and stderr (stdin frames go to stdout), with back-pressure. */
export function demuxOutput(source: Readable, stdout: Writable, stderr: Writable): void {
  const writer = new PausingWriter(source);
  let header = Buffer.alloc(0);
  let target: Writable = stdout;
  let remaining = 0;
  source.on("data", (chunk: Buffer) => {
    let offset = 0;
    while (offset < chunk.length) {
      if (remaining === 0) {
        const need = HEADER_BYTES - header.length;
        header = Buffer.concat([header, chunk.subarray(offset, offset + need)]);
        offset += Math.min(need, chunk.length - offset);
        if (header.length < HEADER_BYTES) return;
        const type = header[0];
        target = type === STDERR_TYPE || type === SYSTEMERR_TYPE ? stderr : stdout;
        remaining = header.readUInt32BE(4);
        header = Buffer.alloc(0);
        continue;
      }
      const take = Math.min(remaining, chunk.length - offset);
      // Payloads are passed on as they arrive: a large frame is never held whole.
      writer.write(target, chunk.subarray(offset, offset + take));
      offset += take;
      remaining -= take;
    }
  });
}

/** Copies a TTY container's single raw stream to stdout, with back-pressure. */
export function copyRawOutput(source: Readable, stdout: Writable): void {
  const writer = new PausingWriter(source);
  source.on("data", (chunk: Buffer) => writer.write(stdout, chunk));
}
