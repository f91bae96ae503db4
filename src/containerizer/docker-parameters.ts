import { isIP } from "node:net";
import path from "node:path";
import { CapabilityInfo_Capability, type Parameter } from "../gen/mesos/v1/mesos_pb.js";
import type { CreateSpec } from "../docker/engine-port.js";
import { quote, USER_SPEC } from "./container-id.js";
import { InvalidRequest } from "./errors.js";
import type { LaunchSpec } from "./launch-spec.js";

/**
 * Docker `parameters` (DockerInfo.parameters): the `docker run` flags Marathon and Aurora apps
 * carry, read as the docker CLI reads them. Parsing is pure and only judges shape (InvalidRequest
 * naming the parameter, key and value); what the operator allows is admission's (policy/admit.ts),
 * which reads the same parsed list; how each maps to the Engine API is create-spec's.
 */

/** A ulimit as the Engine API takes it (-1 = unlimited). */
export interface Ulimit {
  Name: string;
  Soft: number;
  Hard: number;
}

/** A host device exposed to the container, as `--device` reads it. */
export interface DeviceMapping {
  PathOnHost: string;
  PathInContainer: string;
  CgroupPermissions: string;
}

/** One `--security-opt`, split into its kind. */
export type SecurityOption =
  | { kind: "no-new-privileges"; enabled: boolean }
  | { kind: "seccomp"; profile: string }
  | { kind: "apparmor"; profile: string }
  | { kind: "label"; option: string };

/** The value each key parses to. */
interface ValueOf {
  label: [string, string];
  workdir: string;
  env: string;
  hostname: string;
  "shm-size": number;
  user: string;
  "log-driver": string;
  "log-opt": [string, string];
  ulimit: Ulimit;
  /** Capability name without CAP_, upper case; "ALL" for all. */
  "cap-add": string;
  "cap-drop": string;
  "security-opt": SecurityOption;
  /** `name:address`. */
  "add-host": string;
  dns: string;
  "dns-search": string;
  "dns-option": string;
  "read-only": boolean;
  /** Container path and mount options. */
  tmpfs: [string, string];
  init: boolean;
  /** Bytes, or -1 for unlimited swap. */
  "memory-swap": number;
  "memory-swappiness": number;
  "memory-reservation": number;
  "oom-score-adj": number;
  "oom-kill-disable": boolean;
  "pids-limit": number;
  "cpuset-cpus": string;
  sysctl: [string, string];
  device: DeviceMapping;
  "volume-driver": string;
  "network-alias": string;
  entrypoint: string;
  "stop-signal": string;
  /** Seconds. */
  "stop-timeout": number;
}

/** A key Berth maps. */
export type ParameterKey = keyof ValueOf;

/** One parsed parameter: its key, its place in the request, the value as written and as read. */
export type ParsedParameter = { [K in ParameterKey]: { key: K; index: number; raw: string; value: ValueOf[K] } }[ParameterKey];

/** The parsed parameters of one key. */
export type ParametersOf<K extends ParameterKey> = Extract<ParsedParameter, { key: K }>;

interface Reader<K extends ParameterKey> {
  /** docker takes the flag more than once (values add up); otherwise a second one is refused. */
  repeatable: boolean;
  /** `bad(why)` makes the refusal naming the parameter, key and value (`shown` instead of a value that may be secret). */
  parse(raw: string, bad: (why: string, shown?: string) => InvalidRequest): ValueOf[K];
  /** For a repeatable key: what two entries may not share (a second ulimit of one name, ...), and its noun. */
  identity?: (v: ValueOf[K]) => string;
  noun?: string;
}

/** The Mesos path of parameter `i`, as refusals name it. */
export function parameterField(i: number): string {
  return `container_info.docker.parameters[${i}]`;
}

const NAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/;
const DRIVER = /^[A-Za-z0-9][A-Za-z0-9_.\/:-]{0,127}$/;

/** Rlimit names the engine takes (Mesos' RLMT_* without the prefix, lower case). */
export const ULIMIT_NAMES: readonly string[] = ["as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"];

/** tmpfs mount options the engine knows (`docker run --tmpfs /path:opts`). */
const TMPFS_FLAGS = new Set(["rw", "ro", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "sync", "async", "dirsync", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime", "mand", "nomand", "private", "rprivate", "shared", "rshared", "slave", "rslave"]);
const TMPFS_VALUED = new Set(["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"]);

/** Reads a size as the docker CLI does (units.RAMInBytes: 1024-based, `64m`, `1.5g`, `100`). */
export function parseDockerSize(raw: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i.exec(raw);
  if (!m) return undefined;
  const power = m[2] === undefined ? 0 : "kmgtp".indexOf(m[2].toLowerCase()) + 1;
  const bytes = Math.floor(Number(m[1]) * 1024 ** power);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

function bool(raw: string, bad: (why: string) => InvalidRequest): boolean {
  // A bare flag arrives with an empty value (Marathon writes `{"key": "init", "value": ""}` or "true").
  if (raw === "" || raw === "true") return true;
  if (raw === "false") return false;
  throw bad("is not true or false");
}

function integer(raw: string, min: number, max: number, bad: (why: string) => InvalidRequest): number {
  if (!/^-?\d{1,10}$/.test(raw)) throw bad(`is not an integer`);
  const n = Number(raw);
  if (n < min || n > max) throw bad(`is not between ${min} and ${max}`);
  return n;
}

function capability(raw: string, bad: (why: string) => InvalidRequest): string {
  const c = raw.toUpperCase().replace(/^CAP_/, "");
  if (c === "ALL") return c;
  if (c === "UNKNOWN" || typeof (CapabilityInfo_Capability as unknown as Record<string, unknown>)[c] !== "number") throw bad("is not a Linux capability (e.g. NET_ADMIN, SYS_PTRACE, ALL)");
  return c;
}

function absolute(p: string, what: string, bad: (why: string) => InvalidRequest): string {
  if (!path.posix.isAbsolute(p)) throw bad(`${what} is not an absolute path`);
  if (p.split("/").includes("..")) throw bad(`${what} contains '..'`);
  if (/[\0-\x1f,:]/.test(p)) throw bad(`${what} contains a control character, ',' or ':'`);
  return path.posix.normalize(p);
}

function keyValue(raw: string, bad: (why: string) => InvalidRequest, what = "is not KEY=VALUE"): [string, string] {
  const eq = raw.indexOf("=");
  if (eq <= 0) throw bad(what);
  return [raw.slice(0, eq), raw.slice(eq + 1)];
}

const SIGNALS = new Set(["ABRT", "ALRM", "BUS", "CHLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ"]);

/** json-file's and local's options (the engine refuses others at create; Berth says so up front). */
export const FILE_LOG_OPTS: Readonly<Record<string, readonly string[]>> = {
  "json-file": ["max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"],
  local: ["max-size", "max-file", "compress"],
};

const READERS: { [K in ParameterKey]: Reader<K> } = {
  label: {
    repeatable: true,
    parse(raw, bad) {
      const eq = raw.indexOf("=");
      const k = eq < 0 ? raw : raw.slice(0, eq);
      if (k === "" || k.startsWith("berth.")) throw bad("has an empty key or one in Berth's own 'berth.' namespace");
      return [k, eq < 0 ? "" : raw.slice(eq + 1)];
    },
  },
  workdir: {
    repeatable: false,
    parse(raw, bad) {
      if (!raw.startsWith("/")) throw bad("is not an absolute path");
      if (raw.includes("\0")) throw bad("contains a NUL character");
      return raw;
    },
  },
  env: {
    repeatable: true,
    parse(raw, bad) {
      // The value may be a secret: a refusal shows the name only.
      if (!/^[^=\0]+=/.test(raw) || raw.includes("\0")) throw bad("is not NAME=VALUE", raw.split("=")[0] ?? "");
      return raw;
    },
  },
  hostname: {
    repeatable: false,
    parse(raw, bad) {
      if (!NAME.test(raw)) throw bad("is not a valid host name");
      return raw;
    },
  },
  "shm-size": {
    repeatable: false,
    parse(raw, bad) {
      const bytes = parseDockerSize(raw);
      if (bytes === undefined) throw bad(/^\d/.test(raw) && /^[\d.]+ ?[kmgtp]?i?b?$/i.test(raw) ? "is too large" : "is not a size like 64m");
      return bytes;
    },
  },
  user: {
    repeatable: false,
    parse(raw, bad) {
      if (!USER_SPEC.test(raw)) throw bad("is not a user name or uid (optionally ':group')");
      return raw;
    },
  },
  "log-driver": {
    repeatable: false,
    parse(raw, bad) {
      if (!DRIVER.test(raw)) throw bad("is not a log driver name");
      return raw;
    },
  },
  "log-opt": { repeatable: true, parse: (raw, bad) => keyValue(raw, bad), identity: ([k]) => k, noun: "option" },
  ulimit: {
    repeatable: true,
    identity: (u) => u.Name,
    noun: "rlimit",
    parse(raw, bad) {
      const m = /^([a-z]+)=(-?\d{1,19})(?::(-?\d{1,19}))?$/.exec(raw);
      if (!m) throw bad("is not NAME=SOFT[:HARD] (e.g. nofile=1024:2048)");
      if (!ULIMIT_NAMES.includes(m[1]!)) throw bad(`names no rlimit (${ULIMIT_NAMES.join(", ")})`);
      const soft = Number(m[2]);
      const hard = m[3] === undefined ? soft : Number(m[3]);
      for (const v of [soft, hard]) if (!Number.isSafeInteger(v) || v < -1) throw bad("has a value below -1 (unlimited) or too large");
      if (hard !== -1 && (soft === -1 || soft > hard)) throw bad("has a soft limit above its hard limit");
      return { Name: m[1]!, Soft: soft, Hard: hard };
    },
  },
  "cap-add": { repeatable: true, parse: capability, identity: (c) => c, noun: "capability" },
  "cap-drop": { repeatable: true, parse: capability, identity: (c) => c, noun: "capability" },
  "security-opt": {
    repeatable: true,
    // One of each kind (a label option once per part: user, role, type, level).
    identity: (o) => (o.kind === "label" ? `label:${o.option.split(":")[0]}` : o.kind),
    noun: "kind of option",
    parse(raw, bad) {
      const m = /^(no-new-privileges)(?:[:=](true|false))?$/.exec(raw);
      if (m) return { kind: "no-new-privileges", enabled: m[2] !== "false" };
      // docker reads `seccomp=` and, in older releases, `seccomp:`.
      const kv = /^(seccomp|apparmor|label)[=:](.+)$/s.exec(raw);
      if (!kv) throw bad("is not one of no-new-privileges, seccomp=unconfined, apparmor=PROFILE, label=OPTION");
      const v = kv[2]!;
      if (kv[1] === "seccomp") {
        // The CLI would read a file on the client's host; Berth reads profiles from its own directory.
        if (v !== "unconfined") throw bad("names a seccomp profile file; ask for a profile with container_info.linux_info.seccomp.profile_name (from --seccomp_config_dir), or seccomp=unconfined");
        return { kind: "seccomp", profile: v };
      }
      if (kv[1] === "apparmor") {
        if (!/^[A-Za-z0-9_.\/-]{1,255}$/.test(v)) throw bad("is not an AppArmor profile name");
        return { kind: "apparmor", profile: v };
      }
      if (v !== "disable" && !/^(user|role|type|level):[A-Za-z0-9_.:,-]{1,255}$/.test(v)) throw bad("is not label=disable or label=user|role|type|level:VALUE");
      return { kind: "label", option: v };
    },
  },
  "add-host": {
    repeatable: true,
    parse(raw, bad) {
      // `name:address` (the CLI's form; an IPv6 address holds ':' too, so the name ends at the first one) or `name=address`.
      const m = /^([^:=]+)[:=](.+)$/.exec(raw);
      if (!m || !NAME.test(m[1]!)) throw bad("is not HOST:ADDRESS");
      const address = m[2]!.replace(/^\[(.*)\]$/, "$1");
      if (address !== "host-gateway" && isIP(address) === 0) throw bad("has an address that is not an IP address (or host-gateway)");
      return `${m[1]}:${address}`;
    },
  },
  dns: {
    repeatable: true,
    parse(raw, bad) {
      if (isIP(raw) === 0) throw bad("is not an IP address");
      return raw;
    },
  },
  "dns-search": {
    repeatable: true,
    parse(raw, bad) {
      if (raw !== "." && !NAME.test(raw)) throw bad("is not a domain name");
      return raw;
    },
  },
  "dns-option": {
    repeatable: true,
    parse(raw, bad) {
      if (!/^[a-z0-9_-]+(:[0-9]{1,5})?$/i.test(raw)) throw bad("is not a resolv.conf option (e.g. ndots:2)");
      return raw;
    },
  },
  "read-only": { repeatable: false, parse: bool },
  tmpfs: {
    repeatable: true,
    identity: ([p]) => p,
    noun: "path",
    parse(raw, bad) {
      const colon = raw.indexOf(":");
      const target = absolute(colon < 0 ? raw : raw.slice(0, colon), "its path", bad);
      if (target === "/") throw bad("mounts over '/'");
      const options = colon < 0 ? "" : raw.slice(colon + 1);
      for (const o of options === "" ? [] : options.split(",")) {
        const eq = o.indexOf("=");
        const name = eq < 0 ? o : o.slice(0, eq);
        const ok = eq < 0 ? TMPFS_FLAGS.has(name) : TMPFS_VALUED.has(name) && /^[A-Za-z0-9:.+-]{1,64}$/.test(o.slice(eq + 1));
        if (!ok) throw bad(`has a tmpfs option ${quote(o)} the engine does not know (e.g. size=64m,mode=1777,noexec)`);
      }
      return [target, options];
    },
  },
  init: { repeatable: false, parse: bool },
  "memory-swap": {
    repeatable: false,
    parse(raw, bad) {
      if (raw === "-1") return -1;
      const bytes = parseDockerSize(raw);
      if (bytes === undefined || bytes === 0) throw bad("is not a size like 1g (or -1 for unlimited swap)");
      return bytes;
    },
  },
  "memory-swappiness": { repeatable: false, parse: (raw, bad) => integer(raw, 0, 100, bad) },
  "memory-reservation": {
    repeatable: false,
    parse(raw, bad) {
      const bytes = parseDockerSize(raw);
      if (bytes === undefined || bytes === 0) throw bad("is not a size like 512m");
      return bytes;
    },
  },
  "oom-score-adj": { repeatable: false, parse: (raw, bad) => integer(raw, -1000, 1000, bad) },
  "oom-kill-disable": { repeatable: false, parse: bool },
  // At least 1: unlimited (0, -1) would undo the operator's --default_pids_limit.
  "pids-limit": { repeatable: false, parse: (raw, bad) => integer(raw, 1, 4_194_304, bad) },
  "cpuset-cpus": {
    repeatable: false,
    parse(raw, bad) {
      const ok = /^\d{1,4}(-\d{1,4})?(,\d{1,4}(-\d{1,4})?)*$/.test(raw) && raw.split(",").every((r) => { const [a, b] = r.split("-").map(Number); return b === undefined || a! <= b; });
      if (!ok) throw bad("is not a cpu list like 0-3,6");
      return raw;
    },
  },
  sysctl: {
    repeatable: true,
    identity: ([k]) => k,
    noun: "sysctl",
    parse(raw, bad) {
      const [k, v] = keyValue(raw, bad, "is not NAME=VALUE");
      if (!/^[a-z0-9_]+(\.[A-Za-z0-9_-]+)+$/.test(k)) throw bad("has a name that is not a sysctl name (e.g. net.ipv4.ip_forward)");
      if (/[\0-\x1f]/.test(v)) throw bad("has a control character in its value");
      return [k, v];
    },
  },
  device: {
    repeatable: true,
    identity: (d) => d.PathInContainer,
    noun: "container path",
    parse(raw, bad) {
      // `/dev/x`, `/dev/x:/dev/y`, `/dev/x:rwm` or `/dev/x:/dev/y:rwm`, as the CLI reads it.
      const parts = raw.split(":");
      if (parts.length > 3) throw bad("is not HOST_PATH[:CONTAINER_PATH][:PERMISSIONS]");
      let permissions = "rwm";
      if (parts.length > 1 && /^[rwm]{1,3}$/.test(parts[parts.length - 1]!)) permissions = parts.pop()!;
      if (parts.length > 2 || !/^(?!.*(.).*\1)[rwm]+$/.test(permissions)) throw bad("is not HOST_PATH[:CONTAINER_PATH][:PERMISSIONS]");
      const onHost = absolute(parts[0]!, "its host path", bad);
      const inContainer = parts.length === 2 ? absolute(parts[1]!, "its container path", bad) : onHost;
      return { PathOnHost: onHost, PathInContainer: inContainer, CgroupPermissions: permissions };
    },
  },
  "volume-driver": {
    repeatable: false,
    parse(raw, bad) {
      if (!DRIVER.test(raw)) throw bad("is not a volume driver name");
      return raw;
    },
  },
  "network-alias": {
    repeatable: true,
    identity: (a) => a,
    noun: "alias",
    parse(raw, bad) {
      if (!NAME.test(raw)) throw bad("is not a host name");
      return raw;
    },
  },
  entrypoint: {
    repeatable: false,
    parse(raw, bad) {
      if (raw.includes("\0")) throw bad("contains a NUL character");
      return raw;
    },
  },
  "stop-signal": {
    repeatable: false,
    parse(raw, bad) {
      if (/^\d{1,2}$/.test(raw) && Number(raw) >= 1 && Number(raw) <= 64) return raw;
      const name = raw.toUpperCase().replace(/^SIG/, "");
      if (SIGNALS.has(name) || /^RTMIN(\+\d{1,2})?$|^RTMAX(-\d{1,2})?$/.test(name)) return `SIG${name}`;
      throw bad("is not a signal (e.g. SIGTERM, SIGQUIT, 15)");
    },
  },
  "stop-timeout": { repeatable: false, parse: (raw, bad) => integer(raw, 0, 86_400, bad) },
};

/** The keys Berth maps, in the order the README lists them. */
export const SUPPORTED_DOCKER_PARAMETERS = Object.keys(READERS) as ParameterKey[];

function isKey(key: string): key is ParameterKey {
  return Object.prototype.hasOwnProperty.call(READERS, key);
}

/**
 * Reads every parameter, in order. Throws InvalidRequest naming the parameter, key and value for
 * an unknown key (`privileged`, `volume`, `net`, ... are Berth's own decisions, never parameters),
 * a malformed value, or a key given twice where docker takes one value.
 */
export function parseDockerParameters(params: readonly Pick<Parameter, "key" | "value">[]): ParsedParameter[] {
  const out: ParsedParameter[] = [];
  const seen = new Map<string, number>();
  for (const [i, { key, value }] of params.entries()) {
    const field = parameterField(i);
    if (!isKey(key)) throw new InvalidRequest(`${field} key ${quote(key)} is not supported; supported keys: ${SUPPORTED_DOCKER_PARAMETERS.join(", ")}`);
    const reader = READERS[key] as Reader<ParameterKey>;
    const bad = (why: string, shown = value) => new InvalidRequest(`${field} ${key} ${quote(shown)} ${why}`);
    const parsed = reader.parse(value, bad);
    const identity = reader.repeatable ? (reader.identity ? `${key}\0${reader.identity(parsed)}` : undefined) : key;
    if (identity !== undefined) {
      const first = seen.get(identity);
      if (first !== undefined) {
        throw new InvalidRequest(`${field} ${key} ${quote(value)} repeats ${parameterField(first)} (${quote(params[first]!.value)}); ${reader.repeatable ? `give each ${reader.noun ?? "value"} once` : `docker takes one ${key}`}`);
      }
      seen.set(identity, i);
    }
    out.push({ key, index: i, raw: value, value: parsed } as ParsedParameter);
  }
  return out;
}

/** The parsed parameters of one key, in order. */
export function parametersOf<K extends ParameterKey>(parsed: readonly ParsedParameter[], key: K): ParametersOf<K>[] {
  return parsed.filter((p): p is ParametersOf<K> => p.key === key);
}

/** The one parameter of a single-valued key, if given. */
export function parameterOf<K extends ParameterKey>(parsed: readonly ParsedParameter[], key: K): ParametersOf<K> | undefined {
  return parametersOf(parsed, key)[0];
}

/** The launch's parameters, parsed (throws InvalidRequest as parseDockerParameters). */
export function launchParameters(spec: LaunchSpec): ParsedParameter[] {
  return parseDockerParameters(spec.containerInfo.docker?.parameters ?? []);
}

/**
 * The user the task runs as and the field that named it: the launch's own (container_config.user
 * or command_info.user), else a `user` parameter. Admission's non-root rule, the sandbox's owner
 * and the engine's User all read this one answer. Both given and different: InvalidRequest.
 */
export function effectiveUser(spec: LaunchSpec, parsed: readonly ParsedParameter[] = launchParameters(spec)): { user: string; field: string } | undefined {
  const param = parameterOf(parsed, "user");
  if (param && spec.user !== undefined && param.value !== spec.user) {
    throw new InvalidRequest(`${parameterField(param.index)} user ${quote(param.raw)} differs from the launch's user ${quote(spec.user)} (container_config.user or command_info.user); name the user once`);
  }
  if (spec.user !== undefined) return { user: spec.user, field: "container_config.user" };
  if (param) return { user: param.value, field: parameterField(param.index) };
  return undefined;
}

/** The kill grace a `stop-timeout` parameter asks for, in ms (a kill_policy's grace comes first). */
export function stopTimeoutMs(spec: LaunchSpec): number | undefined {
  const p = parameterOf(launchParameters(spec), "stop-timeout");
  return p === undefined ? undefined : p.value * 1000;
}

/** The engine's own copy of a container's output by default: json-file, two files of --container_log_max_size. */
export const DEFAULT_ENGINE_LOG_FILES = 2;
/** --container_log_max_size's default (10 MB, 1024-based as the flag reads it). */
export const DEFAULT_ENGINE_LOG_MAX_SIZE = 10 * 1024 * 1024;

/** Drivers whose files the engine's logs endpoint reads directly (others get a cached copy in 20.10+). */
export const FILE_LOG_DRIVERS: readonly string[] = ["json-file", "local"];

/**
 * The engine's LogConfig for a launch: json-file with a size cap unless `log-driver` names
 * another; `log-opt`s add to it. Berth follows the output through the engine's logs endpoint, so
 * a driver it cannot read from (`none`) and the options that turn off 20.10's cached copy for the
 * other drivers (`cache-*`) are refused. Whether the driver and the size are allowed is
 * admission's (allowed_log_drivers, --container_log_max_size).
 */
export function engineLogConfig(parsed: readonly ParsedParameter[], maxSize = DEFAULT_ENGINE_LOG_MAX_SIZE): { Type: string; Config: Record<string, string> } {
  const driverParam = parameterOf(parsed, "log-driver");
  const driver = driverParam?.value ?? "json-file";
  if (driver === "none") {
    throw new InvalidRequest(`${parameterField(driverParam!.index)} log-driver 'none' keeps no output the engine's logs endpoint can serve, and Berth reads the output from there; use json-file (the default), local, or a driver the policy allows`);
  }
  const fileDriver = FILE_LOG_OPTS[driver];
  const config: Record<string, string> = fileDriver ? { "max-size": String(maxSize), "max-file": String(DEFAULT_ENGINE_LOG_FILES) } : {};
  for (const p of parametersOf(parsed, "log-opt")) {
    const [k, v] = p.value;
    const field = parameterField(p.index);
    if (fileDriver && !fileDriver.includes(k)) throw new InvalidRequest(`${field} log-opt ${quote(p.raw)} is not an option of the ${driver} log driver (${fileDriver.join(", ")})`);
    if (k.startsWith("cache-")) throw new InvalidRequest(`${field} log-opt ${quote(p.raw)} changes the engine's cached copy of the output, which Berth reads the output from; it is not the task's to change`);
    if (k === "max-size" && parseDockerSize(v) === undefined) throw new InvalidRequest(`${field} log-opt ${quote(p.raw)} is not a size like 10m`);
    if (k === "max-file" && !/^[1-9]\d{0,3}$/.test(v)) throw new InvalidRequest(`${field} log-opt ${quote(p.raw)} is not a file count of at least 1`);
    config[k] = v;
  }
  return { Type: driver, Config: config };
}

/** Bytes the engine may keep of a container's output under `config` (json-file and local only). */
export function engineLogBytes(config: { Type: string; Config: Record<string, string> }): number | undefined {
  if (!FILE_LOG_DRIVERS.includes(config.Type)) return undefined;
  const size = parseDockerSize(config.Config["max-size"] ?? "");
  const files = Number(config.Config["max-file"] ?? "1");
  return size === undefined ? undefined : size * files;
}

/** What of the launch the mapping reads besides the create options built so far. */
interface ParameterFacts {
  /** shell=true: Berth sets the entrypoint to /bin/sh -c. */
  shell: boolean;
  /** The network name a USER network joins (aliases apply there only). */
  userNetwork?: string;
  /** linux_info.seccomp names a profile or unconfined (else a seccomp entry is --seccomp_profile_name's default). */
  seccompChosen: boolean;
}

/**
 * Applies the parsed parameters to the create options built from the rest of the launch, as the
 * docker CLI would set each flag. Throws InvalidRequest where a parameter contradicts the launch's
 * own fields (a second shm size, a ulimit rlimit_info sets too, dns with the host's network, ...).
 */
export function applyDockerParameters(create: CreateSpec, parsed: readonly ParsedParameter[], facts: ParameterFacts): void {
  const hc = create.HostConfig;
  const host = hc.NetworkMode === "host";
  const mountTargets = new Set(hc.Mounts.map((m) => path.posix.normalize(m.Target)));
  for (const p of parsed) {
    const field = parameterField(p.index);
    const conflict = (why: string) => new InvalidRequest(`${field} ${p.key} ${quote(p.raw)} ${why}`);
    switch (p.key) {
      case "label":
        create.Labels[p.value[0]] = p.value[1];
        break;
      case "workdir":
        create.WorkingDir = p.value;
        break;
      case "env":
        // Before MESOS_SANDBOX and MESOS_CONTAINER_NAME, which stay Berth's.
        create.Env.splice(create.Env.length - 2, 0, p.value);
        break;
      case "hostname":
        if (host) throw conflict("cannot be set with network HOST (the container shares the host's name)");
        if (create.Hostname !== undefined && create.Hostname !== p.value) throw conflict(`differs from container_info.hostname ${quote(create.Hostname)}; name the host once`);
        create.Hostname = p.value;
        break;
      case "shm-size":
        if (hc.ShmSize !== undefined) throw conflict("repeats container_info.linux_info.shm_size; give the size once");
        hc.ShmSize = p.value;
        break;
      case "user":
        create.User = p.value;
        break;
      case "log-driver":
      case "log-opt":
        break; // engineLogConfig
      case "ulimit":
        if (hc.Ulimits?.some((u) => u.Name === p.value.Name)) throw conflict(`repeats container_info.rlimit_info's ${p.value.Name}; give each limit once`);
        (hc.Ulimits ??= []).push(p.value);
        break;
      case "cap-add":
        (hc.CapAdd ??= []).push(p.value === "ALL" ? "ALL" : `CAP_${p.value}`);
        break;
      case "cap-drop":
        (hc.CapDrop ??= []).push(p.value === "ALL" ? "ALL" : `CAP_${p.value}`);
        break;
      case "security-opt": {
        const o = p.value;
        if (o.kind === "seccomp") {
          if (facts.seccompChosen) throw conflict("repeats container_info.linux_info.seccomp; choose the profile once");
          // It replaces the default profile (--seccomp_profile_name), as linux_info.seccomp would.
          hc.SecurityOpt = hc.SecurityOpt?.filter((s) => !s.startsWith("seccomp="));
        }
        const text = o.kind === "no-new-privileges" ? `no-new-privileges:${o.enabled}` : o.kind === "seccomp" ? `seccomp=${o.profile}` : o.kind === "apparmor" ? `apparmor=${o.profile}` : `label=${o.option}`;
        (hc.SecurityOpt ??= []).push(text);
        break;
      }
      case "add-host":
        (hc.ExtraHosts ??= []).push(p.value);
        break;
      case "dns":
      case "dns-search":
      case "dns-option": {
        // The engine refuses these with the host's network (its resolv.conf is the host's).
        if (host) throw conflict("cannot be set with network HOST (the container uses the host's resolv.conf)");
        const list = p.key === "dns" ? (hc.Dns ??= []) : p.key === "dns-search" ? (hc.DnsSearch ??= []) : (hc.DnsOptions ??= []);
        list.push(p.value);
        break;
      }
      case "read-only":
        hc.ReadonlyRootfs = p.value;
        break;
      case "tmpfs":
        if (mountTargets.has(p.value[0])) throw conflict(`mounts over ${quote(p.value[0])}, which the sandbox or a volume already mounts`);
        (hc.Tmpfs ??= {})[p.value[0]] = p.value[1];
        break;
      case "init":
        hc.Init = p.value;
        break;
      case "memory-swap":
        if (hc.Memory === undefined) throw conflict("needs a memory limit (the task's mem resource)");
        if (p.value !== -1 && p.value < hc.Memory) throw conflict(`is below the memory limit of ${hc.Memory} bytes (the task's mem resource); memory-swap counts memory and swap together`);
        hc.MemorySwap = p.value;
        break;
      case "memory-swappiness":
        hc.MemorySwappiness = p.value;
        break;
      case "memory-reservation":
        if (hc.Memory !== undefined && p.value > hc.Memory) throw conflict(`is above the memory limit of ${hc.Memory} bytes (the task's mem resource)`);
        hc.MemoryReservation = p.value;
        break;
      case "oom-score-adj":
        hc.OomScoreAdj = p.value;
        break;
      case "oom-kill-disable":
        hc.OomKillDisable = p.value;
        break;
      case "pids-limit":
        hc.PidsLimit = p.value;
        break;
      case "cpuset-cpus":
        hc.CpusetCpus = p.value;
        break;
      case "sysctl":
        (hc.Sysctls ??= {})[p.value[0]] = p.value[1];
        break;
      case "device":
        (hc.Devices ??= []).push(p.value);
        break;
      case "volume-driver":
        if (hc.VolumeDriver !== undefined && hc.VolumeDriver !== p.value) throw conflict(`differs from container_info.docker.volume_driver ${quote(hc.VolumeDriver)}; name the driver once`);
        hc.VolumeDriver = p.value;
        break;
      case "network-alias":
        if (facts.userNetwork === undefined) throw conflict("needs network USER (the engine keeps aliases on user-defined networks only)");
        create.NetworkingConfig ??= { EndpointsConfig: {} };
        ((create.NetworkingConfig.EndpointsConfig[facts.userNetwork] ??= {}).Aliases ??= []).push(p.value);
        break;
      case "entrypoint":
        if (facts.shell) throw conflict("cannot be combined with command_info.shell=true, which runs /bin/sh -c as the entrypoint; set shell=false");
        create.Entrypoint = [p.value];
        break;
      case "stop-signal":
        create.StopSignal = p.value;
        break;
      case "stop-timeout":
        create.StopTimeout = p.value;
        break;
    }
  }
}
