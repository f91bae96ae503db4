import { ContainerInfo_DockerInfo_Network, LinuxInfo_IpcMode } from "../gen/mesos/v1/mesos_pb.js";
import { PermissionDenied } from "../containerizer/errors.js";
import {
  DEFAULT_ENGINE_LOG_FILES,
  DEFAULT_ENGINE_LOG_MAX_SIZE,
  engineLogBytes,
  engineLogConfig,
  parameterField,
  type ParsedParameter,
} from "../containerizer/docker-parameters.js";
import type { LaunchSpec } from "../containerizer/launch-spec.js";
import { seccompChoice } from "../containerizer/seccomp.js";
import { DOCKER_DEFAULT_CAPABILITIES, type Policy } from "./policy.js";

/**
 * The sysctls a container may set: the namespaced ones the engine accepts (IPC: kernel.shm*,
 * kernel.msg*, kernel.sem, fs.mqueue.*; network: net.*). Others would change the host for all.
 * Returns why `name` is refused, or undefined.
 */
export function sysctlRefusal(name: string, hostNetwork: boolean, hostIpc: boolean): string | undefined {
  const ipc = /^kernel\.(shm|msg)[a-z_]*$/.test(name) || name === "kernel.sem" || name.startsWith("fs.mqueue.");
  if (ipc) return hostIpc ? "an IPC sysctl with the host's IPC namespace (linux_info.ipc_mode SHARE_PARENT) would change the host's" : undefined;
  if (name.startsWith("net.")) return hostNetwork ? "a net.* sysctl with network HOST would change the host's network settings" : undefined;
  return "only namespaced sysctls (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, and net.* with a network other than HOST) may be set";
}

/**
 * The policy's decision on a launch's Docker parameters, linux_info.seccomp and
 * docker.volume_driver (called by admit()). `engineLogMaxSize` is --container_log_max_size: the
 * engine's own copy of the output may not grow past two files of it, whatever the log options say.
 * Throws PermissionDenied naming the rule, the parameter and its value.
 */
export function admitDockerParameters(spec: LaunchSpec, parsed: readonly ParsedParameter[], policy: Policy, engineLogMaxSize = DEFAULT_ENGINE_LOG_MAX_SIZE): void {
  const info = spec.containerInfo;
  const hostNetwork = (info.docker?.network ?? ContainerInfo_DockerInfo_Network.HOST) === ContainerInfo_DockerInfo_Network.HOST;
  const hostIpc = info.linuxInfo?.ipcMode === LinuxInfo_IpcMode.SHARE_PARENT;
  const capabilities = new Set([...DOCKER_DEFAULT_CAPABILITIES, ...policy.allowedCapabilities]);

  if (seccompChoice(info).kind === "unconfined" && !policy.allowUnconfinedSeccomp) {
    throw new PermissionDenied("allow_unconfined_seccomp", "container_info.linux_info.seccomp.unconfined", "true", "a container without a seccomp filter can make every system call");
  }
  const volumeDriver = info.docker?.volumeDriver ?? "";
  if (volumeDriver !== "" && !policy.dockerVolumes.allowedDrivers.includes(volumeDriver)) {
    throw new PermissionDenied("docker_volumes.allowed_drivers", "container_info.docker.volume_driver", volumeDriver, `allowed drivers: ${policy.dockerVolumes.allowedDrivers.join(", ") || "none"}`);
  }

  for (const p of parsed) {
    const field = parameterField(p.index);
    const deny = (rule: string, detail: string) => new PermissionDenied(rule, `${field} ${p.key}`, p.raw, detail);
    switch (p.key) {
      case "cap-add":
        if (p.value === "ALL") throw deny("allowed_capabilities", "ALL is every capability; name the ones the task needs (beyond Docker's defaults, the policy must list them)");
        if (!capabilities.has(p.value)) throw deny("allowed_capabilities", `${p.value} is not one of Docker's default capabilities${policy.allowedCapabilities.length > 0 ? ` nor of ${policy.allowedCapabilities.join(", ")}` : ""}; only those may be added unless the policy lists more`);
        break;
      case "security-opt": {
        const o = p.value;
        if (o.kind === "seccomp" && !policy.allowUnconfinedSeccomp) throw deny("allow_unconfined_seccomp", "a container without a seccomp filter can make every system call");
        if (o.kind === "apparmor" && o.profile === "unconfined" && !policy.allowUnconfinedApparmor) throw deny("allow_unconfined_apparmor", "a container without its AppArmor profile loses the engine's confinement");
        if (o.kind === "label" && !policy.allowSelinuxLabelOptions) throw deny("allow_selinux_label_options", "label=disable turns SELinux confinement off and label=type:... can choose an unconfined type");
        break;
      }
      case "sysctl": {
        const why = sysctlRefusal(p.value[0], hostNetwork, hostIpc);
        if (why !== undefined) throw deny("namespaced_sysctls", why);
        break;
      }
      case "device":
        if (!policy.allowedDevices.includes(p.value.PathOnHost)) {
          throw deny("allowed_devices", policy.allowedDevices.length === 0 ? "host devices are not exposed unless the policy lists them" : `${p.value.PathOnHost} is not one of ${policy.allowedDevices.join(", ")}`);
        }
        break;
      case "oom-kill-disable":
        if (p.value && !policy.allowOomKillDisable) throw deny("allow_oom_kill_disable", "a container the OOM killer spares pushes the host's other processes out instead");
        break;
      case "oom-score-adj":
        if (p.value < 0 && !policy.allowNegativeOomScoreAdj) throw deny("allow_negative_oom_score_adj", "a negative score shields the container from the OOM killer at the cost of other tasks");
        break;
      case "log-driver":
        if (!policy.allowedLogDrivers.includes(p.value)) throw deny("allowed_log_drivers", `allowed drivers: ${policy.allowedLogDrivers.join(", ") || "none"}`);
        break;
      case "volume-driver":
        if (!policy.dockerVolumes.allowedDrivers.includes(p.value)) throw deny("docker_volumes.allowed_drivers", `allowed drivers: ${policy.dockerVolumes.allowedDrivers.join(", ") || "none"}`);
        break;
      default:
        break;
    }
  }

  // The engine's copy of the output stays bounded: log options may trade file size against file
  // count, but not keep more than the default (two files of --container_log_max_size).
  const config = engineLogConfig(parsed, engineLogMaxSize);
  const kept = engineLogBytes(config);
  const cap = engineLogMaxSize * DEFAULT_ENGINE_LOG_FILES;
  if (kept !== undefined && kept > cap) {
    // Only a max-size or max-file option can raise it past the default.
    const shown = parsed.filter((q) => q.key === "log-opt" && (q.value[0] === "max-size" || q.value[0] === "max-file"));
    const first = shown[0]!;
    throw new PermissionDenied(
      "container_log_max_size",
      `${parameterField(first.index)} log-opt`,
      shown.map((q) => q.raw).join(" "),
      `the engine's copy would keep ${kept} bytes (max-size × max-file); at most ${cap} (${DEFAULT_ENGINE_LOG_FILES} files of --container_log_max_size ${engineLogMaxSize})`,
    );
  }
}
