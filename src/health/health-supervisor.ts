import type { Observable, Subscription } from "rxjs";
import type { Logger } from "pino";
import type { EnginePort } from "../docker/engine-port.js";
import type { HealthCheck } from "../gen/mesos/v1/mesos_pb.js";
import { systemClock, type Clock } from "./clock.js";
import { commandProbe, type RunInContainer } from "./command-probe.js";
import { resolveHealthCheck, type HealthPlan } from "./health-check.js";
import { HealthChecker, type Probe } from "./health-checker.js";
import { NetnsPin, netProbe, type Slots } from "./net-probe.js";

/** What the supervisor needs of a container: its id, engine id, state and exit. */
export interface HealthTarget {
  readonly id: string;
  readonly engineId?: string;
  /** Completes when the container has terminated. */
  readonly state$: Observable<string>;
  /** Resolves once the engine says the process exited. */
  readonly exit: Promise<unknown>;
}

/** The supervisor's collaborators; the containerizer wires them. */
export interface HealthSupervisorDeps<T extends HealthTarget = HealthTarget> {
  /** For the container's start time and init pid. */
  engine: Pick<EnginePort, "inspectContainer">;
  /** COMMAND checks run through it. */
  run: RunInContainer;
  /** Bounds the HTTP/TCP probe processes running at once, across all containers. */
  probeSlots: Slots;
  log: Logger;
  /** Health changed: publish it as the task's status. */
  changed(target: T, healthy: boolean, message: string): void;
  /** `consecutive_failures` counted failures: kill the task, saying why. */
  kill(target: T, why: string): void;
  clock?: Clock;
}

interface Session {
  plan: HealthPlan;
  started: boolean;
  ended: boolean;
  checker?: HealthChecker;
  netns?: NetnsPin;
  subscription?: Subscription;
}

/**
 * Runs each container's TaskInfo.health_check while the container is RUNNING: the checker
 * starts when it reaches RUNNING (or is adopted RUNNING after a restart — the delay and the grace
 * period then count from the engine's start time), and everything it holds (timer, probe process,
 * exec, namespace handle) is released when the container leaves RUNNING, its process exits, or
 * Berth shuts down.
 */
export class HealthSupervisor<T extends HealthTarget = HealthTarget> {
  private readonly sessions = new Map<T, Session>();
  private closed = false;
  private readonly clock: Clock;

  constructor(private readonly deps: HealthSupervisorDeps<T>) {
    this.clock = deps.clock ?? systemClock;
  }

  /** How many containers are being checked (started or waiting for RUNNING). */
  get size(): number {
    return this.sessions.size;
  }

  /** Checks `target` with `check` (a no-op without one) from its RUNNING on. */
  watch(target: T, check: HealthCheck | undefined): void {
    if (!check || this.closed || this.sessions.has(target)) return;
    let plan: HealthPlan;
    try {
      plan = resolveHealthCheck(check);
    } catch (err) {
      // Validated at launch; a record from an older Berth could still carry one it refuses now.
      this.deps.log.error({ container_id: target.id, err }, "health check not started: it does not validate");
      return;
    }
    const session: Session = { plan, started: false, ended: false };
    this.sessions.set(target, session);
    const subscription = target.state$.subscribe({
      // Launch stages before RUNNING wait; leaving RUNNING (or never reaching it) ends the checking.
      next: (state) => {
        if (state === "RUNNING") this.begin(target, session);
        else if (session.started || state === "DESTROYING" || state === "TERMINATED") this.end(target, session);
      },
      complete: () => this.end(target, session),
      error: () => this.end(target, session),
    });
    if (session.ended) subscription.unsubscribe();
    else session.subscription = subscription;
    void target.exit.then(() => this.end(target, session));
  }

  /** Stops every checker (Berth shuts down; the containers keep running). */
  stopAll(): void {
    this.closed = true;
    for (const [target, session] of [...this.sessions]) this.end(target, session);
  }

  private begin(target: T, session: Session): void {
    if (session.started || session.ended) return;
    session.started = true;
    void this.startChecker(target, session).catch((err: unknown) => {
      this.deps.log.error({ container_id: target.id, err }, "could not start the health check");
    });
  }

  private async startChecker(target: T, session: Session): Promise<void> {
    const log = this.deps.log.child({ container_id: target.id });
    const engineId = target.engineId;
    const inspect = engineId !== undefined ? await this.deps.engine.inspectContainer(engineId).catch(() => undefined) : undefined;
    if (session.ended) return;
    const startedAt = inspect?.startedAt !== undefined ? Date.parse(inspect.startedAt) : NaN;
    const startedAtMs = Number.isFinite(startedAt) && startedAt > 0 ? Math.min(startedAt, this.clock.now()) : this.clock.now();
    const { timing, probe: spec } = session.plan;
    let probe: Probe;
    if (spec.type === "COMMAND") {
      probe = commandProbe(spec, () => target.engineId, this.deps.run, timing.timeoutMs);
    } else {
      let known = inspect?.running ? inspect.pid : undefined;
      const pidNow = async (): Promise<number> => {
        const id = target.engineId;
        if (id === undefined) throw new Error("the container has no engine container");
        const now = await this.deps.engine.inspectContainer(id);
        if (!now?.running) throw new Error(`the container is not running in the engine (${now?.status ?? "gone"})`);
        return now.pid;
      };
      session.netns = new NetnsPin(
        async () => {
          const pid = known ?? (await pidNow());
          known = undefined;
          return pid;
        },
        async (pid) => (await pidNow()) === pid,
      );
      probe = netProbe(spec, session.netns, this.deps.probeSlots, timing.timeoutMs);
    }
    session.checker = new HealthChecker(
      timing,
      probe,
      {
        changed: (healthy, message) => {
          if (session.ended) return;
          log.info({ healthy, result: message }, healthy ? "task is healthy" : "task is unhealthy");
          this.deps.changed(target, healthy, message);
        },
        failed: (message, failures) => {
          if (session.ended) return;
          const why = `its health check failed ${failures} consecutive time${failures === 1 ? "" : "s"} (last: ${message})`;
          log.warn({ failures, result: message }, "health check failures reached consecutive_failures; killing the task");
          this.end(target, session);
          this.deps.kill(target, why);
        },
        checked: (o) => log.debug({ healthy: o.healthy, counted: o.counted, consecutive_failures: o.consecutiveFailures, result: o.message }, "health check"),
      },
      this.clock,
      startedAtMs,
    );
    session.checker.start();
    log.info({ type: spec.type, delay_ms: timing.delayMs, interval_ms: timing.intervalMs, grace_period_ms: timing.gracePeriodMs }, "health checking started");
  }

  private end(target: T, session: Session): void {
    if (session.ended) return;
    session.ended = true;
    session.checker?.stop();
    void session.netns?.close();
    session.subscription?.unsubscribe();
    if (this.sessions.get(target) === session) this.sessions.delete(target);
  }
}
