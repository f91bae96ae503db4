import type { Logger } from "pino";
import type { ContainerConfig } from "../gen/mesos/slave/containerizer_pb.js";
import type { Container } from "./container.js";
import { InvalidRequest } from "./errors.js";
import { LimitReached } from "./limitation.js";

/** setTimeout's longest delay (2^31 - 1 ms, ~24.8 days): longer waits are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * TaskInfo.max_completion_time in milliseconds (undefined when not set). A negative one is
 * refused naming the field; zero is allowed (Mesos kills the task as soon as it runs).
 */
export function maxCompletionMs(config: ContainerConfig | undefined): number | undefined {
  const d = config?.taskInfo?.maxCompletionTime;
  if (!d) return undefined;
  if (d.nanoseconds < 0n) throw new InvalidRequest(`task_info.max_completion_time.nanoseconds ${d.nanoseconds} is negative`);
  // Rounded up: a deadline is never shorter than asked.
  return Number((d.nanoseconds + 999_999n) / 1_000_000n);
}

/**
 * The max_completion_time of every running task: counted from the container's start (the moment
 * Berth asked the engine to start it, which its RUNNING record keeps, so a restart of Berth
 * resumes the same deadline — one passed while Berth was down fires at once). A task still running
 * at its deadline is handed to `onReached`, which kills it; the timer goes with the container's
 * termination.
 */
export class CompletionDeadlines {
  private readonly startTimes = new WeakMap<Container, Date>();
  private readonly timers = new Map<Container, NodeJS.Timeout>();

  constructor(
    private readonly onReached: (c: Container, limit: LimitReached) => void,
    private readonly log: Logger,
  ) {}

  /** When the container started (undefined before it did). */
  startedAt(c: Container): Date | undefined {
    return this.startTimes.get(c);
  }

  /** Records the start (first call wins; recovery passes the recorded one). */
  markStarted(c: Container, at: Date = new Date()): void {
    if (!this.startTimes.has(c)) this.startTimes.set(c, at);
  }

  /** Arms the deadline once `c` is RUNNING (at once for an adopted one); disarms it at its end. */
  watch(c: Container): void {
    let limitMs: number | undefined;
    try {
      limitMs = maxCompletionMs(c.spec.config);
    } catch {
      return; // refused at Launch; a record cannot hold one
    }
    if (limitMs === undefined) return;
    let armed = false;
    c.state$.subscribe({
      next: (state) => {
        if (state !== "RUNNING" || armed) return;
        armed = true;
        this.markStarted(c);
        const due = this.startTimes.get(c)!.getTime() + limitMs;
        this.log.info({ container_id: c.id, max_completion_ms: limitMs, deadline: new Date(due).toISOString() }, "max_completion_time armed");
        this.arm(c, due, limitMs);
      },
      complete: () => this.disarm(c),
    });
  }

  private arm(c: Container, due: number, limitMs: number): void {
    const wait = Math.max(0, due - Date.now());
    const timer = setTimeout(() => {
      this.timers.delete(c);
      if (due > Date.now()) return this.arm(c, due, limitMs);
      if (c.state !== "RUNNING" || c.hasExited) return;
      this.log.warn({ container_id: c.id, max_completion_ms: limitMs }, "task ran past its max_completion_time; killing it");
      this.onReached(c, completionLimit(limitMs));
    }, Math.min(wait, MAX_TIMER_MS));
    // A pending deadline never keeps a stopping Berth alive: it is recorded and re-armed after a restart.
    timer.unref();
    this.timers.set(c, timer);
  }

  private disarm(c: Container): void {
    clearTimeout(this.timers.get(c));
    this.timers.delete(c);
  }

  /** Clears every timer (shutdown). */
  close(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}

/** The LimitReached of a task past its max_completion_time of `limitMs` (undefined: not known). */
export function completionLimit(limitMs: number | undefined): LimitReached {
  return new LimitReached("max_completion_time", `Task exceeded its max_completion_time${limitMs === undefined ? "" : ` of ${formatMs(limitMs)}`}`);
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
