import type { ContainerState } from "./state.js";

/** Abort reason of a launch that did not reach RUNNING within --launch_timeout. */
export class LaunchTimedOut extends Error {
  override readonly name = "LaunchTimedOut";
  constructor(readonly stage: ContainerState, readonly timeoutMs: number) {
    super(`launch did not complete within ${timeoutMs / 1000}s (timed out during ${stage})`);
  }
}

/**
 * The launch timeout's clock. It runs during FETCHING, MOUNTING and start, and is paused while
 * PULLING: a pull has its own overall and activity timeouts, so a slow registry never forces
 * operators to raise the launch timeout until it no longer guards anything (Mesos' lesson). It is
 * also paused while the launch waits for one of Berth's bounded engine slots: a burst of hundreds
 * of launches must not time out in Berth's own queue (each engine call has its request timeout).
 */
export class LaunchDeadline {
  private remainingMs: number;
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private stage: ContainerState = "FETCHING";

  constructor(
    private readonly timeoutMs: number,
    private readonly onExpire: (reason: LaunchTimedOut) => void,
  ) {
    this.remainingMs = timeoutMs;
  }

  /** Starts or resumes the clock, noting the stage for the timeout's message. */
  run(stage: ContainerState): void {
    this.stage = stage;
    if (this.timer || this.timeoutMs <= 0) return;
    this.startedAt = Date.now();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.onExpire(new LaunchTimedOut(this.stage, this.timeoutMs));
    }, Math.max(this.remainingMs, 0));
    this.timer.unref();
  }

  /** Stops the clock, keeping what is left of the budget. */
  pause(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.remainingMs -= Date.now() - this.startedAt;
  }

  /** Stops the clock for good. */
  clear(): void {
    this.pause();
  }
}
