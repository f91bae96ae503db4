import type { Clock } from "./clock.js";
import type { HealthTiming } from "./health-check.js";

/** What one check found. */
export interface ProbeOutcome {
  healthy: boolean;
  /** What was seen, for the status message and the log (`HTTP 200`, `exit status 1`, …). */
  message: string;
}

/**
 * Runs one check. It must stop (kill its process, close its socket) when `signal` aborts: the
 * checker aborts it on its timeout and on stop. A rejection counts as a failed check.
 */
export type Probe = (signal: AbortSignal) => Promise<ProbeOutcome>;

/** What the checker reports. */
export interface HealthListener {
  /** Health changed: the first result, healthy → unhealthy, or unhealthy → healthy. */
  changed(healthy: boolean, message: string): void;
  /** `consecutive_failures` counted failures in a row: the task must be killed. The checker has stopped. */
  failed(message: string, failures: number): void;
  /** Every result (counted or not), for the log. */
  checked?(outcome: ProbeOutcome & { counted: boolean; consecutiveFailures: number }): void;
}

/**
 * Mesos' health-checking schedule (src/checks/health_checker.cpp): the first check `delay` after
 * the container started, each next one `interval` after the previous one ended; a check that has
 * not ended after `timeout` (0: none) is aborted and is a failure. Before the first success, a
 * failure within `grace_period` of the start is not counted; the first success ends the grace
 * period early. `consecutive_failures` counted failures in a row end the checking and ask for the
 * kill. Unlike Mesos' checker, which reports every counted failure, only changes of health are
 * reported (the "each change of health").
 */
export class HealthChecker {
  private stopped = false;
  private cancelTimer: (() => void) | undefined;
  private inFlight: AbortController | undefined;
  /** Until the first success, failures inside the grace period do not count. */
  private initializing = true;
  private consecutiveFailures = 0;
  private reported: boolean | undefined;

  constructor(
    private readonly timing: HealthTiming,
    private readonly probe: Probe,
    private readonly listener: HealthListener,
    private readonly clock: Clock,
    /** When the container started (ms since the epoch): the delay and grace period count from it. */
    private readonly startedAtMs: number,
  ) {}

  /** Schedules the first check `delay` after the container's start (at once when that has passed, as after a restart). */
  start(): void {
    if (this.stopped || this.cancelTimer || this.inFlight) return;
    this.schedule(this.startedAtMs + this.timing.delayMs - this.clock.now());
  }

  /** Cancels the next check and aborts the one in flight; nothing is reported afterwards. */
  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.inFlight?.abort(new Error("health checking stopped"));
    this.inFlight = undefined;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.cancelTimer = this.clock.setTimer(() => {
      this.cancelTimer = undefined;
      this.check();
    }, Math.max(0, ms));
  }

  private check(): void {
    if (this.stopped) return;
    const abort = new AbortController();
    this.inFlight = abort;
    let done = false;
    let cancelTimeout: (() => void) | undefined;
    const finish = (outcome: ProbeOutcome): void => {
      if (done) return;
      done = true;
      cancelTimeout?.();
      if (this.inFlight === abort) this.inFlight = undefined;
      if (!this.stopped) this.result(outcome);
    };
    if (this.timing.timeoutMs > 0) {
      cancelTimeout = this.clock.setTimer(() => {
        finish({ healthy: false, message: `check timed out after ${formatSeconds(this.timing.timeoutMs)}` });
        abort.abort(new Error("health check timed out"));
      }, this.timing.timeoutMs);
    }
    let running: Promise<ProbeOutcome>;
    try {
      running = this.probe(abort.signal);
    } catch (err) {
      running = Promise.reject(err);
    }
    running.then(finish, (err: unknown) => finish({ healthy: false, message: err instanceof Error ? err.message : String(err) }));
  }

  private result(outcome: ProbeOutcome): void {
    if (outcome.healthy) {
      this.initializing = false;
      this.consecutiveFailures = 0;
      this.listener.checked?.({ ...outcome, counted: true, consecutiveFailures: 0 });
      this.report(true, outcome.message);
      this.schedule(this.timing.intervalMs);
      return;
    }
    const inGrace = this.initializing && this.timing.gracePeriodMs > 0 && this.clock.now() - this.startedAtMs <= this.timing.gracePeriodMs;
    if (inGrace) {
      this.listener.checked?.({ ...outcome, counted: false, consecutiveFailures: this.consecutiveFailures });
      this.schedule(this.timing.intervalMs);
      return;
    }
    this.consecutiveFailures += 1;
    this.listener.checked?.({ ...outcome, counted: true, consecutiveFailures: this.consecutiveFailures });
    this.report(false, outcome.message);
    if (this.stopped) return;
    if (this.consecutiveFailures >= this.timing.consecutiveFailures) {
      this.stop();
      this.listener.failed(outcome.message, this.consecutiveFailures);
      return;
    }
    this.schedule(this.timing.intervalMs);
  }

  private report(healthy: boolean, message: string): void {
    if (this.reported === healthy) return;
    this.reported = healthy;
    this.listener.changed(healthy, message);
  }
}

/** `0.25s`, `15s`: milliseconds as seconds without float noise. */
export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toPrecision(6))}s`;
}
