import { Subject, type Observable } from "rxjs";
import type { OutputIndex } from "./output-index.js";

/** A container output stream, as named in the sandbox. */
export type OutputStreamName = "stdout" | "stderr";

/**
 * What the in-process writer of one sandbox file tells its readers: which generation is live
 * (0 when the writer opened it, +1 per rotation), whether a rotation is renaming files right now
 * (names and generations only match while it is not), and each change — bytes appended, a
 * rotation done, the writer closed — on `changed$`. Readers follow the files through this instead
 * of polling or watching the file system: writer and readers live in the same process.
 */
export class LiveStream {
  generation = 0;
  rotating = false;
  closed = false;
  /** Counts every change; a reader that saw the same version before and after a read missed nothing. */
  version = 0;
  /** Files kept per stream, the live one included (--container_log_max_files). */
  readonly maxFiles: number;
  private readonly changes = new Subject<void>();
  /** The live file's index (the writer's own; readers clone it). */
  index: OutputIndex | undefined;

  constructor(maxFiles: number) {
    this.maxFiles = maxFiles;
  }

  get changed$(): Observable<void> {
    return this.changes.asObservable();
  }

  /** Called by the writer after each change. */
  changed(): void {
    this.version += 1;
    this.changes.next();
  }

  /** Resolves once no rotation is renaming files (at once when none is). */
  async settled(signal?: AbortSignal): Promise<void> {
    while (this.rotating && !this.closed) {
      await new Promise<void>((resolve, reject) => {
        const sub = this.changes.subscribe(() => done());
        const onAbort = () => {
          sub.unsubscribe();
          reject(signal!.reason);
        };
        const done = () => {
          sub.unsubscribe();
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        if (signal?.aborted) onAbort();
        else signal?.addEventListener("abort", onAbort, { once: true });
      });
    }
  }

  /** Ends the stream of changes (the writer is closed). */
  close(): void {
    this.closed = true;
    this.changed();
    this.changes.complete();
  }
}

/** The live streams of one sandbox (those whose writer is open). */
export interface LiveSandbox {
  stdout?: LiveStream;
  stderr?: LiveStream;
}

/**
 * Which sandboxes have an open writer in this process, so that a reader finds the writer of the
 * files it reads. One registry per Containerizer; writers register on open and leave on close.
 */
export class OutputRegistry {
  private readonly live = new Map<string, LiveSandbox>();
  private readonly opened = new Subject<string>();

  /** The sandboxes whose writer opened, as they open. */
  get opened$(): Observable<string> {
    return this.opened.asObservable();
  }

  get(sandbox: string, stream: OutputStreamName): LiveStream | undefined {
    return this.live.get(sandbox)?.[stream];
  }

  /** Registers the writers of a sandbox (both streams at once, so a reader sees both or neither). */
  register(sandbox: string, streams: Required<LiveSandbox>): () => void {
    this.live.set(sandbox, streams);
    this.opened.next(sandbox);
    return () => {
      if (this.live.get(sandbox) === streams) this.live.delete(sandbox);
    };
  }
}
