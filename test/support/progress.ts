/** One line of the engine's NDJSON progress stream (pull, push, import). */
export interface ProgressEvent {
  status?: string;
  id?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
}

/**
 * Reads an engine progress stream to its end and returns every event. Rejects on a stream error
 * and on any `error` line: the engine reports failures in-band with HTTP 200, and dockerode's
 * followProgress does not treat them as errors.
 */
export async function readProgress(
  stream: NodeJS.ReadableStream,
  what: string,
  onEvent?: (event: ProgressEvent) => void,
): Promise<ProgressEvent[]> {
  const events: ProgressEvent[] = [];
  let buffered = "";
  const handle = (line: string): void => {
    const trimmed = line.trim();
    if (trimmed === "") return;
    let event: ProgressEvent;
    try {
      event = JSON.parse(trimmed) as ProgressEvent;
    } catch {
      throw new Error(`${what}: engine sent a progress line that is not JSON: '${trimmed.slice(0, 200)}'`);
    }
    if (event.error !== undefined || event.errorDetail !== undefined) {
      throw new Error(`${what}: engine reported error '${event.error ?? event.errorDetail?.message}'`);
    }
    events.push(event);
    onEvent?.(event);
  };
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    buffered += chunk.toString();
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      handle(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
    }
  }
  handle(buffered);
  return events;
}
