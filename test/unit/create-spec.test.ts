// buildCreateSpec: a Mesos launch mapped to Engine API create options, as Mesos' docker
// containerizer maps it to `docker run`. Pure, so no engine is involved.
import { strict as assert } from "node:assert";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { ContainerConfigSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import {
  CapabilityInfo_Capability,
  CommandInfoSchema,
  ContainerInfoSchema,
  ContainerInfo_DockerInfo_Network,
  ContainerInfo_Type,
  LinuxInfo_IpcMode,
  MountPropagation_Mode,
  RLimitInfo_RLimit_Type,
  Value_Type,
  Volume_Mode,
  Volume_Source_SandboxPath_Type,
  Volume_Source_Type,
  type ContainerInfo,
  type ContainerInfo_DockerInfo,
  type ResourceSchema,
} from "../../src/gen/mesos/v1/mesos_pb.js";
import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { buildCreateSpec, SUPPORTED_DOCKER_PARAMETERS, type SandboxPlacement } from "../../src/containerizer/create-spec.js";
import { SeccompProfiles } from "../../src/containerizer/seccomp.js";
import { InvalidRequest } from "../../src/containerizer/errors.js";
import { resolveLaunchSpec, type LaunchSpec } from "../../src/containerizer/launch-spec.js";
import type { CreateSpec } from "../../src/docker/engine-port.js";

// The plain-object half of each init union, so partial inits can be spread together.
type ContainerInit = Exclude<MessageInitShape<typeof ContainerInfoSchema>, ContainerInfo>;
type DockerInit = Exclude<NonNullable<ContainerInit["docker"]>, ContainerInfo_DockerInfo>;
type CommandInit = MessageInitShape<typeof CommandInfoSchema>;
type ResourceInit = MessageInitShape<typeof ResourceSchema>;

const placement: SandboxPlacement = {
  agentId: "agent1",
  hostSandbox: "/var/lib/berth/sandboxes/c1",
  containerSandbox: "/mnt/mesos/sandbox",
};

interface Launch {
  container?: Omit<ContainerInit, "docker"> & { docker?: Partial<DockerInit> };
  command?: CommandInit;
  resources?: ResourceInit[];
  user?: string;
  env?: Record<string, string>;
}

function spec(l: Launch = {}): LaunchSpec {
  const config = create(ContainerConfigSchema, {
    commandInfo: l.command ?? { shell: true, value: "echo hi" },
    containerInfo: {
      type: ContainerInfo_Type.DOCKER,
      ...l.container,
      docker: { image: "busybox:1.36", ...l.container?.docker },
    },
    resources: l.resources ?? [],
    user: l.user,
  });
  return resolveLaunchSpec("c1", config, l.env ?? {});
}

function build(l: Launch = {}, p: SandboxPlacement = placement): CreateSpec {
  return buildCreateSpec(spec(l), p);
}

/** Asserts that building throws an InvalidRequest (never a TypeError) whose message matches every pattern. */
function rejects(l: Launch, ...patterns: RegExp[]): void {
  let caught: unknown;
  try {
    build(l);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof InvalidRequest, `expected InvalidRequest, got ${String(caught)}`);
  for (const p of patterns) assert.match(caught.message, p);
}

function scalar(name: string, value: number): ResourceInit {
  return { name, type: Value_Type.SCALAR, scalar: { value } };
}

function ports(...ranges: Array<[number, number]>): ResourceInit {
  return { name: "ports", type: Value_Type.RANGES, ranges: { range: ranges.map(([b, e]) => ({ begin: BigInt(b), end: BigInt(e) })) } };
}

describe("buildCreateSpec", () => {
  describe("sandbox, name, labels and environment", () => {
    it("bind-mounts the sandbox with the Mounts API at the in-container sandbox dir", () => {
      const c = build();
      assert.deepEqual(c.HostConfig.Mounts[0], {
        Type: "bind",
        Source: placement.hostSandbox,
        Target: placement.containerSandbox,
        ReadOnly: false,
      });
      assert.equal((c.HostConfig as Record<string, unknown>).Binds, undefined);
    });

    it("keeps a ':' or ',' in the host sandbox path intact", () => {
      const odd = { ...placement, hostSandbox: "/var/lib/a:b,c=d/sandbox" };
      const c = build({}, odd);
      assert.equal(c.HostConfig.Mounts[0]!.Source, "/var/lib/a:b,c=d/sandbox");
    });

    it("names the container berth-<agent id length>-<agent>-<id> and labels it with both ids", () => {
      const c = build();
      assert.equal(c.name, "berth-6-agent1-c1");
      assert.deepEqual(c.Labels, { "berth.agent_id": "agent1", "berth.container_id": "c1" });
      assert.equal(c.Image, "busybox:1.36");
    });

    it("sets MESOS_SANDBOX and MESOS_CONTAINER_NAME after the task's variables", () => {
      const c = build({ command: { value: "true", environment: { variables: [{ name: "A", value: "1" }] } } });
      assert.deepEqual(c.Env, ["A=1", "MESOS_SANDBOX=/mnt/mesos/sandbox", "MESOS_CONTAINER_NAME=berth-6-agent1-c1"]);
    });

    it("keeps '=' and newlines in environment values intact", () => {
      const c = build({
        command: { value: "true", environment: { variables: [{ name: "X", value: "a=b==c\nline2\r\n" }] } },
        env: { EXTRA: "k=v" },
      });
      assert.ok(c.Env.includes("X=a=b==c\nline2\r\n"));
      assert.ok(c.Env.includes("EXTRA=k=v"));
    });
  });

  describe("command", () => {
    it("shell=true (the default) runs /bin/sh -c value, overriding the entrypoint", () => {
      const c = build({ command: { value: "echo $HOME && exit 3" } });
      assert.deepEqual(c.Entrypoint, ["/bin/sh", "-c"]);
      assert.deepEqual(c.Cmd, ["echo $HOME && exit 3"]);
    });

    it("shell=false passes value and arguments as Cmd and keeps the image entrypoint", () => {
      const c = build({ command: { shell: false, value: "/bin/echo", arguments: ["a b", "c"] } });
      assert.equal(c.Entrypoint, undefined);
      assert.deepEqual(c.Cmd, ["/bin/echo", "a b", "c"]);
    });

    it("shell=false without a value runs the image's own command", () => {
      const c = build({ command: { shell: false } });
      assert.equal(c.Entrypoint, undefined);
      assert.equal(c.Cmd, undefined);
    });

    it("honours the user", () => {
      assert.equal(build({ user: "nobody" }).User, "nobody");
      assert.equal(build({ command: { value: "id", user: "1000:1000" } }).User, "1000:1000");
      assert.equal(build().User, undefined);
    });
  });

  describe("volumes", () => {
    it("maps a legacy relative host_path into the sandbox and a relative container_path under the container sandbox", () => {
      const c = build({ container: { volumes: [{ containerPath: "data", hostPath: "cache/x", mode: Volume_Mode.RW }] } });
      assert.deepEqual(c.HostConfig.Mounts[1], {
        Type: "bind",
        Source: "/var/lib/berth/sandboxes/c1/cache/x",
        Target: "/mnt/mesos/sandbox/data",
        ReadOnly: false,
      });
    });

    it("maps a legacy absolute host_path as-is, keeping ':' and ','", () => {
      const c = build({ container: { volumes: [{ containerPath: "/etc/x", hostPath: "/srv/a:b,c", mode: Volume_Mode.RO }] } });
      assert.deepEqual(c.HostConfig.Mounts[1], { Type: "bind", Source: "/srv/a:b,c", Target: "/etc/x", ReadOnly: true });
    });

    it("rejects a legacy host_path that escapes the sandbox or contains '..'", () => {
      rejects({ container: { volumes: [{ containerPath: "/x", hostPath: "../other", mode: Volume_Mode.RW }] } }, /container_info\.volumes\[0\]\.host_path/, /'\.\.\/other'/, /leaves the sandbox/);
      rejects({ container: { volumes: [{ containerPath: "/x", hostPath: "/srv/../etc", mode: Volume_Mode.RW }] } }, /container_info\.volumes\[0\]\.host_path/, /'\/srv\/\.\.\/etc'/);
    });

    it("rejects a container_path with '..' or an empty one", () => {
      rejects({ container: { volumes: [{ containerPath: "../x", hostPath: "/srv", mode: Volume_Mode.RW }] } }, /volumes\[0\]\.container_path '\.\.\/x'/);
      rejects({ container: { volumes: [{ containerPath: "", hostPath: "/srv", mode: Volume_Mode.RW }] } }, /volumes\[0\]\.container_path is empty/);
    });

    it("maps a DOCKER_VOLUME source with its driver and options", () => {
      const c = build({
        container: {
          volumes: [
            {
              containerPath: "/data",
              mode: Volume_Mode.RO,
              source: {
                type: Volume_Source_Type.DOCKER_VOLUME,
                dockerVolume: { name: "vol1", driver: "rexray", driverOptions: { parameter: [{ key: "size", value: "10" }] } },
              },
            },
          ],
        },
      });
      assert.deepEqual(c.HostConfig.Mounts[1], {
        Type: "volume",
        Source: "vol1",
        Target: "/data",
        ReadOnly: true,
        VolumeOptions: { DriverConfig: { Name: "rexray", Options: { size: "10" } } },
      });
    });

    it("maps a DOCKER_VOLUME without driver to a plain named volume", () => {
      const c = build({
        container: { volumes: [{ containerPath: "/d", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.DOCKER_VOLUME, dockerVolume: { name: "v2" } } }] },
      });
      assert.deepEqual(c.HostConfig.Mounts[1], { Type: "volume", Source: "v2", Target: "/d", ReadOnly: false });
    });

    it("rejects a DOCKER_VOLUME with a bad name, naming it", () => {
      rejects(
        { container: { volumes: [{ containerPath: "/d", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.DOCKER_VOLUME, dockerVolume: { name: "a/b" } } }] } },
        /volumes\[0\]\.source\.docker_volume\.name 'a\/b'/,
      );
    });

    it("maps a HOST_PATH source with mount propagation", () => {
      const c = build({
        container: {
          volumes: [
            {
              containerPath: "/host",
              mode: Volume_Mode.RW,
              source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: "/srv/x,y:z", mountPropagation: { mode: MountPropagation_Mode.BIDIRECTIONAL } } },
            },
            {
              containerPath: "/host2",
              mode: Volume_Mode.RO,
              source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: "/srv/2", mountPropagation: { mode: MountPropagation_Mode.HOST_TO_CONTAINER } } },
            },
            { containerPath: "/host3", mode: Volume_Mode.RO, source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: "/srv/3" } } },
          ],
        },
      });
      assert.deepEqual(c.HostConfig.Mounts.slice(1), [
        { Type: "bind", Source: "/srv/x,y:z", Target: "/host", ReadOnly: false, BindOptions: { Propagation: "rshared" } },
        { Type: "bind", Source: "/srv/2", Target: "/host2", ReadOnly: true, BindOptions: { Propagation: "rslave" } },
        { Type: "bind", Source: "/srv/3", Target: "/host3", ReadOnly: true },
      ]);
    });

    it("rejects a relative or escaping HOST_PATH source", () => {
      rejects({ container: { volumes: [{ containerPath: "/h", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: "rel" } } }] } }, /source\.host_path\.path 'rel' is not an absolute path/);
      rejects({ container: { volumes: [{ containerPath: "/h", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: "/a/../b" } } }] } }, /source\.host_path\.path '\/a\/\.\.\/b' contains '\.\.'/);
      rejects({ container: { volumes: [{ containerPath: "/h", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.HOST_PATH } }] } }, /source\.host_path\.path ''/);
    });

    it("maps a SANDBOX_PATH SELF source inside the sandbox", () => {
      const c = build({
        container: {
          volumes: [{ containerPath: "/shared", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.SANDBOX_PATH, sandboxPath: { type: Volume_Source_SandboxPath_Type.SELF, path: "sub/dir" } } }],
        },
      });
      assert.deepEqual(c.HostConfig.Mounts[1], { Type: "bind", Source: "/var/lib/berth/sandboxes/c1/sub/dir", Target: "/shared", ReadOnly: false });
    });

    it("keeps SANDBOX_PATH inside a sandbox given with a trailing slash", () => {
      const c = buildCreateSpec(
        spec({ container: { volumes: [{ containerPath: "/s", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.SANDBOX_PATH, sandboxPath: { type: Volume_Source_SandboxPath_Type.SELF, path: "." } } }] } }),
        { ...placement, hostSandbox: "/var/lib/berth/sandboxes/c1/" },
      );
      assert.equal(c.HostConfig.Mounts[1]!.Source, "/var/lib/berth/sandboxes/c1");
    });

    it("rejects SANDBOX_PATH PARENT and paths escaping the sandbox", () => {
      rejects(
        { container: { volumes: [{ containerPath: "/p", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.SANDBOX_PATH, sandboxPath: { type: Volume_Source_SandboxPath_Type.PARENT, path: "x" } } }] } },
        /volumes\[0\]\.source\.sandbox_path\.type PARENT/,
      );
      for (const bad of ["../c2", "a/../../c2", "/etc"]) {
        rejects(
          { container: { volumes: [{ containerPath: "/p", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.SANDBOX_PATH, sandboxPath: { type: Volume_Source_SandboxPath_Type.SELF, path: bad } } }] } },
          /volumes\[0\]\.source\.sandbox_path\.path/,
          new RegExp(`'${bad.replace(/[.*/]/g, "\\$&")}' leaves the sandbox`),
        );
      }
    });

    it("rejects unsupported volume sources, naming the type", () => {
      rejects({ container: { volumes: [{ containerPath: "/s", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.SECRET } }] } }, /volumes\[0\]\.source\.type SECRET is not supported/);
    });
  });

  describe("resources", () => {
    it("gives 1024 CPU shares per cpu, at least 2", () => {
      assert.equal(build({ resources: [scalar("cpus", 0.5)] }).HostConfig.CpuShares, 512);
      assert.equal(build({ resources: [scalar("cpus", 1.2345)] }).HostConfig.CpuShares, 1264);
      assert.equal(build({ resources: [scalar("cpus", 0.001)] }).HostConfig.CpuShares, 2);
      assert.equal(build({ resources: [scalar("cpus", 0)] }).HostConfig.CpuShares, 2);
      assert.equal(build().HostConfig.CpuShares, undefined);
    });

    it("limits memory to mem MB (at least 32 MB) with swap equal to it", () => {
      const c = build({ resources: [scalar("mem", 128)] });
      assert.equal(c.HostConfig.Memory, 128 * 1024 * 1024);
      assert.equal(c.HostConfig.MemorySwap, 128 * 1024 * 1024);
      const small = build({ resources: [scalar("mem", 4)] });
      assert.equal(small.HostConfig.Memory, 32 * 1024 * 1024);
      assert.equal(small.HostConfig.MemorySwap, 32 * 1024 * 1024);
      assert.equal(build().HostConfig.Memory, undefined);
    });

    it("sums resources over roles", () => {
      const c = build({ resources: [{ ...scalar("mem", 64), role: "a" } as ResourceInit, { ...scalar("mem", 64), role: "b" } as ResourceInit] });
      assert.equal(c.HostConfig.Memory, 128 * 1024 * 1024);
    });
  });

  describe("network", () => {
    it("defaults to host and maps HOST, NONE and BRIDGE", () => {
      assert.equal(build().HostConfig.NetworkMode, "host");
      assert.equal(build({ container: { docker: { network: ContainerInfo_DockerInfo_Network.HOST } } }).HostConfig.NetworkMode, "host");
      assert.equal(build({ container: { docker: { network: ContainerInfo_DockerInfo_Network.NONE } } }).HostConfig.NetworkMode, "none");
      assert.equal(build({ container: { docker: { network: ContainerInfo_DockerInfo_Network.BRIDGE } } }).HostConfig.NetworkMode, "bridge");
    });

    it("maps BRIDGE port mappings to ExposedPorts and PortBindings", () => {
      const c = build({
        container: {
          docker: {
            network: ContainerInfo_DockerInfo_Network.BRIDGE,
            portMappings: [
              { hostPort: 31000, containerPort: 8080 },
              { hostPort: 31001, containerPort: 53, protocol: "UDP" },
            ],
          },
        },
        resources: [ports([31000, 31001])],
      });
      assert.deepEqual(c.ExposedPorts, { "8080/tcp": {}, "53/udp": {} });
      assert.deepEqual(c.HostConfig.PortBindings, { "8080/tcp": [{ HostPort: "31000" }], "53/udp": [{ HostPort: "31001" }] });
    });

    it("uses the network_infos name for USER", () => {
      const c = build({ container: { docker: { network: ContainerInfo_DockerInfo_Network.USER }, networkInfos: [{ name: "my-net" }] } });
      assert.equal(c.HostConfig.NetworkMode, "my-net");
    });

    it("rejects USER without exactly one network name", () => {
      rejects({ container: { docker: { network: ContainerInfo_DockerInfo_Network.USER } } }, /network_infos\[\]\.name; got 0/);
      rejects({ container: { docker: { network: ContainerInfo_DockerInfo_Network.USER }, networkInfos: [{ name: "bad name" }] } }, /network_infos\[0\]\.name 'bad name'/);
    });

    it("rejects port mappings with HOST or NONE", () => {
      for (const [network, name] of [[ContainerInfo_DockerInfo_Network.HOST, "HOST"], [ContainerInfo_DockerInfo_Network.NONE, "NONE"]] as const) {
        rejects({ container: { docker: { network, portMappings: [{ hostPort: 31000, containerPort: 80 }] } } }, /port_mappings need network BRIDGE or USER/, new RegExp(`network is ${name}`));
      }
    });

    it("rejects bad ports and protocols, naming the mapping and value", () => {
      const bridge = ContainerInfo_DockerInfo_Network.BRIDGE;
      rejects({ container: { docker: { network: bridge, portMappings: [{ hostPort: 0, containerPort: 80 }] } } }, /port_mappings\[0\]\.host_port 0 is not a port/);
      rejects({ container: { docker: { network: bridge, portMappings: [{ hostPort: 31000, containerPort: 70000 }] } } }, /port_mappings\[0\]\.container_port 70000 is not a port/);
      rejects({ container: { docker: { network: bridge, portMappings: [{ hostPort: 31000, containerPort: 80, protocol: "icmp" }] } }, resources: [ports([31000, 31000])] }, /port_mappings\[0\]\.protocol 'icmp'/);
    });

    it("refuses a host port outside the task's ports resource, as Mesos does", () => {
      const bridge = ContainerInfo_DockerInfo_Network.BRIDGE;
      rejects(
        { container: { docker: { network: bridge, portMappings: [{ hostPort: 31000, containerPort: 80 }] } } },
        /port_mappings\[0\]\.host_port 31000 \(container_port 80\) is not inside the task's ports resource; the task has no ports resource/,
      );
      rejects(
        { container: { docker: { network: bridge, portMappings: [{ hostPort: 31000, containerPort: 80 }, { hostPort: 31005, containerPort: 81 }] } }, resources: [ports([31000, 31001], [31003, 31003])] },
        /port_mappings\[1\]\.host_port 31005 \(container_port 81\) is not inside the task's ports resource; its ports resource holds 31000-31001, 31003/,
      );
      // Every range counts, also across several ports resources (roles).
      const c = build({ container: { docker: { network: bridge, portMappings: [{ hostPort: 31003, containerPort: 80 }, { hostPort: 32000, containerPort: 81 }] } }, resources: [ports([31000, 31003]), ports([32000, 32000])] });
      assert.deepEqual(c.HostConfig.PortBindings, { "80/tcp": [{ HostPort: "31003" }], "81/tcp": [{ HostPort: "32000" }] });
    });

    it("sets the hostname except with HOST network", () => {
      assert.equal(build({ container: { hostname: "web-1", docker: { network: ContainerInfo_DockerInfo_Network.BRIDGE } } }).Hostname, "web-1");
      rejects({ container: { hostname: "web-1" } }, /container_info\.hostname 'web-1' cannot be set with network HOST/);
      rejects({ container: { hostname: "bad_host!", docker: { network: ContainerInfo_DockerInfo_Network.BRIDGE } } }, /container_info\.hostname 'bad_host!'/);
    });
  });

  describe("docker parameters and privileges", () => {
    const withParams = (params: Array<[string, string]>, network = ContainerInfo_DockerInfo_Network.BRIDGE): Launch => ({
      container: { docker: { network, parameters: params.map(([key, value]) => ({ key, value })) } },
    });

    it("maps the supported keys", () => {
      const c = build(withParams([["label", "team=a=b"], ["workdir", "/work"], ["env", "P=x=y"], ["hostname", "h1"], ["shm-size", "64m"]]));
      assert.equal(c.Labels.team, "a=b");
      assert.equal(c.WorkingDir, "/work");
      assert.ok(c.Env.includes("P=x=y"));
      assert.match(c.Env.at(-1)!, /^MESOS_CONTAINER_NAME=/);
      assert.equal(c.Hostname, "h1");
      assert.equal(c.HostConfig.ShmSize, 64 * 1024 * 1024);
    });

    it("rejects an unknown key, naming it and the supported list", () => {
      rejects(withParams([["privileged", "true"]]), /parameters\[0\] key 'privileged' is not supported/, new RegExp(SUPPORTED_DOCKER_PARAMETERS.join(", ")));
    });

    it("rejects bad parameter values, naming them", () => {
      rejects(withParams([["label", "berth.agent_id=x"]]), /parameters\[0\] label 'berth\.agent_id=x'/);
      rejects(withParams([["workdir", "rel"]]), /parameters\[0\] workdir 'rel'/);
      rejects(withParams([["env", "NOVALUE"]]), /parameters\[0\] env 'NOVALUE'/);
      rejects(withParams([["shm-size", "lots"]]), /parameters\[0\] shm-size 'lots'/);
      rejects(withParams([["shm-size", "99999999999999999999g"]]), /parameters\[0\] shm-size '99999999999999999999g'/);
    });

    it("rejects a hostname parameter with HOST network", () => {
      rejects(withParams([["hostname", "h1"]], ContainerInfo_DockerInfo_Network.HOST), /parameters\[0\] hostname 'h1' cannot be set with network HOST/);
    });

    it("sets the default pids limit when one is configured (a launch names none)", () => {
      assert.equal(buildCreateSpec(spec(), placement, { pidsLimit: 4096 }).HostConfig.PidsLimit, 4096);
      assert.equal(buildCreateSpec(spec(), placement, { pidsLimit: 0 }).HostConfig.PidsLimit, undefined);
      assert.equal(build().HostConfig.PidsLimit, undefined);
    });

    it("sets privileged", () => {
      assert.equal(build({ container: { docker: { privileged: true } } }).HostConfig.Privileged, true);
      assert.equal(build().HostConfig.Privileged, undefined);
    });

    it("drops all capabilities and adds the listed ones", () => {
      const c = build({
        container: { linuxInfo: { effectiveCapabilities: { capabilities: [CapabilityInfo_Capability.NET_ADMIN, CapabilityInfo_Capability.CHOWN] } } },
      });
      assert.deepEqual(c.HostConfig.CapDrop, ["ALL"]);
      assert.deepEqual(c.HostConfig.CapAdd, ["CAP_NET_ADMIN", "CAP_CHOWN"]);
    });

    it("rejects an unknown capability, naming the field and value", () => {
      rejects({ container: { linuxInfo: { boundingCapabilities: { capabilities: [CapabilityInfo_Capability.UNKNOWN] } } } }, /linux_info\.bounding_capabilities\.capabilities\[0\] 0 is not a known capability/);
    });

    it("honours share_pid_namespace with the host's pid namespace (admission decides whether it may)", () => {
      assert.equal(build({ container: { linuxInfo: { sharePidNamespace: true } } }).HostConfig.PidMode, "host");
      assert.equal(build({ container: { linuxInfo: { sharePidNamespace: false } } }).HostConfig.PidMode, undefined);
    });

    it("sets shm_size (MB) only with a private IPC namespace", () => {
      const c = build({ container: { linuxInfo: { ipcMode: LinuxInfo_IpcMode.PRIVATE, shmSize: 128 } } });
      assert.equal(c.HostConfig.ShmSize, 128 * 1024 * 1024);
      assert.equal(c.HostConfig.IpcMode, "private");
      rejects({ container: { linuxInfo: { shmSize: 128 } } }, /linux_info\.shm_size 128 needs ipc_mode PRIVATE/);
    });
  });

  describe("rlimit_info → ulimits", () => {
    const limits = (...rlimits: Array<{ type: RLimitInfo_RLimit_Type; soft?: bigint; hard?: bigint }>): Launch => ({ container: { rlimitInfo: { rlimits } } });

    it("maps RLMT_* to the engine's lower-case names, neither soft nor hard being unlimited (-1)", () => {
      const c = build(limits({ type: RLimitInfo_RLimit_Type.RLMT_NOFILE, soft: 1024n, hard: 4096n }, { type: RLimitInfo_RLimit_Type.RLMT_CORE }, { type: RLimitInfo_RLimit_Type.RLMT_NPROC, soft: 0n, hard: 0n }, { type: RLimitInfo_RLimit_Type.RLMT_RTTIME, soft: 5n, hard: 5n }));
      assert.deepEqual(c.HostConfig.Ulimits, [
        { Name: "nofile", Soft: 1024, Hard: 4096 },
        { Name: "core", Soft: -1, Hard: -1 },
        { Name: "nproc", Soft: 0, Hard: 0 },
        { Name: "rttime", Soft: 5, Hard: 5 },
      ]);
      assert.equal(build().HostConfig.Ulimits, undefined);
    });

    it("refuses UNKNOWN, a type twice, soft above hard, only one of them, unlimited nofile and values past 2^53", () => {
      rejects(limits({ type: RLimitInfo_RLimit_Type.UNKNOWN, soft: 1n, hard: 1n }), /rlimit_info\.rlimits\[0\]\.type UNKNOWN is not a known rlimit/);
      rejects(limits({ type: 99 as RLimitInfo_RLimit_Type, soft: 1n, hard: 1n }), /rlimit_info\.rlimits\[0\]\.type 99 is not a known rlimit/);
      rejects(limits({ type: RLimitInfo_RLimit_Type.RLMT_CORE }, { type: RLimitInfo_RLimit_Type.RLMT_CORE, soft: 0n, hard: 0n }), /rlimits\[1\]\.type RLMT_CORE is given twice/);
      rejects(limits({ type: RLimitInfo_RLimit_Type.RLMT_NOFILE, soft: 10n, hard: 5n }), /rlimits\[0\] \(RLMT_NOFILE\) soft 10 is above hard 5/);
      rejects(limits({ type: RLimitInfo_RLimit_Type.RLMT_STACK, soft: 10n }), /rlimits\[0\] \(RLMT_STACK\) sets only soft; set both, or neither for unlimited/);
      rejects(limits({ type: RLimitInfo_RLimit_Type.RLMT_STACK, hard: 10n }), /sets only hard/);
      rejects(limits({ type: RLimitInfo_RLimit_Type.RLMT_NOFILE }), /rlimits\[0\] \(RLMT_NOFILE\) asks for unlimited open files/);
      rejects(limits({ type: RLimitInfo_RLimit_Type.RLMT_AS, soft: 1n, hard: 2n ** 63n }), /rlimits\[0\]\.hard 9223372036854775808 \(RLMT_AS\) is too large/);
    });
  });

  describe("linux_info.seccomp", () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), "berth-seccomp-unit-"));
      await writeFile(path.join(dir, "strict.json"), JSON.stringify({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["read"], action: "SCMP_ACT_ALLOW" }] }, null, 2));
      await writeFile(path.join(dir, "base.json"), '{"defaultAction": "SCMP_ACT_ALLOW"}');
      await writeFile(path.join(dir, "broken.json"), '{"defaultAction": ');
      await writeFile(path.join(dir, "array.json"), "[]");
      await symlink(path.join(dir, "base.json"), path.join(dir, "link.json"));
    });
    after(() => rm(dir, { recursive: true, force: true }));
    const seccomp = (s: { profileName?: string; unconfined?: boolean }): Launch => ({ container: { linuxInfo: { seccomp: s } } });

    it("a named profile is read at admission and passed as its JSON text; the default applies to launches naming none", async () => {
      const profiles = new SeccompProfiles(dir, "base");
      await profiles.init();
      const named = spec(seccomp({ profileName: "strict" }));
      await profiles.prepare(named.containerInfo);
      const c = buildCreateSpec(named, placement, { seccomp: profiles });
      assert.deepEqual(c.HostConfig.SecurityOpt, [`seccomp=${JSON.stringify({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["read"], action: "SCMP_ACT_ALLOW" }] })}`]);
      assert.deepEqual(buildCreateSpec(spec(), placement, { seccomp: profiles }).HostConfig.SecurityOpt, ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']);
      assert.deepEqual(buildCreateSpec(spec(seccomp({})), placement, { seccomp: profiles }).HostConfig.SecurityOpt, ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']);
      assert.deepEqual(buildCreateSpec(spec(seccomp({ unconfined: true })), placement, { seccomp: profiles }).HostConfig.SecurityOpt, ["seccomp=unconfined"]);
      // Without a default profile a launch naming none keeps the engine's own default.
      assert.equal(buildCreateSpec(spec(), placement, { seccomp: new SeccompProfiles(dir, undefined) }).HostConfig.SecurityOpt, undefined);
      assert.equal(build().HostConfig.SecurityOpt, undefined);
    });

    it("refuses a name with '/' or '..', a missing, linked or invalid profile, and both unconfined and a name, naming the profile", async () => {
      const profiles = new SeccompProfiles(dir, undefined);
      const prepare = (s: { profileName?: string; unconfined?: boolean }) => profiles.prepare(spec(seccomp(s)).containerInfo);
      const refused = async (s: { profileName?: string; unconfined?: boolean }, ...patterns: RegExp[]) => {
        await assert.rejects(prepare(s), (e: unknown) => e instanceof InvalidRequest && patterns.every((p) => p.test(e.message)));
      };
      await refused({ profileName: "../etc/x" }, /seccomp\.profile_name '\.\.\/etc\/x' contains '\/' or '\.\.'/);
      await refused({ profileName: "a/b" }, /profile_name 'a\/b' contains '\/'/);
      await refused({ profileName: "missing" }, /profile_name 'missing': no profile '.*\/missing\.json'/);
      await refused({ profileName: "broken" }, /profile_name 'broken': '.*broken\.json' is not valid JSON/);
      await refused({ profileName: "array" }, /profile_name 'array': '.*array\.json' is not a seccomp profile/);
      await refused({ profileName: "link" }, /profile_name 'link': '.*link\.json' is a symbolic link/);
      await refused({ profileName: "base", unconfined: true }, /linux_info\.seccomp sets both profile_name 'base' and unconfined/);
      // The create options refuse the same shapes without reading anything.
      rejects(seccomp({ profileName: "../x" }), /contains '\/' or '\.\.'/);
      rejects(seccomp({ profileName: "strict" }), /profile_name 'strict' cannot be used: no --seccomp_config_dir is configured/);
    });

    it("a security-opt seccomp=unconfined parameter replaces the default profile, but not a profile the launch names", async () => {
      const profiles = new SeccompProfiles(dir, "base");
      await profiles.init();
      const param = (l: Launch): Launch => ({ container: { ...l.container, docker: { network: ContainerInfo_DockerInfo_Network.NONE, parameters: [{ key: "security-opt", value: "seccomp=unconfined" }] } } });
      assert.deepEqual(buildCreateSpec(spec(param({})), placement, { seccomp: profiles }).HostConfig.SecurityOpt, ["seccomp=unconfined"]);
      const named = spec(param(seccomp({ profileName: "strict" })));
      await profiles.prepare(named.containerInfo);
      assert.throws(() => buildCreateSpec(named, placement, { seccomp: profiles }), (e: unknown) => e instanceof InvalidRequest && /parameters\[0\] security-opt 'seccomp=unconfined' repeats container_info\.linux_info\.seccomp/.test(e.message));
      rejects(param(seccomp({ unconfined: true })), /repeats container_info\.linux_info\.seccomp/);
    });

    it("checks the default profile at start-up", async () => {
      await assert.rejects(new SeccompProfiles(dir, "missing").init(), /--seccomp_profile_name: no profile '.*missing\.json'/);
      await assert.rejects(new SeccompProfiles(dir, "broken").init(), /--seccomp_profile_name: '.*broken\.json' is not valid JSON/);
      await assert.rejects(new SeccompProfiles(undefined, "base").init(), /--seccomp_profile_name 'base' needs --seccomp_config_dir/);
      await assert.rejects(new SeccompProfiles(dir, "../base").init(), /--seccomp_profile_name '\.\.\/base' contains '\/' or '\.\.'/);
      await new SeccompProfiles(dir, undefined).init();
      await new SeccompProfiles(undefined, undefined).init();
    });
  });

  describe("the engine's copy of the output and the volume driver", () => {
    it("keeps the engine's json-file copy to two files of --container_log_max_size", () => {
      assert.deepEqual(build().HostConfig.LogConfig, { Type: "json-file", Config: { "max-size": "10485760", "max-file": "2" } });
      assert.deepEqual(buildCreateSpec(spec(), placement, { engineLogMaxSize: 1000 }).HostConfig.LogConfig, { Type: "json-file", Config: { "max-size": "1000", "max-file": "2" } });
    });

    it("maps docker.volume_driver (deprecated) to VolumeDriver", () => {
      assert.equal(build({ container: { docker: { volumeDriver: "local" } } }).HostConfig.VolumeDriver, "local");
      assert.equal(build().HostConfig.VolumeDriver, undefined);
      rejects({ container: { docker: { volumeDriver: "bad driver" } } }, /container_info\.docker\.volume_driver 'bad driver' is not a volume driver name/);
    });
  });

  it("throws only InvalidRequest for a shape it cannot express, even with odd inputs", () => {
    const odd: Launch[] = [
      { container: { docker: { network: 99 as ContainerInfo_DockerInfo_Network } } },
      { container: { volumes: [{ containerPath: "/x", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.SANDBOX_PATH } }] } },
      { container: { volumes: [{ containerPath: "/x", mode: Volume_Mode.RW, source: { type: Volume_Source_Type.DOCKER_VOLUME } }] } },
      { container: { volumes: [{ containerPath: "/x", mode: Volume_Mode.RW, source: { type: 42 as Volume_Source_Type } }] } },
      { container: { linuxInfo: { capabilityInfo: { capabilities: [77 as CapabilityInfo_Capability] } } } },
    ];
    for (const l of odd) rejects(l);
  });
});
