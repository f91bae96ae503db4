/**
 * Real engine (issue 10): a container that exits between a restarted Berth's listing of the engine
 * and its adoption still terminates with its real exit status; and an in-process Berth that stops
 * leaves nothing of its own running (no output capture writing the sandbox, no timer, no handle),
 * while its containers keep running, as after a process exit.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import Dockerode from "dockerode";
import { HealthCheck_Type, TaskState } from "../../src/gen/mesos/v1/mesos_pb.js";
import type { EnginePort } from "../../src/docker/engine-port.js";
import type { OutputRegistry } from "../../src/logger/live-output.js";
import { ENGINE_SOCKET, pollUntil } from "../harness/engine-control.js";
import { launchRequest, newId } from "../harness/launches.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";
import { ensureEngine, ensureTestImages, type TestImages } from "../support/engine.js";

/** A bounded wait in the container for a file the test drops into the sandbox. */
const waitFor = (f: string) => `n=0; while [ ! -f /mnt/mesos/sandbox/${f} ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done`;

/** The kinds of live handles and requests of this process, counted (timers, sockets, files...). */
function activeResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/** What `after` holds beyond `before`, kind by kind. */
function grownBeyond(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const grown: Record<string, number> = {};
  for (const [kind, n] of after) if (n > (before.get(kind) ?? 0)) grown[kind] = n - (before.get(kind) ?? 0);
  return grown;
}

/** The engine id of a container once it is RUNNING. */
async function runningEngineId(t: TestBerth, id: string): Promise<string> {
  await pollUntil(async () => (await t.berth.containerizer.status(id)).state === "RUNNING", 60_000, `container '${id}' is RUNNING`);
  return (await t.berth.containerizer.status(id)).engineId!;
}

describe("recovery and stop on the real engine (issue 10)", function () {
  let docker: Dockerode;
  let images: TestImages;
  const workDirs: string[] = [];
  const berths: TestBerth[] = [];
  const engineIds: string[] = [];

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
  });

  afterEach(async () => {
    for (const b of berths.splice(0)) await b.close().catch(() => undefined);
    for (const id of engineIds.splice(0)) await docker.getContainer(id).remove({ force: true }).catch(() => undefined);
    for (const d of workDirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  async function workDir(): Promise<string> {
    const d = await mkdtemp(path.join(os.tmpdir(), "berth-recovery-races-"));
    workDirs.push(d);
    return d;
  }

  it("a container that exits right after the restarted Berth listed it (listed running) terminates with its exit status", async () => {
    const dir = await workDir();
    const first = await startTestBerth({ work_dir: dir });
    const id = newId("exit-after-listing");
    const launched = await first.client.launch(launchRequest(id, { image: images.busybox, shell: `${waitFor("go")}; exit 5`, taskId: `task-${id}` }));
    const sandbox = launched.sandboxDirectory;
    const engineId = await runningEngineId(first, id);
    engineIds.push(engineId);
    first.client.close();
    await first.berth.stop();
    let listed: string | undefined;
    const second = await startTestBerth(
      { work_dir: dir },
      {
        wrapEngine: (engine: EnginePort) => {
          const wrapped: EnginePort = Object.create(engine) as EnginePort;
          let done = false;
          wrapped.listContainers = async (labels) => {
            const rows = await engine.listContainers(labels);
            if (!done) {
              // Recovery's listing is answered; before recovery sees it, the container exits.
              done = true;
              listed = rows.find((r) => r.id === engineId)?.state;
              await writeFile(path.join(sandbox, "go"), "");
              await pollUntil(async () => (await engine.inspectContainer(engineId))?.running === false, 60_000, "the container exited");
            }
            return rows;
          };
          return wrapped;
        },
      },
    );
    berths.push(second);
    assert.equal(listed, "running", "recovery listed the container running");
    const { termination } = await second.client.wait(id);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_FAILED);
    assert.match(termination?.containerTermination?.message ?? "", /status 5/);
  });

  it("berth.stop() ends every output capture and leaves no timer, handle or file of its own; the container keeps running and writing", async () => {
    const dir = await workDir();
    // Settle what the suite itself holds (the engine's client, mocha) before counting.
    const before = activeResources();
    // Counts the engine calls made after stop(): none may come (health checks' execs, deadline kills, removals).
    let stopped = false;
    const afterStop: string[] = [];
    const b = await startTestBerth(
      { work_dir: dir, container_disk_watch_interval: "100ms" },
      {
        wrapEngine: (engine: EnginePort) =>
          new Proxy(engine, {
            get(target, prop, receiver) {
              const v = Reflect.get(target, prop, receiver) as unknown;
              if (typeof v !== "function") return v;
              return (...args: unknown[]) => {
                if (stopped) afterStop.push(String(prop));
                return (v as (...a: unknown[]) => unknown).apply(target, args);
              };
            },
          }),
      },
    );
    const id = newId("stop-capture");
    // One line a tick on stdout, and the tick count in a file the test reads (bounded).
    const shell = `i=0; while [ $i -lt 2400 ]; do echo line-$i; echo $i > /mnt/mesos/sandbox/count; i=$((i+1)); sleep 0.05; done`;
    const req = launchRequest(id, { image: images.busybox, shell, taskId: `task-${id}` });
    // A COMMAND health check every 0.1 s, and a max_completion_time that passes while the test
    // watches the stopped Berth: neither may act once it has stopped.
    const task = req.containerConfig!.taskInfo as { healthCheck?: unknown; maxCompletionTime?: unknown };
    task.healthCheck = { type: HealthCheck_Type.COMMAND, command: { shell: true, value: "true" }, delaySeconds: 0, intervalSeconds: 0.1, timeoutSeconds: 5, consecutiveFailures: 3 };
    task.maxCompletionTime = { nanoseconds: 3_000_000_000n };
    const launched = await b.client.launch(req);
    const sandbox = launched.sandboxDirectory;
    const engineId = await runningEngineId(b, id);
    engineIds.push(engineId);
    const stdout = path.join(sandbox, "stdout");
    await pollUntil(async () => (await stat(stdout).catch(() => undefined))?.size! > 0, 60_000, "output reaches the sandbox");
    await pollUntil(() => b.berth.containerizer.list().length === 1 && b.berth.containerizer.list()[0]!.state === "RUNNING", 60_000, "RUNNING");
    b.client.close();
    stopped = true;
    await b.berth.stop();
    const registry = (b.berth.containerizer as unknown as { outputs: OutputRegistry }).outputs;
    assert.equal(registry.get(sandbox, "stdout"), undefined, "stop() closed the capture's files before it returned");
    const sizeAtStop = (await stat(stdout)).size;
    const count = async () => Number((await readFile(path.join(sandbox, "count"), "utf8").catch(() => "0")).trim() || 0);
    const tickAtStop = await count();
    // Past the max_completion_time (3 s from the start), 60 lines (~3 s and more) after the stop.
    await pollUntil(async () => (await count()) >= tickAtStop + 60, 60_000, "the container printed 60 more lines after the stop");
    assert.equal((await docker.getContainer(engineId).inspect()).State.Running, true, "the container keeps running");
    assert.equal((await stat(stdout)).size, sizeAtStop, "nothing wrote the sandbox's stdout after stop()");
    assert.deepEqual(grownBeyond(before, activeResources()), {}, "stop() left timers, sockets or files of its own");
    assert.deepEqual(afterStop, [], "no engine call after stop() (no health check exec, no deadline kill)");
  });
});
