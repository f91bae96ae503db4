import path from "node:path";
import type { ContainerConfig } from "../gen/mesos/slave/containerizer_pb.js";
import {
  ContainerInfo_Type,
  Environment_Variable_Type,
  Value_Type,
  type CommandInfo,
  type ContainerInfo,
  type Resource,
} from "../gen/mesos/v1/mesos_pb.js";
import { validateFetchUris, FetchUriInvalid, type FetchUri } from "../fetcher/fetcher.js";
import { quote } from "./container-id.js";
import { InvalidRequest } from "./errors.js";

/** Upper bounds past which a resource request is taken as a mistake, not a wish. */
/** The kernel caps cpu.shares at 262144, and Berth (as Mesos) gives 1024 shares per cpu. */
export const MAX_CPUS = 262144 / 1024;
export const MAX_MEM_MB = 64 * 1024 * 1024; // 64 TiB
export const MAX_DISK_MB = 1024 * 1024 * 1024; // 1 PiB

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
  /** From the task's kill_policy.grace_period, when given. */
  gracePeriodMs?: number;
}

/** Why a request is valid but not for this containerizer (Mesos' LaunchResult NOT_SUPPORTED). */
export class NotSupported extends Error {}

const ENV_NAME = /^[^=\0]+$/;

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
  const image = containerInfo.docker?.image ?? "";
  if (image.trim() === "") throw new InvalidRequest("container_info.docker.image is empty");
  validateImageRef(image);

  validateCommand(command);
  const uris = command.uris.map((u) => ({
    value: u.value,
    executable: u.executable,
    extract: u.extract,
    outputFile: u.outputFile === "" ? undefined : u.outputFile,
  }));
  try {
    validateFetchUris(uris);
  } catch (err) {
    if (err instanceof FetchUriInvalid) throw new InvalidRequest(err.message);
    throw err;
  }

  const environment = resolveEnvironment(command, extraEnv);
  const resourceMessages = config.resources.length > 0 ? config.resources : [...(task?.resources ?? []), ...(executor?.resources ?? [])];
  const resources = summarizeResources(resourceMessages);

  let directory: string | undefined;
  if (config.directory !== "") {
    if (!path.isAbsolute(config.directory)) throw new InvalidRequest(`container_config.directory ${quote(config.directory)} is not an absolute path`);
    if (config.directory.split("/").includes("..")) throw new InvalidRequest(`container_config.directory ${quote(config.directory)} contains '..'`);
    if (/[\0-\x1f]/.test(config.directory)) throw new InvalidRequest(`container_config.directory ${quote(config.directory)} contains a control character`);
    directory = path.normalize(config.directory);
  }

  const user = config.user !== "" ? config.user : command.user !== "" ? command.user : undefined;
  if (user !== undefined && !/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$/.test(user)) {
    throw new InvalidRequest(`user ${quote(user)} is not a user name or uid (optionally ':group')`);
  }

  let gracePeriodMs: number | undefined;
  const grace = task?.killPolicy?.gracePeriod;
  if (grace) {
    if (grace.nanoseconds < 0n) throw new InvalidRequest(`task_info.kill_policy.grace_period.nanoseconds ${grace.nanoseconds} is negative`);
    gracePeriodMs = Number(grace.nanoseconds / 1_000_000n);
  }

  if (task) validateMesosId(task.taskId?.value ?? "", "task_info.task_id.value");
  if (executor) validateMesosId(executor.executorId?.value ?? "", "executor_info.executor_id.value");

  return {
    containerId,
    config,
    command,
    containerInfo,
    image,
    forcePull: containerInfo.docker?.forcePullImage ?? false,
    resources,
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
  } else if (command.value === "" && command.arguments.length > 0) {
    // Mesos passes `value` first and then the arguments; arguments without a value would silently
    // become the program name.
    throw new InvalidRequest("command_info.arguments are set but command_info.value is empty: with shell=false, value is the program and arguments follow it");
  }
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
