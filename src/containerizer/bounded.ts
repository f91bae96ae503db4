/**
 * Runs `work` over `items` with at most `limit` in flight (Mesos once ran out of file descriptors
 * inspecting 400+ containers at once during recovery).
 */
export async function forEachBounded<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** How a task waits for its slot. */
export interface GateOptions {
  /** Served before every non-urgent waiter (a launch's start, so launches finish in order instead of all creates going first). */
  urgent?: boolean;
  /** Gives up waiting (rejecting with the signal's reason); a task already running is not affected. */
  signal?: AbortSignal;
}

/** Runs a task when a slot is free. */
export type Gate = <T>(task: () => Promise<T>, options?: GateOptions) => Promise<T>;

/**
 * A gate letting at most `limit` tasks run at once; the others wait in order, urgent ones first.
 * A freed slot is handed straight to the next waiter, so a caller arriving meanwhile cannot slip in.
 */
export function gate(limit: number): Gate {
  let running = 0;
  const urgent: Array<() => void> = [];
  const normal: Array<() => void> = [];
  const release = (): void => {
    const next = urgent.shift() ?? normal.shift();
    if (next) next();
    else running -= 1;
  };
  const acquire = (options: GateOptions): Promise<void> => {
    options.signal?.throwIfAborted();
    if (running < limit) {
      running += 1;
      return Promise.resolve();
    }
    const queue = options.urgent ? urgent : normal;
    return new Promise<void>((resolve, reject) => {
      const signal = options.signal;
      const onAbort = (): void => {
        const i = queue.indexOf(granted);
        if (i >= 0) queue.splice(i, 1);
        reject(signal!.reason);
      };
      // Called with the slot already counted as taken (release() hands it over).
      const granted = (): void => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      queue.push(granted);
    });
  };
  return async <T>(task: () => Promise<T>, options: GateOptions = {}): Promise<T> => {
    await acquire(options);
    try {
      return await task();
    } finally {
      release();
    }
  };
}
