// resolveLaunchSpec: which command and container a launch runs, and every way a request is refused
// before anything touches disk or engine. Every refusal names the field and the offending value.
import { strict as assert } from "node:assert";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { ContainerConfigSchema, type ContainerConfig } from "../../src/gen/mesos/slave/containerizer_pb.js";
import {
  ContainerInfo_DockerInfo_Network,
  ContainerInfo_Type,
  Environment_Variable_Type,
  Value_Type,
  type ResourceSchema,
} from "../../src/gen/mesos/v1/mesos_pb.js";
import { InvalidRequest } from "../../src/containerizer/errors.js";
import { MAX_CPUS, NotSupported, resolveLaunchSpec, summarizeResources } from "../../src/containerizer/launch-spec.js";
import { buildCreateSpec, engineLimits, oomScoreAdj } from "../../src/containerizer/create-spec.js";

type ConfigInit = Exclude<MessageInitShape<typeof ContainerConfigSchema>, ContainerConfig>;
type ResourceInit = MessageInitShape<typeof ResourceSchema>;

const docker = (image = "busybox:1.36") => ({ type: ContainerInfo_Type.DOCKER, docker: { image } });

function config(init: ConfigInit = {}): ContainerConfig {
  return create(ContainerConfigSchema, { commandInfo: { value: "echo hi" }, containerInfo: docker(), ...init });
}

function resolve(init: ConfigInit = {}, extraEnv: Record<string, string> = {}) {
  return resolveLaunchSpec("c1", config(init), extraEnv);
}

/** Asserts a throw of exactly `type` (never a TypeError) whose message matches every pattern. */
function rejects(run: () => unknown, type: typeof InvalidRequest | typeof NotSupported, ...patterns: RegExp[]): void {
  let caught: unknown;
  try {
    run();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof type, `expected ${type.name}, got ${String(caught)}`);
  for (const p of patterns) assert.match((caught as Error).message, p);
}

const invalid = (init: ConfigInit, ...patterns: RegExp[]) => rejects(() => resolve(init), InvalidRequest, ...patterns);

function scalar(name: string, value: number): ResourceInit {
  return { name, type: Value_Type.SCALAR, scalar: { value } };
}

describe("resolveLaunchSpec", () => {
  describe("where the command and container come from", () => {
    it("uses the config's own command and container", () => {
      const s = resolve();
      assert.equal(s.command.value, "echo hi");
      assert.equal(s.image, "busybox:1.36");
      assert.equal(s.containerId, "c1");
    });

    it("falls back to task_info's command and container", () => {
      const s = resolveLaunchSpec(
        "c1",
        create(ContainerConfigSchema, {
          taskInfo: { name: "t", taskId: { value: "task-1" }, agentId: { value: "a" }, command: { value: "run-task" }, container: docker("alpine:3") },
        }),
        {},
      );
      assert.equal(s.command.value, "run-task");
      assert.equal(s.image, "alpine:3");
      assert.equal(s.taskId, "task-1");
    });

    it("runs the executor's command and container for executor_info alone", () => {
      const s = resolveLaunchSpec(
        "c1",
        create(ContainerConfigSchema, {
          executorInfo: { executorId: { value: "exec-1" }, frameworkId: { value: "fw" }, command: { value: "run-executor" }, container: docker("repo/executor:2") },
        }),
        {},
      );
      assert.equal(s.command.value, "run-executor");
      assert.equal(s.image, "repo/executor:2");
      assert.equal(s.executorId, "exec-1");
      assert.equal(s.frameworkId, "fw");
      assert.equal(s.taskId, undefined);
    });

    it("accepts Mesos task ids with characters a container id may not carry", () => {
      const s = resolve({ taskInfo: { name: "t", taskId: { value: "ct:1423:0:job@host" }, agentId: { value: "a" } } });
      assert.equal(s.taskId, "ct:1423:0:job@host");
    });

    it("rejects a task id Mesos itself would refuse", () => {
      invalid({ taskInfo: { name: "t", taskId: { value: "a/b" }, agentId: { value: "a" } } }, /task_info\.task_id\.value 'a\/b' contains '\/'/);
      invalid({ taskInfo: { name: "t", taskId: { value: "" }, agentId: { value: "a" } } }, /task_info\.task_id\.value is empty/);
      invalid({ taskInfo: { name: "t", taskId: { value: ".." }, agentId: { value: "a" } } }, /task_info\.task_id\.value '\.\.'/);
      invalid({ executorInfo: { executorId: { value: "e 1" } } }, /executor_info\.executor_id\.value 'e 1' contains/);
    });

    it("rejects a missing command", () => {
      rejects(() => resolveLaunchSpec("c1", create(ContainerConfigSchema, { containerInfo: docker() }), {}), InvalidRequest, /command_info is missing/);
      rejects(() => resolveLaunchSpec("c1", undefined, {}), InvalidRequest, /container_config is missing/);
    });

    it("is NotSupported without container_info or for a non-DOCKER type", () => {
      rejects(() => resolveLaunchSpec("c1", create(ContainerConfigSchema, { commandInfo: { value: "x" } }), {}), NotSupported, /container_info is missing/);
      rejects(() => resolve({ containerInfo: { type: ContainerInfo_Type.MESOS } }), NotSupported, /container_info\.type is MESOS/);
    });
  });

  describe("image", () => {
    it("rejects a missing or empty image", () => {
      invalid({ containerInfo: { type: ContainerInfo_Type.DOCKER } }, /container_info\.docker\.image is empty/);
      invalid({ containerInfo: docker("") }, /container_info\.docker\.image is empty/);
      invalid({ containerInfo: docker("   ") }, /container_info\.docker\.image is empty/);
    });

    it("rejects bad references, naming them", () => {
      for (const bad of ["busy box", "BusyBox", "busybox:", "busybox@sha256:abc", "-x/y"]) {
        invalid({ containerInfo: docker(bad) }, new RegExp(`container_info\\.docker\\.image '${bad.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&")}' is not a valid image reference`));
      }
    });

    it("accepts registry, port, path, tag and digest forms", () => {
      for (const ok of ["busybox", "library/busybox:latest", "registry:5000/name:tag", "localhost:5000/a/b-c_d.e:1.2", `alpine@sha256:${"a".repeat(64)}`]) {
        assert.equal(resolve({ containerInfo: docker(ok) }).image, ok);
      }
    });
  });

  describe("command", () => {
    it("rejects shell=true with an empty value", () => {
      invalid({ commandInfo: { shell: true } }, /command_info\.value is empty but command_info\.shell is true/);
      invalid({ commandInfo: {} }, /command_info\.value is empty/);
    });

    it("rejects shell=true with arguments", () => {
      invalid({ commandInfo: { value: "x", arguments: ["a", "b"] } }, /command_info\.arguments has 2 entries but command_info\.shell is true/);
    });

    it("accepts shell=false with arguments but no value: they are the image entrypoint's arguments (Mesos' Default_CMD_Args)", () => {
      const s = resolve({ commandInfo: { shell: false, arguments: ["a", "b c"] } });
      assert.equal(s.command.value, "");
      assert.deepEqual(s.command.arguments, ["a", "b c"]);
    });

    it("accepts shell=false with no value at all (the image's command)", () => {
      const s = resolve({ commandInfo: { shell: false } });
      assert.equal(s.command.shell, false);
      assert.equal(s.command.value, "");
    });
  });

  describe("environment", () => {
    it("keeps variables in order, then the extra environment", () => {
      const s = resolve(
        { commandInfo: { value: "x", environment: { variables: [{ name: "A", value: "1=2\n3" }, { name: "B", value: "" }] } } },
        { C: "c" },
      );
      assert.deepEqual(s.environment, [["A", "1=2\n3"], ["B", ""], ["C", "c"]]);
    });

    it("rejects names with '=' or empty ones, naming them", () => {
      invalid({ commandInfo: { value: "x", environment: { variables: [{ name: "A=B", value: "1" }] } } }, /command_info\.environment\.variables\[0\]\.name 'A=B'/);
      invalid({ commandInfo: { value: "x", environment: { variables: [{ name: "", value: "1" }] } } }, /command_info\.environment\.variables\[0\]\.name ''/);
      rejects(() => resolve({}, { "X=Y": "1" }), InvalidRequest, /environment name 'X=Y'/);
    });

    it("rejects SECRET variables, naming them", () => {
      invalid(
        { commandInfo: { value: "x", environment: { variables: [{ name: "OK", value: "1" }, { name: "TOKEN", type: Environment_Variable_Type.SECRET }] } } },
        /command_info\.environment\.variables\[1\] \('TOKEN'\) is a SECRET/,
      );
    });
  });

  describe("resources", () => {
    it("sums cpus, mem, disk and ports over roles", () => {
      const s = resolve({
        resources: [
          { ...scalar("cpus", 0.5), role: "a" },
          { ...scalar("cpus", 0.25), role: "b" },
          scalar("mem", 100),
          scalar("mem", 28),
          scalar("disk", 10),
          scalar("licenses", 1),
          { name: "ports", type: Value_Type.RANGES, ranges: { range: [{ begin: 31000n, end: 31005n }] } },
        ],
      });
      assert.deepEqual(s.resources, { cpus: 0.75, memMb: 128, diskMb: 10, ports: [[31000, 31005]] });
    });

    it("uses task and executor resources when the config has none", () => {
      const s = resolve({
        taskInfo: { name: "t", taskId: { value: "t1" }, agentId: { value: "a" }, resources: [scalar("cpus", 1)] },
        executorInfo: { executorId: { value: "e1" }, resources: [scalar("cpus", 0.1)] },
      });
      assert.equal(s.resources.cpus, 1.1);
    });

    it("rejects negative, NaN and infinite scalars, naming resource and value", () => {
      for (const [v, shown] of [[-1, "-1"], [NaN, "NaN"], [Infinity, "Infinity"], [-Infinity, "-Infinity"]] as const) {
        invalid({ resources: [scalar("cpus", 1), scalar("mem", v)] }, new RegExp(`resources\\[1\\] \\('mem'\\) scalar value ${shown.replace("+", "\\+")} must be`));
      }
    });

    it("rejects more cpus than the kernel's cpu.shares maximum (256 × 1024 shares) and more than 64 TiB of memory", () => {
      invalid({ resources: [scalar("cpus", 200), scalar("cpus", 100)] }, /resources cpus 300 is more than 256 \(1024 CPU shares per cpu; the kernel allows at most 262144 shares\)/);
      assert.equal(resolve({ resources: [scalar("cpus", MAX_CPUS)] }).resources.cpus, MAX_CPUS);
      invalid({ resources: [scalar("mem", 64 * 1024 * 1024 + 1)] }, /resources mem 67108865 MB is more than 67108864 MB/);
    });

    it("rejects bad port ranges, naming them", () => {
      invalid({ resources: [{ name: "ports", type: Value_Type.RANGES, ranges: { range: [{ begin: 31005n, end: 31000n }] } }] }, /resources\[0\] \('ports'\) range\[0\] 31005-31000/);
      invalid({ resources: [{ name: "ports", type: Value_Type.RANGES, ranges: { range: [{ begin: 1n, end: 70000n }] } }] }, /range\[0\] 1-70000 is not a range within 0-65535/);
    });

    it("summarizeResources of nothing is empty", () => {
      assert.deepEqual(summarizeResources([]), { ports: [] });
    });
  });

  describe("uris, directory, user and kill policy", () => {
    it("rejects malformed URIs, naming them", () => {
      invalid({ commandInfo: { value: "x", uris: [{ value: "ftp://host/file.tgz" }] } }, /command_info\.uris\[0\]\.value 'ftp:\/\/host\/file\.tgz' has unsupported scheme 'ftp'/);
      invalid({ commandInfo: { value: "x", uris: [{ value: "http://h/ok.tgz" }, { value: "relative/file" }] } }, /command_info\.uris\[1\]\.value 'relative\/file' is neither/);
      invalid({ commandInfo: { value: "x", uris: [{ value: "http://h/a\nb" }] } }, /command_info\.uris\[0\]\.value "http:\/\/h\/a\\nb" contains a control character/);
    });

    it("keeps valid URIs with their options", () => {
      const s = resolve({ commandInfo: { value: "x", uris: [{ value: "https://h/a.tgz", executable: true, extract: false, outputFile: "b/c" }, { value: "/srv/f" }] } });
      assert.deepEqual(
        s.uris.map(({ value, executable, extract, outputFile }) => ({ value, executable, extract, outputFile })),
        [
          { value: "https://h/a.tgz", executable: true, extract: false, outputFile: "b/c" },
          { value: "/srv/f", executable: false, extract: true, outputFile: undefined },
        ],
      );
    });

    it("rejects a non-absolute or '..' directory, naming it", () => {
      invalid({ directory: "rel/dir" }, /container_config\.directory 'rel\/dir' is not an absolute path/);
      invalid({ directory: "/a/../b" }, /container_config\.directory '\/a\/\.\.\/b' contains '\.\.'/);
      invalid({ directory: "/a/b\u0001" }, /container_config\.directory '\/a\/b\\u0001' contains a control character/);
      assert.equal(resolve({ directory: "/a//b/" }).directory, "/a/b/");
      assert.equal(resolve().directory, undefined);
    });

    it("takes the config's user before the command's, and rejects odd ones", () => {
      assert.equal(resolve({ user: "alice", commandInfo: { value: "x", user: "bob" } }).user, "alice");
      assert.equal(resolve({ commandInfo: { value: "x", user: "bob" } }).user, "bob");
      invalid({ user: "a b" }, /user 'a b'/);
    });

    it("turns the kill policy's grace period into milliseconds", () => {
      const s = resolve({ taskInfo: { name: "t", taskId: { value: "t1" }, agentId: { value: "a" }, killPolicy: { gracePeriod: { nanoseconds: 2_500_000_000n } } } });
      assert.equal(s.gracePeriodMs, 2500);
      assert.equal(resolve().gracePeriodMs, undefined);
      invalid({ taskInfo: { name: "t", taskId: { value: "t1" }, agentId: { value: "a" }, killPolicy: { gracePeriod: { nanoseconds: -1n } } } }, /kill_policy\.grace_period\.nanoseconds -1 is negative/);
    });
  });

  it("throws only InvalidRequest or NotSupported for malformed shapes", () => {
    const odd: ConfigInit[] = [
      { containerInfo: { type: 7 as ContainerInfo_Type } },
      { resources: [{ name: "cpus", type: Value_Type.SCALAR }] },
      { resources: [{ name: "ports", type: Value_Type.RANGES }] },
      { commandInfo: { value: "x", uris: [{ value: "file://remote/x" }, { value: "http://h/%zz" }] } },
      { commandInfo: { value: "x", uris: [{ value: "" }] } },
      { taskInfo: { name: "t" } },
      { executorInfo: {} },
      { commandInfo: { value: "x\0" } },
    ];
    for (const init of odd) {
      try {
        resolve(init);
      } catch (err) {
        assert.ok(err instanceof InvalidRequest || err instanceof NotSupported, `${JSON.stringify(init, (_k, v) => (typeof v === "bigint" ? String(v) : v))}: ${String(err)}`);
      }
    }
  });
});

describe("resolveLaunchSpec: Mesos parity", () => {
  const MiB = 1024 * 1024;
  const placement = { agentId: "a1", hostSandbox: "/var/lib/berth/sandboxes/c1", containerSandbox: "/mnt/mesos/sandbox" };
  const roled = (name: string, value: number, role: string): ResourceInit => ({ name, type: Value_Type.SCALAR, scalar: { value }, allocationInfo: { role } });
  const task = (init: Record<string, unknown> = {}) => ({ name: "t", taskId: { value: "t1" }, agentId: { value: "a" }, ...init });

  describe("resource limits (TaskInfo.limits, ContainerConfig.limits)", () => {
    it("reads container_config.limits, else task_info.limits", () => {
      assert.deepEqual(resolve({ resources: [scalar("cpus", 1), scalar("mem", 64)], limits: { cpus: { value: 2 }, mem: { value: 128 } } }).limits, { cpus: 2, memMb: 128 });
      const fromTask = resolve({ taskInfo: task({ resources: [scalar("cpus", 1)], limits: { cpus: { value: Infinity } } }) });
      assert.deepEqual(fromTask.limits, { cpus: Infinity });
      assert.deepEqual(resolve().limits, {});
    });

    it("refuses a limit below its request, a limit without a request, other names and bad values, naming them", () => {
      invalid({ resources: [scalar("cpus", 2)], limits: { cpus: { value: 1 } } }, /resources cpus 2 is more than its limit 1 \(container_config\.limits\['cpus'\]\): a limit may not be below its request/);
      invalid({ resources: [scalar("mem", 256)], limits: { mem: { value: 128 } } }, /resources mem 256 MB is more than its limit 128 MB/);
      invalid({ resources: [scalar("cpus", 1)], limits: { mem: { value: 128 } } }, /container_config\.limits\['mem'\] is 128 MB but the resources have no mem: a limit needs a request/);
      invalid({ taskInfo: task({ resources: [scalar("cpus", 1)], limits: { disk: { value: 10 } } }) }, /task_info\.limits\['disk'\] is not supported: only cpus and mem may have limits/);
      for (const v of [0, -1, NaN, -Infinity]) {
        invalid({ resources: [scalar("cpus", 1)], limits: { cpus: { value: v } } }, new RegExp(`container_config\\.limits\\['cpus'\\] value ${String(v)} must be > 0`));
      }
      invalid({ resources: [scalar("mem", 1)], limits: { mem: { value: 64 * 1024 * 1024 + 1 } } }, /limits\['mem'\] value 67108865 MB is more than/);
    });

    it("maps a cpus limit to a CFS quota even without --cgroups_enable_cfs, the request staying the shares", () => {
      assert.deepEqual(engineLimits({ cpus: 0.5 }, {}, { cpus: 2 }), { CpuShares: 512, CpuPeriod: 100_000, CpuQuota: 200_000 });
      // The limit, not the request, is the quota with the flag too.
      assert.deepEqual(engineLimits({ cpus: 0.5 }, { cfsQuota: true }, { cpus: 2 }), { CpuShares: 512, CpuPeriod: 100_000, CpuQuota: 200_000 });
      // An infinite limit caps nothing, even with the flag.
      assert.deepEqual(engineLimits({ cpus: 0.5 }, { cfsQuota: true }, { cpus: Infinity }), { CpuShares: 512 });
      assert.deepEqual(engineLimits({ cpus: 0.5 }, { cfsQuota: true }), { CpuShares: 512, CpuPeriod: 100_000, CpuQuota: 50_000 });
    });

    it("maps a mem limit to the memory limit (swap equal) with the request as the reservation; infinite → no cap", () => {
      assert.deepEqual(engineLimits({ memMb: 64 }, {}, { memMb: 256 }), { MemoryReservation: 64 * MiB, Memory: 256 * MiB, MemorySwap: 256 * MiB });
      assert.deepEqual(engineLimits({ memMb: 64 }, {}, { memMb: Infinity }), { MemoryReservation: 64 * MiB });
      // Mesos' 32 MB floor applies to both.
      assert.deepEqual(engineLimits({ memMb: 8 }, {}, { memMb: 16 }), { MemoryReservation: 32 * MiB, Memory: 32 * MiB, MemorySwap: 32 * MiB });
      assert.deepEqual(engineLimits({ memMb: 64 }), { Memory: 64 * MiB, MemorySwap: 64 * MiB });
    });

    it("gives a container whose mem limit is above its request Mesos' OOM score (1000 - 1000 x request / host memory)", () => {
      const host = 1024 * MiB;
      assert.equal(oomScoreAdj(512, { memMb: 1024 }, host), 500);
      assert.equal(oomScoreAdj(512, { memMb: Infinity }, host), 500);
      assert.equal(oomScoreAdj(512, { memMb: 512 }, host), undefined, "request = limit: no adjustment");
      assert.equal(oomScoreAdj(512, {}, host), undefined, "no limit: no adjustment");
      assert.equal(oomScoreAdj(4096, { memMb: Infinity }, host), 0, "never negative");
      const spec = resolve({ resources: [scalar("cpus", 1), scalar("mem", 512)], limits: { cpus: { value: 2 }, mem: { value: 1024 } } });
      const hc = buildCreateSpec(spec, placement, { hostMemoryBytes: host }).HostConfig;
      assert.equal(hc.OomScoreAdj, 500);
      assert.equal(hc.CpuQuota, 200_000);
      assert.equal(hc.CpuShares, 1024);
      assert.equal(hc.Memory, 1024 * MiB);
      assert.equal(hc.MemoryReservation, 512 * MiB);
    });
  });

  describe("command", () => {
    it("hands shell=false arguments without a value to the image's entrypoint as its Cmd (Default_CMD_Args)", () => {
      const c = buildCreateSpec(resolve({ commandInfo: { shell: false, arguments: ["uuid-1", "x"] } }), placement);
      assert.equal(c.Entrypoint, undefined, "the image's entrypoint is kept");
      assert.deepEqual(c.Cmd, ["uuid-1", "x"]);
      assert.deepEqual(buildCreateSpec(resolve({ commandInfo: { shell: false, value: "v", arguments: ["a"] } }), placement).Cmd, ["v", "a"]);
      assert.equal(buildCreateSpec(resolve({ commandInfo: { shell: false } }), placement).Cmd, undefined, "neither: the image's own command");
    });
  });

  describe("MESOS_ALLOCATION_ROLE", () => {
    it("is set from the resources' allocation role, last (over the task's own variables)", () => {
      const s = resolve(
        {
          commandInfo: { value: "x", environment: { variables: [{ name: "MESOS_ALLOCATION_ROLE", value: "mine" }] } },
          resources: [roled("cpus", 1, "role1"), roled("mem", 64, "role1")],
        },
        {},
      );
      assert.deepEqual(s.environment.at(-1), ["MESOS_ALLOCATION_ROLE", "role1"]);
      assert.ok(buildCreateSpec(s, placement).Env.includes("MESOS_ALLOCATION_ROLE=role1"));
    });

    it("is not set without allocation info, and resources of two roles are refused", () => {
      assert.ok(!resolve({ resources: [scalar("cpus", 1)] }).environment.some(([k]) => k === "MESOS_ALLOCATION_ROLE"));
      invalid(
        { resources: [roled("cpus", 1, "a"), roled("mem", 64, "b")] },
        /resources\[1\]\.allocation_info\.role 'b' differs from 'a'/,
      );
    });
  });

  describe("fields the table cannot decide alone", () => {
    it("takes the executor's shutdown_grace_period when the task has no kill policy", () => {
      assert.equal(resolve({ executorInfo: { executorId: { value: "e1" }, shutdownGracePeriod: { nanoseconds: 3_000_000_000n } } }).gracePeriodMs, 3000);
      const both = resolve({
        taskInfo: task({ killPolicy: { gracePeriod: { nanoseconds: 1_000_000_000n } } }),
        executorInfo: { executorId: { value: "e1" }, shutdownGracePeriod: { nanoseconds: 3_000_000_000n } },
      });
      assert.equal(both.gracePeriodMs, 1000);
      invalid({ executorInfo: { executorId: { value: "e1" }, shutdownGracePeriod: { nanoseconds: -5n } } }, /executor_info\.shutdown_grace_period\.nanoseconds -5 is negative/);
    });

    it("refuses a GPU request, a network name without network USER, and share_cgroups=false", () => {
      invalid({ resources: [scalar("gpus", 1)] }, /resources\[0\] \('gpus'\) asks for 1 GPUs; Berth does not allocate GPUs/);
      assert.equal(resolve({ resources: [scalar("gpus", 0)] }).resources.cpus, undefined, "zero GPUs ask for nothing");
      invalid(
        { containerInfo: { type: ContainerInfo_Type.DOCKER, docker: { image: "busybox", network: ContainerInfo_DockerInfo_Network.BRIDGE }, networkInfos: [{ name: "net1" }] } },
        /container_info\.network_infos\[0\]\.name 'net1' is only used with container_info\.docker\.network USER; network is BRIDGE/,
      );
      invalid({ containerInfo: { ...docker(), linuxInfo: { shareCgroups: false } } }, /container_info\.linux_info\.share_cgroups is false/);
      assert.equal(resolve({ containerInfo: { ...docker(), linuxInfo: { shareCgroups: true } } }).image, "busybox:1.36");
    });

    it("refuses table-refused fields before anything else, naming the path (e.g. a task's check)", () => {
      invalid({ taskInfo: task({ check: { delaySeconds: 1 } }) }, /^container_config\.task_info\.check is set: .*CheckStatusInfo/);
      invalid({ containerInfo: { ...docker(), volumes: [{ containerPath: "/x", image: { type: 2, docker: { name: "busybox" } } }] } }, /^container_config\.container_info\.volumes\[0\]\.image is set/);
    });

    it("still answers NotSupported (not INVALID_ARGUMENT) for a MESOS container carrying MesosInfo", () => {
      rejects(() => resolve({ containerInfo: { type: ContainerInfo_Type.MESOS, mesos: {} } }), NotSupported, /container_info\.type is MESOS/);
    });
  });
});
