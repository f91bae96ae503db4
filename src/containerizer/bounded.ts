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

/** Runs a task when a slot is free. */
export type Gate = <T>(task: () => Promise<T>) => Promise<T>;

/** A gate letting at most `limit` tasks run at once; the others wait in order. */
export function gate(limit: number): Gate {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    running += 1;
    try {
      return await task();
    } finally {
      running -= 1;
      waiting.shift()?.();
    }
  };
}
