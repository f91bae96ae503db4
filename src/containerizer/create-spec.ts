import path from "node:path";
import {
  CapabilityInfo_Capability,
  ContainerInfo_DockerInfo_Network,
  LinuxInfo_IpcMode,
  MountPropagation_Mode,
  RLimitInfo_RLimitSchema,
  RLimitInfo_RLimit_Type,
  Volume_Mode,
  Volume_Source_SandboxPath_Type,
  Volume_Source_Type,
  type ContainerInfo,
  type Volume,
} from "../gen/mesos/v1/mesos_pb.js";
import { isFieldSet } from "@bufbuild/protobuf";
import type { CreateSpec, MountSpec, ResourceUpdate } from "../docker/engine-port.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID, containerName } from "../docker/names.js";
import { quote } from "./container-id.js";
import { InvalidRequest } from "./errors.js";
import { hostCapacity, type LaunchSpec, type ResourceLimits } from "./launch-spec.js";
import { applyDockerParameters, effectiveUser, engineLogConfig, parseDockerParameters, type Ulimit } from "./docker-parameters.js";
import { seccompChoice, type SeccompProfiles } from "./seccomp.js";

/** Mesos' floors: at least 2 CPU shares and 32 MB of memory. */
export const CPU_SHARES_PER_CPU = 1024;
export const MIN_CPU_SHARES = 2;
export const MIN_MEMORY_BYTES = 32 * 1024 * 1024;

/** Mesos' CFS bandwidth (--cgroups_enable_cfs): a 100 ms period and a quota of at least 1 ms. */
export const CFS_PERIOD_US = 100_000;
export const MIN_CFS_QUOTA_US = 1_000;

/** Engine settings beyond the launch itself. */
export interface CreateOptions {
  /** Also cap cpus with a CFS quota (Mesos' --cgroups_enable_cfs), not only weigh them with shares. */
  cfsQuota?: boolean;
  /** --default_pids_limit: the container's pids limit (a launch names none); 0 or unset = none. */
  pidsLimit?: number;
  /** The host's memory, for the OOM score of a container whose mem limit is above its request (default: os.totalmem()). */
  hostMemoryBytes?: number;
  /** --container_log_max_size: one file of the engine's own (json-file) copy of the output; two are kept. */
  engineLogMaxSize?: number;
  /** --seccomp_config_dir / --seccomp_profile_name; without them only unconfined or the engine's default. */
  seccomp?: SeccompProfiles;
}

/** The engine settings of cpus and mem: Update's fields plus the memory reservation a limit brings. */
export interface EngineLimits extends ResourceUpdate {
  /** The mem request when a mem limit is in force (memory.soft_limit_in_bytes), as Mesos' --memory-reservation. */
  MemoryReservation?: number;
}

/**
 * The engine's cpu and memory settings for `cpus` and `mem`, as Mesos' docker containerizer sets
 * them (RunOptions and update). Used at create and by Update, so both apply the same floors. A
 * resource that is absent sets nothing. With a limit (Mesos 1.11 `limits`): the cpus request stays
 * the shares and the limit becomes the CFS quota (even without --cgroups_enable_cfs); the mem
 * limit is the memory limit and the request the reservation; an infinite limit caps nothing.
 */
export function engineLimits(resources: { cpus?: number; memMb?: number }, options: CreateOptions = {}, caps: ResourceLimits = {}): EngineLimits {
  const limits: EngineLimits = {};
  const { cpus, memMb } = resources;
  if (cpus !== undefined) {
    limits.CpuShares = Math.max(Math.floor(CPU_SHARES_PER_CPU * cpus), MIN_CPU_SHARES);
    const quotaCpus = caps.cpus ?? (options.cfsQuota ? cpus : undefined);
    if (quotaCpus !== undefined && Number.isFinite(quotaCpus)) {
      limits.CpuPeriod = CFS_PERIOD_US;
      limits.CpuQuota = Math.max(Math.floor(quotaCpus * CFS_PERIOD_US), MIN_CFS_QUOTA_US);
    }
  }
  if (memMb !== undefined) {
    const bytes = Math.max(Math.floor(memMb * 1024 * 1024), MIN_MEMORY_BYTES);
    if (caps.memMb === undefined) {
      limits.Memory = bytes;
      // Swap equal to memory: the limit is a hard one, as Mesos' cgroups memory isolator makes it.
      limits.MemorySwap = bytes;
    } else {
      limits.MemoryReservation = bytes;
      if (Number.isFinite(caps.memMb)) {
        const cap = Math.max(Math.floor(caps.memMb * 1024 * 1024), MIN_MEMORY_BYTES);
        limits.Memory = cap;
        limits.MemorySwap = cap;
      }
    }
  }
  return limits;
}

/**
 * Mesos' OOM score for a container whose memory limit is above its request: the smaller its share
 * of the host's memory, the likelier the kernel kills it first (1000 − 1000 × request / host
 * memory; never negative, which would shield it). Undefined when the request is the limit.
 */
export function oomScoreAdj(memMb: number | undefined, caps: ResourceLimits, hostMemoryBytes: number): number | undefined {
  if (memMb === undefined || caps.memMb === undefined || memMb >= caps.memMb || !(hostMemoryBytes > 0)) return undefined;
  const score = 1000 - Math.floor((1000 * Math.floor(memMb * 1024 * 1024)) / hostMemoryBytes);
  return Math.min(1000, Math.max(0, score));
}

/** Docker parameters (DockerInfo.parameters) Berth maps; Mesos passes any `docker run` flag. */
export { SUPPORTED_DOCKER_PARAMETERS } from "./docker-parameters.js";

/** Where the container's sandbox lives, on the host and inside the container. */
export interface SandboxPlacement {
  agentId: string;
  hostSandbox: string;
  /** The mount point inside the container (--sandbox_directory). */
  containerSandbox: string;
}

/**
 * Maps a launch to the engine's create options, as Mesos' docker containerizer maps it to
 * `docker run`. Pure; throws InvalidRequest for shapes it cannot express. It decides nothing about
 * what is allowed: the launch reaching it was admitted by the operator policy (policy/admit.ts),
 * which reads the same fields with the same precedence (hostPathRequests mirrors volumeMount).
 */
export function buildCreateSpec(spec: LaunchSpec, placement: SandboxPlacement, options: CreateOptions = {}): CreateSpec {
  const info = spec.containerInfo;
  const docker = info.docker;
  const name = containerName(placement.agentId, spec.containerId);
  const labels: Record<string, string> = {
    [LABEL_AGENT_ID]: placement.agentId,
    [LABEL_CONTAINER_ID]: spec.containerId,
  };
  const env: string[] = [
    ...spec.environment.map(([k, v]) => `${k}=${v}`),
    `MESOS_SANDBOX=${placement.containerSandbox}`,
    `MESOS_CONTAINER_NAME=${name}`,
  ];

  const create: CreateSpec = {
    name,
    Image: spec.image,
    Labels: labels,
    Env: env,
    HostConfig: {
      NetworkMode: "host",
      Mounts: [
        { Type: "bind", Source: placement.hostSandbox, Target: placement.containerSandbox, ReadOnly: false },
        ...info.volumes.map((v, i) => volumeMount(v, i, placement)),
      ],
    },
  };

  // Command, as Mesos: shell → `/bin/sh -c value` (entrypoint overridden, MESOS-1770); otherwise
  // value (when set) and the arguments are handed to the image's entrypoint (arguments alone:
  // Mesos' Default_CMD_Args); neither → the image's own command.
  const command = spec.command;
  if (command.shell) {
    create.Entrypoint = ["/bin/sh", "-c"];
    create.Cmd = [command.value];
  } else if (command.value !== "" || command.arguments.length > 0) {
    create.Cmd = [...(command.value !== "" ? [command.value] : []), ...command.arguments];
  }
  const parameters = parseDockerParameters(docker?.parameters ?? []);
  const user = effectiveUser(spec, parameters);
  if (user !== undefined) create.User = user.user;

  applyNetwork(create, info, spec.resources.ports);
  Object.assign(create.HostConfig, engineLimits(spec.resources, options, spec.limits));
  const oom = oomScoreAdj(spec.resources.memMb, spec.limits, options.hostMemoryBytes ?? hostCapacity().memoryBytes);
  if (oom !== undefined) create.HostConfig.OomScoreAdj = oom;
  applyLinux(create, info);
  applySeccomp(create, info, options.seccomp);
  const ulimits = engineUlimits(info);
  if (ulimits.length > 0) create.HostConfig.Ulimits = ulimits;
  if (docker !== undefined && docker.volumeDriver !== "") {
    if (!VOLUME_DRIVER.test(docker.volumeDriver)) throw new InvalidRequest(`container_info.docker.volume_driver ${quote(docker.volumeDriver)} is not a volume driver name`);
    create.HostConfig.VolumeDriver = docker.volumeDriver;
  }
  if (options.pidsLimit !== undefined && options.pidsLimit > 0) create.HostConfig.PidsLimit = options.pidsLimit;
  if (info.ttyInfo) create.Tty = true;
  if (docker?.privileged) create.HostConfig.Privileged = true;
  const mode = create.HostConfig.NetworkMode;
  const userNetwork = mode === "host" || mode === "none" || mode === "bridge" ? undefined : mode;
  applyDockerParameters(create, parameters, { shell: command.shell, userNetwork, seccompChosen: seccompChoice(info).kind !== "default" });
  create.HostConfig.LogConfig = engineLogConfig(parameters, options.engineLogMaxSize);
  return create;
}

const VOLUME_DRIVER = /^[A-Za-z0-9][A-Za-z0-9_.\/:-]{0,127}$/;

/**
 * Mesos' RLimitInfo as the engine's ulimits (Mesos' posix/rlimits isolator): RLMT_NOFILE →
 * "nofile", neither soft nor hard → unlimited (-1, as the engine takes it), one without the other,
 * soft above hard, UNKNOWN or a type given twice → InvalidRequest.
 */
export function engineUlimits(info: ContainerInfo): Ulimit[] {
  const out: Ulimit[] = [];
  for (const [i, limit] of (info.rlimitInfo?.rlimits ?? []).entries()) {
    const field = `container_info.rlimit_info.rlimits[${i}]`;
    const typeName = RLimitInfo_RLimit_Type[limit.type];
    if (typeName === undefined || limit.type === RLimitInfo_RLimit_Type.UNKNOWN) throw new InvalidRequest(`${field}.type ${typeName ?? limit.type} is not a known rlimit (RLMT_NOFILE, RLMT_CORE, ...)`);
    const name = typeName.replace(/^RLMT_/, "").toLowerCase();
    if (out.some((u) => u.Name === name)) throw new InvalidRequest(`${field}.type ${typeName} is given twice in container_info.rlimit_info; give each limit once`);
    const hasSoft = isFieldSet(limit, RLimitInfo_RLimitSchema.field.soft);
    const hasHard = isFieldSet(limit, RLimitInfo_RLimitSchema.field.hard);
    if (hasSoft !== hasHard) throw new InvalidRequest(`${field} (${typeName}) sets only ${hasSoft ? "soft" : "hard"}; set both, or neither for unlimited`);
    if (!hasSoft) {
      // Neither: unlimited, as in Mesos. The kernel caps open files at fs.nr_open, so that one cannot be.
      if (name === "nofile") throw new InvalidRequest(`${field} (${typeName}) asks for unlimited open files, which the kernel does not allow (its cap is fs.nr_open); give soft and hard`);
      out.push({ Name: name, Soft: -1, Hard: -1 });
      continue;
    }
    for (const [k, v] of [["soft", limit.soft], ["hard", limit.hard]] as const) {
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidRequest(`${field}.${k} ${v} (${typeName}) is too large; leave soft and hard unset for unlimited`);
    }
    if (limit.soft > limit.hard) throw new InvalidRequest(`${field} (${typeName}) soft ${limit.soft} is above hard ${limit.hard}`);
    out.push({ Name: name, Soft: Number(limit.soft), Hard: Number(limit.hard) });
  }
  return out;
}

function applySeccomp(create: CreateSpec, info: ContainerInfo, profiles: SeccompProfiles | undefined): void {
  const choice = seccompChoice(info);
  let opt: string | undefined;
  if (profiles) opt = profiles.securityOpt(info);
  else if (choice.kind === "unconfined") opt = "seccomp=unconfined";
  else if (choice.kind === "profile") throw new InvalidRequest(`container_info.linux_info.seccomp.profile_name ${quote(choice.name)} cannot be used: no --seccomp_config_dir is configured`);
  if (opt !== undefined) (create.HostConfig.SecurityOpt ??= []).push(opt);
}

function applyNetwork(create: CreateSpec, info: ContainerInfo, ports: ReadonlyArray<readonly [number, number]>): void {
  const network = info.docker?.network ?? ContainerInfo_DockerInfo_Network.HOST;
  const mappings = info.docker?.portMappings ?? [];
  switch (network) {
    case ContainerInfo_DockerInfo_Network.HOST:
      create.HostConfig.NetworkMode = "host";
      break;
    case ContainerInfo_DockerInfo_Network.NONE:
      create.HostConfig.NetworkMode = "none";
      break;
    case ContainerInfo_DockerInfo_Network.BRIDGE:
      create.HostConfig.NetworkMode = "bridge";
      break;
    case ContainerInfo_DockerInfo_Network.USER: {
      const names = info.networkInfos.map((n) => n.name).filter((n) => n !== "");
      if (names.length !== 1) {
        throw new InvalidRequest(`container_info.docker.network is USER, which needs exactly one container_info.network_infos[].name; got ${names.length}`);
      }
      if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(names[0]!)) throw new InvalidRequest(`container_info.network_infos[0].name ${quote(names[0]!)} is not a valid network name`);
      create.HostConfig.NetworkMode = names[0]!;
      break;
    }
    default:
      throw new InvalidRequest(`container_info.docker.network ${network} is not HOST, BRIDGE, NONE or USER`);
  }
  if (info.hostname !== "") {
    if (network === ContainerInfo_DockerInfo_Network.HOST) throw new InvalidRequest(`container_info.hostname ${quote(info.hostname)} cannot be set with network HOST (the container shares the host's name)`);
    if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(info.hostname)) throw new InvalidRequest(`container_info.hostname ${quote(info.hostname)} is not a valid host name`);
    create.Hostname = info.hostname;
  }
  if (mappings.length === 0) return;
  if (network !== ContainerInfo_DockerInfo_Network.BRIDGE && network !== ContainerInfo_DockerInfo_Network.USER) {
    throw new InvalidRequest(`container_info.docker.port_mappings need network BRIDGE or USER; network is ${ContainerInfo_DockerInfo_Network[network]}`);
  }
  create.ExposedPorts = {};
  create.HostConfig.PortBindings = {};
  for (const [i, m] of mappings.entries()) {
    const field = `container_info.docker.port_mappings[${i}]`;
    for (const [k, v] of [["host_port", m.hostPort], ["container_port", m.containerPort]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 65535) throw new InvalidRequest(`${field}.${k} ${v} is not a port (1-65535)`);
    }
    // As Mesos: a host port the task was not offered (its `ports` resource) is not the task's to take.
    if (!ports.some(([begin, end]) => m.hostPort >= begin && m.hostPort <= end)) {
      const offered = ports.length === 0 ? "the task has no ports resource" : `its ports resource holds ${ports.map(([b, e]) => (b === e ? `${b}` : `${b}-${e}`)).join(", ")}`;
      throw new InvalidRequest(`${field}.host_port ${m.hostPort} (container_port ${m.containerPort}) is not inside the task's ports resource; ${offered}`);
    }
    const protocol = (m.protocol === "" ? "tcp" : m.protocol).toLowerCase();
    if (protocol !== "tcp" && protocol !== "udp" && protocol !== "sctp") throw new InvalidRequest(`${field}.protocol ${quote(m.protocol)} is not tcp, udp or sctp`);
    const key = `${m.containerPort}/${protocol}`;
    create.ExposedPorts[key] = {};
    (create.HostConfig.PortBindings[key] ??= []).push({ HostPort: String(m.hostPort) });
  }
}

function applyLinux(create: CreateSpec, info: ContainerInfo): void {
  const linux = info.linuxInfo;
  if (!linux) return;
  // The engine has one capability set, so the most specific one the request carries wins.
  const [capsField, caps] = linux.effectiveCapabilities
    ? ["effective_capabilities", linux.effectiveCapabilities]
    : linux.boundingCapabilities
      ? ["bounding_capabilities", linux.boundingCapabilities]
      : ["capability_info", linux.capabilityInfo];
  if (caps) {
    create.HostConfig.CapDrop = ["ALL"];
    create.HostConfig.CapAdd = caps.capabilities.map((c, i) => {
      const name = CapabilityInfo_Capability[c];
      if (name === undefined || c === CapabilityInfo_Capability.UNKNOWN) throw new InvalidRequest(`container_info.linux_info.${capsField}.capabilities[${i}] ${c} is not a known capability`);
      return `CAP_${name}`;
    });
  }
  // Honoured, not ignored: admission refuses it unless the policy's allow_host_pid opens it.
  if (linux.sharePidNamespace) create.HostConfig.PidMode = "host";
  if (linux.ipcMode === LinuxInfo_IpcMode.SHARE_PARENT) create.HostConfig.IpcMode = "host";
  else if (linux.ipcMode === LinuxInfo_IpcMode.PRIVATE) create.HostConfig.IpcMode = "private";
  if (linux.shmSize !== 0) {
    if (linux.ipcMode !== LinuxInfo_IpcMode.PRIVATE) {
      throw new InvalidRequest(`container_info.linux_info.shm_size ${linux.shmSize} needs ipc_mode PRIVATE; ipc_mode is ${LinuxInfo_IpcMode[linux.ipcMode] ?? linux.ipcMode}`);
    }
    create.HostConfig.ShmSize = linux.shmSize * 1024 * 1024;
  }
}

function inside(base: string, rel: string, field: string): string {
  if (rel.includes("\0")) throw new InvalidRequest(`${field} contains a NUL character`);
  // Normalise first: a sandbox given as '/x/' must still contain '/x'.
  base = path.resolve(base);
  const resolved = path.resolve(base, rel);
  if (resolved !== base && !resolved.startsWith(base.endsWith("/") ? base : `${base}/`)) {
    throw new InvalidRequest(`${field} ${quote(rel)} leaves the sandbox`);
  }
  return resolved;
}

function volumeMount(v: Volume, i: number, placement: SandboxPlacement): MountSpec {
  const field = `container_info.volumes[${i}]`;
  if (v.containerPath === "") throw new InvalidRequest(`${field}.container_path is empty`);
  if (v.containerPath.split("/").includes("..")) throw new InvalidRequest(`${field}.container_path ${quote(v.containerPath)} contains '..'`);
  // A relative container path is relative to the sandbox inside the container, as in Mesos.
  const target = path.posix.isAbsolute(v.containerPath) ? path.posix.normalize(v.containerPath) : path.posix.join(placement.containerSandbox, v.containerPath);
  const readOnly = v.mode === Volume_Mode.RO;
  if (v.image) throw new InvalidRequest(`${field}.image is set: image volumes are not supported by the Docker containerizer`);

  const source = v.source;
  if (source) {
    switch (source.type) {
      case Volume_Source_Type.DOCKER_VOLUME: {
        const dv = source.dockerVolume;
        if (!dv || !/^[A-Za-z0-9][A-Za-z0-9_.-]+$/.test(dv.name)) throw new InvalidRequest(`${field}.source.docker_volume.name ${quote(dv?.name ?? "")} is not a valid volume name`);
        const mount: MountSpec = { Type: "volume", Source: dv.name, Target: target, ReadOnly: readOnly };
        if (dv.driver !== "" || (dv.driverOptions?.parameter.length ?? 0) > 0) {
          mount.VolumeOptions = { DriverConfig: { Name: dv.driver || undefined, Options: Object.fromEntries((dv.driverOptions?.parameter ?? []).map((p) => [p.key, p.value])) } };
        }
        return mount;
      }
      case Volume_Source_Type.HOST_PATH: {
        const hp = source.hostPath;
        if (!hp || !path.isAbsolute(hp.path)) throw new InvalidRequest(`${field}.source.host_path.path ${quote(hp?.path ?? "")} is not an absolute path`);
        if (hp.path.split("/").includes("..")) throw new InvalidRequest(`${field}.source.host_path.path ${quote(hp.path)} contains '..'`);
        const mount: MountSpec = { Type: "bind", Source: path.normalize(hp.path), Target: target, ReadOnly: readOnly };
        const mode = hp.mountPropagation?.mode;
        if (mode === MountPropagation_Mode.BIDIRECTIONAL) mount.BindOptions = { Propagation: "rshared" };
        else if (mode === MountPropagation_Mode.HOST_TO_CONTAINER) mount.BindOptions = { Propagation: "rslave" };
        return mount;
      }
      case Volume_Source_Type.SANDBOX_PATH: {
        const sp = source.sandboxPath;
        if (!sp) throw new InvalidRequest(`${field}.source.sandbox_path is missing`);
        if (sp.type === Volume_Source_SandboxPath_Type.PARENT) throw new InvalidRequest(`${field}.source.sandbox_path.type PARENT needs a nested container, which Berth does not run`);
        return { Type: "bind", Source: inside(placement.hostSandbox, sp.path, `${field}.source.sandbox_path.path`), Target: target, ReadOnly: readOnly };
      }
      default:
        throw new InvalidRequest(`${field}.source.type ${Volume_Source_Type[source.type] ?? source.type} is not supported (DOCKER_VOLUME, HOST_PATH, SANDBOX_PATH are)`);
    }
  }
  if (v.hostPath !== "") {
    // Legacy form: an absolute host_path is a host directory; a relative one is inside the sandbox.
    if (path.isAbsolute(v.hostPath)) {
      if (v.hostPath.split("/").includes("..")) throw new InvalidRequest(`${field}.host_path ${quote(v.hostPath)} contains '..'`);
      return { Type: "bind", Source: path.normalize(v.hostPath), Target: target, ReadOnly: readOnly };
    }
    return { Type: "bind", Source: inside(placement.hostSandbox, v.hostPath, `${field}.host_path`), Target: target, ReadOnly: readOnly };
  }
  // Neither: an anonymous engine volume at container_path.
  return { Type: "volume", Source: "", Target: target, ReadOnly: readOnly };
}
