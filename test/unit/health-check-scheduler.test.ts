// The health checker's schedule and the supervisor that runs it per container, driven by a hand-moved clock: delay, interval, timeout, grace
// period (and its early end on the first success), consecutive failures, and only changes of
// health reported — Mesos' health_checker.cpp semantics, with fractional seconds.
import { strict as assert } from "node:assert";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { BehaviorSubject } from "rxjs";
import { HealthCheck_Type, HealthCheckSchema } from "../../src/gen/mesos/v1/mesos_pb.js";
import { HealthSupervisor } from "../../src/health/health-supervisor.js";
import type { Clock } from "../../src/health/clock.js";
import type { HealthTiming } from "../../src/health/health-check.js";
import { HealthChecker, type HealthListener, type ProbeOutcome } from "../../src/health/health-checker.js";

/** A clock whose time moves only when the test says; due timers run in time order. */
class HandClock implements Clock {
  private time: number;
  private timers: Array<{ at: number; seq: number; fn: () => void }> = [];
  private seq = 0;

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.time + ms, seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  get pending(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, running each timer due on the way (and what its promises do). */
  async advance(ms: number): Promise<void> {
    const until = this.time + ms;
    for (;;) {
      await settle();
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers[0];
      if (!next || next.at > until) break;
      this.timers.shift();
      this.time = next.at;
      next.fn();
    }
    this.time = until;
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

/** A probe whose answers the test scripts; it records the times it ran and the signals it got. */
class ScriptedProbe {
  answers: Array<ProbeOutcome | "hang" | Error> = [];
  /** Used once `answers` is empty. */
  fallback: ProbeOutcome | "hang" = { healthy: true, message: "ok" };
  readonly runs: number[] = [];
  readonly signals: AbortSignal[] = [];

  constructor(private readonly clock: Clock) {}

  readonly probe = (signal: AbortSignal): Promise<ProbeOutcome> => {
    this.runs.push(this.clock.now());
    this.signals.push(signal);
    const answer = this.answers.shift() ?? this.fallback;
    if (answer === "hang") return new Promise(() => undefined);
    if (answer instanceof Error) return Promise.reject(answer);
    return Promise.resolve(answer);
  };
}

class Recorder implements HealthListener {
  readonly changes: Array<{ healthy: boolean; message: string; at: number }> = [];
  readonly failures: Array<{ message: string; failures: number; at: number }> = [];
  readonly results: Array<{ healthy: boolean; counted: boolean }> = [];

  constructor(private readonly clock: Clock) {}

  changed(healthy: boolean, message: string): void {
    this.changes.push({ healthy, message, at: this.clock.now() });
  }

  failed(message: string, failures: number): void {
    this.failures.push({ message, failures, at: this.clock.now() });
  }

  checked(o: ProbeOutcome & { counted: boolean }): void {
    this.results.push({ healthy: o.healthy, counted: o.counted });
  }
}

const ok: ProbeOutcome = { healthy: true, message: "ok" };
const bad: ProbeOutcome = { healthy: false, message: "exit status 1" };

function timing(t: Partial<HealthTiming> = {}): HealthTiming {
  return { delayMs: 250, intervalMs: 100, timeoutMs: 50, consecutiveFailures: 3, gracePeriodMs: 0, ...t };
}

function rig(t: Partial<HealthTiming> = {}, startedAgoMs = 0) {
  const clock = new HandClock();
  const probe = new ScriptedProbe(clock);
  const listener = new Recorder(clock);
  const startedAt = clock.now() - startedAgoMs;
  const checker = new HealthChecker(timing(t), probe.probe, listener, clock, startedAt);
  return { clock, probe, listener, checker, startedAt };
}

describe("health checker schedule", () => {
  it("checks first after delay_seconds, then every interval_seconds after the previous check (fractions of a second)", async () => {
    const { clock, probe, checker, startedAt } = rig({ delayMs: 250, intervalMs: 100 });
    checker.start();
    await clock.advance(249);
    assert.deepEqual(probe.runs, []);
    await clock.advance(1);
    assert.deepEqual(probe.runs, [startedAt + 250]);
    await clock.advance(300);
    assert.deepEqual(probe.runs, [startedAt + 250, startedAt + 350, startedAt + 450, startedAt + 550]);
    checker.stop();
  });

  it("reports only changes of health: the first result, healthy→unhealthy, unhealthy→healthy", async () => {
    const { clock, probe, listener, checker } = rig({ consecutiveFailures: 10 });
    probe.answers = [ok, ok, bad, bad, ok, ok];
    checker.start();
    await clock.advance(250 + 5 * 100);
    assert.equal(probe.runs.length, 6);
    assert.deepEqual(
      listener.changes.map((c) => c.healthy),
      [true, false, true],
    );
    assert.equal(listener.changes[1]!.message, "exit status 1");
    assert.equal(listener.failures.length, 0);
    checker.stop();
  });

  it("asks for the kill after consecutive_failures counted failures in a row, once, and checks no more", async () => {
    const { clock, probe, listener, checker } = rig({ consecutiveFailures: 3 });
    probe.answers = [bad, bad, ok, bad, bad];
    probe.fallback = bad;
    checker.start();
    await clock.advance(250 + 4 * 100);
    assert.equal(listener.failures.length, 0, "the success in between reset the count");
    await clock.advance(100);
    assert.equal(listener.failures.length, 1);
    assert.equal(listener.failures[0]!.failures, 3);
    assert.equal(listener.failures[0]!.message, "exit status 1");
    assert.ok(checker.isStopped);
    const runs = probe.runs.length;
    await clock.advance(10_000);
    assert.equal(probe.runs.length, runs, "no check after the kill was asked");
    assert.equal(clock.pending, 0, "no timer left behind");
  });

  it("does not count failures inside grace_period_seconds before the first success", async () => {
    // Grace 0.5 s from the start; checks at 0.1, 0.2, ... s.
    const { clock, probe, listener, checker } = rig({ delayMs: 100, intervalMs: 100, gracePeriodMs: 500, consecutiveFailures: 2 });
    probe.fallback = bad;
    checker.start();
    await clock.advance(500);
    assert.equal(probe.runs.length, 5);
    assert.equal(listener.changes.length, 0, "no status for a failure in the grace period");
    assert.deepEqual(listener.results.map((r) => r.counted), [false, false, false, false, false]);
    await clock.advance(100);
    assert.deepEqual(listener.changes.map((c) => c.healthy), [false], "the first failure after the grace period counts");
    assert.equal(listener.failures.length, 0);
    await clock.advance(100);
    assert.equal(listener.failures.length, 1);
    assert.equal(listener.failures[0]!.failures, 2);
  });

  it("ends the grace period at the first success: a failure after it counts even within the period", async () => {
    const { clock, probe, listener, checker } = rig({ delayMs: 100, intervalMs: 100, gracePeriodMs: 10_000, consecutiveFailures: 1 });
    probe.answers = [bad, ok, bad];
    checker.start();
    await clock.advance(200);
    assert.deepEqual(listener.changes.map((c) => c.healthy), [true]);
    await clock.advance(100);
    assert.deepEqual(listener.changes.map((c) => c.healthy), [true, false]);
    assert.equal(listener.failures.length, 1, "consecutive_failures 1: killed at the first counted failure");
  });

  it("counts a check that outlives timeout_seconds as failed and aborts it", async () => {
    const { clock, probe, listener, checker } = rig({ delayMs: 10, intervalMs: 100, timeoutMs: 50, consecutiveFailures: 5 });
    probe.answers = ["hang"];
    checker.start();
    await clock.advance(59);
    assert.equal(probe.signals[0]!.aborted, false);
    assert.equal(listener.changes.length, 0);
    await clock.advance(1);
    assert.equal(probe.signals[0]!.aborted, true, "the probe was told to stop");
    assert.deepEqual(listener.changes.map((c) => [c.healthy, c.message]), [[false, "check timed out after 0.05s"]]);
    await clock.advance(100);
    assert.equal(probe.runs.length, 2, "the next check comes interval_seconds after the timeout");
    assert.deepEqual(listener.changes.map((c) => c.healthy), [false, true]);
    checker.stop();
  });

  it("waits as long as it takes when timeout_seconds is 0 (Mesos: no timeout)", async () => {
    const { clock, probe, listener, checker } = rig({ delayMs: 10, timeoutMs: 0 });
    probe.answers = ["hang"];
    checker.start();
    await clock.advance(1_000_000);
    assert.equal(probe.runs.length, 1);
    assert.equal(listener.changes.length, 0);
    checker.stop();
    assert.equal(probe.signals[0]!.aborted, true, "stop aborts the check in flight");
  });

  it("treats a probe that throws or rejects as a failed check", async () => {
    const { clock, probe, listener, checker } = rig({ delayMs: 10, consecutiveFailures: 2 });
    probe.answers = [new Error("cannot open the network namespace of pid 42: ENOENT"), new Error("boom")];
    checker.start();
    await clock.advance(110);
    assert.deepEqual(listener.changes.map((c) => c.message), ["cannot open the network namespace of pid 42: ENOENT"]);
    assert.equal(listener.failures[0]!.message, "boom");
  });

  it("reports nothing and leaves no timer once stopped, even when the check in flight answers later", async () => {
    const { clock, probe, listener, checker } = rig({ delayMs: 10, timeoutMs: 0 });
    let answer!: (o: ProbeOutcome) => void;
    const late = new Promise<ProbeOutcome>((resolve) => (answer = resolve));
    const checker2 = new HealthChecker(timing({ delayMs: 10, timeoutMs: 0 }), () => late, listener, clock, clock.now());
    checker2.start();
    await clock.advance(10);
    checker2.stop();
    answer(ok);
    await clock.advance(1000);
    assert.equal(listener.changes.length, 0);
    checker.start();
    checker.stop();
    await clock.advance(1000);
    assert.deepEqual(probe.runs, []);
    assert.equal(clock.pending, 0);
  });

  it("after a restart (started long ago) checks at once, with the grace period already over", async () => {
    const { clock, probe, listener, checker } = rig({ delayMs: 15_000, intervalMs: 10_000, gracePeriodMs: 10_000, consecutiveFailures: 3 }, 3_600_000);
    probe.fallback = bad;
    checker.start();
    await clock.advance(0);
    assert.equal(probe.runs.length, 1);
    assert.deepEqual(listener.changes.map((c) => c.healthy), [false], "counted: the grace period ended long ago");
  });

  it("treats consecutive_failures 0 as Mesos does: the first counted failure kills", async () => {
    const { clock, probe, listener, checker } = rig({ delayMs: 10, consecutiveFailures: 0 });
    probe.fallback = bad;
    checker.start();
    await clock.advance(10);
    assert.equal(listener.failures.length, 1);
    assert.equal(listener.failures[0]!.failures, 1);
  });
});

describe("health supervisor", () => {
  /** A container as the supervisor sees it, with a state the test moves. */
  function target(state = "FETCHING") {
    let exit!: () => void;
    return {
      id: "c1",
      engineId: "engine-1",
      state$: new BehaviorSubject<string>(state),
      exit: new Promise<void>((resolve) => (exit = resolve)),
      exited: () => exit(),
    };
  }

  function supervisorRig(startedAgoMs = 0) {
    const clock = new HandClock();
    const runs: Array<{ argv: string[]; env: Record<string, string>; signal: AbortSignal }> = [];
    let exitCode = 0;
    const changes: boolean[] = [];
    const kills: string[] = [];
    const supervisor = new HealthSupervisor<ReturnType<typeof target>>({
      engine: {
        inspectContainer: async () => ({
          id: "engine-1", name: "n", image: "i", labels: {}, running: true, status: "running", pid: 42, exitCode: 0, oomKilled: false,
          startedAt: new Date(clock.now() - startedAgoMs).toISOString(),
        }),
      },
      run: (_engineId, command, signal) => {
        runs.push({ argv: command.argv, env: command.env, signal });
        return Promise.resolve({ exitCode, stderr: Buffer.from(exitCode === 0 ? "" : "no such file\n"), timedOut: false });
      },
      probeSlots: (task) => task(),
      log: pino({ level: "silent" }),
      changed: (_t, healthy) => changes.push(healthy),
      kill: (_t, why) => kills.push(why),
      clock,
    });
    return { clock, runs, changes, kills, supervisor, fail: () => (exitCode = 1) };
  }

  const check = create(HealthCheckSchema, {
    type: HealthCheck_Type.COMMAND,
    command: { value: "test -f /tmp/ok", environment: { variables: [{ name: "X", value: "1" }] } },
    delaySeconds: 0.1,
    intervalSeconds: 0.1,
    gracePeriodSeconds: 0,
    consecutiveFailures: 2,
  });

  it("checks only while RUNNING: nothing during the launch stages, nothing after leaving RUNNING", async () => {
    const { clock, runs, changes, supervisor } = supervisorRig();
    const c = target("FETCHING");
    supervisor.watch(c, check);
    c.state$.next("PULLING");
    await clock.advance(1000);
    assert.equal(runs.length, 0, "no check before RUNNING");
    c.state$.next("RUNNING");
    await clock.advance(100);
    assert.deepEqual(runs.map((r) => r.argv), [["/bin/sh", "-c", "test -f /tmp/ok"]]);
    assert.deepEqual(runs[0]!.env, { X: "1" });
    assert.deepEqual(changes, [true]);
    c.state$.next("DESTROYING");
    assert.equal(supervisor.size, 0);
    await clock.advance(10_000);
    assert.equal(runs.length, 1, "no check after leaving RUNNING");
    assert.equal(clock.pending, 0, "no timer left");
  });

  it("ends a container's checking at its exit, and everyone's at shutdown", async () => {
    const { clock, runs, supervisor } = supervisorRig();
    const a = target("RUNNING");
    const b = target("RUNNING");
    supervisor.watch(a, check);
    supervisor.watch(b, check);
    await clock.advance(100);
    assert.equal(runs.length, 2);
    a.exited();
    await clock.advance(100);
    assert.equal(runs.length, 3, "only b is still checked");
    supervisor.stopAll();
    await clock.advance(10_000);
    assert.equal(runs.length, 3);
    assert.equal(supervisor.size, 0);
    assert.equal(clock.pending, 0);
    supervisor.watch(target("RUNNING"), check);
    assert.equal(supervisor.size, 0, "nothing starts after shutdown");
  });

  it("kills after consecutive_failures, saying why, and stops checking", async () => {
    const { clock, runs, changes, kills, supervisor, fail } = supervisorRig();
    fail();
    supervisor.watch(target("RUNNING"), check);
    await clock.advance(1000);
    assert.deepEqual(changes, [false]);
    assert.equal(runs.length, 2);
    assert.deepEqual(kills, ["its health check failed 2 consecutive times (last: command 'test -f /tmp/ok' exited with status 1: no such file)"]);
    assert.equal(supervisor.size, 0);
  });

  it("counts the delay from the engine's start time: a container adopted after a restart is checked at once", async () => {
    const { clock, runs, supervisor } = supervisorRig(3_600_000);
    const slow = create(HealthCheckSchema, { type: HealthCheck_Type.COMMAND, command: { value: "true" }, delaySeconds: 15, gracePeriodSeconds: 10 });
    supervisor.watch(target("RUNNING"), slow);
    await clock.advance(0);
    assert.equal(runs.length, 1);
    supervisor.stopAll();
  });

  it("leaves a container without health_check alone", () => {
    const { supervisor } = supervisorRig();
    supervisor.watch(target("RUNNING"), undefined);
    assert.equal(supervisor.size, 0);
  });
});
