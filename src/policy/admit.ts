import { isIP } from "node:net";
import {
  CapabilityInfo_Capability,
  ContainerInfo_DockerInfo_Network,
  LinuxInfo_IpcMode,
  Volume_Source_Type,
  type CapabilityInfo,
} from "../gen/mesos/v1/mesos_pb.js";
import { addressKind, addressRefusal, unbracket } from "../fetcher/address-rules.js";
import { planFetch } from "../fetcher/fetch-plan.js";
import { isInside } from "../fetcher/sandbox-paths.js";
import { PermissionDenied } from "../containerizer/errors.js";
import type { LaunchSpec } from "../containerizer/launch-spec.js";
import { effectiveUser, launchParameters } from "../containerizer/docker-parameters.js";
import { admitDockerParameters } from "./admit-parameters.js";
import { DOCKER_DEFAULT_CAPABILITIES, normalizeDir, normalizeRegistry, registryOf, type Policy } from "./policy.js";
import type { ResolvedPaths } from "./resolve-paths.js";

/** Facts of this Berth that admission needs besides the launch and the policy. */
export interface AdmissionContext {
  /** --work_dir: never mountable, nor any folder containing it (sandboxes and checkpoints live there). */
  workDir: string;
  /** <work_dir>/sandboxes: a client-chosen sandbox may always lie under it. */
  sandboxesDir: string;
  /** The engine's sockets (the configured one and the well-known ones): never mountable, nor a folder containing one. */
  engineSockets: string[];
  /** Real paths from the async pre-step (resolveAdmissionPaths). A checked path missing here is refused. */
  resolved: ResolvedPaths;
  /** --container_log_max_size (default 10 MB): the engine's copy of the output keeps at most two such files. */
  engineLogMaxSize?: number;
  /** --fetcher_cache_dir: Berth's own like the work dir (never mountable, never fetchable), also when it lies elsewhere. */
  fetcherCacheDir?: string;
}

/** A host path a launch asks to mount, with the field that names it. */
interface HostPathRequest {
  field: string;
  path: string;
  /** The value as the request wrote it (for the refusal). */
  value: string;
}

/** The host paths bind-mounted from outside the sandbox, as create-spec reads them (same precedence). */
export function hostPathRequests(spec: LaunchSpec): HostPathRequest[] {
  const out: HostPathRequest[] = [];
  for (const [i, v] of spec.containerInfo.volumes.entries()) {
    const field = `container_info.volumes[${i}]`;
    if (v.source) {
      if (v.source.type === Volume_Source_Type.HOST_PATH) out.push({ field: `${field}.source.host_path.path`, path: v.source.hostPath?.path ?? "", value: v.source.hostPath?.path ?? "" });
    } else if (v.hostPath !== "" && v.hostPath.startsWith("/")) {
      out.push({ field: `${field}.host_path`, path: v.hostPath, value: v.hostPath });
    }
  }
  return out;
}

/** The local files a launch asks to fetch (file:// URIs and bare paths). */
function fileRequests(spec: LaunchSpec): HostPathRequest[] {
  const out: HostPathRequest[] = [];
  for (const [i, uri] of spec.uris.entries()) {
    const plan = planFetch(uri, i);
    if (plan.source.kind === "file") out.push({ field: `command_info.uris[${i}].value`, path: plan.source.path, value: uri.value });
  }
  return out;
}

/** Every path admission needs the real path of (none for a launch that names no host path): run resolvePaths over them before admit(). */
export function admissionPaths(spec: LaunchSpec, policy: Policy, ctx: Omit<AdmissionContext, "resolved">): string[] {
  const paths: string[] = [];
  const hostPaths = hostPathRequests(spec);
  if (spec.directory !== undefined) paths.push(clean(spec.directory), ctx.sandboxesDir, ...policy.sandboxRoots);
  if (hostPaths.length > 0) paths.push(...policy.hostPathPrefixes, ...hostPaths.map((h) => clean(h.path)));
  const files = fileRequests(spec);
  if (spec.directory !== undefined || hostPaths.length > 0 || files.length > 0) paths.push(...berthDirs(ctx), ...ctx.engineSockets);
  if (files.length > 0) paths.push(...policy.fileUriPrefixes, ...files.map((f) => clean(f.path)));
  return paths;
}

/**
 * The one policy decision of a launch. Pure: reads only the launch, the policy and the real paths
 * resolved beforehand. Throws PermissionDenied naming the rule (the policy key that would allow
 * it, or the fixed rule that never does), the field (its Mesos path) and the value.
 */
export function admit(spec: LaunchSpec, policy: Policy, ctx: AdmissionContext): void {
  const info = spec.containerInfo;
  const docker = info.docker;
  const real = (p: string): string | null => ctx.resolved.get(p) ?? null;
  const forms = (p: string): string[] => {
    const r = real(p);
    return r === null || r === p ? [p] : [p, r];
  };

  // The sandbox: Berth's own folder, or one the policy names; checked before any file is touched.
  if (spec.directory !== undefined) {
    const dir = clean(spec.directory);
    const field = "container_config.directory";
    const roots = [ctx.sandboxesDir, ...policy.sandboxRoots].flatMap(forms);
    const r = real(dir);
    if (r === null) throw new PermissionDenied("sandbox_roots", field, spec.directory, "its real path cannot be resolved");
    if (!strictlyUnderAny(dir, roots) || !strictlyUnderAny(r, roots)) {
      throw new PermissionDenied("sandbox_roots", field, spec.directory, `a chosen sandbox must lie under ${ctx.sandboxesDir}${policy.sandboxRoots.length > 0 ? ` or ${policy.sandboxRoots.join(", ")}` : ""}${r !== dir ? ` (it resolves to ${r})` : ""}; leave it empty for Berth to pick one`);
    }
    refuseProtected(dir, r, field, spec.directory, ctx, forms, false);
  }

  if (docker?.privileged && !policy.allowPrivileged) {
    throw new PermissionDenied("allow_privileged", "container_info.docker.privileged", "true", "privileged containers are root on the host");
  }

  const linux = info.linuxInfo;
  if (linux) {
    const allowed = new Set([...DOCKER_DEFAULT_CAPABILITIES, ...policy.allowedCapabilities]);
    const sets: Array<[string, CapabilityInfo | undefined]> = [
      ["effective_capabilities", linux.effectiveCapabilities],
      ["bounding_capabilities", linux.boundingCapabilities],
      ["capability_info", linux.capabilityInfo],
    ];
    for (const [name, set] of sets) {
      for (const [i, c] of (set?.capabilities ?? []).entries()) {
        const cap = CapabilityInfo_Capability[c] ?? String(c);
        if (!allowed.has(cap)) {
          throw new PermissionDenied("allowed_capabilities", `container_info.linux_info.${name}.capabilities[${i}]`, cap, "only Docker's default capabilities may be asked for unless the policy lists more");
        }
      }
    }
    if (linux.ipcMode === LinuxInfo_IpcMode.SHARE_PARENT && !policy.allowHostIpc) {
      throw new PermissionDenied("allow_host_ipc", "container_info.linux_info.ipc_mode", "SHARE_PARENT", "the host's IPC namespace");
    }
    if (linux.sharePidNamespace && !policy.allowHostPid) {
      throw new PermissionDenied("allow_host_pid", "container_info.linux_info.share_pid_namespace", "true", "the host's pid namespace");
    }
  }

  const network = docker?.network ?? ContainerInfo_DockerInfo_Network.HOST;
  if (network === ContainerInfo_DockerInfo_Network.HOST && !policy.allowHostNetwork) {
    throw new PermissionDenied("allow_host_network", "container_info.docker.network", "HOST", "ask for NONE, BRIDGE or USER");
  }

  // Volumes: host paths under an allowed prefix (in both their written and their real form); the
  // engine socket, the work dir and any folder holding them never.
  const hostPaths = hostPathRequests(spec);
  const prefixes = policy.hostPathPrefixes.flatMap(forms);
  for (const h of hostPaths) {
    const p = clean(h.path);
    const r = real(p);
    if (r === null) throw new PermissionDenied("host_path_prefixes", h.field, h.value, "its real path cannot be resolved");
    refuseProtected(p, r, h.field, h.value, ctx, forms, true);
    if (!underAny(p, prefixes) || !underAny(r, prefixes)) {
      throw new PermissionDenied(
        "host_path_prefixes",
        h.field,
        h.value,
        policy.hostPathPrefixes.length === 0 ? "host paths are not mountable unless the policy lists a prefix" : `not under ${policy.hostPathPrefixes.join(", ")}${r !== p ? ` (it resolves to ${r})` : ""}`,
      );
    }
  }
  for (const [i, v] of info.volumes.entries()) {
    if (v.source?.type !== Volume_Source_Type.DOCKER_VOLUME) continue;
    const dv = v.source.dockerVolume;
    const field = `container_info.volumes[${i}].source.docker_volume`;
    const driver = dv?.driver === undefined || dv.driver === "" ? "local" : dv.driver;
    if (!policy.dockerVolumes.allowedDrivers.includes(driver)) {
      throw new PermissionDenied("docker_volumes.allowed_drivers", `${field}.driver`, driver, `allowed drivers: ${policy.dockerVolumes.allowedDrivers.join(", ") || "none"}`);
    }
    const options = dv?.driverOptions?.parameter ?? [];
    if (options.length > 0 && !policy.dockerVolumes.allowDriverOptions) {
      throw new PermissionDenied("docker_volumes.allow_driver_options", `${field}.driver_options.parameter[0]`, `${options[0]!.key}=${options[0]!.value}`, "driver options (device, o=bind, ...) can mount host paths");
    }
  }

  // URIs: local files under an allowed prefix; http(s) to loopback, link-local and other special
  // addresses refused when the host is written as one (names are checked at connect time).
  const filePrefixes = policy.fileUriPrefixes.flatMap(forms);
  for (const f of fileRequests(spec)) {
    const p = clean(f.path);
    const r = real(p);
    if (r === null || !underAny(p, filePrefixes) || !underAny(r, filePrefixes)) {
      throw new PermissionDenied(
        "file_uri_prefixes",
        f.field,
        f.value,
        policy.fileUriPrefixes.length === 0 ? "local files are not fetchable unless the policy lists a prefix" : `not under ${policy.fileUriPrefixes.join(", ")}${r !== null && r !== p ? ` (it resolves to ${r})` : ""}`,
      );
    }
    // Berth's own files (checkpoints, other tasks' sandboxes, the fetcher cache) are never a
    // fetch source, whatever prefix the policy opens ('/' included).
    refuseProtected(p, r, f.field, f.value, ctx, forms, true);
  }
  for (const [i, uri] of spec.uris.entries()) {
    const plan = planFetch(uri, i);
    if (plan.source.kind !== "http") continue;
    const refusal = hostRefusal(plan.source.url.hostname, policy);
    if (refusal) throw new PermissionDenied(refusal.rule, `command_info.uris[${i}].value`, uri.value, refusal.detail);
  }

  if (policy.allowedRegistries !== undefined) {
    const registry = registryOf(spec.image);
    if (!policy.allowedRegistries.map(normalizeRegistry).includes(registry)) {
      throw new PermissionDenied("allowed_registries", "container_info.docker.image", spec.image, `registry '${registry}' is not one of ${policy.allowedRegistries.join(", ") || "(none)"}`);
    }
  }

  // Docker parameters, seccomp and the volume driver; a `user` parameter is the task's user below.
  const parameters = launchParameters(spec);
  admitDockerParameters(spec, parameters, policy, ctx.engineLogMaxSize);

  if (policy.requireNonRootUser) {
    const chosen = effectiveUser(spec, parameters);
    if (chosen === undefined) {
      throw new PermissionDenied("require_non_root_user", "container_config.user", "", "an unset user runs as the image's default user, which may be root; name a non-root user");
    }
    const name = chosen.user.split(":")[0]!;
    if (name === "root" || /^0+$/.test(name)) throw new PermissionDenied("require_non_root_user", chosen.field, chosen.user, "the task must not run as root");
  }
}

/** Why an http(s) host written as an address (or 'localhost') is refused, or null. */
function hostRefusal(hostname: string, policy: Policy): { rule: string; detail: string } | null {
  const bare = unbracket(hostname);
  const rules = { allowLoopback: policy.fetch.allowLoopback, denyPrivate: policy.fetch.denyPrivateNetworks };
  if (isIP(bare) === 0) {
    const name = bare.toLowerCase().replace(/\.$/, "");
    if ((name === "localhost" || name.endsWith(".localhost")) && !rules.allowLoopback) {
      return { rule: "fetch.allow_loopback", detail: `'${bare}' is a loopback name (opened by --fetch_allow_loopback or the policy's fetch.allow_loopback)` };
    }
    return null;
  }
  const detail = addressRefusal(bare, rules);
  if (detail === null) return null;
  const kind = addressKind(bare);
  return { rule: kind === "loopback" ? "fetch.allow_loopback" : kind === "private" ? "fetch.deny_private_networks" : "fetch.special_addresses", detail };
}

/**
 * The engine socket, the work dir (sandboxes, checkpoints) and any folder that holds one of them
 * are never mountable, whatever prefix the policy opens: '/' or '/var/run' would hand the engine —
 * root on the host — to the container. A chosen sandbox may lie inside the work dir (under
 * sandboxes/), so for it only holding the work dir is refused.
 */
function refuseProtected(p: string, r: string, field: string, value: string, ctx: AdmissionContext, forms: (p: string) => string[], insideWorkDirToo: boolean): void {
  for (const socket of ctx.engineSockets.flatMap(forms)) {
    if (under(socket, p) || under(socket, r)) throw new PermissionDenied("engine_socket", field, value, `it is or holds the engine socket ${socket}; never mountable`);
  }
  for (const work of forms(ctx.workDir)) {
    if (under(work, p) || under(work, r)) throw new PermissionDenied("work_dir", field, value, `it is or holds Berth's work dir ${work}; never mountable`);
    if (insideWorkDirToo && (under(p, work) || under(r, work))) throw new PermissionDenied("work_dir", field, value, `it lies inside Berth's work dir ${work}; never mountable or fetchable`);
  }
  // The fetcher cache holds every task's cached downloads: never reachable, not even a folder holding it.
  for (const cache of ctx.fetcherCacheDir ? forms(ctx.fetcherCacheDir) : []) {
    if (under(cache, p) || under(cache, r) || under(p, cache) || under(r, cache)) {
      throw new PermissionDenied("fetcher_cache_dir", field, value, `it is, holds or lies inside Berth's fetcher cache ${cache}; never mountable or fetchable`);
    }
  }
}

/** Berth's own folders admission compares against: the work dir and the fetcher cache. */
function berthDirs(ctx: Omit<AdmissionContext, "resolved">): string[] {
  return [ctx.workDir, ...(ctx.fetcherCacheDir ? [ctx.fetcherCacheDir] : [])];
}

function clean(p: string): string {
  return normalizeDir(p);
}

/** `p` is `root` or lies below it (both normalised). */
function under(p: string, root: string): boolean {
  return isInside(root, p);
}

function underAny(p: string, roots: string[]): boolean {
  return roots.some((root) => under(p, root));
}

function strictlyUnderAny(p: string, roots: string[]): boolean {
  return roots.some((root) => p !== root && under(p, root));
}
