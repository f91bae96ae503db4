import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type Dockerode from "dockerode";
import { ContainersRequestSchema, State } from "../../src/gen/berth/v1/containerizer_pb.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { ensureEngine, ensureTestImages, removeTestContainers, type TestImages } from "../support/engine.js";
import { BerthClient } from "../harness/berth-client.js";
import { launchRequest, newId } from "../harness/launches.js";
import { BerthProcess, failingStart, freePort } from "../harness/process-berth.js";
import { baseTestFlags, startTestBerth, type TestBerth } from "../harness/test-berth.js";
import { createServer } from "node:net";
import { pino } from "pino";
import { create } from "@bufbuild/protobuf";
import { credentials, makeGenericClientConstructor, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { resolveConfig } from "../../src/config.js";
import { startBerth, StartupError } from "../../src/berth.js";
import type { EnginePort } from "../../src/docker/engine-port.js";

const HealthClient = makeGenericClientConstructor(healthService, "Health");

/** Wraps an engine so every call is counted, and listContainers can be held until released. */
function countingEngine(engine: EnginePort, calls: string[], holdList?: Promise<void>): EnginePort {
  return new Proxy(engine, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls.push(String(prop));
        if (prop === "listContainers" && holdList) return holdList.then(() => (value as (...a: unknown[]) => unknown).apply(target, args));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe("agent identity and start-up order", function () {
  this.timeout(180_000);
  let docker: Dockerode;
  let images: TestImages;
  const dirs: string[] = [];
  const processes: BerthProcess[] = [];
  const clients: BerthClient[] = [];
  const agents = new Set<string>();
  const suffix = `${process.pid}-${Date.now().toString(36)}`;

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "berth-ident-"));
    dirs.push(dir);
    return dir;
  }

  function serve(args: string[]): BerthProcess {
    const p = new BerthProcess(["serve", "--docker_stop_timeout", "1secs", ...args]);
    processes.push(p);
    return p;
  }

  async function stopped(p: BerthProcess): Promise<void> {
    p.kill("SIGTERM");
    assert.deepEqual(await p.exited, { code: 0, signal: null }, p.stderr);
  }

  /** Starts a process berth and launches one `sleep 300` container, RUNNING; returns its engine id. */
  async function servingWithSleeper(args: string[]): Promise<{ p: BerthProcess; client: BerthClient; agentId: string; engineId: string }> {
    const p = serve(args);
    const { agent_id: agentId, listen } = await p.serving();
    agents.add(agentId);
    const client = new BerthClient(listen[0]!);
    clients.push(client);
    const id = newId("ident");
    await client.launch(launchRequest(id, { image: images.busybox, shell: "sleep 300" }));
    await client.collect([id], (e) => e.kind.case === "stateChanged" && e.kind.value.state === State.RUNNING);
    const engineId = (await client.containers()).containers.find((c) => c.containerId?.value === id)!.engineId;
    return { p, client, agentId, engineId };
  }

  async function isRunning(engineId: string): Promise<boolean> {
    try {
      return (await docker.getContainer(engineId).inspect()).State.Running;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return false;
      throw err;
    }
  }

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
  });
  after(async () => {
    clients.forEach((c) => c.close());
    for (const p of processes) p.kill("SIGKILL");
    await Promise.all(processes.map((p) => p.exited));
    for (const agent of agents) await removeTestContainers(docker, { [LABEL_AGENT_ID]: agent });
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it("an --agent_id is kept in <work_dir>/agent_id, and a start without the flag serves it again", async () => {
    const workDir = await tempDir();
    const agentId = `ident-keep-${suffix}`;
    agents.add(agentId);
    const first = serve(["--work_dir", workDir, "--agent_id", agentId]);
    assert.equal((await first.serving()).agent_id, agentId);
    assert.equal((await readFile(path.join(workDir, "agent_id"), "utf8")).trim(), agentId);
    await stopped(first);
    const second = serve(["--work_dir", workDir]);
    assert.equal((await second.serving()).agent_id, agentId, "the restart without --agent_id is the same agent");
    await stopped(second);
  });

  it("a start whose --agent_id differs from the kept one exits 1 with one line; --force_agent_id replaces it", async () => {
    const workDir = await tempDir();
    const kept = `ident-kept-${suffix}`;
    const other = `ident-other-${suffix}`;
    agents.add(kept).add(other);
    const first = serve(["--work_dir", workDir, "--agent_id", kept]);
    await first.serving();
    await stopped(first);
    const line = await failingStart(["--work_dir", workDir, "--agent_id", other]);
    assert.match(line, new RegExp(`--agent_id '${other}' differs from the agent id '${kept}' kept in .*agent_id.*--force_agent_id`));
    assert.equal((await readFile(path.join(workDir, "agent_id"), "utf8")).trim(), kept, "the kept id is left as it was");
    const forced = serve(["--work_dir", workDir, "--agent_id", other, "--force_agent_id"]);
    assert.equal((await forced.serving()).agent_id, other);
    assert.equal((await readFile(path.join(workDir, "agent_id"), "utf8")).trim(), other);
    await stopped(forced);
  });

  it("a second berth with the same --agent_id whose listen address is taken fails to start and leaves the first one's containers running", async () => {
    const agentId = `ident-listen-${suffix}`;
    const port = await freePort();
    const a = await servingWithSleeper(["--work_dir", await tempDir(), "--agent_id", agentId, "--listen", `127.0.0.1:${port}`]);
    const line = await failingStart(["--work_dir", await tempDir(), "--agent_id", agentId, "--listen", `127.0.0.1:${port}`]);
    assert.match(line, /^berth: /);
    assert.ok(await isRunning(a.engineId), "the first berth's container still runs");
    assert.equal((await a.client.containers()).containers[0]?.state, State.RUNNING);
    assert.ok(a.p.running, "the first berth keeps serving");
  });

  it("a second berth with the same --agent_id on another work dir and address refuses to start with one line naming the first; the first's containers run on", async () => {
    const agentId = `ident-two-${suffix}`;
    const firstDir = await tempDir();
    const a = await servingWithSleeper(["--work_dir", firstDir, "--agent_id", agentId, "--listen", `127.0.0.1:${await freePort()}`]);
    const line = await failingStart(["--work_dir", await tempDir(), "--agent_id", agentId, "--listen", `127.0.0.1:${await freePort()}`]);
    assert.match(line, new RegExp(`^berth: agent id '${agentId}' is already served by another berth \\(pid ${a.p.child.pid}, work dir '${firstDir}'\\)`));
    assert.ok(await isRunning(a.engineId), "the first berth's container still runs");
    assert.ok(a.p.running, "the first berth keeps serving");
    // Once the first is gone (kill -9 included), the claim is free again.
    a.p.kill("SIGKILL");
    await a.p.exited;
    const again = serve(["--work_dir", firstDir]);
    assert.equal((await again.serving()).agent_id, agentId);
    const client = new BerthClient((await again.serving()).listen[0]!);
    clients.push(client);
    assert.equal((await client.containers()).containers[0]?.engineId, a.engineId, "the restarted first berth adopts its container");
    await stopped(again);
  });

  describe("in process", () => {
    let t: TestBerth | undefined;

    it("a start whose listen address is taken fails before any engine call", async () => {
      const taken = createServer();
      await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", () => resolve()));
      const port = (taken.address() as { port: number }).port;
      const calls: string[] = [];
      try {
        const config = resolveConfig({ ...baseTestFlags(await tempDir()), listen: [`127.0.0.1:${port}`] });
        await assert.rejects(
          startBerth(config, pino({ level: "silent" }), { wrapEngine: (e) => countingEngine(e, calls) }),
          (err: Error) => err instanceof StartupError && new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`).test(err.message),
        );
        assert.deepEqual(calls, [], "nothing touched the engine (recovery would have removed orphans)");
      } finally {
        taken.close();
      }
    });

    it("the addresses are bound before recovery: calls answer UNAVAILABLE and health NOT_SERVING until it is done", async () => {
      const workDir = await tempDir();
      const socket = path.join(workDir, "early.sock");
      const calls: string[] = [];
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const config = resolveConfig({ ...baseTestFlags(workDir), listen: [`unix://${socket}`] });
      const starting = startBerth(config, pino({ level: "silent" }), { wrapEngine: (e) => countingEngine(e, calls, held) });
      starting.catch(() => undefined);
      const client = new BerthClient(`unix://${socket}`);
      clients.push(client);
      const health = new HealthClient(`unix://${socket}`, credentials.createInsecure());
      try {
        // Recovery is held in its engine listing; waitForReady makes the call wait for the bind.
        const metadata = new Metadata();
        metadata.setOptions({ waitForReady: true });
        const err = await new Promise<ServiceError | undefined>((resolve) =>
          (client.raw as unknown as Record<string, Function>).containers!.call(client.raw, create(ContainersRequestSchema, {}), metadata, { deadline: Date.now() + 60_000 }, (e: ServiceError | null) => resolve(e ?? undefined)),
        );
        assert.equal(err?.code, status.UNAVAILABLE, String(err?.details));
        assert.match(err!.details, /recovering its containers/);
        const check = await new Promise<{ status: string }>((resolve, reject) =>
          (health as unknown as Record<string, Function>).Check!.call(health, { service: "" }, (e: Error | null, r: { status: string }) => (e ? reject(e) : resolve(r))),
        );
        assert.equal(check.status, "NOT_SERVING");
        release();
        const berth = await starting;
        try {
          assert.deepEqual((await client.containers()).containers, []);
        } finally {
          await berth.stop();
        }
      } finally {
        release();
        health.close();
      }
    });
    after(async () => {
      if (t) {
        await removeTestContainers(docker, { [LABEL_AGENT_ID]: t.berth.agentId });
        t.client.close();
        await t.berth.stop().catch(() => undefined);
      }
    });

    it("a container whose engine name is the old berth-<agent>-<id> form is adopted by its labels after a restart", async () => {
      const agentId = `ident-old-${suffix}`;
      t = await startTestBerth({ agent_id: agentId });
      const workDir = t.workDir;
      const id = newId("old-name");
      await t.client.launch(launchRequest(id, { image: images.busybox, shell: "sleep 300" }));
      await t.client.collect([id], (e) => e.kind.case === "stateChanged" && e.kind.value.state === State.RUNNING);
      const engineId = (await t.client.containers()).containers[0]!.engineId;
      t.client.close();
      await t.berth.stop();
      const rows = await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${agentId}`, `${LABEL_CONTAINER_ID}=${id}`] } });
      assert.deepEqual(rows.map((r) => r.Id), [engineId]);
      await docker.getContainer(engineId).rename({ name: `berth-${agentId}-${id}` });
      t = await startTestBerth({ work_dir: workDir });
      const after = (await t.client.containers()).containers.find((c) => c.containerId?.value === id);
      assert.equal(after?.state, State.RUNNING);
      assert.equal(after?.engineId, engineId, "the old-named container is adopted, not replaced or removed");
    });
  });
});
