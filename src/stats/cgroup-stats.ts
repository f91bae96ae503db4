import { create } from "@bufbuild/protobuf";
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import { type ResourceStatistics, ResourceStatisticsSchema } from "../gen/mesos/v1/mesos_pb.js";
import { KeptCgroupFiles } from "./cgroup-files.js";
import { type V1Files, readV1Stats, v1Files } from "./cgroup-v1-stats.js";
import { type V2Files, readV2Stats, v2Files } from "./cgroup-v2-stats.js";
import { type CgroupMount, parseCgroupMounts } from "./mountinfo.js";
import { type ProcCgroupEntry, parseProcCgroup } from "./proc-cgroup.js";

/** Where a container's cgroups live, resolved once per container and cached by the caller. */
export interface CgroupPaths {
  version: 1 | 2;
  /** v1: controller name → absolute dir (co-mounted controllers share a dir); v2: { [V2_DIR_KEY]: the unified dir }. */
  dirs: Record<string, string>;
}

/** The key of the single dir in a v2 CgroupPaths. */
export const V2_DIR_KEY = "unified";

/** The process (or its cgroup) cannot be found; the message names the pid or the dir. */
export class CgroupNotFound extends Error {
  override readonly name = "CgroupNotFound";
}

/** Options of a CgroupStatsReader; the defaults are the host's. */
export interface CgroupStatsReaderOptions {
  /** Default /proc. */
  procRoot?: string;
  /**
   * Default /sys/fs/cgroup. Mount points under /sys/fs/cgroup named in the mountinfo file are
   * looked up under this dir instead (recorded trees in tests; a host's cgroupfs bind-mounted elsewhere).
   */
  cgroupRoot?: string;
  /** Default <procRoot>/self/mountinfo. */
  mountsFile?: string;
  /** How many cgroup file descriptors to keep open between reads (default: a quarter of the open-file limit, at most 4096; 0 keeps none). */
  keptFds?: number;
}

const HOST_CGROUP_ROOT = "/sys/fs/cgroup";

// The v1 controllers read() uses; other hierarchies (blkio, devices, name=systemd…) are not resolved.
const V1_STAT_CONTROLLERS = ["cpu", "cpuacct", "memory", "pids"];
// At least one of these must resolve for a v1 answer; a hybrid host also lists an empty unified
// hierarchy (this machine: cgroup2 at /sys/fs/cgroup/unified with no controllers), which must not win.
const V1_REQUIRED_ANY = ["cpu", "cpuacct", "memory"];

/**
 * Resolves the cgroup dirs of a process from /proc/<pid>/cgroup and the mount table (read ONCE per
 * reader and cached, never per call — re-reading /proc/mounts per call was a Mesos scaling bug).
 * Throws CgroupNotFound naming the pid.
 */
export class CgroupStatsReader {
  private readonly procRoot: string;
  private readonly cgroupRoot: string;
  private readonly mountsFile: string;
  private mounts?: Promise<CgroupMount[]>;
  private readonly files: KeptCgroupFiles;
  // The file paths of each resolved CgroupPaths, joined on its first read instead of on every one.
  private readonly plans = new WeakMap<CgroupPaths, { v1?: V1Files; v2?: V2Files }>();

  constructor(options: CgroupStatsReaderOptions = {}) {
    this.files = new KeptCgroupFiles(options.keptFds);
    this.procRoot = options.procRoot ?? "/proc";
    this.cgroupRoot = options.cgroupRoot ?? HOST_CGROUP_ROOT;
    this.mountsFile = options.mountsFile ?? join(this.procRoot, "self", "mountinfo");
  }

  /** Finds the cgroup dirs of `pid` (v1 when any v1 stats controller is mounted for it, else v2). */
  async resolve(pid: number): Promise<CgroupPaths> {
    if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`pid ${pid} is not a positive integer`);
    const cgroupFile = join(this.procRoot, String(pid), "cgroup");
    const [mounts, text] = await Promise.all([this.cgroupMounts(), readProcFile(cgroupFile, pid)]);
    const entries = parseProcCgroup(text);

    const v1 = this.resolveV1(entries, mounts, pid);
    const paths: CgroupPaths | undefined =
      V1_REQUIRED_ANY.some((controller) => v1[controller] !== undefined)
        ? { version: 1, dirs: v1 }
        : this.resolveV2(entries, mounts, pid);
    if (paths === undefined) {
      throw new CgroupNotFound(
        `pid ${pid}: '${cgroupFile}' names no cgroup v1 cpu/cpuacct/memory hierarchy and no cgroup2 path mounted per '${this.mountsFile}'`,
      );
    }
    await Promise.all(
      [...new Set(Object.values(paths.dirs))].map((dir) =>
        access(dir).catch(() => {
          throw new CgroupNotFound(`pid ${pid}: cgroup dir '${dir}' does not exist (did the process exit?)`);
        }),
      ),
    );
    return paths;
  }

  /**
   * Reads the statistics (fresh each call, through descriptors kept from earlier reads); throws
   * CgroupNotFound when the cgroup has gone. release(paths) must follow when the container ends.
   */
  async read(paths: CgroupPaths): Promise<ResourceStatistics> {
    // Taken before the reads, as Mesos does: the sample describes the state at (or just after) this instant.
    const timestamp = Date.now() / 1000;
    let fields = paths.version === 1 ? readV1Stats(this.plan(paths).v1!, this.files) : readV2Stats(this.plan(paths).v2!, this.files);
    // Synchronous unless a membership list had to be counted off the loop: no await otherwise.
    if (fields instanceof Promise) fields = await fields;
    if (fields === undefined) {
      this.release(paths);
      throw new CgroupNotFound(`cgroup v${paths.version} dirs ${JSON.stringify(paths.dirs)} no longer hold any statistics file (did the container exit?)`);
    }
    fields.timestamp = timestamp;
    return create(ResourceStatisticsSchema, fields);
  }

  /** The files a read of `paths` reads, joined once per CgroupPaths object. */
  private plan(paths: CgroupPaths): { v1?: V1Files; v2?: V2Files } {
    let plan = this.plans.get(paths);
    if (plan === undefined) {
      plan = paths.version === 1 ? { v1: v1Files(paths.dirs) } : { v2: v2Files(v2Dir(paths)) };
      this.plans.set(paths, plan);
    }
    return plan;
  }

  /** Closes the descriptors kept for a cgroup (its container ended; an open file pins a removed cgroup). */
  release(paths: CgroupPaths): void {
    this.files.release(Object.values(paths.dirs));
  }

  /** How many cgroup file descriptors are kept open. */
  get keptFds(): number {
    return this.files.size;
  }

  /** Closes every kept descriptor. */
  close(): void {
    this.files.close();
  }

  private cgroupMounts(): Promise<CgroupMount[]> {
    this.mounts ??= readFile(this.mountsFile, "utf8").then(parseCgroupMounts, (err: unknown) => {
      // Not cached: a transient failure must not poison every later resolve.
      this.mounts = undefined;
      throw new Error(`reading mount table '${this.mountsFile}' failed: ${(err as Error).message}`, { cause: err });
    });
    return this.mounts;
  }

  private resolveV1(entries: ProcCgroupEntry[], mounts: CgroupMount[], pid: number): Record<string, string> {
    const dirs: Record<string, string> = {};
    for (const entry of entries) {
      if (entry.hierarchyId === 0 || entry.controllers.length === 0) continue;
      const wanted = entry.controllers.filter((controller) => V1_STAT_CONTROLLERS.includes(controller));
      if (wanted.length === 0) continue;
      const candidates = mounts.filter((m) => m.version === 1 && entry.controllers.every((c) => m.controllers.includes(c)));
      const dir = this.dirFor(entry.path, candidates, pid);
      if (dir !== undefined) for (const controller of wanted) dirs[controller] = dir;
    }
    return dirs;
  }

  private resolveV2(entries: ProcCgroupEntry[], mounts: CgroupMount[], pid: number): CgroupPaths | undefined {
    const entry = entries.find((e) => e.hierarchyId === 0 && e.controllers.length === 0);
    if (entry === undefined) return undefined;
    const dir = this.dirFor(entry.path, mounts.filter((m) => m.version === 2), pid);
    return dir === undefined ? undefined : { version: 2, dirs: { [V2_DIR_KEY]: dir } };
  }

  /**
   * Maps a cgroup path onto a mount of its hierarchy: the mount whose root is the longest prefix of
   * the path (a container that bind-mounts only its own sub-tree has root /docker/<id>).
   */
  private dirFor(cgroupPath: string, candidates: CgroupMount[], pid: number): string | undefined {
    // /proc/<pid>/cgroup shows paths relative to the *reader's* cgroup namespace root; a target
    // outside that namespace shows up as "/../…", which no mount of ours can reach.
    if (cgroupPath.split("/").includes("..")) {
      throw new CgroupNotFound(
        `pid ${pid}: cgroup path '${cgroupPath}' lies outside this process's cgroup namespace; run Berth in the host cgroup namespace`,
      );
    }
    let best: { mount: CgroupMount; rest: string } | undefined;
    for (const mount of candidates) {
      const rest = pathBelow(cgroupPath, mount.root);
      if (rest !== undefined && (best === undefined || mount.root.length > best.mount.root.length)) best = { mount, rest };
    }
    return best === undefined ? undefined : join(this.hostPath(best.mount.mountPoint), best.rest);
  }

  /** Rebases a mount point under /sys/fs/cgroup onto cgroupRoot (identity with the defaults). */
  private hostPath(mountPoint: string): string {
    if (this.cgroupRoot === HOST_CGROUP_ROOT) return mountPoint;
    if (mountPoint === HOST_CGROUP_ROOT) return this.cgroupRoot;
    if (mountPoint.startsWith(`${HOST_CGROUP_ROOT}/`)) return join(this.cgroupRoot, mountPoint.slice(HOST_CGROUP_ROOT.length));
    return mountPoint;
  }
}

/** The part of `path` below `root` ("" when equal), or undefined when `path` is not inside `root`. */
function pathBelow(path: string, root: string): string | undefined {
  if (root === "/") return path;
  if (path === root) return "";
  return path.startsWith(`${root}/`) ? path.slice(root.length) : undefined;
}

function v2Dir(paths: CgroupPaths): string {
  const dir = paths.dirs[V2_DIR_KEY];
  if (dir === undefined) throw new RangeError(`paths.dirs ${JSON.stringify(paths.dirs)} has no '${V2_DIR_KEY}' entry for cgroup v2`);
  return dir;
}

async function readProcFile(path: string, pid: number): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ESRCH") throw new CgroupNotFound(`pid ${pid}: '${path}' does not exist (no such process)`);
    throw new Error(`pid ${pid}: reading '${path}' failed: ${(err as Error).message}`, { cause: err });
  }
}
