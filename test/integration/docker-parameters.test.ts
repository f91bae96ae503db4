// Docker parameters, rlimit_info and linux_info.seccomp against the real engine: a launch with a
// broad set of allowed parameters reaches the engine as the docker CLI would create it (checked in
// the engine's inspect) and takes effect inside the container (its own report on stdout); the
// engine's copy of the output is capped by default and other log drivers keep Berth's output
// flowing; refused launches answer INVALID_ARGUMENT / PERMISSION_DENIED naming the key and value
// and leave nothing behind. Networks: none only.
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type Dockerode from "dockerode";
import { State, type LaunchRequestSchema } from "../../src/gen/berth/v1/containerizer_pb.js";
import { RLimitInfo_RLimit_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { StartupError } from "../../src/berth.js";
import { pollUntil } from "../harness/engine-control.js";
import { launchRequest, newId } from "../harness/launches.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";
import { ensureEngine, ensureTestImages } from "../support/engine.js";
import { refusedLeavingNothing } from "../harness/engine-leftovers.js";

type Req = MessageInitShape<typeof LaunchRequestSchema>;

const BASE_PROFILE = { defaultAction: "SCMP_ACT_ALLOW" };
const NO_MKDIR_PROFILE = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO" }] };
const LOG_MAX = 1024 * 1024;

function withParameters(req: Req, params: Array<[string, string]>): Req {
  req.containerConfig!.containerInfo!.docker!.parameters = params.map(([key, value]) => ({ key, value }));
  return req;
}

describe("docker parameters, rlimit_info and seccomp against the real engine", function () {
  this.timeout(120_000);
  let scratch: string;
  let profiles: string;
  let policyFile: string;

  // The suite's files exist before its Berth starts (useBerth's hook runs after this one).
  before(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), "berth-params-it-"));
    profiles = path.join(scratch, "seccomp");
    await mkdir(profiles);
    await writeFile(path.join(profiles, "base.json"), JSON.stringify(BASE_PROFILE));
    await writeFile(path.join(profiles, "no-mkdir.json"), JSON.stringify(NO_MKDIR_PROFILE, null, 2));
    await writeFile(path.join(profiles, "broken.json"), "{ not json");
    policyFile = path.join(scratch, "policy.yaml");
    await writeFile(policyFile, ["allowed_capabilities: [SYS_PTRACE]", "allowed_devices: [/dev/zero]", "allowed_log_drivers: [json-file, local, syslog]"].join("\n"));
  });
  after(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  // Started here rather than by useBerth: its flags name the files made above.
  let t: TestBerth;
  let docker: Dockerode;
  let busybox: string;
  before(async () => {
    docker = await ensureEngine();
    busybox = (await ensureTestImages(docker)).busybox;
    t = await startTestBerth({ policy: policyFile, seccomp_config_dir: profiles, seccomp_profile_name: "base", container_log_max_size: String(LOG_MAX) });
  });
  after(async () => {
    await t?.close();
  });

  async function launchRunning(req: Req): Promise<string> {
    const id = req.containerId!.value!;
    const launched = await t.client.launch(req);
    const events = await t.client.collect([id], (e) => e.kind.case === "stateChanged" && (e.kind.value.state === State.RUNNING || e.kind.value.state === State.TERMINATED));
    const last = events.at(-1);
    assert.ok(last?.kind.case === "stateChanged" && last.kind.value.state === State.RUNNING, `'${id}' reached RUNNING`);
    return launched.sandboxDirectory;
  }

  async function inspect(id: string) {
    const { engineId } = await t.client.status(id);
    return docker.getContainer(engineId).inspect();
  }

  async function stdoutOnce(sandbox: string, marker: string): Promise<string> {
    const file = path.join(sandbox, "stdout");
    let text = "";
    await pollUntil(async () => (text = await readFile(file, "utf8").catch(() => "")).includes(marker), 30_000, `the sandbox's stdout holds '${marker}'`);
    return text;
  }

  async function destroyed(id: string): Promise<void> {
    await t.client.destroy(id);
  }

  it("a launch naming nothing gets the default seccomp profile and a capped json-file copy of its output", async () => {
    const id = newId("par-default");
    await launchRunning(launchRequest(id, { image: busybox, shell: "sleep 600" }));
    const hc = (await inspect(id)).HostConfig;
    assert.deepEqual(hc.LogConfig, { Type: "json-file", Config: { "max-size": String(LOG_MAX), "max-file": "2" } });
    assert.deepEqual(hc.SecurityOpt, [`seccomp=${JSON.stringify(BASE_PROFILE)}`]);
    await destroyed(id);
  });

  it("a broad set of allowed parameters, rlimit_info and a named seccomp profile reach the engine and take effect", async () => {
    const id = newId("par-broad");
    const script = [
      'echo "nofile=$(ulimit -n) core=$(ulimit -c) nproc=$(ulimit -u)"',
      "mkdir /scratch/d 2>/dev/null && echo mkdir-allowed || echo mkdir-denied",
      "touch /rootfs-file 2>/dev/null && echo rootfs-rw || echo rootfs-ro",
      'echo "shmmax=$(cat /proc/sys/kernel/shmmax) port_start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start)"',
      'echo "uid=$(id -u) gid=$(id -g) pid1=$(cat /proc/1/comm) pwd=$(pwd) host=$(hostname) env=$PARAM_ENV"',
      'grep -q "^127.0.0.1[[:space:]]*db$" /etc/hosts && echo hosts-ok',
      'grep -q "options ndots:2" /etc/resolv.conf && echo resolv-ok',
      "test -c /dev/zero2 && echo device-ok",
      "echo report-done",
      "exec sleep 600",
    ].join("\n");
    const req = launchRequest(id, { image: busybox, memMb: 64, command: { shell: false, value: "-c", arguments: [script] } });
    withParameters(req, [
      ["label", "team=infra"],
      ["env", "PARAM_ENV=from-parameter"],
      ["workdir", "/tmp"],
      ["hostname", "params-host"],
      ["shm-size", "32m"],
      ["entrypoint", "/bin/sh"],
      ["user", "1000:1000"],
      ["log-opt", "max-size=512k"],
      ["log-opt", "max-file=4"],
      ["ulimit", "nproc=100:200"],
      ["cap-add", "SYS_PTRACE"],
      ["cap-drop", "MKNOD"],
      ["security-opt", "no-new-privileges"],
      ["add-host", "db:127.0.0.1"],
      ["dns", "127.0.0.53"],
      ["dns-search", "example.com"],
      ["dns-option", "ndots:2"],
      ["read-only", "true"],
      ["tmpfs", "/scratch:rw,size=8m,mode=1777"],
      ["init", "true"],
      ["memory-swap", "128m"],
      ["memory-swappiness", "10"],
      ["memory-reservation", "32m"],
      ["oom-score-adj", "100"],
      ["pids-limit", "50"],
      ["cpuset-cpus", "0"],
      ["sysctl", "kernel.shmmax=1000000"],
      ["sysctl", "net.ipv4.ip_unprivileged_port_start=0"],
      ["device", "/dev/zero:/dev/zero2:r"],
      ["volume-driver", "local"],
      ["stop-signal", "SIGUSR1"],
      ["stop-timeout", "5"],
    ]);
    req.containerConfig!.containerInfo!.linuxInfo = { seccomp: { profileName: "no-mkdir" } };
    req.containerConfig!.containerInfo!.rlimitInfo = {
      rlimits: [
        { type: RLimitInfo_RLimit_Type.RLMT_NOFILE, soft: 256n, hard: 512n },
        { type: RLimitInfo_RLimit_Type.RLMT_CORE },
      ],
    };
    const sandbox = await launchRunning(req);
    const info = await inspect(id);
    const hc = info.HostConfig;
    assert.deepEqual(hc.LogConfig, { Type: "json-file", Config: { "max-size": "512k", "max-file": "4" } });
    assert.deepEqual(hc.Ulimits, [
      { Name: "nofile", Soft: 256, Hard: 512 },
      { Name: "core", Soft: -1, Hard: -1 },
      { Name: "nproc", Soft: 100, Hard: 200 },
    ]);
    assert.deepEqual(hc.CapAdd, ["CAP_SYS_PTRACE"]);
    assert.deepEqual(hc.CapDrop, ["CAP_MKNOD"]);
    assert.deepEqual(hc.SecurityOpt, [`seccomp=${JSON.stringify(NO_MKDIR_PROFILE)}`, "no-new-privileges:true"]);
    assert.deepEqual(hc.ExtraHosts, ["db:127.0.0.1"]);
    assert.deepEqual(hc.Dns, ["127.0.0.53"]);
    assert.deepEqual(hc.DnsSearch, ["example.com"]);
    assert.deepEqual(hc.DnsOptions, ["ndots:2"]);
    assert.equal(hc.ReadonlyRootfs, true);
    assert.deepEqual(hc.Tmpfs, { "/scratch": "rw,size=8m,mode=1777" });
    assert.equal(hc.Init, true);
    assert.equal(hc.Memory, 64 * 1024 * 1024);
    assert.equal(hc.MemorySwap, 128 * 1024 * 1024);
    assert.equal(hc.MemorySwappiness, 10);
    assert.equal(hc.MemoryReservation, 32 * 1024 * 1024);
    assert.equal(hc.OomScoreAdj, 100);
    assert.equal(hc.PidsLimit, 50);
    assert.equal(hc.CpusetCpus, "0");
    assert.deepEqual(hc.Sysctls, { "kernel.shmmax": "1000000", "net.ipv4.ip_unprivileged_port_start": "0" });
    assert.deepEqual(hc.Devices, [{ PathOnHost: "/dev/zero", PathInContainer: "/dev/zero2", CgroupPermissions: "r" }]);
    assert.equal(hc.VolumeDriver, "local");
    assert.equal(hc.ShmSize, 32 * 1024 * 1024);
    assert.equal(hc.NetworkMode, "none");
    assert.equal(info.Config.User, "1000:1000");
    assert.deepEqual(info.Config.Entrypoint, ["/bin/sh"]);
    assert.deepEqual(info.Config.Cmd, ["-c", script]);
    assert.equal((info.Config as { StopSignal?: string }).StopSignal, "SIGUSR1");
    assert.equal((info.Config as { StopTimeout?: number }).StopTimeout, 5);
    assert.equal(info.Config.WorkingDir, "/tmp");
    assert.equal(info.Config.Hostname, "params-host");
    assert.equal(info.Config.Labels.team, "infra");
    assert.ok(info.Config.Env.includes("PARAM_ENV=from-parameter"));

    // A `user` parameter is the task's user: its sandbox is handed to it, as the launch's own user's is.
    const owner = await stat(sandbox);
    assert.deepEqual([owner.uid, owner.gid], [1000, 1000]);

    // And they take effect: the container's own report.
    const out = await stdoutOnce(sandbox, "report-done");
    for (const line of [
      "nofile=256 core=unlimited nproc=100",
      "mkdir-denied",
      "rootfs-ro",
      "shmmax=1000000 port_start=0",
      "uid=1000 gid=1000 pid1=docker-init pwd=/tmp host=params-host env=from-parameter",
      "hosts-ok",
      "resolv-ok",
      "device-ok",
    ]) {
      assert.ok(out.split("\n").includes(line), `stdout has '${line}':\n${out}`);
    }
    await destroyed(id);
  });

  it("log-driver local and an allowed syslog keep the output flowing into the sandbox (the engine's cached copy)", async () => {
    const local = newId("par-local");
    const localSandbox = await launchRunning(withParameters(launchRequest(local, { image: busybox, shell: "echo via-local; exec sleep 600" }), [["log-driver", "local"]]));
    assert.deepEqual((await inspect(local)).HostConfig.LogConfig, { Type: "local", Config: { "max-size": String(LOG_MAX), "max-file": "2" } });
    await stdoutOnce(localSandbox, "via-local\n");
    await destroyed(local);

    // A syslog receiver on loopback: the driver really sends there, and Berth still gets the line.
    const receiver: Socket = createSocket("udp4");
    await new Promise<void>((resolve) => receiver.bind(0, "127.0.0.1", resolve));
    try {
      const received = new Promise<string>((resolve) => receiver.on("message", (m) => String(m).includes("via-syslog") && resolve(String(m))));
      const port = (receiver.address() as AddressInfo).port;
      const id = newId("par-syslog");
      const sandbox = await launchRunning(
        withParameters(launchRequest(id, { image: busybox, shell: "echo via-syslog; exec sleep 600" }), [
          ["log-driver", "syslog"],
          ["log-opt", `syslog-address=udp://127.0.0.1:${port}`],
        ]),
      );
      assert.deepEqual((await inspect(id)).HostConfig.LogConfig, { Type: "syslog", Config: { "syslog-address": `udp://127.0.0.1:${port}` } });
      assert.match(await received, /via-syslog/);
      await stdoutOnce(sandbox, "via-syslog\n");
      await destroyed(id);
    } finally {
      receiver.close();
    }
  });

  describe("refused launches leave nothing behind", () => {
    const refused = (req: Req, code: status, names: string[]) => refusedLeavingNothing(t, docker, req, code, names);
    const req = (params: Array<[string, string]>) => withParameters(launchRequest(newId("par-no"), { image: busybox, shell: "true" }), params);
    const p = (i: number) => `container_info.docker.parameters[${i}]`;

    it("policy refusals: PERMISSION_DENIED naming the rule, the parameter and the value", async () => {
      await refused(req([["cap-add", "SYS_ADMIN"]]), status.PERMISSION_DENIED, ["allowed_capabilities", p(0), "SYS_ADMIN"]);
      await refused(req([["label", "a=b"], ["device", "/dev/fuse"]]), status.PERMISSION_DENIED, ["allowed_devices", p(1), "/dev/fuse"]);
      await refused(req([["security-opt", "seccomp=unconfined"]]), status.PERMISSION_DENIED, ["allow_unconfined_seccomp", p(0), "seccomp=unconfined"]);
      const both = req([["security-opt", "seccomp=unconfined"]]);
      both.containerConfig!.containerInfo!.linuxInfo = { seccomp: { profileName: "no-mkdir" } };
      await refused(both, status.INVALID_ARGUMENT, [p(0), "repeats container_info.linux_info.seccomp"]);
      await refused(req([["security-opt", "apparmor=unconfined"]]), status.PERMISSION_DENIED, ["allow_unconfined_apparmor", p(0), "apparmor=unconfined"]);
      await refused(req([["security-opt", "label=disable"]]), status.PERMISSION_DENIED, ["allow_selinux_label_options", p(0), "label=disable"]);
      await refused(req([["sysctl", "kernel.panic=1"]]), status.PERMISSION_DENIED, ["namespaced_sysctls", p(0), "kernel.panic=1"]);
      await refused(req([["oom-kill-disable", "true"]]), status.PERMISSION_DENIED, ["allow_oom_kill_disable", p(0), "true"]);
      await refused(req([["oom-score-adj", "-100"]]), status.PERMISSION_DENIED, ["allow_negative_oom_score_adj", p(0), "-100"]);
      await refused(req([["log-driver", "gelf"]]), status.PERMISSION_DENIED, ["allowed_log_drivers", p(0), "gelf"]);
      await refused(req([["log-opt", "max-size=1g"]]), status.PERMISSION_DENIED, ["container_log_max_size", p(0), "max-size=1g"]);
      await refused(req([["volume-driver", "convoy"]]), status.PERMISSION_DENIED, ["docker_volumes.allowed_drivers", p(0), "convoy"]);
      const driver = req([]);
      driver.containerConfig!.containerInfo!.docker!.volumeDriver = "convoy";
      await refused(driver, status.PERMISSION_DENIED, ["docker_volumes.allowed_drivers", "container_info.docker.volume_driver", "convoy"]);
      const unconfined = req([]);
      unconfined.containerConfig!.containerInfo!.linuxInfo = { seccomp: { unconfined: true } };
      await refused(unconfined, status.PERMISSION_DENIED, ["allow_unconfined_seccomp", "container_info.linux_info.seccomp.unconfined"]);
    });

    it("malformed, repeated or unknown: INVALID_ARGUMENT naming the parameter, key and value", async () => {
      await refused(req([["privileged", "true"]]), status.INVALID_ARGUMENT, [p(0), "key 'privileged' is not supported"]);
      await refused(req([["user", "1000"], ["user", "1001"]]), status.INVALID_ARGUMENT, [p(1), "user '1001' repeats", "docker takes one user"]);
      await refused(req([["ulimit", "nofile=2048:1024"]]), status.INVALID_ARGUMENT, [p(0), "ulimit 'nofile=2048:1024'", "soft limit above its hard limit"]);
      await refused(req([["log-driver", "none"]]), status.INVALID_ARGUMENT, [p(0), "log-driver 'none'"]);
      await refused(req([["log-driver", "local"], ["log-opt", "cache-disabled=true"]]), status.INVALID_ARGUMENT, [p(1), "log-opt 'cache-disabled=true'"]);
      await refused(req([["network-alias", "web"]]), status.INVALID_ARGUMENT, [p(0), "network-alias 'web'", "needs network USER"]);
      await refused(req([["tmpfs", "/scratch:exec=1"]]), status.INVALID_ARGUMENT, [p(0), "tmpfs '/scratch:exec=1'"]);
      const rlimit = req([]);
      rlimit.containerConfig!.containerInfo!.rlimitInfo = { rlimits: [{ type: RLimitInfo_RLimit_Type.RLMT_NOFILE, soft: 10n, hard: 5n }] };
      await refused(rlimit, status.INVALID_ARGUMENT, ["container_info.rlimit_info.rlimits[0]", "soft 10 is above hard 5"]);
      for (const [name, why] of [["missing", "no profile"], ["broken", "is not valid JSON"], ["../base", "contains '/' or '..'"]]) {
        const r = req([]);
        r.containerConfig!.containerInfo!.linuxInfo = { seccomp: { profileName: name } };
        await refused(r, status.INVALID_ARGUMENT, ["container_info.linux_info.seccomp.profile_name", `'${name}'`, why!]);
      }
    });
  });

  it("start-up refuses a default seccomp profile that is missing or not JSON", async () => {
    for (const [name, why] of [["missing", /--seccomp_profile_name: no profile '.*missing\.json'/], ["broken", /--seccomp_profile_name: '.*broken\.json' is not valid JSON/]] as const) {
      const workDir = await mkdtemp(path.join(os.tmpdir(), "berth-params-startup-"));
      try {
        await assert.rejects(startTestBerth({ work_dir: workDir, seccomp_config_dir: profiles, seccomp_profile_name: name }), (err: unknown) => err instanceof StartupError && why.test(err.message));
      } finally {
        await rm(workDir, { recursive: true, force: true });
      }
    }
  });
});
