/** One cgroup filesystem mount, as listed in a mountinfo file (proc(5)). */
export interface CgroupMount {
  /** 1 for a cgroup (v1) hierarchy, 2 for cgroup2 (the unified hierarchy). */
  version: 1 | 2;
  /** The cgroup path inside the hierarchy that is mounted at `mountPoint` ("/" unless a sub-tree is bind-mounted or namespaced). */
  root: string;
  /** Where the mount is visible, absolute. */
  mountPoint: string;
  /** v1: controllers and named hierarchies from the super options (e.g. ["cpu", "cpuacct"], ["name=systemd"]); v2: empty. */
  controllers: string[];
}

// Super options that are mount flags rather than controller names on a v1 hierarchy.
const V1_NON_CONTROLLER_OPTIONS = new Set(["rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods"]);

/** Undoes the octal escapes the kernel writes for space, tab, newline and backslash in mountinfo paths. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_match, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Parses the cgroup and cgroup2 mounts out of a mountinfo file's text; other mounts and malformed lines are skipped. */
export function parseCgroupMounts(text: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of text.split("\n")) {
    // Format: id parent major:minor root mount-point mount-options [optional fields...] - fstype source super-options
    const fields = line.split(" ");
    const separator = fields.indexOf("-", 6);
    if (separator < 0 || fields.length < separator + 4) continue;
    const fsType = fields[separator + 1];
    if (fsType !== "cgroup" && fsType !== "cgroup2") continue;
    const root = unescapeMountPath(fields[3]);
    const mountPoint = unescapeMountPath(fields[4]);
    if (fsType === "cgroup2") {
      mounts.push({ version: 2, root, mountPoint, controllers: [] });
      continue;
    }
    const controllers = fields[separator + 3]
      .split(",")
      .filter((option) => option !== "" && !V1_NON_CONTROLLER_OPTIONS.has(option) && !option.startsWith("release_agent="));
    mounts.push({ version: 1, root, mountPoint, controllers });
  }
  return mounts;
}
