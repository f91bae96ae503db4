/**
 * fast-check arbitraries for fuzzing every berth.v1.Containerizer RPC (and Health/Check).
 *
 * Generators produce plain-data *plans* (printable, shrinkable, replayable by seed); `materialize`
 * turns a plan into a protobuf-es message with the run's context (work dir, canary root, fresh ids,
 * the ids accepted so far). Everything a plan can make Berth do when a launch is accepted is kept
 * harmless on purpose:
 * - images: only the local test image, a missing image on the loopback registry, or a reference
 *   that cannot be valid (no pull from anywhere else);
 * - commands: `true`, `exit N`, `true '<quoted>'`, or the image's own `/bin/sh` with no input;
 * - http(s) URIs: only loopback literals (closed ports), link-local / private / unspecified /
 *   multicast literals (refused before connecting by design, and stopped by the fuzz network guard
 *   anyway), or '.invalid' names;
 * - directories: empty, under <work_dir>/sandboxes, under a canary root outside the work dir, or
 *   never valid (relative, '..', control characters) — never a real host path;
 * - real host paths are mounted (volumes) only at targets `/fz-…` that no other mount nests in, and
 *   never with bidirectional propagation; docker volume names are prefixed with the run's token.
 * `launchIsSafe` checks these properties on any LaunchRequest (also one decoded from random bytes)
 * before it is sent.
 */
import path from "node:path";
import net from "node:net";
import { create, toBinary, fromBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import fc from "fast-check";
import {
  ContainersRequestSchema,
  DestroyRequestSchema,
  LaunchRequestSchema,
  PruneImagesRequestSchema,
  StatusRequestSchema,
  UpdateRequestSchema,
  UsageRequestSchema,
  WaitRequestSchema,
  WatchRequestSchema,
  type LaunchRequest,
} from "../../src/gen/berth/v1/containerizer_pb.js";
import {
  CapabilityInfo_Capability,
  ContainerInfo_DockerInfo_Network,
  ContainerInfo_Type,
  Environment_Variable_Type,
  Image_Type,
  LinuxInfo_IpcMode,
  MountPropagation_Mode,
  Value_Type,
  Volume_Mode,
  Volume_Source_SandboxPath_Type,
  Volume_Source_Type,
  ContainerInfoSchema,
  ResourceSchema,
  type ContainerInfo,
  type CommandInfo,
} from "../../src/gen/mesos/v1/mesos_pb.js";

// ---------------------------------------------------------------------------------------------
// Context of one run
// ---------------------------------------------------------------------------------------------

/** What materializing a plan needs to know about the server under test and the run so far. */
export interface FuzzContext {
  workDir: string;
  /** A directory outside the work dir; hostile "host" paths are mirrored under it. */
  canaryRoot: string;
  /** Reference of the local test image (busybox on the loopback registry). */
  testImage: string;
  /** Prefix of fresh container ids and docker volume names of this run. */
  runToken: string;
  /** A fresh token (unique within the process). */
  next(): string;
  /** Ids Berth accepted (LAUNCHED) in this run, in order. */
  accepted: string[];
  /** A container the suite keeps RUNNING for Update / Usage / Status. */
  residentId: string;
}

// ---------------------------------------------------------------------------------------------
// Hostile strings
// ---------------------------------------------------------------------------------------------

const NOTABLE_STRINGS = [
  "",
  ".",
  "..",
  "../..",
  "../../../../etc/passwd",
  "/",
  "/etc",
  "/etc/cron.d",
  "/root/.ssh",
  "/var/run/docker.sock",
  "/proc/self/environ",
  "\0",
  "a\0b",
  "\u0001",
  "\n",
  "\r\n",
  "\t",
  "\u007f",
  "\u0085",
  "\u200b",
  "\u202e",
  "\ufeff",
  "\ud800",
  "𝕏",
  "контейнер",
  "容器",
  "%2e%2e%2f",
  "~root",
  "$(id)",
  "`id`",
  "'; rm -rf / #",
  "${HOME}",
  "a=b",
  "=",
  "-rf",
  "--privileged",
  "C:\\Windows",
  "\\\\server\\share",
  "x".repeat(129),
  "x".repeat(256),
  "y".repeat(4097),
];

/** Strings meant to break parsers, paths, shells and loggers. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom(...NOTABLE_STRINGS), weight: 5 },
  { arbitrary: fc.string({ maxLength: 24 }), weight: 2 },
  { arbitrary: fc.string({ unit: "binary", maxLength: 24 }), weight: 2 },
  { arbitrary: fc.string({ unit: "grapheme", maxLength: 16 }), weight: 1 },
  { arbitrary: fc.string({ unit: fc.constantFrom("/", ".", "\0", "a", "\n", " ", "'"), maxLength: 20 }), weight: 1 },
  { arbitrary: fc.string({ minLength: 1000, maxLength: 20_000 }), weight: 1 },
);

/** A double that probes numeric validation. */
export const hostileDouble: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1, -0, 0, 1e-300, Number.MIN_VALUE, 0.001, 0.5, 1, 32, 64, 4096, 4097, 1e9, 1e308, Number.MAX_VALUE, 64 * 1024 * 1024 + 1),
  fc.double(),
  fc.double({ min: 0, max: 8, noNaN: true }),
);

const UINT32_EDGES = [0, 1, 80, 5000, 65535, 65536, 2 ** 31, 2 ** 32 - 1];
const hostileUint32 = fc.oneof(fc.constantFrom(...UINT32_EDGES), fc.integer({ min: 0, max: 2 ** 32 - 1 }));
const hostileUint64 = fc.oneof(fc.constantFrom(0n, 1n, 80n, 65535n, 65536n, 2n ** 63n, 2n ** 64n - 1n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
const hostileInt64 = fc.oneof(fc.constantFrom(-1n, 0n, 1n, 1_000_000n, 1_000_000_000n, 2n ** 63n - 1n, -(2n ** 63n)), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));

/** A string that is never a relative path, made from any hostile string (for "must be invalid" slots). */
const relative = (s: string): string => (s === "" ? "x" : s.startsWith("/") ? `.${s}` : s);

/** An id-like value that Berth's container id rules refuse or accept by chance. */
const hostileId = fc.oneof(hostileString, fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/));

// ---------------------------------------------------------------------------------------------
// Plans
// ---------------------------------------------------------------------------------------------

export type IdPlan =
  | { k: "fresh" }
  | { k: "hostile"; v: string }
  | { k: "accepted"; i: number }
  | { k: "resident" }
  | { k: "unknown" }
  | { k: "missing" }
  | { k: "nested" };

export type DirPlan =
  | { k: "empty" }
  | { k: "sandboxes"; sub: string[] }
  | { k: "canary"; mirror: string }
  | { k: "invalid"; v: string };

export type ImagePlan = { k: "test" } | { k: "missing"; tag: string } | { k: "invalid"; v: string } | { k: "empty" };

export type CommandPlan =
  | { k: "true" }
  | { k: "exit"; n: number }
  | { k: "quoted"; v: string }
  | { k: "exec"; program: "true" | "/bin/true" | "/bin/echo"; args: string[] }
  | { k: "imageDefault" }
  | { k: "invalid"; shell: boolean; value: string; args: string[] };

export interface UriPlan {
  value: string;
  outputFile?: string;
  extract?: boolean;
  executable?: boolean;
}

export type VolumePlan =
  | { k: "hostPath"; real: string; legacy: boolean; rw: boolean; slave: boolean }
  | { k: "canaryHostPath"; target: string; rw: boolean; propagation: number }
  | { k: "sandboxRelative"; path: string; target: string; rw: boolean }
  | { k: "sandboxPath"; type: number; path: string; target: string }
  | { k: "dockerVolume"; valid: boolean; name: string; driver: string; options: Array<[string, string]>; target: string; rw: boolean }
  | { k: "anonymous"; target: string }
  | { k: "odd"; sourceType: number; target: string; image: boolean; mode: number };

export interface ResourcePlan {
  name: string;
  type: number;
  scalar: number;
  ranges: Array<[bigint, bigint]>;
  items: string[];
  role: string;
}

export interface ContainerPlan {
  type: number;
  image: ImagePlan;
  forcePull: boolean;
  network: number;
  networkNames: string[];
  portMappings: Array<{ hostPort: number; containerPort: number; protocol: string }>;
  privileged: boolean;
  parameters: Array<[string, string]>;
  volumes: VolumePlan[];
  hostname: string;
  linux?: { field: "capabilityInfo" | "boundingCapabilities" | "effectiveCapabilities"; caps: number[]; ipcMode: number; shmSize: number; sharePid: boolean };
  tty: boolean;
}

export interface CommandInfoPlan {
  command: CommandPlan;
  env: Array<{ name: string; value: string; secret: boolean }>;
  uris: UriPlan[];
  user: string;
}

export interface LaunchPlan {
  /** "hostile": everything random; "valid": meant to be accepted; "tweak": valid but for one dangerous ask. */
  shape: "hostile" | "mutant" | "valid" | "tweak";
  tweak?: string;
  id: IdPlan;
  directory: DirPlan;
  command: CommandInfoPlan;
  container?: ContainerPlan;
  resources: ResourcePlan[];
  environment: Array<[string, string]>;
  user: string;
  task?: { taskId: string; command: CommandInfoPlan; container?: ContainerPlan; graceNs?: bigint; resources: ResourcePlan[] };
  executor?: { executorId: string; command: CommandInfoPlan; container?: ContainerPlan };
}

export type RawMethod = "launch" | "wait" | "destroy" | "watch" | "containers" | "status" | "update" | "usage" | "pruneImages";
export const RAW_METHODS: RawMethod[] = ["launch", "wait", "destroy", "watch", "containers", "status", "update", "usage", "pruneImages"];

export type BytesPlan =
  | { k: "random"; bytes: Uint8Array }
  | { k: "message"; of: TypedOp; cut?: number; flip?: number }
  | { k: "garbage"; size: number; seed: number };

export type TypedOp =
  | { op: "launch"; plan: LaunchPlan }
  | { op: "wait"; id: IdPlan; deadlineMs: number }
  | { op: "destroy"; id: IdPlan }
  | { op: "watch"; ids: IdPlan[]; fromSequence?: bigint; deadlineMs: number }
  | { op: "containers" }
  | { op: "status"; id: IdPlan }
  | { op: "update"; id: IdPlan; resources: ResourcePlan[] }
  | { op: "usage"; id: IdPlan }
  | { op: "prune"; excluded: Array<{ name: string; type: number }> }
  | { op: "health"; service: string };

export type FuzzOp = TypedOp | { op: "raw"; method: RawMethod; bytes: BytesPlan };

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

const targetArb = fc.oneof(
  fc.constantFrom("/data", "x", "/", "/mnt", "/mnt/mesos/sandbox", "/proc", "/etc", "..", "/a/../b", "", "/mnt/mesos/sandbox/sub"),
  hostileString,
);

const REAL_HOST_PATHS = ["/", "/etc", "/var/run/docker.sock", "/root", "/proc", "/sys", "/var/lib/docker", "/tmp"];

const volumeArb: fc.Arbitrary<VolumePlan> = fc.oneof(
  fc.record({ k: fc.constant("hostPath" as const), real: fc.constantFrom(...REAL_HOST_PATHS, "<work>", "<work>/meta"), legacy: fc.boolean(), rw: fc.boolean(), slave: fc.boolean() }),
  fc.record({ k: fc.constant("canaryHostPath" as const), target: targetArb, rw: fc.boolean(), propagation: fc.constantFrom(0, MountPropagation_Mode.HOST_TO_CONTAINER, MountPropagation_Mode.BIDIRECTIONAL, 7) }),
  fc.record({ k: fc.constant("sandboxRelative" as const), path: hostileString, target: targetArb, rw: fc.boolean() }),
  fc.record({ k: fc.constant("sandboxPath" as const), type: fc.constantFrom(0, Volume_Source_SandboxPath_Type.SELF, Volume_Source_SandboxPath_Type.PARENT), path: hostileString, target: targetArb }),
  fc.record({
    k: fc.constant("dockerVolume" as const),
    valid: fc.boolean(),
    name: hostileString,
    driver: fc.oneof(fc.constantFrom("", "local", "local", "fz-no-such-driver", "../local", "local\0"), hostileString),
    options: fc.oneof(
      fc.constant([] as Array<[string, string]>),
      fc.constantFrom<Array<[string, string]>>([["type", "none"], ["o", "bind"], ["device", "/etc"]], [["device", "/"]], [["o", "bind"]], [["type", "tmpfs"], ["device", "tmpfs"], ["o", "size=1m"]]),
      fc.array(fc.tuple(hostileString, hostileString), { maxLength: 3 }),
    ),
    target: targetArb,
    rw: fc.boolean(),
  }),
  fc.record({ k: fc.constant("anonymous" as const), target: targetArb }),
  fc.record({ k: fc.constant("odd" as const), sourceType: fc.constantFrom(0, Volume_Source_Type.CSI_VOLUME, Volume_Source_Type.SECRET, 42), target: targetArb, image: fc.boolean(), mode: fc.constantFrom(Volume_Mode.RW, Volume_Mode.RO, 0, 9) }),
);

const CAPS = Object.values(CapabilityInfo_Capability).filter((v): v is number => typeof v === "number");

const containerArb: fc.Arbitrary<ContainerPlan> = fc.record({
  type: fc.oneof({ arbitrary: fc.constant(ContainerInfo_Type.DOCKER), weight: 12 }, { arbitrary: fc.constantFrom(ContainerInfo_Type.MESOS, 0, 77), weight: 1 }),
  image: fc.oneof(
    { arbitrary: fc.constant({ k: "test" } as ImagePlan), weight: 4 },
    { arbitrary: fc.record({ k: fc.constant("missing" as const), tag: fc.stringMatching(/^[a-z0-9]{1,8}$/) }), weight: 2 },
    { arbitrary: fc.record({ k: fc.constant("invalid" as const), v: hostileString }), weight: 3 },
    { arbitrary: fc.constant({ k: "empty" } as ImagePlan), weight: 1 },
  ),
  forcePull: fc.boolean(),
  network: fc.oneof(
    { arbitrary: fc.constant(ContainerInfo_DockerInfo_Network.NONE), weight: 12 },
    { arbitrary: fc.constantFrom(ContainerInfo_DockerInfo_Network.HOST, ContainerInfo_DockerInfo_Network.BRIDGE, ContainerInfo_DockerInfo_Network.USER, 0, 99), weight: 3 },
  ),
  networkNames: fc.array(fc.oneof(fc.constantFrom("host", "none", "bridge", "fz-no-such-network", ""), hostileString), { maxLength: 2 }),
  portMappings: fc.array(fc.record({ hostPort: hostileUint32, containerPort: hostileUint32, protocol: fc.oneof(fc.constantFrom("", "tcp", "udp", "sctp", "TCP", "icmp"), hostileString) }), { maxLength: 2 }),
  privileged: fc.boolean(),
  parameters: fc.array(
    fc.tuple(
      fc.oneof(fc.constantFrom("label", "workdir", "env", "hostname", "shm-size", "volumes-from", "privileged", "cap-add", "pid", "net", "device", "security-opt", "volume", ""), hostileString),
      fc.oneof(fc.constantFrom("berth.container_id=x", "berth.agent_id=y", "a=b", "/etc", "/", "1g", "64m", "99999999999999999999g", "FOO=bar", "host", "SYS_ADMIN", "/dev/sda", "seccomp=unconfined"), hostileString),
    ),
    { maxLength: 3 },
  ),
  volumes: fc.array(volumeArb, { maxLength: 3 }),
  hostname: fc.oneof(fc.constantFrom("", "", "fz-host", "-bad", "a".repeat(300)), hostileString),
  linux: fc.option(
    fc.record({
      field: fc.constantFrom("capabilityInfo" as const, "boundingCapabilities" as const, "effectiveCapabilities" as const),
      caps: fc.array(fc.oneof(fc.constantFrom(...CAPS), fc.constantFrom(0, 999, -1, CapabilityInfo_Capability.SYS_ADMIN, CapabilityInfo_Capability.NET_ADMIN)), { maxLength: 4 }),
      ipcMode: fc.constantFrom(0, LinuxInfo_IpcMode.PRIVATE, LinuxInfo_IpcMode.SHARE_PARENT, 9),
      shmSize: fc.oneof(fc.constant(0), hostileUint32),
      sharePid: fc.boolean(),
    }),
    { nil: undefined },
  ),
  tty: fc.boolean(),
});

const SAFE_QUOTED = fc.oneof(hostileString, fc.constantFrom("$(reboot)", "`halt`", "'", "\\", "\n; rm -rf /"));

const commandArb: fc.Arbitrary<CommandPlan> = fc.oneof(
  { arbitrary: fc.constant({ k: "true" } as CommandPlan), weight: 3 },
  { arbitrary: fc.record({ k: fc.constant("exit" as const), n: fc.integer({ min: 0, max: 255 }) }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constant("quoted" as const), v: SAFE_QUOTED }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constant("exec" as const), program: fc.constantFrom("true" as const, "/bin/true" as const, "/bin/echo" as const), args: fc.array(hostileString, { maxLength: 3 }) }), weight: 2 },
  { arbitrary: fc.constant({ k: "imageDefault" } as CommandPlan), weight: 1 },
  {
    arbitrary: fc.record({
      k: fc.constant("invalid" as const),
      shell: fc.boolean(),
      value: fc.oneof(fc.constant(""), hostileString.map((s) => `true${s.includes("\0") ? s : `\0${s}`}`)),
      args: fc.array(hostileString, { maxLength: 2 }),
    }),
    weight: 2,
  },
);

const LOOPBACK_HOSTS = ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "127.1.2.3", "[::ffff:7f00:1]", "2130706433", "0x7f.1", "127.000.000.001"];
const REFUSED_HOSTS = ["169.254.169.254", "[fe80::1]", "10.0.0.1", "192.168.0.1", "172.16.0.1", "100.64.0.1", "[fc00::1]", "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]", "0251.0376.0251.0376", "0.0.0.0", "[::]", "224.0.0.1"];

const uriValueArb: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.constantFrom("http", "https", "HTTP"), fc.constantFrom(...LOOPBACK_HOSTS), fc.constantFrom(":1", ":9", ""), hostileString).map(([s, h, p, tail]) => `${s}://${h}${p === "" ? ":1" : p}/${tail}`),
  fc.tuple(fc.constantFrom("http", "https"), fc.constantFrom(...REFUSED_HOSTS), fc.constantFrom("", ":80", ":1"), fc.constantFrom("latest/meta-data/", "", "x.tgz")).map(([s, h, p, tail]) => `${s}://${h}${p}/${tail}`),
  fc.tuple(fc.constantFrom("http", "https"), fc.stringMatching(/^[a-z0-9-]{1,10}$/), fc.constantFrom("", ":8443")).map(([s, n, p]) => `${s}://${n}.invalid${p}/artifact.tgz`),
  fc.constantFrom(
    "file:///root/x",
    "file:///etc/hostname",
    "file:///var/run/docker.sock",
    "file:///etc/../etc/hostname",
    "file:///proc/self/status",
    "file://localhost/etc/hostname",
    "/root/x",
    "/etc/hostname",
    "relative/path",
    "ftp://127.0.0.1/x",
    "gopher://127.0.0.1:1/x",
    "data:text/plain,hi",
    "javascript:alert(1)",
    "hdfs://namenode.invalid/x",
    "s3://bucket.invalid/x",
    "http://user:pass@127.0.0.1:1/",
    "http://127.0.0.1:1@169.254.169.254/",
    "http://127.0.0.1:99999/",
    "http:///fz.invalid/x",
    "",
  ),
  hostileString.map(relative),
);

const uriArb: fc.Arbitrary<UriPlan> = fc.record(
  {
    value: uriValueArb,
    outputFile: fc.oneof(fc.constantFrom("ok.txt", "../../etc/passwd", "/etc/x", "a/../../b", "stdout", "."), hostileString),
    extract: fc.boolean(),
    executable: fc.boolean(),
  },
  { requiredKeys: ["value"] },
);

const commandInfoArb: fc.Arbitrary<CommandInfoPlan> = fc.record({
  command: commandArb,
  env: fc.array(fc.record({ name: fc.oneof(fc.constantFrom("PATH", "LD_PRELOAD", "MESOS_SANDBOX", "A", "=", ""), hostileString), value: hostileString, secret: fc.boolean() }), { maxLength: 3 }),
  uris: fc.array(uriArb, { maxLength: 2 }),
  user: fc.oneof(fc.constantFrom("", "", "root", "nobody", "0", "65534:65534", "nobody:root"), hostileString),
});

const resourceArb: fc.Arbitrary<ResourcePlan> = fc.record({
  name: fc.oneof(fc.constantFrom("cpus", "mem", "disk", "ports", "gpus", ""), hostileString),
  type: fc.constantFrom(Value_Type.SCALAR, Value_Type.SCALAR, Value_Type.RANGES, Value_Type.SET, Value_Type.TEXT, 9),
  scalar: hostileDouble,
  ranges: fc.array(fc.tuple(hostileUint64, hostileUint64), { maxLength: 2 }),
  items: fc.array(hostileString, { maxLength: 2 }),
  role: fc.oneof(fc.constantFrom("", "*", "role"), hostileString),
});

const idPlanArb = (forLaunch: boolean): fc.Arbitrary<IdPlan> =>
  fc.oneof(
    { arbitrary: fc.constant({ k: "fresh" } as IdPlan), weight: forLaunch ? 20 : 0 },
    { arbitrary: fc.record({ k: fc.constant("hostile" as const), v: hostileId }), weight: 4 },
    { arbitrary: fc.record({ k: fc.constant("accepted" as const), i: fc.nat(1000) }), weight: forLaunch ? 1 : 5 },
    { arbitrary: fc.constant({ k: "resident" } as IdPlan), weight: forLaunch ? 0 : 4 },
    { arbitrary: fc.constant({ k: "unknown" } as IdPlan), weight: 2 },
    { arbitrary: fc.constant({ k: "missing" } as IdPlan), weight: 1 },
    { arbitrary: fc.constant({ k: "nested" } as IdPlan), weight: 1 },
  );

const dirArb: fc.Arbitrary<DirPlan> = fc.oneof(
  { arbitrary: fc.constant({ k: "empty" } as DirPlan), weight: 6 },
  { arbitrary: fc.record({ k: fc.constant("sandboxes" as const), sub: fc.array(hostileString, { maxLength: 2 }) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant("canary" as const), mirror: fc.oneof(fc.constantFrom("etc/cron.d", "root/.ssh", "var/run", "usr/local/bin"), hostileString) }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constant("invalid" as const), v: fc.oneof(hostileString.map(relative), fc.constantFrom("/tmp/../etc/cron.d", "/etc/cron.d\0", "/root/.ssh\n", "/a/./../../etc", "etc/cron.d", "/\u0001")) }), weight: 2 },
);

const hostileLaunchArb: fc.Arbitrary<LaunchPlan> = fc.record(
  {
    shape: fc.constant("hostile" as const),
    id: idPlanArb(true),
    directory: dirArb,
    command: commandInfoArb,
    container: containerArb,
    resources: fc.array(resourceArb, { maxLength: 3 }),
    environment: fc.oneof(fc.array(fc.tuple(hostileString, hostileString), { maxLength: 4 }), fc.array(fc.tuple(fc.stringMatching(/^[A-Z_]{1,8}$/), fc.string({ maxLength: 8 })), { minLength: 20, maxLength: 60 })),
    user: fc.oneof(fc.constantFrom("", "", "", "root", "nobody", "1000:1000"), hostileString),
    task: fc.record(
      {
        taskId: fc.oneof(fc.stringMatching(/^[a-z0-9:@-]{1,12}$/), hostileString),
        command: commandInfoArb,
        container: containerArb,
        graceNs: hostileInt64,
        resources: fc.array(resourceArb, { maxLength: 2 }),
      },
      { requiredKeys: ["taskId", "command", "resources"] },
    ),
    executor: fc.record({ executorId: fc.oneof(fc.stringMatching(/^[a-z0-9-]{1,12}$/), hostileString), command: commandInfoArb, container: containerArb }, { requiredKeys: ["executorId", "command"] }),
  },
  { requiredKeys: ["shape", "id", "directory", "command", "resources", "environment", "user"] },
).chain((plan) =>
  // The task and executor are rarer than the config's own command and container.
  fc.tuple(fc.nat(9), fc.nat(19), fc.nat(9)).map(([t, e, c]) => ({
    ...plan,
    task: t === 0 ? plan.task : undefined,
    executor: e === 0 ? plan.executor : undefined,
    container: c === 0 ? undefined : plan.container,
  })),
);

const TWEAKS = [
  "privileged",
  "capSysAdmin",
  "capDefault",
  "hostRoot",
  "hostDockerSock",
  "hostEtcLegacy",
  "dockerVolumeBindOpts",
  "dockerVolumeDriver",
  "ipcHost",
  "pidHost",
  "canaryDirectory",
  "sandboxesDirectory",
  "fileUri",
  "barePathUri",
  "loopbackUri",
  "linkLocalUri",
  "mappedLoopbackUri",
  "invalidNameUri",
  "networkHost",
  "userRoot",
  "userNobody",
  "hugeResources",
  "taskWithKillPolicy",
] as const;

const validBase = (tweak: string | undefined, exitCode: number, cpus: number, memMb: number, envValue: string): LaunchPlan => {
  const command: CommandInfoPlan = { command: exitCode === 0 ? { k: "true" } : { k: "exit", n: exitCode }, env: [{ name: "FUZZ", value: envValue, secret: false }], uris: [], user: "" };
  const container: ContainerPlan = {
    type: ContainerInfo_Type.DOCKER,
    image: { k: "test" },
    forcePull: false,
    network: ContainerInfo_DockerInfo_Network.NONE,
    networkNames: [],
    portMappings: [],
    privileged: false,
    parameters: [],
    volumes: [],
    hostname: "",
    tty: false,
  };
  const plan: LaunchPlan = {
    shape: tweak === undefined ? "valid" : "tweak",
    tweak,
    id: { k: "fresh" },
    directory: { k: "empty" },
    command,
    container,
    resources: [
      { name: "cpus", type: Value_Type.SCALAR, scalar: cpus, ranges: [], items: [], role: "" },
      { name: "mem", type: Value_Type.SCALAR, scalar: memMb, ranges: [], items: [], role: "" },
    ],
    environment: [["FUZZ_EXTRA", envValue]],
    user: "",
  };
  const linux = (field: NonNullable<ContainerPlan["linux"]>["field"], caps: number[], ipcMode = 0, sharePid = false) => {
    container.linux = { field, caps, ipcMode, shmSize: 0, sharePid };
  };
  switch (tweak) {
    case undefined:
      break;
    case "privileged":
      container.privileged = true;
      break;
    case "capSysAdmin":
      linux("effectiveCapabilities", [CapabilityInfo_Capability.SYS_ADMIN, CapabilityInfo_Capability.NET_ADMIN]);
      break;
    case "capDefault":
      linux("capabilityInfo", [CapabilityInfo_Capability.CHOWN, CapabilityInfo_Capability.KILL]);
      break;
    case "hostRoot":
      container.volumes.push({ k: "hostPath", real: "/", legacy: false, rw: true, slave: false });
      break;
    case "hostDockerSock":
      container.volumes.push({ k: "hostPath", real: "/var/run/docker.sock", legacy: true, rw: true, slave: false });
      break;
    case "hostEtcLegacy":
      container.volumes.push({ k: "hostPath", real: "/etc", legacy: true, rw: false, slave: true });
      break;
    case "dockerVolumeBindOpts":
      container.volumes.push({ k: "dockerVolume", valid: true, name: "v", driver: "local", options: [["type", "none"], ["o", "bind"], ["device", "/etc"]], target: "/fz", rw: true });
      break;
    case "dockerVolumeDriver":
      container.volumes.push({ k: "dockerVolume", valid: true, name: "v", driver: "fz-no-such-driver", options: [], target: "/fz", rw: true });
      break;
    case "ipcHost":
      linux("capabilityInfo", [], LinuxInfo_IpcMode.SHARE_PARENT);
      break;
    case "pidHost":
      linux("capabilityInfo", [], 0, true);
      break;
    case "canaryDirectory":
      plan.directory = { k: "canary", mirror: "etc/cron.d" };
      break;
    case "sandboxesDirectory":
      plan.directory = { k: "sandboxes", sub: ["chosen"] };
      break;
    case "fileUri":
      command.uris.push({ value: "file:///etc/hostname", outputFile: "host-file" });
      break;
    case "barePathUri":
      command.uris.push({ value: "/root/.fz-does-not-exist" });
      break;
    case "loopbackUri":
      command.uris.push({ value: "http://127.0.0.1:1/artifact" });
      break;
    case "linkLocalUri":
      command.uris.push({ value: "http://169.254.169.254/latest/meta-data/" });
      break;
    case "mappedLoopbackUri":
      command.uris.push({ value: "http://[::ffff:127.0.0.1]:1/artifact" });
      break;
    case "invalidNameUri":
      command.uris.push({ value: "http://artifacts.invalid/x.tgz", extract: true });
      break;
    case "networkHost":
      container.network = ContainerInfo_DockerInfo_Network.HOST;
      break;
    case "userRoot":
      plan.user = "root";
      break;
    case "userNobody":
      plan.user = "65534";
      break;
    case "hugeResources":
      plan.resources[0]!.scalar = 4096;
      plan.resources[1]!.scalar = 64 * 1024 * 1024;
      break;
    case "taskWithKillPolicy":
      plan.task = { taskId: "fz-task", command, container, graceNs: 1_000_000_000n, resources: plan.resources };
      break;
  }
  return plan;
};

/** A launch meant to be accepted (test image, `true`/`exit N`, network NONE), maybe with one dangerous ask. */
const validLaunchArb = (tweaked: boolean): fc.Arbitrary<LaunchPlan> =>
  fc
    .tuple(
      tweaked ? fc.constantFrom(...TWEAKS).map((t): string | undefined => t) : fc.constant(undefined),
      fc.constantFrom(0, 0, 1, 3, 255),
      fc.double({ min: 0.01, max: 2, noNaN: true }),
      fc.double({ min: 1, max: 128, noNaN: true }),
      fc.oneof(fc.constant("v"), hostileString.filter((s) => !s.includes("\0"))),
    )
    .map(([tweak, exitCode, cpus, mem, env]) => validBase(tweak, exitCode, cpus, mem, env));

/**
 * A valid launch with exactly one field replaced by a generated (mostly hostile) one, so that every
 * validator and policy rule is reached, not only the first one a fully random request trips.
 */
const mutantLaunchArb: fc.Arbitrary<LaunchPlan> = fc
  .tuple(
    validLaunchArb(false),
    fc.oneof(
      dirArb.map((directory) => (p: LaunchPlan) => void (p.directory = directory)),
      commandArb.map((command) => (p: LaunchPlan) => void (p.command.command = command)),
      fc.array(uriArb, { minLength: 1, maxLength: 2 }).map((uris) => (p: LaunchPlan) => void (p.command.uris = uris)),
      commandInfoArb.map((c) => (p: LaunchPlan) => void (p.command.env = c.env)),
      fc.oneof(fc.constantFrom("", "root", "nobody", "0", "65534:65534"), hostileString).map((user) => (p: LaunchPlan) => void (p.user = user)),
      fc.array(volumeArb, { minLength: 1, maxLength: 2 }).map((volumes) => (p: LaunchPlan) => void (p.container!.volumes = volumes)),
      containerArb.map((c) => (p: LaunchPlan) => void (p.container!.parameters = c.parameters)),
      containerArb.map((c) => (p: LaunchPlan) => void (p.container!.linux = c.linux)),
      containerArb.map((c) => (p: LaunchPlan) => void (p.container!.privileged = c.privileged)),
      containerArb.map((c) => (p: LaunchPlan) => {
        p.container!.network = c.network;
        p.container!.networkNames = c.networkNames;
        p.container!.portMappings = c.portMappings;
        p.container!.hostname = c.hostname;
      }),
      containerArb.map((c) => (p: LaunchPlan) => void (p.container!.image = c.image)),
      fc.array(resourceArb, { minLength: 1, maxLength: 3 }).map((resources) => (p: LaunchPlan) => void (p.resources = resources)),
      fc.array(fc.tuple(hostileString, hostileString), { minLength: 1, maxLength: 3 }).map((environment) => (p: LaunchPlan) => void (p.environment = environment)),
      hostileLaunchArb.map((h) => (p: LaunchPlan) => void (p.task = h.task ?? { taskId: "t", command: h.command, resources: [], graceNs: -1n })),
      hostileLaunchArb.map((h) => (p: LaunchPlan) => void (p.executor = h.executor ?? { executorId: "e", command: h.command, container: h.container })),
    ),
  )
  .map(([plan, mutate]) => {
    mutate(plan);
    return { ...plan, shape: "mutant" as const };
  });

/** Weights of the launch shapes: accepted containers cost real engine work, so they are a few. */
export const launchPlanArb: fc.Arbitrary<LaunchPlan> = fc.oneof(
  { arbitrary: hostileLaunchArb, weight: 40 },
  { arbitrary: mutantLaunchArb, weight: 10 },
  { arbitrary: validLaunchArb(false), weight: 1 },
  { arbitrary: validLaunchArb(true), weight: 3 },
);

const typedOpArb: fc.Arbitrary<TypedOp> = fc.oneof(
  { arbitrary: launchPlanArb.map((plan) => ({ op: "launch" as const, plan })), weight: 30 },
  { arbitrary: fc.record({ op: fc.constant("wait" as const), id: idPlanArb(false), deadlineMs: fc.integer({ min: 1, max: 250 }) }), weight: 7 },
  { arbitrary: fc.record({ op: fc.constant("destroy" as const), id: idPlanArb(false).filter((i) => i.k !== "resident") }), weight: 7 },
  {
    arbitrary: fc.record(
      { op: fc.constant("watch" as const), ids: fc.array(idPlanArb(false), { maxLength: 3 }), fromSequence: fc.oneof(fc.constantFrom(0n, 1n, 2n ** 64n - 1n), hostileUint64), deadlineMs: fc.integer({ min: 1, max: 250 }) },
      { requiredKeys: ["op", "ids", "deadlineMs"] },
    ),
    weight: 5,
  },
  { arbitrary: fc.constant({ op: "containers" as const }), weight: 6 },
  { arbitrary: fc.record({ op: fc.constant("status" as const), id: idPlanArb(false) }), weight: 9 },
  {
    arbitrary: fc.record({
      op: fc.constant("update" as const),
      id: idPlanArb(false),
      resources: fc.oneof(
        fc.array(resourceArb, { maxLength: 3 }),
        // Sane values too, so that updates are applied to the running container, floors and all.
        fc.array(
          fc.record({
            name: fc.constantFrom("cpus", "mem"),
            type: fc.constant(Value_Type.SCALAR),
            scalar: fc.oneof(fc.double({ min: 0, max: 8, noNaN: true }), fc.double({ min: 1, max: 4096, noNaN: true }), fc.constantFrom(0, 4096, 1e-9)),
            ranges: fc.constant([] as Array<[bigint, bigint]>),
            items: fc.constant([] as string[]),
            role: fc.constant(""),
          }),
          { minLength: 1, maxLength: 2 },
        ),
      ),
    }),
    weight: 10,
  },
  { arbitrary: fc.record({ op: fc.constant("usage" as const), id: idPlanArb(false) }), weight: 7 },
  {
    arbitrary: fc.record({
      op: fc.constant("prune" as const),
      excluded: fc.array(fc.record({ name: fc.oneof(fc.constantFrom("busybox", "127.0.0.1:5000/berth-test/busybox", "127.0.0.1:5000/berth-test/big:1", "*", ""), hostileString), type: fc.constantFrom(Image_Type.DOCKER, Image_Type.APPC, 0, 5) }), { maxLength: 3 }),
    }),
    weight: 3,
  },
  { arbitrary: fc.record({ op: fc.constant("health" as const), service: fc.oneof(fc.constantFrom("", "berth.v1.Containerizer", "grpc.health.v1.Health"), hostileString) }), weight: 3 },
);

const bytesPlanArb: fc.Arbitrary<BytesPlan> = fc.oneof(
  { arbitrary: fc.record({ k: fc.constant("random" as const), bytes: fc.uint8Array({ maxLength: 300 }) }), weight: 4 },
  {
    arbitrary: fc.record({ k: fc.constant("message" as const), of: typedOpArb.filter((o) => o.op !== "health"), cut: fc.nat(400), flip: fc.nat(400) }, { requiredKeys: ["k", "of"] }),
    weight: 5,
  },
  { arbitrary: fc.record({ k: fc.constant("garbage" as const), size: fc.integer({ min: 1024, max: 300_000 }), seed: fc.nat() }), weight: 1 },
);

/** One fuzzed call: a typed request to one RPC, or raw bytes to one method. */
export const fuzzOpArb: fc.Arbitrary<FuzzOp> = fc.oneof(
  { arbitrary: typedOpArb, weight: 93 },
  { arbitrary: fc.record({ op: fc.constant("raw" as const), method: fc.constantFrom(...RAW_METHODS), bytes: bytesPlanArb }), weight: 7 },
);

// ---------------------------------------------------------------------------------------------
// Materialization
// ---------------------------------------------------------------------------------------------

/** The container id a plan names now, or undefined when the request carries none. */
export function materializeId(p: IdPlan, ctx: FuzzContext): { value?: string; parent?: string } {
  switch (p.k) {
    case "fresh":
      return { value: `fz-${ctx.runToken}-${ctx.next()}` };
    case "hostile":
      return { value: p.v };
    case "accepted":
      return { value: ctx.accepted.length > 0 ? ctx.accepted[p.i % ctx.accepted.length]! : `fz-unknown-${ctx.next()}` };
    case "resident":
      return { value: ctx.residentId };
    case "unknown":
      return { value: `fz-unknown-${ctx.next()}` };
    case "missing":
      return {};
    case "nested":
      return { value: `fz-child-${ctx.next()}`, parent: ctx.accepted[0] ?? ctx.residentId };
  }
}

function containerIdInit(id: { value?: string; parent?: string }) {
  if (id.value === undefined) return undefined;
  return { value: id.value, parent: id.parent !== undefined ? { value: id.parent } : undefined };
}

/** Shell-quotes a string for `true '<s>'` (NULs dropped: they never reach a shell). */
const shellQuote = (s: string) => `'${s.replace(/\0/g, "").replace(/'/g, `'\\''`)}'`;

function commandInit(p: CommandInfoPlan, ctx: FuzzContext) {
  let shell = true;
  let value = "";
  let args: string[] = [];
  const c = p.command;
  switch (c.k) {
    case "true":
      value = "true";
      break;
    case "exit":
      value = `exit ${c.n}`;
      break;
    case "quoted":
      value = `true ${shellQuote(c.v)}`;
      break;
    case "exec":
      shell = false;
      value = c.program;
      args = c.args;
      break;
    case "imageDefault":
      shell = false;
      break;
    case "invalid":
      shell = c.shell;
      value = c.value;
      args = c.args;
      break;
  }
  return {
    shell,
    value,
    arguments: args,
    user: p.user,
    environment: { variables: p.env.map((e) => ({ name: e.name, value: e.value, type: e.secret ? Environment_Variable_Type.SECRET : Environment_Variable_Type.VALUE })) },
    uris: p.uris.map((u) => ({
      value: u.value.replaceAll("<canary>", ctx.canaryRoot),
      outputFile: u.outputFile,
      extract: u.extract,
      executable: u.executable,
    })),
  };
}

/** Paths a launch plan may create that did not exist before (checked after a refusal). */
export interface LaunchNotes {
  /** A directory that must not exist after a refusal (the unique root of a requested path). */
  freshPaths: string[];
  /** Docker volume names (prefixed with the run token) the launch names. */
  volumeNames: string[];
}

function volumeInit(v: VolumePlan, ctx: FuzzContext, notes: LaunchNotes) {
  const safeTarget = () => `/fz-${ctx.next()}`;
  const mode = (rw: boolean) => (rw ? Volume_Mode.RW : Volume_Mode.RO);
  switch (v.k) {
    case "hostPath": {
      const real = v.real.replace("<work>", ctx.workDir);
      if (v.legacy) return { containerPath: safeTarget(), hostPath: real, mode: mode(v.rw) };
      return {
        containerPath: safeTarget(),
        mode: mode(v.rw),
        source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: real, mountPropagation: v.slave ? { mode: MountPropagation_Mode.HOST_TO_CONTAINER } : undefined } },
      };
    }
    case "canaryHostPath": {
      const root = path.join(ctx.canaryRoot, `vol-${ctx.next()}`);
      notes.freshPaths.push(root);
      return {
        containerPath: v.target,
        mode: mode(v.rw),
        source: { type: Volume_Source_Type.HOST_PATH, hostPath: { path: path.join(root, "src"), mountPropagation: v.propagation !== 0 ? { mode: v.propagation } : undefined } },
      };
    }
    case "sandboxRelative":
      return { containerPath: v.target, hostPath: relative(v.path), mode: mode(v.rw) };
    case "sandboxPath":
      return { containerPath: v.target, mode: Volume_Mode.RW, source: { type: Volume_Source_Type.SANDBOX_PATH, sandboxPath: { type: v.type, path: v.path } } };
    case "dockerVolume": {
      // A valid name always carries the run's prefix (so the suite can remove what the engine made);
      // an invalid one can never be a volume name ('!' is outside the engine's charset).
      const name = v.valid ? `fzv-${ctx.runToken}-${ctx.next()}` : `!${v.name}`;
      if (v.valid) notes.volumeNames.push(name);
      return {
        containerPath: v.options.length > 0 ? safeTarget() : v.target,
        mode: mode(v.rw),
        source: {
          type: Volume_Source_Type.DOCKER_VOLUME,
          dockerVolume: { name, driver: v.driver, driverOptions: v.options.length > 0 ? { parameter: v.options.map(([key, value]) => ({ key, value })) } : undefined },
        },
      };
    }
    case "anonymous":
      return { containerPath: v.target, mode: Volume_Mode.RW };
    case "odd":
      return {
        containerPath: v.target,
        mode: v.mode,
        image: v.image ? { type: Image_Type.DOCKER, docker: { name: ctx.testImage } } : undefined,
        source: v.sourceType !== 0 ? { type: v.sourceType } : undefined,
      };
  }
}

function imageOf(p: ImagePlan, ctx: FuzzContext): string {
  switch (p.k) {
    case "test":
      return ctx.testImage;
    case "missing":
      return `127.0.0.1:5000/berth-fuzz/missing:${p.tag}`;
    case "invalid":
      // '!' is outside every reference grammar: never a pull from anywhere.
      return `${p.v}!`;
    case "empty":
      return "";
  }
}

function containerInit(p: ContainerPlan, ctx: FuzzContext, notes: LaunchNotes): MessageInitShape<typeof ContainerInfoSchema> {
  return {
    type: p.type,
    docker: {
      image: imageOf(p.image, ctx),
      forcePullImage: p.forcePull,
      network: p.network,
      portMappings: p.portMappings,
      privileged: p.privileged,
      parameters: p.parameters.map(([key, value]) => ({ key, value })),
    },
    volumes: p.volumes.map((v) => volumeInit(v, ctx, notes)),
    hostname: p.hostname,
    networkInfos: p.networkNames.map((name) => ({ name })),
    linuxInfo: p.linux
      ? { [p.linux.field]: { capabilities: p.linux.caps }, ipcMode: p.linux.ipcMode, shmSize: p.linux.shmSize, sharePidNamespace: p.linux.sharePid }
      : undefined,
    ttyInfo: p.tty ? {} : undefined,
  };
}

export function resourceInit(r: ResourcePlan): MessageInitShape<typeof ResourceSchema> {
  return {
    name: r.name,
    type: r.type,
    role: r.role,
    scalar: r.type === Value_Type.SCALAR || r.type === 9 ? { value: r.scalar } : undefined,
    ranges: r.type === Value_Type.RANGES ? { range: r.ranges.map(([begin, end]) => ({ begin, end })) } : undefined,
    set: r.type === Value_Type.SET ? { item: r.items } : undefined,
  };
}

function directoryOf(p: DirPlan, ctx: FuzzContext, notes: LaunchNotes): string {
  switch (p.k) {
    case "empty":
      return "";
    case "sandboxes": {
      const root = path.join(ctx.workDir, "sandboxes", `fzdir-${ctx.next()}`);
      notes.freshPaths.push(root);
      return [root, ...p.sub].join("/");
    }
    case "canary": {
      const root = path.join(ctx.canaryRoot, `dir-${ctx.next()}`);
      notes.freshPaths.push(root);
      return `${root}/${p.mirror}`;
    }
    case "invalid":
      return p.v;
  }
}

/** A LaunchRequest for a plan, with what the leftover checks need to know about it. */
export function materializeLaunch(plan: LaunchPlan, ctx: FuzzContext): { request: LaunchRequest; id?: string; notes: LaunchNotes } {
  const notes: LaunchNotes = { freshPaths: [], volumeNames: [] };
  const id = materializeId(plan.id, ctx);
  const command = commandInit(plan.command, ctx);
  const container = plan.container ? containerInit(plan.container, ctx, notes) : undefined;
  const resources = plan.resources.map(resourceInit);
  const request = create(LaunchRequestSchema, {
    containerId: containerIdInit(id),
    environment: Object.fromEntries(plan.environment),
    containerConfig: {
      directory: directoryOf(plan.directory, ctx, notes),
      user: plan.user,
      commandInfo: command,
      containerInfo: container,
      resources,
      taskInfo: plan.task
        ? {
            name: "fz",
            taskId: { value: plan.task.taskId },
            agentId: { value: "fz-agent" },
            command: commandInit(plan.task.command, ctx),
            container: plan.task.container ? containerInit(plan.task.container, ctx, notes) : container,
            resources: plan.task.resources.map(resourceInit),
            killPolicy: plan.task.graceNs !== undefined ? { gracePeriod: { nanoseconds: plan.task.graceNs } } : undefined,
          }
        : undefined,
      executorInfo: plan.executor
        ? {
            executorId: { value: plan.executor.executorId },
            command: commandInit(plan.executor.command, ctx),
            container: plan.executor.container ? containerInit(plan.executor.container, ctx, notes) : undefined,
          }
        : undefined,
    },
  });
  return { request, id: id.parent === undefined ? id.value : undefined, notes };
}

/** The request message (schema and value) of a typed op other than launch and health. */
export function materializeRequest(op: TypedOp, ctx: FuzzContext): { schema: DescMessage; message: unknown } | undefined {
  const id = (p: IdPlan) => containerIdInit(materializeId(p, ctx));
  switch (op.op) {
    case "launch":
      return { schema: LaunchRequestSchema, message: materializeLaunch(op.plan, ctx).request };
    case "wait":
      return { schema: WaitRequestSchema, message: create(WaitRequestSchema, { containerId: id(op.id) }) };
    case "destroy":
      return { schema: DestroyRequestSchema, message: create(DestroyRequestSchema, { containerId: id(op.id) }) };
    case "watch":
      return {
        schema: WatchRequestSchema,
        // A Watch request's ids must each carry a value (proto2 required); a missing one becomes "".
        message: create(WatchRequestSchema, { containerIds: op.ids.map((p) => id(p) ?? { value: "" }), fromSequence: op.fromSequence }),
      };
    case "containers":
      return { schema: ContainersRequestSchema, message: create(ContainersRequestSchema, {}) };
    case "status":
      return { schema: StatusRequestSchema, message: create(StatusRequestSchema, { containerId: id(op.id) }) };
    case "update":
      return { schema: UpdateRequestSchema, message: create(UpdateRequestSchema, { containerId: id(op.id), resources: op.resources.map(resourceInit) }) };
    case "usage":
      return { schema: UsageRequestSchema, message: create(UsageRequestSchema, { containerId: id(op.id) }) };
    case "prune":
      return { schema: PruneImagesRequestSchema, message: create(PruneImagesRequestSchema, { excludedImages: op.excluded.map((e) => ({ type: e.type, docker: { name: e.name } })) }) };
    case "health":
      return undefined;
  }
}

/** Deterministic pseudo-random bytes (xorshift), for large garbage without storing it in the plan. */
export function garbage(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** The bytes of a raw plan: random, a (maybe cut or bit-flipped) message of any type, or garbage. */
export function materializeBytes(p: BytesPlan, ctx: FuzzContext): Uint8Array {
  switch (p.k) {
    case "random":
      return p.bytes;
    case "garbage":
      return garbage(p.size, p.seed);
    case "message": {
      const req = materializeRequest(p.of, ctx);
      let bytes = req ? toBinary(req.schema, req.message as never) : new Uint8Array();
      if (p.cut !== undefined && bytes.length > 0 && p.cut % 3 === 0) bytes = bytes.subarray(0, p.cut % bytes.length);
      if (p.flip !== undefined && bytes.length > 0 && p.flip % 2 === 0) {
        bytes = Uint8Array.from(bytes);
        bytes[p.flip % bytes.length] ^= 1 << (p.flip % 8);
      }
      return bytes;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Safety of a launch (checked before anything is sent)
// ---------------------------------------------------------------------------------------------

function imageIsSafe(image: string, ctx: FuzzContext): boolean {
  const t = image.trim();
  // The loopback registry, or a string no reference grammar takes (a character outside it).
  return t === "" || t === ctx.testImage || t.startsWith("127.0.0.1:5000/") || /[^a-zA-Z0-9._:/@-]/.test(t);
}

function hostIsAllowed(hostname: string): boolean {
  const bare = hostname.replace(/^\[|\]$/g, "");
  if (net.isIP(bare) !== 0) return true; // any literal: loopback passes, the rest is refused or guarded
  return hostname.toLowerCase().endsWith(".invalid") || hostname === "";
}

function uriIsSafe(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return true; // not a URL: a bare path (read locally) or refused
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return true;
  const bare = url.hostname.replace(/^\[|\]$/g, "");
  // Public literals are never generated; refuse them here too.
  if (net.isIP(bare) !== 0) return !isPublicLiteral(bare);
  return hostIsAllowed(url.hostname);
}

function isPublicLiteral(ip: string): boolean {
  const lower = ip.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  const v4 = mapped ? mapped[1]! : net.isIP(lower) === 4 ? lower : undefined;
  if (v4) {
    const [a, b] = v4.split(".").map(Number) as [number, number];
    return !(a === 127 || a === 10 || a === 0 || a >= 224 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b < 128));
  }
  return !(lower === "::1" || lower === "::" || lower.startsWith("fe8") || lower.startsWith("fc") || lower.startsWith("fd") || lower.startsWith("ff") || /^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(lower));
}

const SAFE_SHELL = /^(true|exit \d{1,3}|true '([^']|'\\'')*')$/s;
const SAFE_PROGRAMS = new Set(["", "true", "/bin/true", "/bin/echo"]);

function commandIsSafe(c: CommandInfo | undefined): boolean {
  if (!c) return true;
  if (c.value.includes("\0") || c.arguments.some((a) => a.includes("\0"))) return true; // never executable
  if (c.shell) return c.value === "" || SAFE_SHELL.test(c.value);
  return SAFE_PROGRAMS.has(c.value) && c.uris.every((u) => uriIsSafe(u.value));
}

function containerIsSafe(info: ContainerInfo | undefined, ctx: FuzzContext): boolean {
  if (!info) return true;
  if (info.docker && !imageIsSafe(info.docker.image, ctx)) return false;
  for (const v of info.volumes) {
    const real = v.source?.hostPath?.path ?? (v.hostPath.startsWith("/") ? v.hostPath : undefined);
    const inCanary = real !== undefined && path.normalize(real).startsWith(`${ctx.canaryRoot}/`);
    if (real !== undefined && !inCanary) {
      if (!/^\/fz-[A-Za-z0-9-]+$/.test(v.containerPath)) return false;
      if (v.source?.hostPath?.mountPropagation?.mode === MountPropagation_Mode.BIDIRECTIONAL) return false;
    }
    const dv = v.source?.dockerVolume;
    if (dv && /^[A-Za-z0-9][A-Za-z0-9_.-]+$/.test(dv.name)) {
      if (!dv.name.startsWith(`fzv-${ctx.runToken}-`)) return false;
      if ((dv.driverOptions?.parameter.length ?? 0) > 0 && !/^\/fz-[A-Za-z0-9-]+$/.test(v.containerPath)) return false;
    }
  }
  return true;
}

function directoryIsSafe(dir: string, ctx: FuzzContext): boolean {
  if (dir === "" || !dir.startsWith("/") || dir.split("/").includes("..") || /[\0-\x1f]/.test(dir)) return true;
  const n = path.normalize(dir);
  return n.startsWith(`${path.join(ctx.workDir, "sandboxes")}/`) || n.startsWith(`${ctx.canaryRoot}/`);
}

/**
 * Whether Berth accepting this launch could only run something harmless: local images, trivial
 * commands, URIs the network guard allows or Berth must refuse, no real host directory as
 * sandbox, real host paths mounted only at private targets.
 */
export function launchIsSafe(req: LaunchRequest, ctx: FuzzContext): boolean {
  const cfg = req.containerConfig;
  if (!cfg) return true;
  const commands = [cfg.commandInfo, cfg.taskInfo?.command, cfg.executorInfo?.command];
  const containers = [cfg.containerInfo, cfg.taskInfo?.container, cfg.executorInfo?.container];
  return (
    directoryIsSafe(cfg.directory, ctx) &&
    commands.every((c) => commandIsSafe(c) && (c?.uris ?? []).every((u) => uriIsSafe(u.value))) &&
    containers.every((c) => containerIsSafe(c, ctx))
  );
}

/** Decodes bytes as a LaunchRequest, or undefined when they are not one. */
export function decodeLaunch(bytes: Uint8Array): LaunchRequest | undefined {
  try {
    return fromBinary(LaunchRequestSchema, bytes);
  } catch {
    return undefined;
  }
}
