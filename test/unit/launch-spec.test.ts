// resolveLaunchSpec: which command and container a launch runs, and every way a request is refused
// before anything touches disk or engine. Every refusal names the field and the offending value.
import { strict as assert } from "node:assert";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { ContainerConfigSchema, type ContainerConfig } from "../../src/gen/mesos/slave/containerizer_pb.js";
import {
  ContainerInfo_Type,
  Environment_Variable_Type,
  Value_Type,
  type ResourceSchema,
} from "../../src/gen/mesos/v1/mesos_pb.js";
import { InvalidRequest } from "../../src/containerizer/errors.js";
import { MAX_CPUS, NotSupported, resolveLaunchSpec, summarizeResources } from "../../src/containerizer/launch-spec.js";

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

    it("rejects shell=false with arguments but no value", () => {
      invalid({ commandInfo: { shell: false, arguments: ["a"] } }, /command_info\.arguments are set but command_info\.value is empty/);
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
          scalar("gpus", 1),
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
      assert.deepEqual(s.uris, [
        { value: "https://h/a.tgz", executable: true, extract: false, outputFile: "b/c" },
        { value: "/srv/f", executable: false, extract: true, outputFile: undefined },
      ]);
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
