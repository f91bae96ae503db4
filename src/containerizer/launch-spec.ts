import path from "node:path";
import os from "node:os";
import { ContainerConfigSchema, type ContainerConfig } from "../gen/mesos/slave/containerizer_pb.js";
import {
  ContainerInfo_DockerInfo_Network,
  ContainerInfo_Type,
  Environment_Variable_Type,
  Value_Type,
  type CommandInfo,
  type ContainerInfo,
  type Resource,
  type Value_Scalar,
} from "../gen/mesos/v1/mesos_pb.js";
import { validateFetchUris, FetchUriInvalid, type FetchUri } from "../fetcher/fetcher.js";
import { HealthCheckInvalid, resolveHealthCheck } from "../health/health-check.js";
import { ENV_NAME, quote, USER_SPEC } from "./container-id.js";
import { InvalidRequest } from "./errors.js";
import { refuseUnsupportedFields } from "./field-support.js";

/** Upper bounds past which a resource request is taken as a mistake, not a wish. */
/** The kernel caps cpu.shares at 262144, and Berth (as Mesos) gives 1024 shares per cpu. */
export const MAX_CPUS = 262144 / 1024;
export const MAX_MEM_MB = 64 * 1024 * 1024; // 64 TiB
export const MAX_DISK_MB = 1024 * 1024 * 1024; // 1 PiB

/** A finite cpus limit past this is a typo (the CFS quota would be over 10^11 µs per period). */
export const MAX_CPUS_LIMIT = 1_000_000;

/**
 * Resource limits (Mesos 1.11 TaskInfo.limits / ContainerConfig.limits): the hard caps above the
 * requests. +Infinity means no cap at all. Absent: the request is the cap, as before limits.
 */
export interface ResourceLimits {
  cpus?: number;
  memMb?: number;
}

/** The resources Berth interprets, summed over roles as Mesos does. */
export interface ResourceSummary {
  cpus?: number;
  memMb?: number;
  diskMb?: number;
  ports: Array<[number, number]>;
}

/** Everything the pipeline needs, resolved and validated from a LaunchRequest. */
export interface LaunchSpec {
  containerId: string;
  config: ContainerConfig;
  command: CommandInfo;
  containerInfo: ContainerInfo;
  image: string;
  forcePull: boolean;
  resources: ResourceSummary;
  /** cpus and mem limits (hard caps above the requests), from container_config.limits or task_info.limits. */
  limits: ResourceLimits;
  /** The Resource messages the summary was made from. */
  resourceMessages: Resource[];
  user?: string;
  /** The sandbox the client chose (absolute), or undefined for Berth to pick. */
  directory?: string;
  /** Name/value pairs in order; later entries win. Values are never logged. */
  environment: Array<[string, string]>;
  /** The request's own extra environment, as given (kept for the checkpoint). */
  extraEnvironment: Record<string, string>;
  uris: FetchUri[];
  taskId?: string;
  executorId?: string;
  frameworkId?: string;
  /** From the task's kill_policy.grace_period, else the executor's shutdown_grace_period, when given. */
  gracePeriodMs?: number;
}

/** Why a request is valid but not for this containerizer (Mesos' LaunchResult NOT_SUPPORTED). */
export class NotSupported extends Error {}


/**
 * Resolves and validates a launch. Throws InvalidRequest (bad input) or NotSupported (not a
 * Docker container). Pure: touches neither disk nor engine.
 */
export function resolveLaunchSpec(containerId: string, config: ContainerConfig | undefined, extraEnv: Record<string, string>): LaunchSpec {
  if (!config) throw new InvalidRequest("container_config is missing");
  const task = config.taskInfo;
  const executor = config.executorInfo;

  // Which command and container to run: the task's when a task is given (Berth runs the task's
  // command itself, where a Mesos agent would put its docker executor in command_info); else the
  // executor's (Mesos' executor-in-a-docker-container case); else the config's own.
  const command = task?.command ?? executor?.command ?? config.commandInfo;
  if (!command) {
    throw new InvalidRequest("container_config.command_info is missing (and neither task_info.command nor executor_info.command is set)");
  }
  const containerInfo = task?.container ?? executor?.container ?? config.containerInfo;
  if (!containerInfo) throw new NotSupported("container_config.container_info is missing: Berth runs Docker containers only");
  if (containerInfo.type !== ContainerInfo_Type.DOCKER) {
    throw new NotSupported(`container_info.type is ${ContainerInfo_Type[containerInfo.type] ?? containerInfo.type}; Berth runs DOCKER containers only`);
  }
  // Every field Berth's protos carry is honoured or refused here (field-support.ts), never dropped.
  refuseUnsupportedFields(ContainerConfigSchema, config, "container_config");
  validateContainerShape(containerInfo);
  const image = containerInfo.docker?.image ?? "";
  if (image.trim() === "") throw new InvalidRequest("container_info.docker.image is empty");
  validateImageRef(image);

  validateCommand(command);
  const uris = command.uris.map((u) => ({
    // Leading/trailing whitespace is trimmed, as Mesos' fetcher does (a pasted URI keeps working).
    value: u.value.trim(),
    executable: u.executable,
    extract: u.extract,
    outputFile: u.outputFile === "" ? undefined : u.outputFile,
    cache: u.cache,
  }));
  try {
    validateFetchUris(uris);
  } catch (err) {
    if (err instanceof FetchUriInvalid) throw new InvalidRequest(err.message);
    throw err;
  }

  const resourceMessages = config.resources.length > 0 ? config.resources : [...(task?.resources ?? []), ...(executor?.resources ?? [])];
  const resources = summarizeResources(resourceMessages);
  const [limitsMap, limitsField] = Object.keys(config.limits).length > 0 ? [config.limits, "container_config.limits"] : [task?.limits ?? {}, "task_info.limits"];
  const limits = resolveLimits(limitsMap, limitsField);
  checkRequestsWithinLimits(resources, limits, limitsField);
  const environment = resolveEnvironment(command, extraEnv);
  const role = allocationRole(resourceMessages);
  // Set last, as Mesos sets it over the task's own variables (AllocationRoleEnvironmentVariable).
  if (role !== undefined) environment.push(["MESOS_ALLOCATION_ROLE", role]);

  let directory: string | undefined;
  if (config.directory !== "") {
    if (!path.isAbsolute(config.directory)) throw new InvalidRequest(`container_config.directory ${quote(config.directory)} is not an absolute path`);
    if (config.directory.split("/").includes("..")) throw new InvalidRequest(`container_config.directory ${quote(config.directory)} contains '..'`);
    if (/[\0-\x1f]/.test(config.directory)) throw new InvalidRequest(`container_config.directory ${quote(config.directory)} contains a control character`);
    directory = path.normalize(config.directory);
  }

  const user = config.user !== "" ? config.user : command.user !== "" ? command.user : undefined;
  if (user !== undefined && !USER_SPEC.test(user)) {
    throw new InvalidRequest(`user ${quote(user)} is not a user name or uid (optionally ':group')`);
  }

  // The task's kill policy; else (an executor's container) its shutdown grace period, as the
  // Mesos docker executor uses it when it is told to shut down.
  let gracePeriodMs: number | undefined;
  for (const [grace, field] of [
    [task?.killPolicy?.gracePeriod, "task_info.kill_policy.grace_period"],
    [executor?.shutdownGracePeriod, "executor_info.shutdown_grace_period"],
  ] as const) {
    if (!grace) continue;
    if (grace.nanoseconds < 0n) throw new InvalidRequest(`${field}.nanoseconds ${grace.nanoseconds} is negative`);
    gracePeriodMs ??= Number(grace.nanoseconds / 1_000_000n);
  }

  if (task) validateMesosId(task.taskId?.value ?? "", "task_info.task_id.value");
  if (executor) validateMesosId(executor.executorId?.value ?? "", "executor_info.executor_id.value");
  if (task?.healthCheck) {
    try {
      resolveHealthCheck(task.healthCheck);
    } catch (err) {
      throw err instanceof HealthCheckInvalid ? new InvalidRequest(err.message) : err;
    }
  }

  return {
    containerId,
    config,
    command,
    containerInfo,
    image,
    forcePull: containerInfo.docker?.forcePullImage ?? false,
    resources,
    limits,
    resourceMessages,
    user,
    directory,
    environment,
    extraEnvironment: { ...extraEnv },
    uris,
    taskId: task?.taskId?.value,
    executorId: executor?.executorId?.value,
    frameworkId: task ? undefined : executor?.frameworkId?.value,
    gracePeriodMs,
  };
}

/** Longest task or executor id Mesos accepts (NAME_MAX: Mesos puts executor ids in paths). */
const MAX_MESOS_ID_LENGTH = 255;

/**
 * Task and executor ids follow Mesos' own rules, not the stricter container-id charset: Berth only
 * reports them back, and frameworks use ':' or '@' in them (Chronos ids look like `ct:1423:0:job`).
 */
function validateMesosId(value: string, field: string): void {
  if (value === "") throw new InvalidRequest(`${field} is empty`);
  if (value.length > MAX_MESOS_ID_LENGTH) throw new InvalidRequest(`${field} ${quote(value)} is ${value.length} characters long; at most ${MAX_MESOS_ID_LENGTH} are allowed`);
  if (value === "." || value === "..") throw new InvalidRequest(`${field} ${quote(value)} is not allowed`);
  const bad = /[/\\\s\0-\x1f\x7f-\x9f]/u.exec(value);
  if (bad) {
    const c = bad[0];
    const shown = c === "/" || c === "\\" ? `'${c}'` : `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
    throw new InvalidRequest(`${field} ${quote(value)} contains ${shown}; '/', '\\', whitespace and control characters are not allowed`);
  }
}

// Docker's reference grammar: a domain's components neither start nor end with '-'.
const IMAGE_REF = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

function validateImageRef(image: string): void {
  if (image.length > 512 || !IMAGE_REF.test(image)) {
    throw new InvalidRequest(`container_info.docker.image ${quote(image)} is not a valid image reference (e.g. 'registry:5000/name:tag')`);
  }
}

function validateCommand(command: CommandInfo): void {
  const shell = command.shell;
  if (shell) {
    if (command.value === "") throw new InvalidRequest("command_info.value is empty but command_info.shell is true: a shell command needs a value");
    if (command.arguments.length > 0) {
      throw new InvalidRequest(`command_info.arguments has ${command.arguments.length} entries but command_info.shell is true: arguments are only used with shell=false`);
    }
  }
  // shell=false: value (when set) and then the arguments are handed to the image's entrypoint, as
  // `docker run image value args…`; arguments alone are Mesos' Default_CMD_Args.
  for (const [i, a] of command.arguments.entries()) {
    if (a.includes("\0")) throw new InvalidRequest(`command_info.arguments[${i}] contains a NUL character`);
  }
  if (command.value.includes("\0")) throw new InvalidRequest("command_info.value contains a NUL character");
}

function resolveEnvironment(command: CommandInfo, extraEnv: Record<string, string>): Array<[string, string]> {
  const env: Array<[string, string]> = [];
  for (const [i, v] of (command.environment?.variables ?? []).entries()) {
    const field = `command_info.environment.variables[${i}]`;
    if (!ENV_NAME.test(v.name)) throw new InvalidRequest(`${field}.name ${quote(v.name)} is empty or contains '=' or NUL`);
    if (v.type === Environment_Variable_Type.SECRET) {
      throw new InvalidRequest(`${field} (${quote(v.name)}) is a SECRET; Berth does not resolve secrets, pass the value as VALUE`);
    }
    if (v.value.includes("\0")) throw new InvalidRequest(`${field}.value of ${quote(v.name)} contains a NUL character`);
    env.push([v.name, v.value]);
  }
  for (const [name, value] of Object.entries(extraEnv)) {
    if (!ENV_NAME.test(name)) throw new InvalidRequest(`environment name ${quote(name)} is empty or contains '=' or NUL`);
    if (value.includes("\0")) throw new InvalidRequest(`environment value of ${quote(name)} contains a NUL character`);
    env.push([name, value]);
  }
  return env;
}

/** Sums cpus, mem, disk and ports over all roles, rejecting negative, non-finite or absurd values. */
export function summarizeResources(resources: Resource[]): ResourceSummary {
  const summary: ResourceSummary = { ports: [] };
  for (const [i, r] of resources.entries()) {
    const field = `resources[${i}] (${quote(r.name)})`;
    if (r.type === Value_Type.SCALAR) {
      const v = r.scalar?.value;
      if (v === undefined) throw new InvalidRequest(`${field} is SCALAR but has no scalar value`);
      if (!Number.isFinite(v) || v < 0) throw new InvalidRequest(`${field} scalar value ${v} must be a finite number ≥ 0`);
      if (r.name === "cpus") summary.cpus = (summary.cpus ?? 0) + v;
      else if (r.name === "mem") summary.memMb = (summary.memMb ?? 0) + v;
      else if (r.name === "disk") summary.diskMb = (summary.diskMb ?? 0) + v;
      else if (r.name === "gpus" && v > 0) {
        throw new InvalidRequest(`${field} asks for ${v} GPUs; Berth does not allocate GPUs (Mesos' docker containerizer hands Nvidia devices in, Berth has no device allocator)`);
      }
    } else if (r.type === Value_Type.RANGES) {
      for (const [j, range] of (r.ranges?.range ?? []).entries()) {
        if (range.begin > range.end || range.end > 65535n) {
          throw new InvalidRequest(`${field} range[${j}] ${range.begin}-${range.end} is not a range within 0-65535`);
        }
        if (r.name === "ports") summary.ports.push([Number(range.begin), Number(range.end)]);
      }
    }
  }
  if (summary.cpus !== undefined && summary.cpus > MAX_CPUS) throw new InvalidRequest(`resources cpus ${summary.cpus} is more than ${MAX_CPUS} (1024 CPU shares per cpu; the kernel allows at most 262144 shares)`);
  if (summary.memMb !== undefined && summary.memMb > MAX_MEM_MB) throw new InvalidRequest(`resources mem ${summary.memMb} MB is more than ${MAX_MEM_MB} MB`);
  if (summary.diskMb !== undefined && summary.diskMb > MAX_DISK_MB) throw new InvalidRequest(`resources disk ${summary.diskMb} MB is more than ${MAX_DISK_MB} MB`);
  return summary;
}

/**
 * Checks the chosen container for shapes the field table cannot express per field: network_infos
 * names only matter (and are only accepted) with network USER, and share_cgroups=false only means
 * something for nested containers, as Mesos' master refuses it outside task groups.
 */
function validateContainerShape(info: ContainerInfo): void {
  const network = info.docker?.network ?? ContainerInfo_DockerInfo_Network.HOST;
  if (network !== ContainerInfo_DockerInfo_Network.USER) {
    for (const [i, n] of info.networkInfos.entries()) {
      if (n.name !== "") {
        throw new InvalidRequest(
          `container_info.network_infos[${i}].name ${quote(n.name)} is only used with container_info.docker.network USER; network is ${ContainerInfo_DockerInfo_Network[network] ?? network}`,
        );
      }
    }
  }
  if (info.linuxInfo?.shareCgroups === false) {
    throw new InvalidRequest("container_info.linux_info.share_cgroups is false: only nested containers may leave their parent's cgroups, and Berth runs top-level containers only");
  }
}

/** The cpus and mem limits of a launch, validated as Mesos' master validates them. */
export function resolveLimits(limits: Record<string, Value_Scalar>, field: string): ResourceLimits {
  const out: ResourceLimits = {};
  for (const [name, scalar] of Object.entries(limits)) {
    const at = `${field}[${quote(name)}]`;
    const v = scalar.value;
    if (name !== "cpus" && name !== "mem") throw new InvalidRequest(`${at} is not supported: only cpus and mem may have limits`);
    if (Number.isNaN(v) || v <= 0) throw new InvalidRequest(`${at} value ${v} must be > 0 (or +Infinity for no cap)`);
    if (name === "cpus") {
      if (Number.isFinite(v) && v > MAX_CPUS_LIMIT) throw new InvalidRequest(`${at} value ${v} is more than ${MAX_CPUS_LIMIT} cpus (use +Infinity for no cap)`);
      out.cpus = v;
    } else {
      if (Number.isFinite(v) && v > MAX_MEM_MB) throw new InvalidRequest(`${at} value ${v} MB is more than ${MAX_MEM_MB} MB (use +Infinity for no cap)`);
      out.memMb = v;
    }
  }
  return out;
}

/**
 * A limit needs its request and may not be below it (Mesos' master refuses both). Update calls
 * this too, so a new request can never rise above the limit in force.
 */
export function checkRequestsWithinLimits(requests: { cpus?: number; memMb?: number }, limits: ResourceLimits, field: string): void {
  for (const [name, request, limit, unit] of [
    ["cpus", requests.cpus, limits.cpus, ""],
    ["mem", requests.memMb, limits.memMb, " MB"],
  ] as const) {
    if (limit === undefined) continue;
    if (request === undefined) throw new InvalidRequest(`${field}[${quote(name)}] is ${limit}${unit} but the resources have no ${name}: a limit needs a request`);
    if (request > limit) throw new InvalidRequest(`resources ${name} ${request}${unit} is more than its limit ${limit}${unit} (${field}[${quote(name)}]): a limit may not be below its request`);
  }
}

/**
 * The allocation role of the resources (Resource.allocation_info.role), or undefined when none
 * carries one. Resources of two roles are refused: Mesos does not let a task mix them (MESOS-6636).
 */
export function allocationRole(resources: Resource[]): string | undefined {
  let role: string | undefined;
  for (const [i, r] of resources.entries()) {
    if (!r.allocationInfo) continue;
    const own = r.allocationInfo.role;
    if (own.includes("\0")) throw new InvalidRequest(`resources[${i}].allocation_info.role contains a NUL character`);
    if (role !== undefined && own !== role) {
      throw new InvalidRequest(`resources[${i}].allocation_info.role ${quote(own)} differs from ${quote(role)}: the resources of one container are allocated to one role`);
    }
    role = own;
  }
  return role;
}

/** The host's cpu count, read once: os.cpus() parses /proc/cpuinfo (~0.15 ms at every launch). */
let hostCpus: number | undefined;

/** The host's cpu count and memory, which an infinite limit stands for (as Mesos reports it). */
export function hostCapacity(): { cpus: number; memoryBytes: number } {
  hostCpus ??= os.cpus().length;
  return { cpus: hostCpus, memoryBytes: os.totalmem() };
}
