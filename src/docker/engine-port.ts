/**
 * The Docker "port": the narrow view of the engine that the domain uses.
 * The dockerode adapter implements it against a real engine; a fake may implement it for fast
 * unit tests. Shapes mirror the Engine API JSON (subset), without any dockerode type.
 */
import type { Readable, Writable } from "node:stream";

/** A mount, as the Engine API `HostConfig.Mounts` takes it (never a `Binds` string). */
export interface MountSpec {
  Type: "bind" | "volume";
  Source: string;
  Target: string;
  ReadOnly?: boolean;
  BindOptions?: { Propagation?: "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" };
  VolumeOptions?: { DriverConfig?: { Name?: string; Options?: Record<string, string> } };
}

/** Body of `POST /containers/create` (the subset Berth produces) plus the container name. */
export interface CreateSpec {
  name: string;
  Image: string;
  Labels: Record<string, string>;
  Env: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  User?: string;
  WorkingDir?: string;
  Hostname?: string;
  Tty?: boolean;
  ExposedPorts?: Record<string, Record<string, never>>;
  HostConfig: {
    NetworkMode: string;
    Mounts: MountSpec[];
    PortBindings?: Record<string, { HostIp?: string; HostPort: string }[]>;
    CpuShares?: number;
    CpuQuota?: number;
    CpuPeriod?: number;
    Memory?: number;
    MemorySwap?: number;
    Privileged?: boolean;
    CapAdd?: string[];
    CapDrop?: string[];
    ShmSize?: number;
    IpcMode?: string;
    PidMode?: string;
    PidsLimit?: number;
    /** The engine's own copy of the output (json-file with a size cap by default). */
    LogConfig?: { Type: string; Config?: Record<string, string> };
    Ulimits?: Array<{ Name: string; Soft: number; Hard: number }>;
    /** e.g. `seccomp=<profile JSON>`, `no-new-privileges`, `apparmor=...`. */
    SecurityOpt?: string[];
    ExtraHosts?: string[];
    Dns?: string[];
    DnsSearch?: string[];
    DnsOptions?: string[];
    ReadonlyRootfs?: boolean;
    /** Container path → mount options (`rw,size=64m`). */
    Tmpfs?: Record<string, string>;
    Init?: boolean;
    MemorySwappiness?: number;
    MemoryReservation?: number;
    OomScoreAdj?: number;
    OomKillDisable?: boolean;
    CpusetCpus?: string;
    Sysctls?: Record<string, string>;
    Devices?: Array<{ PathOnHost: string; PathInContainer: string; CgroupPermissions: string }>;
    VolumeDriver?: string;
  };
  StopSignal?: string;
  StopTimeout?: number;
  /** Per-network settings at create (network aliases on a user network). */
  NetworkingConfig?: { EndpointsConfig: Record<string, { Aliases?: string[] }> };
}

/** Credentials for one registry, as the Engine API's X-Registry-Auth header carries them. */
export type RegistryAuth = { serveraddress: string } & ({ username: string; password: string } | { identitytoken: string });

/** Body of `POST /containers/{id}/exec` (the subset Berth sets). */
export interface ExecCreateSpec {
  Cmd: string[];
  Env?: string[];
  User?: string;
  WorkingDir?: string;
  Tty?: boolean;
  AttachStdin?: boolean;
}

/** The streams of a started exec. */
export interface ExecStreams {
  /** With a TTY, all output comes here. Ends when the process's output is over. */
  stdout: Readable;
  /** Empty with a TTY. Ends with stdout. */
  stderr: Readable;
  /** Present when started with stdin; `end()` closes the process's stdin. */
  stdin?: Writable;
}

/** What `GET /exec/{id}/json` says about an exec'd process. */
export interface ExecState {
  running: boolean;
  /** Host pid of the process (0 before it runs). */
  pid: number;
  /** Set once it has ended. */
  exitCode?: number;
}

/** What Berth reads back from `GET /containers/{id}/json`. */
export interface ContainerInspect {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  running: boolean;
  status: string; // created | running | exited | dead | ...
  pid: number;
  exitCode: number;
  oomKilled: boolean;
  startedAt?: string;
  finishedAt?: string;
  /** The container's IPv4/IPv6 addresses on its engine networks (none with network host or none). */
  ipAddresses?: string[];
  /** The engine's whole inspect JSON, as `docker inspect` prints it (only when asked with `raw`). */
  raw?: string;
}

/** One row of `GET /containers/json?all=1`. */
export interface ContainerSummary {
  id: string;
  labels: Record<string, string>;
  state: string;
}

/** One line of the engine's `/events` stream, for type=container. */
export interface EngineEvent {
  /** die, oom, start, create, destroy, kill, stop, ... */
  action: string;
  /** Engine container id. */
  id: string;
  /** Actor attributes: the container's labels plus e.g. `exitCode` on die. */
  attributes: Record<string, string>;
  /** Nanoseconds since the epoch (`timeNano`). */
  timeNano: bigint;
}

/** One progress line of a pull (one NDJSON line of `POST /images/create`). */
export interface PullProgress {
  status: string;
  layer?: string;
  current?: number;
  total?: number;
}

/** Body of `POST /containers/{id}/update` (the subset Berth sets). */
export interface ResourceUpdate {
  CpuShares?: number;
  CpuQuota?: number;
  CpuPeriod?: number;
  Memory?: number;
  MemorySwap?: number;
}

/** The two output streams of a container, ending when the container stops. */
export interface LogStreams {
  stdout: Readable;
  stderr: Readable;
  /**
   * Resolves once the engine's stream is over: with the error when it broke before its end (an
   * engine restart with live-restore leaves the container running), undefined when it ended or was
   * aborted. Absent: the stream never breaks.
   */
  interrupted?: Promise<Error | undefined>;
}

/**
 * How an adapter tells an attach stream's end (the container's output is over) from a broken
 * connection (an engine restart with live-restore: the container still runs), since the engine's
 * attach carries no end marker: once `exited` has settled (the caller saw the container's exit,
 * its `die` event, which usually arrives before the stream ends) the end is real and nothing is
 * asked; before it, `askEngine` decides (an error: broken), unless the exit is seen while it is in
 * flight. The returned function is called once, when the stream ended.
 */
export function attachEndCheck(exited: Promise<unknown> | undefined, askEngine: () => Promise<Error | undefined>): () => Promise<Error | undefined> {
  let exitSeen = false;
  // An exit that never comes (or fails) leaves the decision to the engine.
  const exit = exited?.then(
    () => {
      exitSeen = true;
    },
    () => new Promise<never>(() => undefined),
  );
  return async () => {
    if (exitSeen) return undefined;
    const answer = askEngine();
    return exit ? Promise.race([answer, exit.then(() => undefined)]) : answer;
  };
}

/** Error raised by an adapter when the engine cannot be reached at all (socket refused, timeout). */
export class EngineUnreachable extends Error {
  override readonly name = "EngineUnreachable";
}

/** Error raised by an adapter for an engine answer with an HTTP status (404, 409, 500, ...). */
export class EngineRequestFailed extends Error {
  override readonly name = "EngineRequestFailed";
  constructor(message: string, readonly statusCode: number) {
    super(message);
  }
}

/**
 * The engine as the domain sees it. Short calls take a timeout inside the adapter; long-lived
 * streams (pull, events, logs) are bounded only by their AbortSignal.
 */
export interface EnginePort {
  /** Resolves when the engine answers `/_ping`; rejects with EngineUnreachable otherwise. */
  ping(): Promise<void>;
  /** True when the image is present locally (`GET /images/{ref}/json` answers 200). */
  imagePresent(ref: string): Promise<boolean>;
  /**
   * Pulls `ref`, reporting each progress line. Rejects with the engine's own message when any
   * progress line carries an error; rejects with the signal's reason when aborted (the engine
   * request is destroyed at once).
   */
  pullImage(ref: string, onProgress: (p: PullProgress) => void, signal: AbortSignal, auth?: RegistryAuth): Promise<void>;
  /** Creates a container and returns its engine id. */
  createContainer(spec: CreateSpec): Promise<string>;
  startContainer(id: string): Promise<void>;
  /** SIGTERM (or the image's stop signal), then SIGKILL after `graceSeconds`. Already stopped is fine. */
  stopContainer(id: string, graceSeconds: number): Promise<void>;
  /** Sends a signal (default SIGKILL). Not running is fine. */
  killContainer(id: string, signal?: string): Promise<void>;
  /** Removes the container (force kills a running one). Already gone is fine. */
  removeContainer(id: string): Promise<void>;
  /** Undefined when the engine has no such container. With `raw`, the answer carries the engine's JSON too. */
  inspectContainer(id: string, options?: { raw?: boolean }): Promise<ContainerInspect | undefined>;
  /** All containers (running or not) whose labels include every given label. */
  listContainers(labels: Record<string, string>): Promise<ContainerSummary[]>;
  /**
   * The raw `/events` stream for containers carrying every given label, from `sinceNano` when
   * given. Ends (or throws) when the connection is lost; reconnecting is the caller's business.
   * `onSubscribed` (optional) is called once the engine has accepted the subscription, so a caller
   * can tell "connected" apart from "no events yet".
   */
  events(
    labels: Record<string, string>,
    sinceNano: bigint | undefined,
    signal: AbortSignal,
    onSubscribed?: () => void,
  ): AsyncIterable<EngineEvent>;
  /**
   * The `/events` stream of image removals (`delete`, `untag`; `id` is the image id or the
   * reference), as `events` ends and reports. Optional: an engine without it gets no image cache.
   */
  imageEvents?(signal: AbortSignal, onSubscribed?: () => void): AsyncIterable<EngineEvent>;
  /**
   * Follows stdout/stderr from the container's start (or from `sinceSeconds`, a Unix time with
   * a fraction, when re-attaching after a restart); both streams end when it stops. `tty`, when
   * the caller knows it, saves the inspect that would otherwise tell whether output is multiplexed.
   */
  followLogs(id: string, signal: AbortSignal, sinceSeconds?: number, tty?: boolean): Promise<LogStreams>;
  /**
   * Attaches to the container's output as it is written (the engine's attach, no stdin). Once it
   * resolves, the engine has subscribed it to the container's stdout/stderr: called between create
   * and start, it misses no byte, and it does not read the engine's own (rotating, capped) copy.
   * Both streams end when the container's output is over; `interrupted` tells a stream that broke
   * while the container still runs (an engine restart) from one that ended. Aborting `signal`
   * closes it (the container is left alone). `exited`, when given, settles once the caller knows
   * the container exited (the engine's `die` event): an end of the stream after it is the output's
   * end without asking the engine (an exited container's attach only ends); before it, the engine's
   * answer decides, or the exit if it comes first.
   */
  attachOutput(id: string, signal: AbortSignal, tty: boolean, exited?: Promise<unknown>): Promise<LogStreams>;
  /** Changes a running container's cpu shares/quota and memory limits. */
  updateContainer(id: string, resources: ResourceUpdate): Promise<void>;
  /** Removes an image by reference; an image in use or already gone is reported, not thrown. */
  removeImage(ref: string): Promise<"removed" | "in-use" | "missing">;
  /** Creates an exec in a running container and returns its id (409 when it is not running). */
  createExec(containerId: string, spec: ExecCreateSpec): Promise<string>;
  /** Starts an exec and attaches to it; aborting the signal detaches (it does not kill the process). */
  startExec(execId: string, options: { tty: boolean; stdin: boolean }, signal: AbortSignal): Promise<ExecStreams>;
  /** The exec's pid and, once over, its exit code. */
  inspectExec(execId: string): Promise<ExecState>;
  /** Resizes an exec's TTY. */
  resizeExec(execId: string, size: { rows: number; columns: number }): Promise<void>;
}
