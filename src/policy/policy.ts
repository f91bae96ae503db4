import path from "node:path";
/**
 * The operator policy: what a Launch may ask for. Without a policy file every field has the safe
 * default below; `examples/policy.yaml` documents each key (the file's keys are the snake_case
 * forms of these fields).
 */
export interface Policy {
  /** `sandbox_roots`: folders a client-chosen container_config.directory may lie under, besides <work_dir>/sandboxes. */
  sandboxRoots: string[];
  /** `allow_privileged`: docker.privileged may be asked for. */
  allowPrivileged: boolean;
  /** `allowed_capabilities`: capabilities (names without CAP_) allowed beyond Docker's default set. */
  allowedCapabilities: string[];
  /** `host_path_prefixes`: host folders HOST_PATH volumes and absolute legacy host_path may mount. */
  hostPathPrefixes: string[];
  /** `docker_volumes`: which DOCKER_VOLUME sources are allowed. */
  dockerVolumes: {
    /** `allowed_drivers`: volume drivers allowed (an empty driver means `local`). */
    allowedDrivers: string[];
    /** `allow_driver_options`: driver options (`device`, `o=bind`, ...) may be given. */
    allowDriverOptions: boolean;
  };
  /** `allow_host_ipc`: linux_info.ipc_mode SHARE_PARENT (the host's IPC namespace). */
  allowHostIpc: boolean;
  /** `allow_host_pid`: linux_info.share_pid_namespace (the host's pid namespace). */
  allowHostPid: boolean;
  /** `file_uri_prefixes`: host folders file:// URIs and bare paths may be fetched from (after realpath). */
  fileUriPrefixes: string[];
  /** `fetch`: where http(s) URIs may connect. */
  fetch: {
    /** `allow_loopback`: loopback addresses (127/8, ::1, localhost); also opened by --fetch_allow_loopback. */
    allowLoopback: boolean;
    /** `deny_private_networks`: also refuse private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7). */
    denyPrivateNetworks: boolean;
  };
  /** `allowed_registries`: registries (host[:port]) images may come from; undefined = any. */
  allowedRegistries?: string[];
  /** `allow_host_network`: docker.network HOST (Mesos' default network). */
  allowHostNetwork: boolean;
  /** `require_non_root_user`: the task must name a user that is not root/0. */
  requireNonRootUser: boolean;
  /** `allow_unconfined_seccomp`: linux_info.seccomp.unconfined, or a `security-opt seccomp=unconfined` parameter. */
  allowUnconfinedSeccomp: boolean;
  /** `allow_unconfined_apparmor`: a `security-opt apparmor=unconfined` parameter. */
  allowUnconfinedApparmor: boolean;
  /** `allow_selinux_label_options`: `security-opt label=...` parameters (label=disable, label=type:...). */
  allowSelinuxLabelOptions: boolean;
  /** `allowed_devices`: host device paths a `device` parameter may expose. */
  allowedDevices: string[];
  /** `allow_oom_kill_disable`: an `oom-kill-disable` parameter. */
  allowOomKillDisable: boolean;
  /** `allow_negative_oom_score_adj`: an `oom-score-adj` parameter below 0 (shielded from the OOM killer at others' cost). */
  allowNegativeOomScoreAdj: boolean;
  /** `allowed_log_drivers`: engine log drivers a `log-driver` parameter may choose. */
  allowedLogDrivers: string[];
}

/** Docker's default capability set: what a container gets without --cap-add. */
export const DOCKER_DEFAULT_CAPABILITIES: readonly string[] = [
  "CHOWN",
  "DAC_OVERRIDE",
  "FSETID",
  "FOWNER",
  "MKNOD",
  "NET_RAW",
  "SETGID",
  "SETUID",
  "SETFCAP",
  "SETPCAP",
  "NET_BIND_SERVICE",
  "SYS_CHROOT",
  "KILL",
  "AUDIT_WRITE",
];

/** The engine sockets that are never mountable, whatever the policy (the configured one is added). */
export const WELL_KNOWN_ENGINE_SOCKETS: readonly string[] = ["/var/run/docker.sock", "/run/docker.sock"];

/** The registry of an image reference without a registry part. */
export const DEFAULT_REGISTRY = "docker.io";

/** The safe defaults (the table): used when no --policy file is given. */
export function defaultPolicy(): Policy {
  return {
    sandboxRoots: [],
    allowPrivileged: false,
    allowedCapabilities: [],
    hostPathPrefixes: [],
    dockerVolumes: { allowedDrivers: ["local"], allowDriverOptions: false },
    allowHostIpc: false,
    allowHostPid: false,
    fileUriPrefixes: [],
    fetch: { allowLoopback: false, denyPrivateNetworks: false },
    allowedRegistries: undefined,
    allowHostNetwork: true,
    requireNonRootUser: false,
    allowUnconfinedSeccomp: false,
    allowUnconfinedApparmor: false,
    allowSelinuxLabelOptions: false,
    allowedDevices: [],
    allowOomKillDisable: false,
    allowNegativeOomScoreAdj: false,
    allowedLogDrivers: ["json-file", "local"],
  };
}

/** The policy in the file's own terms (snake_case), for the start-up log. */
export function describePolicy(p: Policy): Record<string, unknown> {
  return {
    sandbox_roots: p.sandboxRoots,
    allow_privileged: p.allowPrivileged,
    allowed_capabilities: p.allowedCapabilities,
    host_path_prefixes: p.hostPathPrefixes,
    docker_volumes: { allowed_drivers: p.dockerVolumes.allowedDrivers, allow_driver_options: p.dockerVolumes.allowDriverOptions },
    allow_host_ipc: p.allowHostIpc,
    allow_host_pid: p.allowHostPid,
    file_uri_prefixes: p.fileUriPrefixes,
    fetch: { allow_loopback: p.fetch.allowLoopback, deny_private_networks: p.fetch.denyPrivateNetworks },
    allowed_registries: p.allowedRegistries ?? "any",
    allow_host_network: p.allowHostNetwork,
    require_non_root_user: p.requireNonRootUser,
    allow_unconfined_seccomp: p.allowUnconfinedSeccomp,
    allow_unconfined_apparmor: p.allowUnconfinedApparmor,
    allow_selinux_label_options: p.allowSelinuxLabelOptions,
    allowed_devices: p.allowedDevices,
    allow_oom_kill_disable: p.allowOomKillDisable,
    allow_negative_oom_score_adj: p.allowNegativeOomScoreAdj,
    allowed_log_drivers: p.allowedLogDrivers,
  };
}

/**
 * The registry host[:port] of an image reference, as Docker reads it: the first component is a
 * registry when it has a '.' or ':' or is 'localhost'; otherwise the image is on Docker Hub.
 */
export function registryOf(image: string): string {
  const slash = image.indexOf("/");
  if (slash < 0) return DEFAULT_REGISTRY;
  const first = image.slice(0, slash);
  if (!first.includes(".") && !first.includes(":") && first !== "localhost") return DEFAULT_REGISTRY;
  return normalizeRegistry(first);
}

/** Normalises a folder: no '.', no '//', no trailing '/' (except the root itself). */
export function normalizeDir(p: string): string {
  const n = path.normalize(p);
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

/** Lower-cases a registry and folds Docker Hub's aliases into `docker.io`. */
export function normalizeRegistry(registry: string): string {
  const r = registry.toLowerCase();
  return r === "index.docker.io" || r === "registry-1.docker.io" || r === "registry.hub.docker.com" ? DEFAULT_REGISTRY : r;
}
