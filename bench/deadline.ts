/** Thrown when a bounded wait runs out; the message names what was awaited and for how long. */
export class DeadlineExceeded extends Error {}

/** Resolves or rejects as `promise` does, or rejects with DeadlineExceeded after `ms`. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineExceeded(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` every `everyMs` until it returns true; rejects with DeadlineExceeded after `ms`. */
export async function pollUntil(check: () => Promise<boolean>, ms: number, everyMs: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= until) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new DeadlineExceeded(`${what}: not reached within ${ms} ms${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
