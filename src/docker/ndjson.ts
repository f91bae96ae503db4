/**
 * Incremental newline-delimited JSON splitting for the engine's streamed answers (pull progress,
 * events). A JSON object may be split across chunks, and a chunk may carry several objects.
 */

/** Feeds raw chunks, returns the complete lines seen so far; keeps the partial tail for later. */
export class NdjsonSplitter {
  private tail = "";
  // A chunk can end in the middle of a multi-byte UTF-8 sequence; a string decoder keeps it.
  private readonly decoder = new TextDecoder("utf-8");

  /** Returns every complete, non-empty line in `chunk` (plus what was pending). */
  push(chunk: Buffer | Uint8Array | string): string[] {
    this.tail += typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    const parts = this.tail.split("\n");
    this.tail = parts.pop() ?? "";
    return parts.map((l) => l.trim()).filter((l) => l.length > 0);
  }

  /** The last line when the stream ended without a trailing newline. */
  end(): string[] {
    const rest = (this.tail + this.decoder.decode()).trim();
    this.tail = "";
    return rest.length > 0 ? [rest] : [];
  }
}

/** Parses one line, or returns undefined for a line that is not a JSON object. */
export function parseJsonLine(line: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
