import { join } from "node:path";
import { type CgroupFileSource, asBigInt, asNumber, integerText, keyedInteger, toUint32, toUint64, v1Limit } from "./cgroup-files.js";
import type { StatsFields } from "./stats-fields.js";

// cpuacct.stat counts in USER_HZ ticks, which the kernel fixes at 100 for every architecture's
// userspace ABI (sysconf(_SC_CLK_TCK)), whatever CONFIG_HZ is.
const USER_HZ = 100;
// cpu.shares of 1024 is one CPU's worth of weight (the kernel default and Mesos' CPU_SHARES_PER_CPU).
const SHARES_PER_CPU = 1024;
const NS_PER_SEC = 1e9;

// Where cgroup.procs and tasks are read from: any hierarchy lists the same processes; the first
// present one is used so the files are read once, not once per controller.
const MEMBERSHIP_CONTROLLERS = ["pids", "cpu", "cpuacct", "memory"];

/**
 * The files one v1 sample reads, joined once per container (v1Files) rather than on every
 * Usage() call; a file is undefined when its controller is not mounted for the cgroup.
 */
export interface V1Files {
  cpuacctStat?: string;
  cfsQuota?: string;
  cfsPeriod?: string;
  shares?: string;
  cpuStat?: string;
  memUsage?: string;
  memswUsage?: string;
  memLimit?: string;
  memSoftLimit?: string;
  memStat?: string;
  tasks?: string;
  procs?: string;
  pidsCurrent?: string;
}

/** Returns the file in `controller`'s dir, or undefined when the controller is not mounted for this cgroup. */
function fileIn(dirs: Record<string, string>, controller: string, name: string): string | undefined {
  const dir = dirs[controller];
  return dir === undefined ? undefined : join(dir, name);
}

/** The files of a v1 cgroup's sample, from its controller dirs. */
export function v1Files(dirs: Record<string, string>): V1Files {
  const membership = MEMBERSHIP_CONTROLLERS.find((controller) => dirs[controller] !== undefined);
  return {
    cpuacctStat: fileIn(dirs, "cpuacct", "cpuacct.stat"),
    cfsQuota: fileIn(dirs, "cpu", "cpu.cfs_quota_us"),
    cfsPeriod: fileIn(dirs, "cpu", "cpu.cfs_period_us"),
    shares: fileIn(dirs, "cpu", "cpu.shares"),
    cpuStat: fileIn(dirs, "cpu", "cpu.stat"),
    memUsage: fileIn(dirs, "memory", "memory.usage_in_bytes"),
    memswUsage: fileIn(dirs, "memory", "memory.memsw.usage_in_bytes"),
    memLimit: fileIn(dirs, "memory", "memory.limit_in_bytes"),
    memSoftLimit: fileIn(dirs, "memory", "memory.soft_limit_in_bytes"),
    memStat: fileIn(dirs, "memory", "memory.stat"),
    tasks: membership === undefined ? undefined : fileIn(dirs, membership, "tasks"),
    procs: membership === undefined ? undefined : fileIn(dirs, membership, "cgroup.procs"),
    pidsCurrent: fileIn(dirs, "pids", "pids.current"),
  };
}

/**
 * The texts of one sample's files, keyed as the files are (undefined: absent); the membership lists
 * are counted, not kept, and pids.current is read only when `tasks` is missing.
 */
type V1Texts = { [K in Exclude<keyof V1Files, "tasks" | "procs" | "pidsCurrent">]?: string };

/**
 * Reads a cgroup v1 container's statistics from its files; undefined when none of the files exist
 * (the cgroup is gone). The answer is synchronous unless a membership list is long enough to be
 * counted off the event loop (thousands of threads), and then it is a promise.
 */
export function readV1Stats(files: V1Files, source: CgroupFileSource): StatsFields | undefined | Promise<StatsFields | undefined> {
  const read = (path: string | undefined): string | undefined => (path === undefined ? undefined : source.read(path));
  const texts: V1Texts = {
    cpuacctStat: read(files.cpuacctStat),
    cfsQuota: read(files.cfsQuota),
    cfsPeriod: read(files.cfsPeriod),
    shares: read(files.shares),
    cpuStat: read(files.cpuStat),
    memUsage: read(files.memUsage),
    memswUsage: read(files.memswUsage),
    memLimit: read(files.memLimit),
    memSoftLimit: read(files.memSoftLimit),
    memStat: read(files.memStat),
  };
  // The membership lists are counted, not kept: tens of thousands of threads make `tasks` long
  // enough to be read off the event loop.
  const tasks = files.tasks === undefined ? undefined : source.count(files.tasks);
  const procs = files.procs === undefined ? undefined : source.count(files.procs);
  if (tasks instanceof Promise || procs instanceof Promise) {
    return Promise.all([tasks, procs]).then(([t, p]) => v1Fields(texts, t, p, () => read(files.pidsCurrent)));
  }
  return v1Fields(texts, tasks, procs, () => read(files.pidsCurrent));
}

function v1Fields(texts: V1Texts, tasks: number | undefined, procs: number | undefined, pidsCurrent: () => string | undefined): StatsFields | undefined {
  if (tasks === undefined && procs === undefined && Object.values(texts).every((text) => text === undefined)) return undefined;
  const { cpuacctStat, cpuStat, memStat } = texts;
  const user = asNumber(keyedInteger(cpuacctStat, "user"));
  const system = asNumber(keyedInteger(cpuacctStat, "system"));
  const throttledNs = asNumber(keyedInteger(cpuStat, "throttled_time"));
  const rss = toUint64(asBigInt(keyedInteger(memStat, "total_rss")));
  const cache = toUint64(asBigInt(keyedInteger(memStat, "total_cache")));

  return {
    processes: toUint32(procs),
    // tasks lists every thread; pids.current counts the same tasks (plus those of child cgroups)
    // and is read only when tasks is missing, to keep the common path one file shorter.
    threads: toUint32(tasks ?? asNumber(integerText(pidsCurrent()))),
    cpusUserTimeSecs: user === undefined ? undefined : user / USER_HZ,
    cpusSystemTimeSecs: system === undefined ? undefined : system / USER_HZ,
    cpusLimit: cpusLimit(asNumber(integerText(texts.cfsQuota)), asNumber(integerText(texts.cfsPeriod)), asNumber(integerText(texts.shares))),
    cpusNrPeriods: toUint32(asNumber(keyedInteger(cpuStat, "nr_periods"))),
    cpusNrThrottled: toUint32(asNumber(keyedInteger(cpuStat, "nr_throttled"))),
    cpusThrottledTimeSecs: throttledNs === undefined ? undefined : throttledNs / NS_PER_SEC,
    memTotalBytes: toUint64(asBigInt(integerText(texts.memUsage))),
    memTotalMemswBytes: toUint64(asBigInt(integerText(texts.memswUsage))),
    memLimitBytes: v1Limit(asBigInt(integerText(texts.memLimit))),
    memSoftLimitBytes: v1Limit(asBigInt(integerText(texts.memSoftLimit))),
    // total_* keys include child cgroups (hierarchical); Mesos' memory isolator reads the same keys
    // and reports mem_anon_bytes = total_rss and mem_file_bytes = total_cache.
    memRssBytes: rss,
    memCacheBytes: cache,
    memAnonBytes: rss,
    memFileBytes: cache,
    memMappedFileBytes: toUint64(asBigInt(keyedInteger(memStat, "total_mapped_file"))),
    // total_swap is present only when the kernel accounts swap (swapaccount=1).
    memSwapBytes: toUint64(asBigInt(keyedInteger(memStat, "total_swap"))),
    memUnevictableBytes: toUint64(asBigInt(keyedInteger(memStat, "total_unevictable"))),
  };
}

/**
 * The CPU limit: the CFS hard cap (quota / period) when a quota is set, else the shares-derived
 * weight (shares / 1024) that Mesos' cpushare isolator reports. Berth sets both from the same
 * `cpus`, so they agree for its containers; the quota is preferred because it is what the kernel
 * enforces. A quota of -1 means no cap.
 */
function cpusLimit(quotaUs: number | undefined, periodUs: number | undefined, shares: number | undefined): number | undefined {
  if (quotaUs !== undefined && quotaUs > 0 && periodUs !== undefined && periodUs > 0) return quotaUs / periodUs;
  if (shares !== undefined && shares > 0) return shares / SHARES_PER_CPU;
  return undefined;
}
