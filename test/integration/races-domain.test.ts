/**
 * The domain's races and error codes against the real engine (issue 9 items 1 and 10): what only
 * the engine itself can show — a create it carries out after Berth gave up on it, and its own
 * refusal of an Update below what the container already uses.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, watch } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import type Dockerode from "dockerode";
import { ReplaySubject, filter, firstValueFrom } from "rxjs";
import type { LaunchInput } from "../../src/containerizer/containerizer.js";
import { FailedPrecondition } from "../../src/containerizer/errors.js";
import { DockerodeEngine } from "../../src/docker/dockerode-engine.js";
import { EngineUnreachable, type CreateSpec, type EnginePort } from "../../src/docker/engine-port.js";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import { ContainerConfigSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import { ResourceSchema, TaskState, Value_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { toStatus } from "../../src/rpc/error-status.js";
import { fakeRig, type FakeRig } from "../harness/fake-rig.js";
import { launchRequest, newId, type LaunchOptions } from "../harness/launches.js";
import { ensureEngine, ensureTestImages, removeTestContainers } from "../support/engine.js";

const SOCKET = "/var/run/docker.sock";
/** This run's agent: its containers are found (and cleaned up) by its label alone. */
const AGENT = `races-domain-${randomBytes(4).toString("hex")}`;

describe("domain races against the real engine (issue 9)", function () {
  this.timeout(60_000);
  let docker: Dockerode;
  let image: string;
  const rigs: Array<{ rig: FakeRig<EnginePort>; workDir: string }> = [];

  before(async () => {
    docker = await ensureEngine();
    image = (await ensureTestImages(docker)).busybox;
  });

  afterEach(async () => {
    for (const { rig, workDir } of rigs.splice(0)) {
      for (const c of rig.cz.list()) if (c.state !== "TERMINATED") await rig.cz.destroy(c.containerId).catch(() => undefined);
      await rig.cz.idle();
      rig.cz.shutdown();
      await rig.monitor.stop();
      await rm(workDir, { recursive: true, force: true });
    }
    await removeTestContainers(docker, { [LABEL_AGENT_ID]: AGENT });
  });

  async function rigOver(engine: EnginePort): Promise<FakeRig<EnginePort>> {
    const workDir = await mkdtemp(path.join(tmpdir(), "berth-races-integ-"));
    const rig = await fakeRig<EnginePort>(engine, workDir, { agentId: AGENT, stopTimeoutMs: 1000 });
    rigs.push({ rig, workDir });
    return rig;
  }

  function input(id: string, o: Partial<LaunchOptions> = {}): LaunchInput {
    const req = launchRequest(id, { image, ...o });
    return { containerId: id, nested: false, config: create(ContainerConfigSchema, req.containerConfig), environment: {} };
  }

  it("a container the engine creates after Berth's create call gave up is removed, without a reconnect or a restart", async () => {
    const real = new DockerodeEngine({ socketPath: SOCKET, requestTimeoutMs: 10_000 });
    let late: Promise<string> | undefined;
    // Berth's create call gives up at once (as on its short-call deadline); the engine goes on.
    const engine: EnginePort = Object.assign(Object.create(real) as DockerodeEngine, {
      createContainer(spec: CreateSpec): Promise<string> {
        late = real.createContainer(spec);
        late.catch(() => undefined);
        return Promise.reject(new EngineUnreachable(`engine at unix://${SOCKET} did not answer create container '${spec.name}' within 1 ms`));
      },
    });
    const rig = await rigOver(engine);
    const destroyed = new ReplaySubject<string>();
    rig.monitor.events$.pipe(filter((e) => e.action === "destroy")).subscribe((e) => destroyed.next(e.id));
    const id = newId("late-create");
    await rig.cz.launch(input(id, { shell: "sleep 600" }));
    const t = await rig.cz.wait(id);
    assert.equal(t.containerTermination.state, TaskState.TASK_FAILED);
    assert.ok(late, "the create reached the engine");
    const engineId = await late;
    await firstValueFrom(destroyed.pipe(filter((d) => d === engineId)));
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${AGENT}`] } });
    assert.deepEqual(left.map((c) => c.Id), []);
  });

  it("Update below what the container already uses is FAILED_PRECONDITION with the engine's cause", async () => {
    const rig = await rigOver(new DockerodeEngine({ socketPath: SOCKET, requestTimeoutMs: 10_000 }));
    const id = newId("update-usage");
    // 40 MiB in /dev/shm (tmpfs, charged to the container's memory), then a mark in the sandbox.
    await rig.cz.launch(input(id, { memMb: 128, shell: "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 && touch /mnt/mesos/sandbox/filled && sleep 600" }));
    await firstValueFrom(rig.cz.watch([id]).pipe(filter((e) => e.kind.type === "state" && e.kind.state === "RUNNING")));
    const sandbox = (await rig.cz.status(id)).sandbox;
    await fileAppears(path.join(sandbox, "filled"));
    const mem = create(ResourceSchema, { name: "mem", type: Value_Type.SCALAR, scalar: { value: 16 } });
    const err = await rig.cz.update(id, [mem]).catch((e: unknown) => e);
    assert.ok(err instanceof FailedPrecondition, String(err));
    assert.equal(toStatus(err).code, status.FAILED_PRECONDITION);
    assert.match(toStatus(err).details, /usage/);
  });
});

/** Resolves once `file` exists (watching its folder: no polling). */
function fileAppears(file: string): Promise<void> {
  return new Promise((resolve) => {
    const w = watch(path.dirname(file), () => {
      if (existsSync(file)) {
        w.close();
        resolve();
      }
    });
    if (existsSync(file)) {
      w.close();
      resolve();
    }
  });
}
