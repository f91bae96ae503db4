/** One line of /proc/<pid>/cgroup: a hierarchy and the process's cgroup path in it. */
export interface ProcCgroupEntry {
  /** Hierarchy id; 0 is the cgroup2 unified hierarchy. */
  hierarchyId: number;
  /** v1 controllers bound to the hierarchy (e.g. ["cpu", "cpuacct"], ["name=systemd"]); empty for the v2 line. */
  controllers: string[];
  /** The cgroup path, relative to the reading process's cgroup-namespace root (the host root when Berth runs on the host). */
  path: string;
}

/** Parses /proc/<pid>/cgroup text ("hierarchy-id:controller-list:path" per line, see cgroups(7)). */
export function parseProcCgroup(text: string): ProcCgroupEntry[] {
  const entries: ProcCgroupEntry[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    // The path may itself contain ':', so split on the first two only.
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const hierarchyId = Number(line.slice(0, first));
    if (!Number.isInteger(hierarchyId)) continue;
    const list = line.slice(first + 1, second);
    entries.push({ hierarchyId, controllers: list === "" ? [] : list.split(","), path: line.slice(second + 1) });
  }
  return entries;
}
