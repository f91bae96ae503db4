import { readFile } from "node:fs/promises";
import path from "node:path";
import { parse } from "yaml";
import { z } from "zod";
import { CapabilityInfo_Capability } from "../gen/mesos/v1/mesos_pb.js";
import { defaultPolicy, normalizeDir, normalizeRegistry, type Policy } from "./policy.js";

/** A policy file that cannot be read or does not validate; the message names the file and the key. */
export class PolicyInvalid extends Error {
  override readonly name = "PolicyInvalid";
}

const absolutePath = z
  .string()
  .refine((p) => path.isAbsolute(p), "is not an absolute path")
  .refine((p) => !p.includes("\0") && !/[\x01-\x1f]/.test(p), "contains a NUL or control character")
  .refine((p) => !p.split("/").includes(".."), "contains '..'")
  .transform(normalizeDir);

const capability = z
  .string()
  .transform((c) => c.toUpperCase().replace(/^CAP_/, ""))
  .refine((c) => c !== "UNKNOWN" && typeof (CapabilityInfo_Capability as unknown as Record<string, unknown>)[c] === "number", "is not a Linux capability Mesos knows (e.g. SYS_ADMIN, NET_ADMIN)");

const registry = z
  .string()
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?$/, "is not a registry host[:port] (e.g. 'docker.io', 'registry.example.com:5000')")
  .transform(normalizeRegistry);

const devicePath = absolutePath.refine((p) => p.startsWith("/dev/"), "is not a device path under /dev");

// 'none' keeps nothing the engine's logs endpoint can serve, and Berth follows the output there.
const logDriver = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.\/:-]*$/, "is not a log driver name")
  .refine((d) => d !== "none", "is 'none', which keeps no output for Berth to read (the engine's logs endpoint); it is never allowed");

const driver = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.\/:-]*$/, "is not a volume driver name");

/** The file's schema: snake_case keys, every one optional, unknown keys refused (a typo must not silently open nothing). */
const PolicyFile = z.strictObject({
  sandbox_roots: z.array(absolutePath).optional(),
  allow_privileged: z.boolean().optional(),
  allowed_capabilities: z.array(capability).optional(),
  host_path_prefixes: z.array(absolutePath).optional(),
  docker_volumes: z
    .strictObject({
      allowed_drivers: z.array(driver).optional(),
      allow_driver_options: z.boolean().optional(),
    })
    .optional(),
  allow_host_ipc: z.boolean().optional(),
  allow_host_pid: z.boolean().optional(),
  file_uri_prefixes: z.array(absolutePath).optional(),
  fetch: z
    .strictObject({
      allow_loopback: z.boolean().optional(),
      deny_private_networks: z.boolean().optional(),
    })
    .optional(),
  allowed_registries: z.array(registry).nullable().optional(),
  allow_host_network: z.boolean().optional(),
  require_non_root_user: z.boolean().optional(),
  allow_unconfined_seccomp: z.boolean().optional(),
  allow_unconfined_apparmor: z.boolean().optional(),
  allow_selinux_label_options: z.boolean().optional(),
  allowed_devices: z.array(devicePath).optional(),
  allow_oom_kill_disable: z.boolean().optional(),
  allow_negative_oom_score_adj: z.boolean().optional(),
  allowed_log_drivers: z.array(logDriver).optional(),
});

/** Reads and validates a policy file (JSON or YAML); throws PolicyInvalid naming the file and the key. */
export async function loadPolicy(file: string): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new PolicyInvalid(`--policy '${file}' cannot be read: ${(err as Error).message}`);
  }
  return parsePolicy(text, file);
}

/** Parses policy text (JSON is YAML too); `file` names the source in messages. */
export function parsePolicy(text: string, file: string): Policy {
  let raw: unknown;
  try {
    raw = parse(text, { uniqueKeys: true }) ?? {};
  } catch (err) {
    throw new PolicyInvalid(`--policy '${file}' is neither valid YAML nor JSON: ${(err as Error).message.split("\n")[0]}`);
  }
  const parsed = PolicyFile.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = keyPath(issue.path);
    if (issue.code === "unrecognized_keys") {
      const key = keyPath([...issue.path, issue.keys[0]!]);
      throw new PolicyInvalid(`--policy '${file}': key '${key}' is not a policy key (see examples/policy.yaml)`);
    }
    if (at === "") throw new PolicyInvalid(`--policy '${file}': the policy must be a mapping of keys to values (${issue.message})`);
    const value = valueAt(raw, issue.path);
    const shown = value === undefined ? "" : ` ${JSON.stringify(value)}`;
    throw new PolicyInvalid(`--policy '${file}': key '${at}'${shown} ${issue.message.replace(/^Invalid input: /, "")}`);
  }
  const f = parsed.data;
  const d = defaultPolicy();
  return {
    sandboxRoots: f.sandbox_roots ?? d.sandboxRoots,
    allowPrivileged: f.allow_privileged ?? d.allowPrivileged,
    allowedCapabilities: [...new Set(f.allowed_capabilities ?? d.allowedCapabilities)],
    hostPathPrefixes: f.host_path_prefixes ?? d.hostPathPrefixes,
    dockerVolumes: {
      allowedDrivers: f.docker_volumes?.allowed_drivers ?? d.dockerVolumes.allowedDrivers,
      allowDriverOptions: f.docker_volumes?.allow_driver_options ?? d.dockerVolumes.allowDriverOptions,
    },
    allowHostIpc: f.allow_host_ipc ?? d.allowHostIpc,
    allowHostPid: f.allow_host_pid ?? d.allowHostPid,
    fileUriPrefixes: f.file_uri_prefixes ?? d.fileUriPrefixes,
    fetch: {
      allowLoopback: f.fetch?.allow_loopback ?? d.fetch.allowLoopback,
      denyPrivateNetworks: f.fetch?.deny_private_networks ?? d.fetch.denyPrivateNetworks,
    },
    allowedRegistries: f.allowed_registries ?? undefined,
    allowHostNetwork: f.allow_host_network ?? d.allowHostNetwork,
    requireNonRootUser: f.require_non_root_user ?? d.requireNonRootUser,
    allowUnconfinedSeccomp: f.allow_unconfined_seccomp ?? d.allowUnconfinedSeccomp,
    allowUnconfinedApparmor: f.allow_unconfined_apparmor ?? d.allowUnconfinedApparmor,
    allowSelinuxLabelOptions: f.allow_selinux_label_options ?? d.allowSelinuxLabelOptions,
    allowedDevices: [...new Set(f.allowed_devices ?? d.allowedDevices)],
    allowOomKillDisable: f.allow_oom_kill_disable ?? d.allowOomKillDisable,
    allowNegativeOomScoreAdj: f.allow_negative_oom_score_adj ?? d.allowNegativeOomScoreAdj,
    allowedLogDrivers: [...new Set(f.allowed_log_drivers ?? d.allowedLogDrivers)],
  };
}

function keyPath(parts: ReadonlyArray<PropertyKey>): string {
  return parts.reduce<string>((acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc === "" ? String(p) : `${acc}.${String(p)}`), "");
}

function valueAt(raw: unknown, parts: ReadonlyArray<PropertyKey>): unknown {
  let v: unknown = raw;
  for (const p of parts) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}
