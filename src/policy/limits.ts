import { ResourceExhausted } from "../containerizer/errors.js";
import type { LaunchSpec } from "../containerizer/launch-spec.js";

/** Per-launch and per-agent counts past which a launch is refused (flags of `berth serve`). */
export interface LaunchLimits {
  /** --max_containers: live (not TERMINATED) containers. */
  maxContainers: number;
  /** --max_environment_entries: the command's environment plus the request's. */
  maxEnvironmentEntries: number;
  /** --max_uris */
  maxUris: number;
  /** --max_volumes */
  maxVolumes: number;
}

/** The flags' defaults. */
export const DEFAULT_LAUNCH_LIMITS: LaunchLimits = { maxContainers: 1000, maxEnvironmentEntries: 1024, maxUris: 64, maxVolumes: 64 };

/** Refuses a launch whose own sizes pass a limit; throws ResourceExhausted naming the flag. */
export function checkLaunchLimits(spec: LaunchSpec, limits: LaunchLimits): void {
  const env = spec.environment.length;
  if (env > limits.maxEnvironmentEntries) {
    throw new ResourceExhausted("--max_environment_entries", `the launch has ${env} environment entries (command_info.environment plus the request's environment); at most ${limits.maxEnvironmentEntries} are allowed`);
  }
  if (spec.uris.length > limits.maxUris) {
    throw new ResourceExhausted("--max_uris", `command_info.uris has ${spec.uris.length} entries; at most ${limits.maxUris} are allowed`);
  }
  const volumes = spec.containerInfo.volumes.length;
  if (volumes > limits.maxVolumes) {
    throw new ResourceExhausted("--max_volumes", `container_info.volumes has ${volumes} entries; at most ${limits.maxVolumes} are allowed`);
  }
}

/** Refuses a launch when `live` containers already run; throws ResourceExhausted naming the flag. */
export function checkLiveContainers(live: number, limits: LaunchLimits): void {
  if (live >= limits.maxContainers) {
    throw new ResourceExhausted("--max_containers", `${live} containers are live (not terminated); at most ${limits.maxContainers} are allowed`);
  }
}
