/**
 * `berth launch`'s request: built from docker-run-like flags, or read from a JSON file holding a
 * Mesos TaskInfo, a ContainerConfig or a whole LaunchRequest (proto JSON, protobuf-es fromJson).
 * Pure apart from reading the file: unit-tested without a server.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { create, fromJson, isFieldSet, toBinary, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import bytes from "bytes";
import { LaunchRequestSchema, type LaunchRequest } from "../gen/berth/v1/containerizer_pb.js";
import { ContainerConfigSchema } from "../gen/mesos/slave/containerizer_pb.js";
import {
  CommandInfoSchema,
  ContainerInfo_DockerInfo_Network,
  ContainerInfo_DockerInfoSchema,
  ContainerInfo_Type,
  ContainerInfoSchema,
  NetworkInfoSchema,
  ResourceSchema,
  TaskInfoSchema,
  Value_Type,
  Volume_Mode,
  VolumeSchema,
} from "../gen/mesos/v1/mesos_pb.js";
import { UsageError } from "./connection.js";

/** The flags of `berth launch` that shape the request. */
export interface LaunchFlags {
  image?: string;
  command: string[];
  id?: string;
  task?: string;
  shell?: boolean;
  cpus?: string;
  mem?: string;
  disk?: string;
  env?: string[];
  volume?: string[];
  network?: string;
  uri?: string[];
  user?: string;
  workdir?: string;
  pull?: boolean;
}

/** A fresh container id: `berth-` and 12 hex digits. */
export function generateId(): string {
  return `berth-${randomBytes(6).toString("hex")}`;
}

function positiveNumber(value: string, flag: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} '${value}' is not a positive number`);
  return n;
}

/**
 * A memory or disk size in MB, as Mesos counts them: a plain number is MB; with a unit
 * (`512m`, `512MiB`, `1g`, `1GB`) it is converted (binary units either way, as docker's --memory).
 */
export function megabytes(value: string, flag: string): number {
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return positiveNumber(v, flag);
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt])(i?b)?$/i.exec(v);
  const n = m ? bytes.parse(`${m[1]}${m[2]!.toUpperCase()}B`) : null;
  if (n === null || !(n > 0)) throw new UsageError(`${flag} '${value}' is not a size (MB by default, or e.g. 512m, 1g, 256MiB)`);
  return n / (1024 * 1024);
}

/** `KEY=VALUE` (a bare `KEY` takes the value from this process's environment, as docker run -e). */
export function parseEnv(entries: string[], env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) {
    const eq = e.indexOf("=");
    const name = eq < 0 ? e : e.slice(0, eq);
    if (name === "") throw new UsageError(`-e '${e}' has no variable name (KEY=VALUE)`);
    if (eq < 0) {
      const value = env[name];
      if (value === undefined) throw new UsageError(`-e '${e}': ${name} is not set here; give KEY=VALUE`);
      out[name] = value;
    } else out[name] = e.slice(eq + 1);
  }
  return out;
}

/** `HOST:CONTAINER[:ro|rw]` → a Mesos Volume (host_path, container_path, mode). */
export function parseVolume(spec: string): MessageInitShape<typeof VolumeSchema> {
  const parts = spec.split(":");
  if (parts.length < 2 || parts.length > 3 || parts[0] === "" || parts[1] === "") {
    throw new UsageError(`-v '${spec}' is not HOST_PATH:CONTAINER_PATH[:ro|rw]`);
  }
  const mode = parts[2] ?? "rw";
  if (mode !== "ro" && mode !== "rw") throw new UsageError(`-v '${spec}': mode '${mode}' is neither ro nor rw`);
  return { hostPath: parts[0]!, containerPath: parts[1]!, mode: mode === "ro" ? Volume_Mode.RO : Volume_Mode.RW };
}

/** `none`, `host`, `bridge` or `user:NAME` → DockerInfo.network (and a network_infos name for USER). */
export function parseNetwork(value: string): { network: ContainerInfo_DockerInfo_Network; userNetwork?: string } {
  const v = value.trim().toLowerCase();
  if (v === "none") return { network: ContainerInfo_DockerInfo_Network.NONE };
  if (v === "host") return { network: ContainerInfo_DockerInfo_Network.HOST };
  if (v === "bridge") return { network: ContainerInfo_DockerInfo_Network.BRIDGE };
  const user = /^user:(.+)$/i.exec(value.trim());
  if (user) return { network: ContainerInfo_DockerInfo_Network.USER, userNetwork: user[1]! };
  throw new UsageError(`--network '${value}' is not none, host, bridge or user:NAME`);
}

function readTaskFile(file: string): JsonValue {
  let text: string;
  try {
    text = readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (err) {
    throw new UsageError(`--task '${file}' cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new UsageError(`--task '${file}' is not JSON: ${(err as Error).message}`);
  }
}

const has = (o: Record<string, JsonValue>, ...keys: string[]) => keys.some((k) => k in o);

/**
 * The request a --task file describes. Its kind is told by its keys: `containerConfig` /
 * `container_config` → a LaunchRequest; `taskId` / `task_id` → a TaskInfo; anything else → a
 * ContainerConfig. Unknown fields are refused (naming them), as a typo must not be dropped.
 */
export function requestFromTaskFile(file: string): LaunchRequest {
  const json = readTaskFile(file);
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new UsageError(`--task '${file}' holds ${Array.isArray(json) ? "an array" : String(json)}, not a JSON object`);
  const what = has(json, "containerConfig", "container_config") ? "LaunchRequest" : has(json, "taskId", "task_id") ? "TaskInfo" : "ContainerConfig";
  try {
    if (what === "LaunchRequest") {
      const req = fromJson(LaunchRequestSchema, json);
      if (req.containerConfig === undefined) throw new Error("container_config is empty");
      if (!isFieldSet(req.containerConfig, ContainerConfigSchema.field.directory)) req.containerConfig.directory = "";
      return complete(req);
    }
    if (what === "TaskInfo") {
      const task = fromJson(TaskInfoSchema, json);
      if (!task.command) throw new Error("command is missing (the TaskInfo's CommandInfo)");
      // Berth runs the task's own command and container; ContainerConfig requires command_info and
      // directory ("" asks Berth to pick the sandbox).
      return complete(create(LaunchRequestSchema, { containerConfig: { taskInfo: task, commandInfo: task.command, directory: "" } }));
    }
    const config = fromJson(ContainerConfigSchema, json);
    if (!isFieldSet(config, ContainerConfigSchema.field.directory)) config.directory = "";
    return complete(create(LaunchRequestSchema, { containerConfig: config }));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--task '${file}' is not a ${what} in proto JSON: ${(err as Error).message}`);
  }
}

/** The request as is, once it encodes: a proto2 required field left out is named here, not as an INTERNAL error. */
function complete(req: LaunchRequest): LaunchRequest {
  toBinary(LaunchRequestSchema, req);
  return req;
}

/** Flags that describe the container itself, which --task replaces. */
const CONTAINER_FLAGS: Array<[keyof LaunchFlags, string]> = [
  ["cpus", "--cpus"],
  ["mem", "--mem"],
  ["disk", "--disk"],
  ["volume", "-v"],
  ["network", "--network"],
  ["uri", "--uri"],
  ["workdir", "--workdir"],
  ["pull", "--pull"],
  ["shell", "--shell"],
];

/** The LaunchRequest of `berth launch` (its container id set: --id, the file's, or a fresh one). */
export function buildLaunchRequest(flags: LaunchFlags, env: NodeJS.ProcessEnv = process.env): LaunchRequest {
  const extraEnv = parseEnv(flags.env ?? [], env);
  if (flags.task !== undefined) {
    const conflicting = CONTAINER_FLAGS.filter(([k]) => {
      const v = flags[k];
      return v !== undefined && v !== false && !(Array.isArray(v) && v.length === 0);
    }).map(([, f]) => f);
    if (flags.image !== undefined) conflicting.unshift("IMAGE");
    if (conflicting.length > 0) throw new UsageError(`--task describes the whole container; drop ${conflicting.join(", ")} (only --id, -e and --user go with it)`);
    const req = requestFromTaskFile(flags.task);
    if (flags.id !== undefined) req.containerId = { $typeName: "mesos.v1.ContainerID", value: flags.id };
    else req.containerId ??= { $typeName: "mesos.v1.ContainerID", value: generateId() };
    Object.assign(req.environment, extraEnv);
    if (flags.user !== undefined) req.containerConfig!.user = flags.user;
    return req;
  }
  if (flags.image === undefined || flags.image.trim() === "") throw new UsageError("launch needs an IMAGE (berth launch [flags] IMAGE [COMMAND [ARG...]]) or --task FILE");

  let command: MessageInitShape<typeof CommandInfoSchema>;
  if (flags.shell) {
    if (flags.command.length === 0) throw new UsageError("--shell needs a COMMAND to run with /bin/sh -c");
    command = { shell: true, value: flags.command.join(" ") };
  } else if (flags.command.length > 0) {
    // As docker run: the first word and its arguments, handed to the image's entrypoint (Mesos shell=false).
    command = { shell: false, value: flags.command[0]!, arguments: flags.command.slice(1) };
  } else {
    command = { shell: false };
  }
  command.uris = (flags.uri ?? []).map((value) => ({ value }));

  const resources: MessageInitShape<typeof ResourceSchema>[] = [];
  if (flags.cpus !== undefined) resources.push({ name: "cpus", type: Value_Type.SCALAR, scalar: { value: positiveNumber(flags.cpus, "--cpus") } });
  if (flags.mem !== undefined) resources.push({ name: "mem", type: Value_Type.SCALAR, scalar: { value: megabytes(flags.mem, "--mem") } });
  if (flags.disk !== undefined) resources.push({ name: "disk", type: Value_Type.SCALAR, scalar: { value: megabytes(flags.disk, "--disk") } });

  const docker: MessageInitShape<typeof ContainerInfo_DockerInfoSchema> = { image: flags.image.trim() };
  let networkInfos: MessageInitShape<typeof NetworkInfoSchema>[] = [];
  if (flags.network !== undefined) {
    const { network, userNetwork } = parseNetwork(flags.network);
    docker.network = network;
    if (userNetwork !== undefined) networkInfos = [{ name: userNetwork }];
  }
  if (flags.pull) docker.forcePullImage = true;
  if (flags.workdir !== undefined) {
    if (!flags.workdir.startsWith("/")) throw new UsageError(`--workdir '${flags.workdir}' is not an absolute path`);
    docker.parameters = [{ key: "workdir", value: flags.workdir }];
  }
  const containerInfo: MessageInitShape<typeof ContainerInfoSchema> = {
    type: ContainerInfo_Type.DOCKER,
    docker,
    volumes: (flags.volume ?? []).map(parseVolume),
    networkInfos,
  };
  return create(LaunchRequestSchema, {
    containerId: { value: flags.id ?? generateId() },
    environment: extraEnv,
    containerConfig: {
      directory: "",
      commandInfo: command,
      containerInfo,
      resources,
      ...(flags.user !== undefined ? { user: flags.user } : {}),
    },
  });
}
