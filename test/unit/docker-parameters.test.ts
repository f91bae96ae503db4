// Docker parameters (DockerInfo.parameters) as Marathon and Aurora apps pass them: each key's
// mapping to the Engine API field the docker CLI sets, its malformed values (INVALID_ARGUMENT
// naming parameter, key and value), a second value where docker takes one, and the policy's
// refusals (PERMISSION_DENIED naming rule, parameter and value). Pure: no engine involved.
import { strict as assert } from "node:assert";
import { create } from "@bufbuild/protobuf";
import { ContainerConfigSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import { ContainerInfo_DockerInfo_Network, ContainerInfo_Type, LinuxInfo_IpcMode, RLimitInfo_RLimit_Type, Value_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { buildCreateSpec, type CreateOptions } from "../../src/containerizer/create-spec.js";
import { effectiveUser, parseDockerParameters, parseDockerSize, stopTimeoutMs, SUPPORTED_DOCKER_PARAMETERS } from "../../src/containerizer/docker-parameters.js";
import { InvalidRequest, PermissionDenied } from "../../src/containerizer/errors.js";
import { resolveLaunchSpec, type LaunchSpec } from "../../src/containerizer/launch-spec.js";
import { admit } from "../../src/policy/admit.js";
import { sysctlRefusal } from "../../src/policy/admit-parameters.js";
import { defaultPolicy, type Policy } from "../../src/policy/policy.js";
import type { CreateSpec } from "../../src/docker/engine-port.js";

const { BRIDGE, HOST, NONE, USER } = ContainerInfo_DockerInfo_Network;

interface Opts {
  network?: ContainerInfo_DockerInfo_Network;
  shell?: boolean;
  memMb?: number;
  user?: string;
  /** More container_info. */
  linux?: { shmSize?: number; ipcMode?: LinuxInfo_IpcMode };
  rlimits?: Array<{ type: RLimitInfo_RLimit_Type; soft?: bigint; hard?: bigint }>;
  volumeDriver?: string;
}

function spec(params: Array<[string, string]>, o: Opts = {}): LaunchSpec {
  const network = o.network ?? NONE;
  const config = create(ContainerConfigSchema, {
    commandInfo: o.shell === false ? { shell: false, value: "run" } : { shell: true, value: "echo hi" },
    containerInfo: {
      type: ContainerInfo_Type.DOCKER,
      docker: { image: "busybox:1.36", network, parameters: params.map(([key, value]) => ({ key, value })), volumeDriver: o.volumeDriver },
      networkInfos: network === USER ? [{ name: "app-net" }] : [],
      linuxInfo: o.linux,
      rlimitInfo: o.rlimits ? { rlimits: o.rlimits } : undefined,
    },
    resources: o.memMb === undefined ? [] : [{ name: "mem", type: Value_Type.SCALAR, scalar: { value: o.memMb } }],
    user: o.user,
  });
  return resolveLaunchSpec("c1", config, {});
}

const placement = { agentId: "agent1", hostSandbox: "/var/lib/berth/sandboxes/c1", containerSandbox: "/mnt/mesos/sandbox" };

function build(params: Array<[string, string]>, o: Opts = {}, options: CreateOptions = {}): CreateSpec {
  return buildCreateSpec(spec(params, o), placement, options);
}

/** Building throws InvalidRequest (never another error) matching every pattern. */
function invalid(params: Array<[string, string]>, o: Opts, ...patterns: RegExp[]): void {
  let caught: unknown;
  try {
    build(params, o);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof InvalidRequest, `expected InvalidRequest for ${JSON.stringify(params)}, got ${String(caught)}`);
  for (const p of patterns) assert.match(caught.message, p);
}

const FACTS = { workDir: "/var/lib/berth", sandboxesDir: "/var/lib/berth/sandboxes", engineSockets: ["/var/run/docker.sock"], resolved: new Map<string, string | null>() };

function decide(params: Array<[string, string]>, o: Opts = {}, policy: Partial<Policy> = {}, engineLogMaxSize?: number): void {
  const s = spec(params, o);
  // Admission sees only launches the create options could be built for.
  buildCreateSpec(s, placement);
  admit(s, { ...defaultPolicy(), ...policy }, { ...FACTS, engineLogMaxSize });
}

/** Admission refuses with PermissionDenied: rule, field and value. */
function denied(params: Array<[string, string]>, o: Opts, policy: Partial<Policy>, rule: string, field: RegExp, value: string): void {
  let caught: unknown;
  try {
    decide(params, o, policy);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof PermissionDenied, `expected PermissionDenied for ${JSON.stringify(params)}, got ${String(caught)}`);
  assert.equal(caught.rule, rule);
  assert.match(caught.field, field);
  assert.equal(caught.value, value);
  assert.ok(caught.message.includes(rule) && caught.message.includes(JSON.stringify(value)), caught.message);
}

describe("docker parameters", () => {
  it("supports the issue's keys and the five earlier ones, and nothing that is Berth's own decision", () => {
    const issue = ["log-driver", "log-opt", "ulimit", "cap-add", "cap-drop", "security-opt", "user", "add-host", "dns", "dns-search", "dns-option", "read-only", "tmpfs", "init", "memory-swap", "memory-swappiness", "memory-reservation", "oom-score-adj", "oom-kill-disable", "pids-limit", "cpuset-cpus", "sysctl", "device", "volume-driver", "network-alias", "entrypoint", "stop-signal", "stop-timeout", "label", "workdir", "env", "hostname", "shm-size"];
    assert.deepEqual([...SUPPORTED_DOCKER_PARAMETERS].sort(), [...issue].sort());
    for (const key of ["privileged", "volume", "volumes-from", "net", "network", "pid", "ipc", "uts", "userns", "cgroup-parent", "runtime", "mount", "publish", "link", ""]) {
      invalid([[key, "x"]], {}, new RegExp(`parameters\\[0\\] key '${key}' is not supported; supported keys: `));
    }
  });

  describe("mapping, as the docker CLI sets each flag", () => {
    it("log-driver and log-opt → LogConfig; json-file keeps its size cap unless a log-opt changes it", () => {
      assert.deepEqual(build([]).HostConfig.LogConfig, { Type: "json-file", Config: { "max-size": String(10 * 1024 * 1024), "max-file": "2" } });
      assert.deepEqual(build([], {}, { engineLogMaxSize: 4096 }).HostConfig.LogConfig, { Type: "json-file", Config: { "max-size": "4096", "max-file": "2" } });
      assert.deepEqual(build([["log-opt", "max-size=1m"], ["log-opt", "max-file=3"], ["log-opt", "tag={{.Name}}"]]).HostConfig.LogConfig, {
        Type: "json-file",
        Config: { "max-size": "1m", "max-file": "3", tag: "{{.Name}}" },
      });
      assert.deepEqual(build([["log-driver", "local"], ["log-opt", "compress=false"]]).HostConfig.LogConfig, {
        Type: "local",
        Config: { "max-size": String(10 * 1024 * 1024), "max-file": "2", compress: "false" },
      });
      // Other drivers get their own options only (the engine keeps its cached copy for Berth).
      assert.deepEqual(build([["log-driver", "syslog"], ["log-opt", "syslog-address=udp://127.0.0.1:514"]]).HostConfig.LogConfig, {
        Type: "syslog",
        Config: { "syslog-address": "udp://127.0.0.1:514" },
      });
    });

    it("ulimit → Ulimits (soft, or soft:hard; -1 unlimited)", () => {
      assert.deepEqual(build([["ulimit", "nofile=1024:2048"], ["ulimit", "core=0"], ["ulimit", "memlock=-1:-1"]]).HostConfig.Ulimits, [
        { Name: "nofile", Soft: 1024, Hard: 2048 },
        { Name: "core", Soft: 0, Hard: 0 },
        { Name: "memlock", Soft: -1, Hard: -1 },
      ]);
    });

    it("cap-add and cap-drop → CapAdd, CapDrop (with or without CAP_, any case)", () => {
      const c = build([["cap-add", "net_admin"], ["cap-add", "CAP_SYS_PTRACE"], ["cap-drop", "MKNOD"], ["cap-drop", "all"]]);
      assert.deepEqual(c.HostConfig.CapAdd, ["CAP_NET_ADMIN", "CAP_SYS_PTRACE"]);
      assert.deepEqual(c.HostConfig.CapDrop, ["CAP_MKNOD", "ALL"]);
    });

    it("security-opt → SecurityOpt", () => {
      const c = build([["security-opt", "no-new-privileges"], ["security-opt", "seccomp=unconfined"], ["security-opt", "apparmor=docker-default"], ["security-opt", "label=level:s0:c100,c200"]]);
      assert.deepEqual(c.HostConfig.SecurityOpt, ["no-new-privileges:true", "seccomp=unconfined", "apparmor=docker-default", "label=level:s0:c100,c200"]);
      assert.deepEqual(build([["security-opt", "no-new-privileges:false"]]).HostConfig.SecurityOpt, ["no-new-privileges:false"]);
    });

    it("user → User", () => {
      assert.equal(build([["user", "1000:1000"]]).User, "1000:1000");
      // The same user as the launch's is fine.
      assert.equal(build([["user", "nobody"]], { user: "nobody" }).User, "nobody");
    });

    it("add-host, dns, dns-search, dns-option → ExtraHosts, Dns, DnsSearch, DnsOptions", () => {
      const c = build([["add-host", "db:127.0.0.1"], ["add-host", "v6=::1"], ["add-host", "gw:host-gateway"], ["dns", "127.0.0.53"], ["dns", "::1"], ["dns-search", "example.com"], ["dns-option", "ndots:2"], ["dns-option", "rotate"]]);
      assert.deepEqual(c.HostConfig.ExtraHosts, ["db:127.0.0.1", "v6:::1", "gw:host-gateway"]);
      assert.deepEqual(c.HostConfig.Dns, ["127.0.0.53", "::1"]);
      assert.deepEqual(c.HostConfig.DnsSearch, ["example.com"]);
      assert.deepEqual(c.HostConfig.DnsOptions, ["ndots:2", "rotate"]);
    });

    it("read-only, init, oom-kill-disable: bare or true/false", () => {
      const c = build([["read-only", ""], ["init", "true"], ["oom-kill-disable", "false"]]);
      assert.equal(c.HostConfig.ReadonlyRootfs, true);
      assert.equal(c.HostConfig.Init, true);
      assert.equal(c.HostConfig.OomKillDisable, false);
      assert.equal(build([["read-only", "false"]]).HostConfig.ReadonlyRootfs, false);
    });

    it("tmpfs → Tmpfs (path → options)", () => {
      assert.deepEqual(build([["tmpfs", "/run"], ["tmpfs", "/scratch:rw,noexec,size=64m,mode=1777"]]).HostConfig.Tmpfs, { "/run": "", "/scratch": "rw,noexec,size=64m,mode=1777" });
    });

    it("memory-swap, memory-swappiness, memory-reservation next to the mem resource", () => {
      const c = build([["memory-swap", "256m"], ["memory-swappiness", "0"], ["memory-reservation", "64m"]], { memMb: 128 });
      assert.equal(c.HostConfig.Memory, 128 * 1024 * 1024);
      assert.equal(c.HostConfig.MemorySwap, 256 * 1024 * 1024);
      assert.equal(c.HostConfig.MemorySwappiness, 0);
      assert.equal(c.HostConfig.MemoryReservation, 64 * 1024 * 1024);
      assert.equal(build([["memory-swap", "-1"]], { memMb: 64 }).HostConfig.MemorySwap, -1);
    });

    it("oom-score-adj, pids-limit (over --default_pids_limit), cpuset-cpus", () => {
      const c = build([["oom-score-adj", "500"], ["pids-limit", "64"], ["cpuset-cpus", "0-1,3"]], {}, { pidsLimit: 4096 });
      assert.equal(c.HostConfig.OomScoreAdj, 500);
      assert.equal(c.HostConfig.PidsLimit, 64);
      assert.equal(c.HostConfig.CpusetCpus, "0-1,3");
      assert.equal(build([], {}, { pidsLimit: 4096 }).HostConfig.PidsLimit, 4096);
    });

    it("sysctl → Sysctls", () => {
      assert.deepEqual(build([["sysctl", "net.ipv4.ip_unprivileged_port_start=0"], ["sysctl", "kernel.shmmax=1000000"]]).HostConfig.Sysctls, {
        "net.ipv4.ip_unprivileged_port_start": "0",
        "kernel.shmmax": "1000000",
      });
    });

    it("device → Devices, in the CLI's four forms", () => {
      assert.deepEqual(build([["device", "/dev/fuse"], ["device", "/dev/net/tun:/dev/tun"], ["device", "/dev/null:/dev/n2:r"], ["device", "/dev/zero:rw"]]).HostConfig.Devices, [
        { PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm" },
        { PathOnHost: "/dev/net/tun", PathInContainer: "/dev/tun", CgroupPermissions: "rwm" },
        { PathOnHost: "/dev/null", PathInContainer: "/dev/n2", CgroupPermissions: "r" },
        { PathOnHost: "/dev/zero", PathInContainer: "/dev/zero", CgroupPermissions: "rw" },
      ]);
    });

    it("volume-driver → VolumeDriver; network-alias → the USER network's aliases", () => {
      assert.equal(build([["volume-driver", "local"]]).HostConfig.VolumeDriver, "local");
      assert.deepEqual(build([["network-alias", "web"], ["network-alias", "www"]], { network: USER }).NetworkingConfig, { EndpointsConfig: { "app-net": { Aliases: ["web", "www"] } } });
    });

    it("entrypoint (shell=false), stop-signal, stop-timeout", () => {
      const c = build([["entrypoint", "/bin/app"], ["stop-signal", "quit"], ["stop-timeout", "30"]], { shell: false });
      assert.deepEqual(c.Entrypoint, ["/bin/app"]);
      assert.deepEqual(c.Cmd, ["run"]);
      assert.equal(c.StopSignal, "SIGQUIT");
      assert.equal(c.StopTimeout, 30);
      assert.equal(build([["stop-signal", "15"]]).StopSignal, "15");
      // The empty entrypoint clears the image's, as `--entrypoint ""` does.
      assert.deepEqual(build([["entrypoint", ""]], { shell: false }).Entrypoint, [""]);
      // stop-timeout is also the grace of Berth's own stop when the kill policy names none.
      assert.equal(stopTimeoutMs(spec([["stop-timeout", "30"]])), 30_000);
      assert.equal(stopTimeoutMs(spec([])), undefined);
    });

    it("label, workdir, env, hostname, shm-size as before", () => {
      const c = build([["label", "team=a=b"], ["workdir", "/work"], ["env", "P=x=y"], ["hostname", "h1"], ["shm-size", "1.5k"]]);
      assert.equal(c.Labels.team, "a=b");
      assert.equal(c.WorkingDir, "/work");
      assert.ok(c.Env.includes("P=x=y"));
      assert.equal(c.Hostname, "h1");
      assert.equal(c.HostConfig.ShmSize, 1536);
    });

    it("reads sizes as the docker CLI does (1024-based)", () => {
      assert.equal(parseDockerSize("64m"), 64 * 1024 * 1024);
      assert.equal(parseDockerSize("1G"), 1024 ** 3);
      assert.equal(parseDockerSize("100"), 100);
      assert.equal(parseDockerSize("2 MiB"), 2 * 1024 * 1024);
      assert.equal(parseDockerSize("lots"), undefined);
      assert.equal(parseDockerSize("99999999999999999999g"), undefined);
    });
  });

  describe("malformed values and repeats (INVALID_ARGUMENT naming the parameter, key and value)", () => {
    const cases: Array<[string, string, RegExp, Opts?]> = [
      ["log-opt", "max-size", /is not KEY=VALUE/],
      ["log-opt", "max-size=lots", /is not a size/],
      ["log-opt", "max-file=0", /is not a file count/],
      ["log-opt", "syslog-address=udp://x", /is not an option of the json-file log driver/],
      ["log-driver", "bad driver", /is not a log driver name/],
      ["log-driver", "none", /keeps no output the engine's logs endpoint can serve/],
      ["ulimit", "nofile", /is not NAME=SOFT\[:HARD\]/],
      ["ulimit", "files=1:2", /names no rlimit/],
      ["ulimit", "nofile=2048:1024", /soft limit above its hard limit/],
      ["ulimit", "nofile=-5", /below -1/],
      ["cap-add", "SYS_GODMODE", /is not a Linux capability/],
      ["cap-drop", "", /is not a Linux capability/],
      ["security-opt", "seccomp=/etc/profile.json", /profile_name \(from --seccomp_config_dir\)/],
      ["security-opt", "systempaths=unconfined", /is not one of no-new-privileges/],
      ["security-opt", "label=bogus", /is not label=disable/],
      ["user", "root; rm", /is not a user name or uid/],
      ["add-host", "db", /is not HOST:ADDRESS/],
      ["add-host", "db:not-an-ip", /not an IP address/],
      ["dns", "dns.example.com", /is not an IP address/],
      ["dns-search", "bad_domain!", /is not a domain name/],
      ["dns-option", "ndots 2", /is not a resolv\.conf option/],
      ["read-only", "yes", /is not true or false/],
      ["init", "1", /is not true or false/],
      ["tmpfs", "relative", /its path is not an absolute path/],
      ["tmpfs", "/", /mounts over '\/'/],
      ["tmpfs", "/a/../b", /contains '\.\.'/],
      ["tmpfs", "/scratch:size=64m,exec=1", /tmpfs option 'exec=1'/],
      ["tmpfs", "/mnt/mesos/sandbox", /which the sandbox or a volume already mounts/],
      ["memory-swap", "1g", /needs a memory limit/],
      ["memory-swap", "32m", /is below the memory limit/, { memMb: 64 }],
      ["memory-swap", "0", /is not a size/],
      ["memory-swappiness", "101", /is not between 0 and 100/],
      ["memory-reservation", "1g", /is above the memory limit/, { memMb: 64 }],
      ["oom-score-adj", "1001", /is not between -1000 and 1000/],
      ["oom-score-adj", "ten", /is not an integer/],
      ["pids-limit", "-1", /is not between 1 and/],
      ["pids-limit", "0", /is not between 1 and/],
      ["cpuset-cpus", "0-", /is not a cpu list/],
      ["cpuset-cpus", "3-1", /is not a cpu list/],
      ["sysctl", "net.core.somaxconn", /is not NAME=VALUE/],
      ["sysctl", "NOT A SYSCTL=1", /is not a sysctl name/],
      ["device", "dev/fuse", /its host path is not an absolute path/],
      ["device", "/dev/fuse:/dev/fuse:rwx", /is not HOST_PATH/],
      ["device", "/dev/../etc/shadow", /contains '\.\.'/],
      ["volume-driver", "-x", /is not a volume driver name/],
      ["network-alias", "web", /needs network USER/],
      ["network-alias", "bad alias", /is not a host name/, { network: USER }],
      ["entrypoint", "/bin/app", /cannot be combined with command_info\.shell=true/],
      ["stop-signal", "SIGFOO", /is not a signal/],
      ["stop-timeout", "-1", /is not between 0 and 86400/],
      ["hostname", "h1", /cannot be set with network HOST/, { network: HOST }],
      ["dns", "127.0.0.1", /cannot be set with network HOST/, { network: HOST }],
      ["dns-search", "example.com", /cannot be set with network HOST/, { network: HOST }],
      ["shm-size", "lots", /is not a size like 64m/],
    ];
    for (const [key, value, why, o] of cases) {
      it(`${key} ${JSON.stringify(value)}`, () => {
        const shown = `'${value.replace(/'/g, "\\'")}'`.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
        invalid([["label", "ok=1"], [key, value]], o ?? {}, new RegExp(`parameters\\[1\\] ${key} ${shown} `), why);
      });
    }

    it("an env value never appears in its refusal (it may be a secret)", () => {
      invalid([["env", "TOKEN"]], {}, /parameters\[0\] env 'TOKEN' is not NAME=VALUE/);
      for (const value of ["=s3cret", "TOKEN=s3\0cret"]) {
        assert.throws(() => build([["env", value]]), (e: unknown) => e instanceof InvalidRequest && /parameters\[0\] env '(TOKEN)?' is not NAME=VALUE/.test(e.message) && !e.message.includes("s3"));
      }
    });

    it("a single-valued key given twice is refused naming both", () => {
      for (const [key, a, b] of [["user", "1", "2"], ["log-driver", "local", "json-file"], ["read-only", "true", "true"], ["pids-limit", "5", "6"], ["stop-signal", "TERM", "INT"], ["workdir", "/a", "/b"], ["entrypoint", "/a", "/b"]] as const) {
        invalid([[key, a], ["label", "x=1"], [key, b]], { shell: false }, new RegExp(`parameters\\[2\\] ${key} '${b}' repeats .*parameters\\[0\\] \\('${a}'\\); docker takes one ${key}`));
      }
    });

    it("repeatable keys add up, but one ulimit, sysctl, tmpfs path, log-opt or device path twice is refused", () => {
      for (const [key, a, b, noun] of [["ulimit", "nofile=1", "nofile=2:3", "rlimit"], ["sysctl", "net.a.b=1", "net.a.b=2", "sysctl"], ["tmpfs", "/t", "/t:size=1m", "path"], ["log-opt", "max-file=1", "max-file=2", "option"], ["device", "/dev/fuse", "/dev/zero:/dev/fuse", "container path"], ["cap-add", "NET_ADMIN", "cap_net_admin", "capability"], ["security-opt", "label=user:a", "label=user:b", "kind of option"]] as const) {
        invalid([[key, a], [key, b]], {}, new RegExp(`parameters\\[1\\] ${key} '${b.replace(/[/]/g, "\\/")}' repeats container_info\\.docker\\.parameters\\[0\\] \\('${a.replace(/[/]/g, "\\/")}'\\); give each ${noun} once`));
      }
    });

    it("parameters that repeat the launch's own fields are refused", () => {
      invalid([["user", "2000"]], { user: "1000" }, /parameters\[0\] user '2000' differs from the launch's user '1000'/);
      invalid([["shm-size", "64m"]], { linux: { shmSize: 64, ipcMode: LinuxInfo_IpcMode.PRIVATE } }, /parameters\[0\] shm-size '64m' repeats container_info\.linux_info\.shm_size/);
      invalid([["ulimit", "nofile=1:2"]], { rlimits: [{ type: RLimitInfo_RLimit_Type.RLMT_NOFILE, soft: 1n, hard: 2n }] }, /parameters\[0\] ulimit 'nofile=1:2' repeats container_info\.rlimit_info's nofile/);
      assert.throws(
        () => buildCreateSpec(resolveLaunchSpec("c1", create(ContainerConfigSchema, { commandInfo: { shell: true, value: "x" }, containerInfo: { type: ContainerInfo_Type.DOCKER, hostname: "a", docker: { image: "busybox:1.36", network: NONE, parameters: [{ key: "hostname", value: "b" }] } } }), {}), placement),
        (e: unknown) => e instanceof InvalidRequest && /parameters\[0\] hostname 'b' differs from container_info\.hostname 'a'/.test(e.message),
      );
      invalid([["volume-driver", "local"]], { volumeDriver: "nfs" }, /parameters\[0\] volume-driver 'local' differs from container_info\.docker\.volume_driver 'nfs'/);
    });

    it("two label options of different parts are fine, as are different ulimits", () => {
      assert.deepEqual(build([["security-opt", "label=user:u"], ["security-opt", "label=role:r"]]).HostConfig.SecurityOpt, ["label=user:u", "label=role:r"]);
      assert.equal(build([["ulimit", "nofile=1"], ["ulimit", "nproc=2"]]).HostConfig.Ulimits?.length, 2);
    });

    it("a launch's user and a user parameter give one effective user, named by the field that set it", () => {
      assert.deepEqual(effectiveUser(spec([["user", "1000"]])), { user: "1000", field: "container_info.docker.parameters[0]" });
      assert.deepEqual(effectiveUser(spec([], { user: "app" })), { user: "app", field: "container_config.user" });
      assert.equal(effectiveUser(spec([])), undefined);
    });

    it("parsing only ever throws InvalidRequest, whatever the key and value", () => {
      const odd = ["", "=", "==", ":", "::", "-1", "\0", "a\nb", "x".repeat(5000), "1e309", "0x10", "🙂", "/dev/", "nofile=1:", "=1", "net.=1"];
      for (const key of SUPPORTED_DOCKER_PARAMETERS) {
        for (const value of odd) {
          try {
            parseDockerParameters([{ key, value }]);
          } catch (err) {
            assert.ok(err instanceof InvalidRequest, `${key}=${JSON.stringify(value)} threw ${String(err)}`);
          }
        }
      }
    });
  });

  describe("the operator policy (PERMISSION_DENIED naming rule, parameter and value)", () => {
    const p0 = /^container_info\.docker\.parameters\[0\] /;

    it("cap-add: Docker's defaults always, more only when allowed_capabilities lists them, ALL never", () => {
      decide([["cap-add", "CHOWN"], ["cap-add", "NET_BIND_SERVICE"], ["cap-drop", "ALL"]]);
      denied([["cap-add", "SYS_ADMIN"]], {}, {}, "allowed_capabilities", p0, "SYS_ADMIN");
      decide([["cap-add", "SYS_ADMIN"]], {}, { allowedCapabilities: ["SYS_ADMIN"] });
      denied([["cap-add", "ALL"]], {}, { allowedCapabilities: ["SYS_ADMIN"] }, "allowed_capabilities", p0, "ALL");
    });

    it("security-opt: seccomp=unconfined, apparmor=unconfined and label options only when allowed", () => {
      decide([["security-opt", "no-new-privileges"], ["security-opt", "apparmor=docker-default"]]);
      denied([["security-opt", "seccomp=unconfined"]], {}, {}, "allow_unconfined_seccomp", p0, "seccomp=unconfined");
      decide([["security-opt", "seccomp=unconfined"]], {}, { allowUnconfinedSeccomp: true });
      denied([["security-opt", "apparmor=unconfined"]], {}, {}, "allow_unconfined_apparmor", p0, "apparmor=unconfined");
      decide([["security-opt", "apparmor=unconfined"]], {}, { allowUnconfinedApparmor: true });
      denied([["security-opt", "label=disable"]], {}, {}, "allow_selinux_label_options", p0, "label=disable");
      denied([["security-opt", "label=type:spc_t"]], {}, {}, "allow_selinux_label_options", p0, "label=type:spc_t");
      decide([["security-opt", "label=disable"]], {}, { allowSelinuxLabelOptions: true });
    });

    it("sysctl: only the namespaced set, net.* not with the host's network, IPC ones not with the host's IPC", () => {
      decide([["sysctl", "kernel.shmmax=1"], ["sysctl", "kernel.shm_rmid_forced=1"], ["sysctl", "kernel.msgmax=1"], ["sysctl", "kernel.sem=1 2 3 4"], ["sysctl", "fs.mqueue.msg_max=20"], ["sysctl", "net.ipv4.tcp_syncookies=1"]]);
      for (const name of ["kernel.panic", "vm.overcommit_memory", "fs.file-max", "kernel.hostname", "kernel.semx"]) {
        denied([["sysctl", `${name}=1`]], {}, {}, "namespaced_sysctls", p0, `${name}=1`);
      }
      denied([["sysctl", "net.ipv4.ip_forward=1"]], { network: HOST }, {}, "namespaced_sysctls", p0, "net.ipv4.ip_forward=1");
      denied([["sysctl", "kernel.shmmax=1"]], { linux: { ipcMode: LinuxInfo_IpcMode.SHARE_PARENT } }, { allowHostIpc: true }, "namespaced_sysctls", p0, "kernel.shmmax=1");
      decide([["sysctl", "net.ipv4.ip_forward=1"]], { network: BRIDGE });
      assert.equal(sysctlRefusal("net.core.somaxconn", false, false), undefined);
    });

    it("device: only host devices allowed_devices lists", () => {
      denied([["device", "/dev/fuse"]], {}, {}, "allowed_devices", p0, "/dev/fuse");
      decide([["device", "/dev/fuse:/dev/f:rw"]], {}, { allowedDevices: ["/dev/fuse"] });
      denied([["device", "/dev/sda"]], {}, { allowedDevices: ["/dev/fuse"] }, "allowed_devices", p0, "/dev/sda");
    });

    it("oom-kill-disable and a negative oom-score-adj only when allowed", () => {
      decide([["oom-kill-disable", "false"], ["oom-score-adj", "100"]]);
      denied([["oom-kill-disable", ""]], {}, {}, "allow_oom_kill_disable", p0, "");
      decide([["oom-kill-disable", "true"]], {}, { allowOomKillDisable: true });
      denied([["oom-score-adj", "-500"]], {}, {}, "allow_negative_oom_score_adj", p0, "-500");
      decide([["oom-score-adj", "-500"]], {}, { allowNegativeOomScoreAdj: true });
    });

    it("log-driver: json-file and local by default, others when allowed_log_drivers lists them", () => {
      decide([["log-driver", "local"]]);
      denied([["log-driver", "syslog"]], {}, {}, "allowed_log_drivers", p0, "syslog");
      decide([["log-driver", "syslog"], ["log-opt", "syslog-address=udp://127.0.0.1:514"]], {}, { allowedLogDrivers: ["json-file", "syslog"] });
      // The cached copy Berth reads from is not the task's to turn off, whatever the policy.
      invalid([["log-driver", "syslog"], ["log-opt", "cache-disabled=true"]], {}, /parameters\[1\] log-opt 'cache-disabled=true' changes the engine's cached copy/);
    });

    it("log-opt: the engine's copy stays within two files of --container_log_max_size", () => {
      decide([["log-opt", "max-size=5m"], ["log-opt", "max-file=4"]]); // 20 MiB = the default cap
      decide([["log-opt", "max-size=1k"]], {}, {}, 1024);
      let caught: unknown;
      try {
        decide([["label", "a=b"], ["log-opt", "max-size=1g"]]);
      } catch (err) {
        caught = err;
      }
      assert.ok(caught instanceof PermissionDenied, String(caught));
      assert.equal(caught.rule, "container_log_max_size");
      assert.equal(caught.field, "container_info.docker.parameters[1] log-opt");
      assert.equal(caught.value, "max-size=1g");
      assert.match(caught.message, /at most 20971520 \(2 files of --container_log_max_size 10485760\)/);
      assert.throws(() => decide([["log-opt", "max-file=3"]], {}, {}, 1024), (e: unknown) => e instanceof PermissionDenied && e.value === "max-file=3");
    });

    it("volume-driver and docker.volume_driver through docker_volumes.allowed_drivers", () => {
      decide([["volume-driver", "local"]]);
      denied([["volume-driver", "nfs"]], {}, {}, "docker_volumes.allowed_drivers", p0, "nfs");
      decide([["volume-driver", "nfs"]], {}, { dockerVolumes: { allowedDrivers: ["local", "nfs"], allowDriverOptions: false } });
      denied([], { volumeDriver: "nfs" }, {}, "docker_volumes.allowed_drivers", /^container_info\.docker\.volume_driver$/, "nfs");
    });

    it("user: the same non-root rule as the launch's own user", () => {
      denied([["user", "root"]], {}, { requireNonRootUser: true }, "require_non_root_user", /^container_info\.docker\.parameters\[0\]$/, "root");
      denied([["user", "0:0"]], {}, { requireNonRootUser: true }, "require_non_root_user", /^container_info\.docker\.parameters\[0\]$/, "0:0");
      decide([["user", "1000"]], {}, { requireNonRootUser: true });
    });
  });
});
