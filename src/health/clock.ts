/** Time as the health checker sees it: injectable, so the scheduling can be tested without waiting. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once after `ms` (fractions allowed); returns a function that cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** Node's setTimeout takes at most 2^31-1 ms (longer fires at once): longer waits are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The real clock. Its timers never keep the process alive (Berth's shutdown stops them anyway). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    let timer: NodeJS.Timeout | undefined;
    const arm = (left: number): void => {
      const step = Math.min(Math.max(left, 0), MAX_TIMER_MS);
      timer = setTimeout(() => (left > MAX_TIMER_MS ? arm(left - step) : fn()), step);
      timer.unref();
    };
    arm(ms);
    return () => clearTimeout(timer);
  },
};
