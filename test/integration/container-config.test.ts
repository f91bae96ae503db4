import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { lstat, mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as tar from "tar";
import type Dockerode from "dockerode";
import { State } from "../../src/gen/berth/v1/containerizer_pb.js";
import { ContainerInfo_DockerInfo_Network, ContainerInfo_Type, TaskState, Value_Type, Volume_Mode, Volume_Source_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import type { CreateSpec, EnginePort } from "../../src/docker/engine-port.js";
import { pollUntil } from "../harness/engine-control.js";
import { ensureEngine, ensureTestImages, type TestImages } from "../support/engine.js";
import { launchRequest, newId } from "../harness/launches.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";

describe("container configuration reaches the real engine", function () {
  this.timeout(90_000);
  let docker: Dockerode;
  let images: TestImages;
  let t: TestBerth;
  let files: Server;
  let base: string;
  let hostDir: string;
  const created = new Map<string, { id: string; sandbox: string }>();
  const afterStart = new Map<string, (sandbox: string) => Promise<void>>();

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
    hostDir = await mkdtemp(path.join(os.tmpdir(), "berth-host:dir,"));
    await writeFile(path.join(hostDir, "greeting"), "from-host\n");
    // The host path volume below needs its folder opened by the policy (none is by default).
    await writeFile(path.join(hostDir, "..", `${path.basename(hostDir)}.policy.json`), JSON.stringify({ host_path_prefixes: [hostDir] }));
    t = await startTestBerth(
      { policy: path.join(hostDir, "..", `${path.basename(hostDir)}.policy.json`) },
      {
        // A test may hold a container's start (after the engine started it, before Berth goes on
        // to capture its output) until something has happened inside it.
        wrapEngine: (engine: EnginePort): EnginePort =>
          new Proxy(engine, {
            get(target, prop, receiver) {
              const value = Reflect.get(target, prop, receiver) as unknown;
              if (prop === "createContainer") {
                return async (spec: CreateSpec) => {
                  const engineId = await target.createContainer(spec);
                  const sandbox = spec.HostConfig.Mounts.find((m) => m.Target === t.config.sandboxDirectory)?.Source;
                  created.set(engineId, { id: spec.Labels[LABEL_CONTAINER_ID] ?? "", sandbox: sandbox ?? "" });
                  return engineId;
                };
              }
              if (prop === "startContainer") {
                return async (engineId: string) => {
                  await target.startContainer(engineId);
                  const c = created.get(engineId);
                  if (c) await afterStart.get(c.id)?.(c.sandbox);
                };
              }
              return typeof value === "function" ? value.bind(target) : value;
            },
          }),
      },
    );
    const served = await mkdtemp(path.join(os.tmpdir(), "berth-served-"));
    await mkdir(path.join(served, "tree/bin"), { recursive: true });
    await writeFile(path.join(served, "tree/bin/hello.sh"), "#!/bin/sh\necho from-archive\n", { mode: 0o755 });
    await tar.create({ gzip: true, file: path.join(served, "bundle.tar.gz"), cwd: path.join(served, "tree") }, ["bin"]);
    await writeFile(path.join(served, "tool"), "#!/bin/sh\necho tool-ran\n");
    files = createServer((req, res) => {
      readFile(path.join(served, path.basename(req.url ?? ""))).then(
        (body) => res.end(body),
        () => {
          res.statusCode = 404;
          res.end();
        },
      );
    });
    await new Promise<void>((r) => files.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  });
  after(async () => {
    files?.close();
    await t?.close();
    if (hostDir) await rm(hostDir, { recursive: true, force: true });
    if (hostDir) await rm(`${hostDir}.policy.json`, { force: true });
  });

  it("fetches URIs into the sandbox (extracting archives, marking executables) before the command runs", async () => {
    const id = newId("fetch");
    const launched = await t.client.launch(
      launchRequest(id, {
        image: images.busybox,
        command: {
          shell: true,
          value: 'cd "$MESOS_SANDBOX" && ./bin/hello.sh && ./tool',
          uris: [{ value: `${base}/bundle.tar.gz` }, { value: `${base}/tool`, executable: true }],
        },
      }),
    );
    const { termination } = await t.client.wait(id);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_FINISHED, termination?.containerTermination?.message);
    assert.equal(await readFile(path.join(launched.sandboxDirectory, "stdout"), "utf8"), "from-archive\ntool-ran\n");
  });

  it("a failed fetch fails the launch naming the URI", async () => {
    const id = newId("fetch404");
    await t.client.launch(launchRequest(id, { image: images.busybox, command: { shell: true, value: "true", uris: [{ value: `${base}/missing.bin` }] } }));
    const { termination } = await t.client.wait(id);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_FAILED);
    assert.match(termination?.containerTermination?.message ?? "", /FETCHING.*missing\.bin.*404/);
  });

  it("mounts sandbox-relative, host-path (with ':' and ',' in it, read-only) and docker volumes", async () => {
    const id = newId("vol");
    const volumeName = `berth-test-${id}`;
    const req = launchRequest(id, {
      image: images.busybox,
      shell: 'echo data > /data/out && cat /host/greeting > /data/copied && (echo x > /host/nope 2>/dev/null && echo writable || echo readonly) > /data/mode && echo v > /vol/v && cat /vol/v > /data/vol',
    });
    req.containerConfig!.containerInfo!.volumes = [
      { containerPath: "/data", hostPath: "work", mode: Volume_Mode.RW },
      { containerPath: "/host", mode: Volume_Mode.RO, source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: hostDir } } },
      { containerPath: "/vol", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.DOCKER_VOLUME, dockerVolume: { name: volumeName } } },
    ];
    const launched = await t.client.launch(req);
    const { termination } = await t.client.wait(id);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_FINISHED, termination?.containerTermination?.message);
    const work = path.join(launched.sandboxDirectory, "work");
    assert.equal(await readFile(path.join(work, "out"), "utf8"), "data\n");
    assert.equal(await readFile(path.join(work, "copied"), "utf8"), "from-host\n");
    assert.equal(await readFile(path.join(work, "mode"), "utf8"), "readonly\n");
    assert.equal(await readFile(path.join(work, "vol"), "utf8"), "v\n");
    await t.client.destroy(id); // answers once the engine container is gone
    await docker.getVolume(volumeName).remove();
  });

  it("honours user, shell=false with arguments, and the image's own command", async () => {
    const b = newId("argv");
    const reqB = launchRequest(b, { image: images.busybox, command: { shell: false, value: "/bin/echo", arguments: ["one two", "$HOME"] } });
    const launchedB = await t.client.launch(reqB);
    const c = newId("own");
    const reqC = launchRequest(c, { image: images.busybox, command: { shell: false } });
    await t.client.launch(reqC);
    const d = newId("nobody");
    const reqD = launchRequest(d, { image: images.busybox, shell: "id -u; touch $MESOS_SANDBOX/x 2>/dev/null && echo wrote-sandbox || echo cannot-write-sandbox" });
    reqD.containerConfig!.user = "65534";
    const launchedD = await t.client.launch(reqD);
    await Promise.all([b, c, d].map((id) => t.client.wait(id)));
    assert.equal(await readFile(path.join(launchedB.sandboxDirectory, "stdout"), "utf8"), "one two $HOME\n", "arguments are not shell-expanded");
    assert.equal((await t.client.wait(c)).termination?.containerTermination?.state, TaskState.TASK_FINISHED);
    // The sandbox belongs to the task's user (a numeric uid), as Mesos chowns it.
    assert.equal(await readFile(path.join(launchedD.sandboxDirectory, "stdout"), "utf8"), "65534\nwrote-sandbox\n");
  });

  it("maps cpus and mem to CPU shares and a memory limit, network NONE and HOST to the engine's modes", async () => {
    const none = newId("res");
    await t.client.launch(launchRequest(none, { image: images.busybox, shell: "exec sleep 300", cpus: 0.5, memMb: 64 }));
    const host = newId("host");
    await t.client.launch(launchRequest(host, { image: images.busybox, shell: "exec sleep 300", network: ContainerInfo_DockerInfo_Network.HOST, cpus: 0.001, memMb: 1 }));
    for (const id of [none, host]) await t.client.collect([id], (e) => e.kind.case === "stateChanged" && (e.kind.value as { state: State }).state === State.RUNNING);
    const inspect = async (id: string) => {
      const [row] = await docker.listContainers({ filters: { label: [`${LABEL_CONTAINER_ID}=${id}`] } });
      return docker.getContainer(row!.Id).inspect();
    };
    const a = await inspect(none);
    assert.equal(a.HostConfig.CpuShares, 512);
    assert.equal(a.HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(a.HostConfig.NetworkMode, "none");
    assert.equal(a.Config.Labels["berth.agent_id"], t.berth.agentId);
    const b = await inspect(host);
    assert.equal(b.HostConfig.CpuShares, 2, "Mesos' floor of 2 shares");
    assert.equal(b.HostConfig.Memory, 32 * 1024 * 1024, "Mesos' floor of 32 MB");
    assert.equal(b.HostConfig.NetworkMode, "host");
    await Promise.all([none, host].map((id) => t.client.destroy(id)));
  });

  it("a container that swaps its sandbox stdout for a symlink cannot make Berth write to a host file", async () => {
    const victim = path.join(hostDir, `victim-${process.pid}`);
    const id = newId("symlink");
    const req = launchRequest(id, {
      image: images.busybox,
      shell: `rm -f "$MESOS_SANDBOX/stdout" "$MESOS_SANDBOX/stderr"; ln -s ${victim} "$MESOS_SANDBOX/stdout"; ln -s ${victim} "$MESOS_SANDBOX/stderr"; for i in 1 2 3; do echo pwned; echo pwned >&2; sleep 0.2; done`,
    });
    // Berth opens the output files only once both links are in place: the open itself must refuse
    // to follow them (an open made before the swap would pass without O_NOFOLLOW).
    const isLink = (file: string) => lstat(file).then((st) => st.isSymbolicLink(), () => false);
    let swapped = false;
    afterStart.set(id, async (sandbox) => {
      await pollUntil(async () => (await isLink(path.join(sandbox, "stdout"))) && (await isLink(path.join(sandbox, "stderr"))), 30_000, "the container planted both links");
      swapped = true;
    });
    try {
      await t.client.launch(req);
      const { termination } = await t.client.wait(id);
      assert.ok(swapped, "Berth's output capture started after the links were planted");
      assert.equal(termination?.containerTermination?.state, TaskState.TASK_FINISHED, termination?.containerTermination?.message);
      await assert.rejects(readFile(victim, "utf8"), { code: "ENOENT" });
    } finally {
      afterStart.delete(id);
      await rm(victim, { force: true });
    }
  });

  it("runs the executor's command when only executor_info is given", async () => {
    const id = newId("exec");
    const req = launchRequest(id, { image: images.busybox, shell: "unused" });
    const containerInfo = { type: ContainerInfo_Type.DOCKER, docker: { image: images.busybox, network: ContainerInfo_DockerInfo_Network.NONE } };
    req.containerConfig = {
      directory: "",
      // Required by Mesos' schema; a Mesos agent puts its executor's command here too.
      commandInfo: { shell: true, value: "echo executor-ran" },
      executorInfo: {
        executorId: { value: "exec-1" },
        command: { shell: true, value: "echo executor-ran" },
        container: containerInfo,
        resources: [{ name: "cpus", type: Value_Type.SCALAR, scalar: { value: 0.1 } }],
      },
    };
    const launched = await t.client.launch(req);
    await t.client.wait(id);
    assert.equal(await readFile(path.join(launched.sandboxDirectory, "stdout"), "utf8"), "executor-ran\n");
  });
});
