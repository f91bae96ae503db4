// The operator policy against the real engine: each launch the issue found accepted is refused by
// default with PERMISSION_DENIED naming rule, field and value, and leaves nothing behind (no
// directory, sandbox, engine container or checkpoint); the same launches work once a policy file
// opens the door. Also: the limits, the default pids limit, and sandboxes owned by the task's user.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type Dockerode from "dockerode";
import { State, type LaunchRequestSchema } from "../../src/gen/berth/v1/containerizer_pb.js";
import { CapabilityInfo_Capability, TaskState, Volume_Mode, Volume_Source_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { launchRequest, newId } from "../harness/launches.js";
import type { TestBerth } from "../harness/test-berth.js";
import { useBerth } from "../harness/use-berth.js";
import { refusedLeavingNothing } from "../harness/engine-leftovers.js";
import type { TestImages } from "../support/engine.js";

type Req = MessageInitShape<typeof LaunchRequestSchema>;

async function finished(t: TestBerth, id: string): Promise<void> {
  const { termination } = await t.client.wait(id);
  assert.equal(termination?.containerTermination?.state, TaskState.TASK_FINISHED, termination?.containerTermination?.message);
}

describe("operator policy against the real engine", function () {
  this.timeout(90_000);

  describe("the safe defaults refuse the issue's launches", () => {
    // Loopback fetches closed again (the harness opens them for the other suites).
    const suite = useBerth({ fetch_allow_loopback: "false" });
    let docker: Dockerode;
    let images: TestImages;
    let t: TestBerth;
    let scratch: string;
    let files: Server;
    let base: string;
    before(async () => {
      ({ docker, images, t } = suite);
      scratch = mkdtempSync(path.join(os.tmpdir(), "berth-policy-it-"));
      files = createServer((_req, res) => res.end("artifact\n"));
      await new Promise<void>((r) => files.listen(0, "127.0.0.1", r));
      base = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
    });
    after(async () => {
      files?.close();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    });
    const req = (shell = "true") => launchRequest(newId("pol"), { image: images.busybox, shell });

    it("a directory outside the work dir is refused and never created", async () => {
      const r = req();
      const dir = path.join(scratch, "not-created", "sandbox");
      r.containerConfig!.directory = dir;
      await refusedLeavingNothing(t, docker, r, status.PERMISSION_DENIED, ["sandbox_roots", "container_config.directory", dir]);
      assert.equal(existsSync(path.join(scratch, "not-created")), false, "the directory was not created");
    });

    it("a file:// URI of a host secret with output_file is refused", async () => {
      const secret = path.join(scratch, "secret");
      await writeFile(secret, "s3cret\n", { mode: 0o600 });
      for (const value of [`file://${secret}`, "file:///root/berth-test-secret", secret]) {
        const r = launchRequest(newId("pol"), { image: images.busybox, command: { shell: true, value: "cat $MESOS_SANDBOX/copied", uris: [{ value, outputFile: "copied" }] } });
        await refusedLeavingNothing(t, docker, r, status.PERMISSION_DENIED, ["file_uri_prefixes", "command_info.uris[0].value", value]);
      }
    });

    it("docker.privileged is refused", async () => {
      const r = req();
      r.containerConfig!.containerInfo!.docker!.privileged = true;
      await refusedLeavingNothing(t, docker, r, status.PERMISSION_DENIED, ["allow_privileged", "container_info.docker.privileged", "true"]);
    });

    it("volumes of '/' and of the engine socket are refused", async () => {
      for (const p of ["/", "/var/run/docker.sock", "/run/docker.sock"]) {
        const r = req();
        r.containerConfig!.containerInfo!.volumes = [
          { containerPath: "/work", hostPath: "work", mode: Volume_Mode.RW },
          { containerPath: "/host", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: p } } },
        ];
        await refusedLeavingNothing(t, docker, r, status.PERMISSION_DENIED, ["engine_socket", "container_info.volumes[1].source.host_path.path", p]);
        const legacy = req();
        legacy.containerConfig!.containerInfo!.volumes = [{ containerPath: "/host", hostPath: p, mode: Volume_Mode.RW }];
        await refusedLeavingNothing(t, docker, legacy, status.PERMISSION_DENIED, ["engine_socket", "container_info.volumes[0].host_path", p]);
      }
      const other = req();
      other.containerConfig!.containerInfo!.volumes = [{ containerPath: "/host", mode: Volume_Mode.RO, source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: scratch } } }];
      await refusedLeavingNothing(t, docker, other, status.PERMISSION_DENIED, ["host_path_prefixes", "container_info.volumes[0].source.host_path.path", scratch]);
    });

    it("effective_capabilities SYS_ADMIN is refused", async () => {
      const r = req();
      r.containerConfig!.containerInfo!.linuxInfo = { effectiveCapabilities: { capabilities: [CapabilityInfo_Capability.SYS_ADMIN] } };
      await refusedLeavingNothing(t, docker, r, status.PERMISSION_DENIED, ["allowed_capabilities", "container_info.linux_info.effective_capabilities.capabilities[0]", "SYS_ADMIN"]);
    });

    it("host IPC and pid namespaces, driver options and loopback URIs are refused", async () => {
      const ipc = req();
      ipc.containerConfig!.containerInfo!.linuxInfo = { ipcMode: 2 /* SHARE_PARENT */ };
      await refusedLeavingNothing(t, docker, ipc, status.PERMISSION_DENIED, ["allow_host_ipc", "container_info.linux_info.ipc_mode", "SHARE_PARENT"]);
      const pid = req();
      pid.containerConfig!.containerInfo!.linuxInfo = { sharePidNamespace: true };
      await refusedLeavingNothing(t, docker, pid, status.PERMISSION_DENIED, ["allow_host_pid", "container_info.linux_info.share_pid_namespace"]);
      const dv = req();
      dv.containerConfig!.containerInfo!.volumes = [
        { containerPath: "/d", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.DOCKER_VOLUME, dockerVolume: { name: "berth-never", driverOptions: { parameter: [{ key: "o", value: "bind" }, { key: "device", value: "/" }] } } } },
      ];
      await refusedLeavingNothing(t, docker, dv, status.PERMISSION_DENIED, ["docker_volumes.allow_driver_options", "o=bind"]);
      await assert.rejects(docker.getVolume("berth-never").inspect(), "no engine volume was made");
      const loop = launchRequest(newId("pol"), { image: images.busybox, command: { shell: true, value: "true", uris: [{ value: `${base}/a.txt` }] } });
      await refusedLeavingNothing(t, docker, loop, status.PERMISSION_DENIED, ["fetch.allow_loopback", "command_info.uris[0].value", `${base}/a.txt`]);
    });

    it("sandboxes and checkpoints are root's only; a container gets the default pids limit", async () => {
      for (const dir of ["sandboxes", "meta"]) assert.equal((await stat(path.join(t.workDir, dir))).mode & 0o777, 0o700, `${dir} is 0700`);
      const id = newId("pids");
      await t.client.launch(launchRequest(id, { image: images.busybox, shell: "exec sleep 300" }));
      await t.client.collect([id], (e) => e.kind.case === "stateChanged" && (e.kind.value as { state: State }).state === State.RUNNING);
      const [row] = await docker.listContainers({ filters: { label: [`${LABEL_CONTAINER_ID}=${id}`] } });
      assert.equal((await docker.getContainer(row!.Id).inspect()).HostConfig.PidsLimit, 4096);
      await t.client.destroy(id);
    });

    it("a sandbox belongs to a numeric task user, who can write it", async () => {
      const id = newId("uid");
      const r = launchRequest(id, { image: images.busybox, shell: 'id -u > "$MESOS_SANDBOX/who" && echo written > "$MESOS_SANDBOX/mine"' });
      r.containerConfig!.user = "1234";
      const launched = await t.client.launch(r);
      await finished(t, id);
      assert.equal((await stat(launched.sandboxDirectory)).uid, 1234);
      assert.equal(await readFile(path.join(launched.sandboxDirectory, "who"), "utf8"), "1234\n");
      assert.equal(await readFile(path.join(launched.sandboxDirectory, "mine"), "utf8"), "written\n");
      assert.equal((await stat(path.join(launched.sandboxDirectory, "mine"))).uid, 1234);
      assert.equal((await stat(path.join(launched.sandboxDirectory, "stdout"))).uid, 1234);
    });
  });

  describe("a policy file opens each door it names", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "berth-policy-open-"));
    const hostDir = path.join(dir, "host");
    const roots = path.join(dir, "roots");
    const artifacts = path.join(dir, "artifacts");
    const policyFile = path.join(dir, "policy.yaml");
    writeFileSync(
      policyFile,
      [
        `host_path_prefixes: [${JSON.stringify(hostDir)}, /run]`,
        "allowed_capabilities: [CAP_SYS_ADMIN]",
        `sandbox_roots: [${JSON.stringify(roots)}]`,
        `file_uri_prefixes: [${JSON.stringify(artifacts)}]`,
        "allow_privileged: false",
      ].join("\n"),
    );
    const suite = useBerth({ policy: policyFile });
    let docker: Dockerode;
    let images: TestImages;
    let t: TestBerth;
    before(async () => {
      ({ docker, images, t } = suite);
      const { mkdir } = await import("node:fs/promises");
      await mkdir(hostDir);
      await mkdir(artifacts);
      await writeFile(path.join(hostDir, "greeting"), "from-host\n");
      await writeFile(path.join(artifacts, "tool.txt"), "fetched-from-file\n");
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it("a host path under an allowed prefix is mounted", async () => {
      const id = newId("open-host");
      const r = launchRequest(id, { image: images.busybox, shell: "cat /host/greeting" });
      r.containerConfig!.containerInfo!.volumes = [{ containerPath: "/host", mode: Volume_Mode.RO, source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: hostDir } } }];
      const launched = await t.client.launch(r);
      await finished(t, id);
      assert.equal(await readFile(path.join(launched.sandboxDirectory, "stdout"), "utf8"), "from-host\n");
    });

    it("an allowed capability is granted", async () => {
      const id = newId("open-cap");
      const r = launchRequest(id, { image: images.busybox, shell: "grep CapEff /proc/self/status" });
      r.containerConfig!.containerInfo!.linuxInfo = { effectiveCapabilities: { capabilities: [CapabilityInfo_Capability.SYS_ADMIN] } };
      const launched = await t.client.launch(r);
      await finished(t, id);
      // CAP_SYS_ADMIN is bit 21, and it is the only one (all others dropped).
      assert.match(await readFile(path.join(launched.sandboxDirectory, "stdout"), "utf8"), /CapEff:\s+0000000000200000/);
    });

    it("a sandbox under an allowed root and a file under an allowed prefix work", async () => {
      const id = newId("open-dir");
      const sandbox = path.join(roots, id);
      const r = launchRequest(id, { image: images.busybox, command: { shell: true, value: 'cat "$MESOS_SANDBOX/copied"', uris: [{ value: `file://${path.join(artifacts, "tool.txt")}`, outputFile: "copied" }] } });
      r.containerConfig!.directory = sandbox;
      const launched = await t.client.launch(r);
      assert.equal(launched.sandboxDirectory, sandbox);
      await finished(t, id);
      assert.equal(await readFile(path.join(sandbox, "stdout"), "utf8"), "fetched-from-file\n");
    });

    it("the engine socket stays closed even under an allowed prefix, and what is not listed stays refused", async () => {
      for (const p of ["/run", "/run/docker.sock"]) {
        const r = launchRequest(newId("sock"), { image: images.busybox });
        r.containerConfig!.containerInfo!.volumes = [{ containerPath: "/s", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: p } } }];
        await refusedLeavingNothing(t, docker, r, status.PERMISSION_DENIED, ["engine_socket", p]);
      }
      const priv = launchRequest(newId("priv"), { image: images.busybox });
      priv.containerConfig!.containerInfo!.docker!.privileged = true;
      await refusedLeavingNothing(t, docker, priv, status.PERMISSION_DENIED, ["allow_privileged"]);
    });
  });

  describe("limits", () => {
    const suite = useBerth({ max_containers: "1", max_environment_entries: "3", max_uris: "1", max_volumes: "1" });
    let docker: Dockerode;
    let images: TestImages;
    let t: TestBerth;
    before(() => ({ docker, images, t } = suite));

    it("environment entries, URIs and volumes per launch answer RESOURCE_EXHAUSTED naming the flag", async () => {
      const env = launchRequest(newId("env"), {
        image: images.busybox,
        environment: { A: "1", B: "2" },
        command: { shell: true, value: "true", environment: { variables: [{ name: "C", value: "3" }, { name: "D", value: "4" }] } },
      });
      await refusedLeavingNothing(t, docker, env, status.RESOURCE_EXHAUSTED, ["--max_environment_entries", "4 environment entries"]);
      const uris = launchRequest(newId("uris"), { image: images.busybox, command: { shell: true, value: "true", uris: [{ value: "https://example.com/a" }, { value: "https://example.com/b" }] } });
      await refusedLeavingNothing(t, docker, uris, status.RESOURCE_EXHAUSTED, ["--max_uris"]);
      const vols = launchRequest(newId("vols"), { image: images.busybox });
      vols.containerConfig!.containerInfo!.volumes = [
        { containerPath: "/a", hostPath: "a", mode: Volume_Mode.RW },
        { containerPath: "/b", hostPath: "b", mode: Volume_Mode.RW },
      ];
      await refusedLeavingNothing(t, docker, vols, status.RESOURCE_EXHAUSTED, ["--max_volumes"]);
    });

    it("past --max_containers live containers a launch is RESOURCE_EXHAUSTED until one terminates", async () => {
      const first = newId("live");
      await t.client.launch(launchRequest(first, { image: images.busybox, shell: "exec sleep 300" }));
      await refusedLeavingNothing(t, docker, launchRequest(newId("over"), { image: images.busybox }), status.RESOURCE_EXHAUSTED, ["--max_containers"]);
      await t.client.destroy(first);
      const next = newId("next");
      await t.client.launch(launchRequest(next, { image: images.busybox, shell: "true" }));
      await finished(t, next);
    });
  });

  describe("start-up", () => {
    it("a bad policy file stops start-up with one line naming the file and the key", async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), "berth-policy-bad-"));
      const file = path.join(dir, "policy.yaml");
      await writeFile(file, "fetch:\n  allow_loopbak: true\n");
      const { startTestBerth } = await import("../harness/test-berth.js");
      const { StartupError } = await import("../../src/berth.js");
      try {
        await assert.rejects(startTestBerth({ work_dir: path.join(dir, "work"), policy: file }), (e: unknown) => {
          assert.ok(e instanceof StartupError);
          assert.ok(e.message.includes(file) && e.message.includes("fetch.allow_loopbak"), e.message);
          assert.ok(!e.message.includes("\n"));
          return true;
        });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
