// TaskInfo.health_check against the real engine: COMMAND checks through the engine's exec, HTTP and
// TCP checks from inside a network-NONE container's own namespace (busybox httpd on its loopback),
// health changes as TaskStatus events, the kill after consecutive failures (TASK_KILLED, healthy
// false), the grace period, refusals at launch, and a checker that restarts with Berth. The checks
// are steered through files in the sandbox the test controls; every wait is for an event.
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { isFieldSet, type MessageInitShape } from "@bufbuild/protobuf";
import { status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import { LaunchResult, State, type ContainerEvent, type LaunchRequestSchema } from "../../src/gen/berth/v1/containerizer_pb.js";
import { HealthCheck_Type, HealthCheckSchema, TaskState, TaskStatus_Reason, TaskStatus_Source, TaskStatusSchema, type TaskStatus } from "../../src/gen/mesos/v1/mesos_pb.js";
import { removeTestContainers } from "../support/cleanup.js";
import { pollUntil } from "../harness/engine-control.js";
import { launchRequest, newId } from "../harness/launches.js";
import { startTestBerth } from "../harness/test-berth.js";
import { useBerth } from "../harness/use-berth.js";

type HealthInit = MessageInitShape<typeof HealthCheckSchema>;

/** Where the task's sandbox is mounted inside the container (the test Berth's --sandbox_directory). */
const SANDBOX = "/mnt/mesos/sandbox";

/** Quick timing: checks every 0.1 s, fractions of a second throughout. */
const QUICK = { delaySeconds: 0.1, intervalSeconds: 0.1, timeoutSeconds: 5, gracePeriodSeconds: 0, consecutiveFailures: 3 };

/** A task running `shell` with `check` as its health_check. */
function healthLaunch(id: string, image: string, shell: string, check: HealthInit, gracePeriodMs = 0): MessageInitShape<typeof LaunchRequestSchema> {
  const req = launchRequest(id, { image, shell, taskId: id, gracePeriodMs });
  (req.containerConfig!.taskInfo as { healthCheck?: HealthInit }).healthCheck = check;
  return req;
}

/** A COMMAND check passing while `<sandbox>/<file>` exists. */
function fileCheck(file: string, timing: Partial<typeof QUICK> = {}): HealthInit {
  return { type: HealthCheck_Type.COMMAND, command: { shell: true, value: `test -f ${SANDBOX}/${file}` }, ...QUICK, ...timing };
}

/** busybox httpd serving `<sandbox>/www` on the container's own 127.0.0.1:8080. */
const HTTPD = `mkdir -p ${SANDBOX}/www && echo ok > ${SANDBOX}/www/health && exec /bin/busybox httpd -f -p 127.0.0.1:8080 -h ${SANDBOX}/www`;

function taskStatusOf(e: ContainerEvent): TaskStatus | undefined {
  return e.kind.case === "taskStatus" ? e.kind.value : undefined;
}

/** The health change a TaskStatus event carries, checked to be one as Mesos sends it. */
function healthOf(e: ContainerEvent): boolean | undefined {
  const s = taskStatusOf(e);
  if (!s || s.reason !== TaskStatus_Reason.TASK_HEALTH_CHECK_STATUS_UPDATED || !isFieldSet(s, TaskStatusSchema.field.reason)) return undefined;
  assert.equal(s.state, TaskState.TASK_RUNNING);
  assert.equal(s.source, TaskStatus_Source.EXECUTOR);
  assert.ok(isFieldSet(s, TaskStatusSchema.field.healthy), "healthy is set");
  return s.healthy;
}

const healthChanges = (events: ContainerEvent[]) => events.filter((e) => !e.snapshot).flatMap((e) => (healthOf(e) === undefined ? [] : [healthOf(e)!]));

/** Pids of this process's health probe children (nsenter … net-probe-main.js). */
async function probeProcesses(): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const [cmdline, stat] = await Promise.all([readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => ""), readFile(`/proc/${entry}/stat`, "utf8").catch(() => "")]);
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (cmdline.includes("net-probe-main.js") && ppid === process.pid) pids.push(Number(entry));
  }
  return pids;
}

/** Runs an fs step from inside a Watch callback; its failure fails the test at the end. */
class Steps {
  private readonly pending: Array<Promise<unknown>> = [];
  run(step: () => Promise<unknown>): void {
    this.pending.push(step());
  }
  async done(): Promise<void> {
    await Promise.all(this.pending);
  }
}

describe("health checks against a real engine", function () {
  this.timeout(120_000);
  const s = useBerth();
  afterEach(async () => {
    await removeTestContainers(s.docker, { "berth.agent_id": s.t.berth.agentId }).catch(() => undefined);
  });

  it("COMMAND: healthy, then unhealthy when the checked file goes, healthy again when it is back — one TaskStatus per change", async () => {
    const id = newId("hc-cmd");
    const launched = await s.t.client.launch(healthLaunch(id, s.images.busybox, `touch ${SANDBOX}/ok; exec sleep 300`, fileCheck("ok", { gracePeriodSeconds: 60, consecutiveFailures: 1000 })));
    assert.equal(launched.result, LaunchResult.LAUNCHED);
    const ok = path.join(launched.sandboxDirectory, "ok");
    const steps = new Steps();
    let phase = 0;
    const events = await s.t.client.collect([id], (e) => {
      const h = healthOf(e);
      if (h === true && phase === 0) {
        phase = 1;
        steps.run(() => rm(ok));
      } else if (h === false && phase === 1) {
        phase = 2;
        steps.run(() => writeFile(ok, ""));
      } else if (h === true && phase === 2) {
        phase = 3;
        steps.run(() => s.t.client.destroy(id));
      }
      return e.kind.case === "termination";
    });
    await steps.done();
    assert.deepEqual(healthChanges(events), [true, false, true], "exactly the three changes, no repeats");
    const unhealthy = events.find((e) => healthOf(e) === false);
    assert.match(taskStatusOf(unhealthy!)!.message, /command 'test -f \/mnt\/mesos\/sandbox\/ok' exited with status 1/);
    const final = events.map(taskStatusOf).filter(Boolean).at(-1)!;
    assert.equal(final.state, TaskState.TASK_KILLED, "a Destroy ends it TASK_KILLED");
    assert.equal(isFieldSet(final, TaskStatusSchema.field.healthy), false, "a Destroy is not a health kill");
  });

  it("after consecutive_failures counted failures the task is killed: TASK_KILLED, healthy false, no reason, the termination says why", async () => {
    const id = newId("hc-kill");
    await s.t.client.launch(healthLaunch(id, s.images.busybox, "exec sleep 300", fileCheck("never", { consecutiveFailures: 2 })));
    const events = await s.t.client.collect([id], (e) => e.kind.case === "termination");
    assert.deepEqual(healthChanges(events), [false], "one change (the first result), not one per failure");
    const final = events.map(taskStatusOf).filter(Boolean).at(-1)!;
    assert.equal(final.state, TaskState.TASK_KILLED);
    assert.equal(isFieldSet(final, TaskStatusSchema.field.healthy), true);
    assert.equal(final.healthy, false);
    assert.equal(isFieldSet(final, TaskStatusSchema.field.reason), false, "no reason, as Mesos' docker executor sends it");
    const termination = events.at(-1)!.kind.value as { containerTermination?: { state: TaskState; message: string } };
    assert.equal(termination.containerTermination?.state, TaskState.TASK_KILLED);
    assert.match(termination.containerTermination!.message, /health check failed 2 consecutive times \(last: command 'test -f \/mnt\/mesos\/sandbox\/never' exited with status 1\)/);
    const destroying = events.find((e) => e.kind.case === "stateChanged" && e.kind.value.state === State.DESTROYING);
    assert.match((destroying!.kind.value as { message: string }).message, /health check failed 2 consecutive times/);
  });

  it("failures inside grace_period_seconds do not count; the first success ends the grace period early", async () => {
    const id = newId("hc-grace");
    // Each check leaves a line in `checks`, so the test sees the failures happen.
    const check: HealthInit = {
      type: HealthCheck_Type.COMMAND,
      command: { shell: true, value: `echo . >> ${SANDBOX}/checks; test -f ${SANDBOX}/ok` },
      ...QUICK,
      gracePeriodSeconds: 600,
      consecutiveFailures: 1,
    };
    const launched = await s.t.client.launch(healthLaunch(id, s.images.busybox, "exec sleep 300", check));
    const checks = path.join(launched.sandboxDirectory, "checks");
    const lines = async () => (await readFile(checks, "utf8").catch(() => "")).split("\n").filter(Boolean).length;
    await pollUntil(async () => (await lines()) >= 5, 60_000, "five checks have failed");
    // The snapshot's last task status is still the plain TASK_RUNNING: no health status was sent.
    const snapshot = await s.t.client.collect([id], (e) => e.snapshot && e.kind.case === "taskStatus");
    const last = taskStatusOf(snapshot.at(-1)!)!;
    assert.equal(last.state, TaskState.TASK_RUNNING);
    assert.equal(healthOf(snapshot.at(-1)!), undefined, "no health status for failures in the grace period");
    assert.equal((await s.t.client.status(id)).state, State.RUNNING, "consecutive_failures 1, yet not killed");
    const ok = path.join(launched.sandboxDirectory, "ok");
    await writeFile(ok, "");
    const steps = new Steps();
    let removed = false;
    const events = await s.t.client.collect([id], (e) => {
      if (healthOf(e) === true && !removed) {
        removed = true;
        steps.run(() => rm(ok));
      }
      return e.kind.case === "termination";
    });
    await steps.done();
    assert.deepEqual(healthChanges(events), [true, false], "healthy, then the failure after it counted within the 600 s period");
    assert.equal(events.map(taskStatusOf).filter(Boolean).at(-1)!.healthy, false);
  });

  it("HTTP: busybox httpd on the loopback of a network-NONE container; a 404 is unhealthy, and a listed status counts", async () => {
    const id = newId("hc-http");
    const launched = await s.t.client.launch(
      healthLaunch(id, s.images.busybox, HTTPD, { type: HealthCheck_Type.HTTP, http: { port: 8080, path: "/health" }, ...QUICK, consecutiveFailures: 1000 }),
    );
    const file = path.join(launched.sandboxDirectory, "www", "health");
    const steps = new Steps();
    let phase = 0;
    const events = await s.t.client.collect([id], (e) => {
      const h = healthOf(e);
      if (h === true && phase === 0) {
        phase = 1;
        steps.run(() => rm(file));
      } else if (h === false && phase === 1) {
        phase = 2;
        steps.run(() => s.t.client.destroy(id));
      }
      return e.kind.case === "termination";
    });
    await steps.done();
    assert.deepEqual(healthChanges(events), [true, false]);
    const statuses = events.map(taskStatusOf).filter((t) => t?.reason === TaskStatus_Reason.TASK_HEALTH_CHECK_STATUS_UPDATED);
    assert.match(statuses[0]!.message, /HTTP GET \/health on port 8080 answered 200/);
    assert.match(statuses[1]!.message, /answered 404 \(expected 200-399\)/);

    // statuses [404]: a 404 is exactly what is expected.
    const id404 = newId("hc-404");
    await s.t.client.launch(healthLaunch(id404, s.images.busybox, HTTPD, { type: HealthCheck_Type.HTTP, http: { port: 8080, path: "/missing", statuses: [404] }, ...QUICK }));
    const ev404 = await s.t.client.collect([id404], (e) => {
      if (healthOf(e) !== undefined) steps.run(() => s.t.client.destroy(id404));
      return e.kind.case === "termination";
    });
    await steps.done();
    assert.deepEqual(healthChanges(ev404), [true]);
  });

  it("TCP: a connect to the container's own loopback port is healthy; a port nobody listens on kills the task", async () => {
    const up = newId("hc-tcp");
    const down = newId("hc-tcp-down");
    await s.t.client.launch(healthLaunch(up, s.images.busybox, HTTPD, { type: HealthCheck_Type.TCP, tcp: { port: 8080 }, ...QUICK }));
    await s.t.client.launch(healthLaunch(down, s.images.busybox, HTTPD, { type: HealthCheck_Type.TCP, tcp: { port: 8081 }, ...QUICK, consecutiveFailures: 1 }));
    const steps = new Steps();
    const [upEvents, downEvents] = await Promise.all([
      s.t.client.collect([up], (e) => {
        if (healthOf(e) !== undefined) steps.run(() => s.t.client.destroy(up));
        return e.kind.case === "termination";
      }),
      s.t.client.collect([down], (e) => e.kind.case === "termination"),
    ]);
    await steps.done();
    assert.deepEqual(healthChanges(upEvents), [true]);
    assert.deepEqual(healthChanges(downEvents), [false]);
    const unhealthy = downEvents.find((e) => healthOf(e) === false)!;
    assert.match(taskStatusOf(unhealthy)!.message, /connect to 127\.0\.0\.1:8081 failed: ECONNREFUSED/);
    const final = downEvents.map(taskStatusOf).filter(Boolean).at(-1)!;
    assert.equal(final.state, TaskState.TASK_KILLED);
    assert.equal(final.healthy, false);
  });

  it("a check past timeout_seconds fails and its exec'd process is killed; leaving RUNNING kills the probe in flight", async () => {
    // COMMAND: `sleep 30` outlives a 0.3 s timeout; each check leaves a line in `checks`.
    const cmd = newId("hc-timeout");
    const launched = await s.t.client.launch(
      healthLaunch(cmd, s.images.busybox, "exec sleep 300", {
        type: HealthCheck_Type.COMMAND,
        command: { value: `echo . >> ${SANDBOX}/checks; exec sleep 30` },
        ...QUICK,
        timeoutSeconds: 0.3,
        consecutiveFailures: 1000,
      }),
    );
    const events = await s.t.client.collect([cmd], (e) => healthOf(e) === false);
    assert.match(taskStatusOf(events.at(-1)!)!.message, /check timed out after 0\.3s/);
    const checks = path.join(launched.sandboxDirectory, "checks");
    await pollUntil(async () => (await readFile(checks, "utf8")).split("\n").filter(Boolean).length >= 4, 30_000, "four checks have started");
    // Three checks have timed out by now: with their processes killed, at most the one in flight
    // (and one still being killed) is alive; left alive, three or more would be.
    const container = s.docker.getContainer((await s.t.client.status(cmd)).engineId);
    const sleepers = async () => ((await container.top()).Processes ?? []).filter((p: string[]) => p.at(-1) === "sleep 30").length;
    await pollUntil(async () => (await sleepers()) <= 1, 30_000, "timed-out checks are killed");
    await s.t.client.destroy(cmd);

    // HTTP with no timeout against a server that accepts and never answers: the probe stays in
    // flight until the container leaves RUNNING, and then it is killed.
    const http = newId("hc-hang");
    await s.t.client.launch(
      healthLaunch(http, s.images.busybox, "exec nc -ll -p 8080 -e sleep 300", { type: HealthCheck_Type.HTTP, http: { port: 8080 }, ...QUICK, timeoutSeconds: 0 }),
    );
    await pollUntil(async () => (await probeProcesses()).length > 0, 30_000, "the HTTP probe is in flight");
    await s.t.client.destroy(http);
    await pollUntil(async () => (await probeProcesses()).length === 0, 30_000, "no probe process is left");
  });

  it("a health_check Berth cannot run is INVALID_ARGUMENT naming the field, and nothing is launched", async () => {
    const cases: Array<[HealthInit, RegExp]> = [
      [{ type: HealthCheck_Type.HTTP, http: { port: 0 } }, /task_info\.health_check\.http\.port 0 is not a port/],
      [{ type: HealthCheck_Type.UNKNOWN }, /task_info\.health_check\.type/],
      [{ type: HealthCheck_Type.TCP, http: { port: 80 } }, /task_info\.health_check\.tcp is not set/],
      [{ type: HealthCheck_Type.TCP, tcp: { port: 80 }, intervalSeconds: -1 }, /task_info\.health_check\.interval_seconds -1/],
    ];
    for (const [check, message] of cases) {
      const id = newId("hc-bad");
      await assert.rejects(s.t.client.launch(healthLaunch(id, s.images.busybox, "sleep 300", check)), (err: ServiceError) => {
        assert.equal(err.code, grpcStatus.INVALID_ARGUMENT);
        assert.match(err.details, message);
        return true;
      });
      assert.equal((await s.t.client.containers()).containers.some((c) => c.containerId?.value === id), false);
    }
  });

  it("an adopted RUNNING container's checker restarts with Berth", async () => {
    const workDir = await mkdtemp(path.join(os.tmpdir(), "berth-health-restart-"));
    const id = newId("hc-restart");
    let second: Awaited<ReturnType<typeof startTestBerth>> | undefined;
    let agentId: string | undefined;
    try {
      const first = await startTestBerth({ work_dir: workDir });
      agentId = first.berth.agentId;
      const launched = await first.client.launch(healthLaunch(id, s.images.busybox, `touch ${SANDBOX}/ok; exec sleep 300`, fileCheck("ok", { gracePeriodSeconds: 60, consecutiveFailures: 1 })));
      await first.client.collect([id], (e) => healthOf(e) === true);
      first.client.close();
      await first.berth.stop();

      second = await startTestBerth({ work_dir: workDir });
      const client = second.client;
      const ok = path.join(launched.sandboxDirectory, "ok");
      const steps = new Steps();
      let removed = false;
      // The restarted checker's first result may come before this Watch (then in its snapshot).
      const events = await client.collect([id], (e) => {
        if (healthOf(e) === true && !removed) {
          removed = true;
          steps.run(() => rm(ok));
        }
        return e.kind.case === "termination";
      });
      await steps.done();
      const changes = events.flatMap((e) => (healthOf(e) === undefined ? [] : [healthOf(e)]));
      assert.deepEqual(changes, [true, false], "the restarted checker reports its first result, then kills on the failure");
      const final = events.map(taskStatusOf).filter(Boolean).at(-1)!;
      assert.equal(final.state, TaskState.TASK_KILLED);
      assert.equal(final.healthy, false);
    } finally {
      if (agentId) await removeTestContainers(s.docker, { "berth.agent_id": agentId }).catch(() => undefined);
      await second?.close();
      await rm(workDir, { recursive: true, force: true });
    }
  });
});
