import { join } from "node:path";
import { type CgroupFileSource, parseInteger, parseKeyed, toUint32, toUint64, v1Limit } from "./cgroup-files.js";
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

// The memory.stat keys reported (see the mapping below).
const MEMORY_STAT_KEYS: ReadonlySet<string> = new Set(["total_rss", "total_cache", "total_mapped_file", "total_swap", "total_unevictable"]);

/** Returns the file in `controller`'s dir, or undefined when the controller is not mounted for this cgroup. */
function fileIn(dirs: Record<string, string>, controller: string, name: string): string | undefined {
  const dir = dirs[controller];
  return dir === undefined ? undefined : join(dir, name);
}

/** Reads a cgroup v1 container's statistics from its controller dirs; returns undefined when none of the files exist (the cgroup is gone). */
export async function readV1Stats(dirs: Record<string, string>, source: CgroupFileSource): Promise<StatsFields | undefined> {
  const readIf = (path: string | undefined): string | undefined => (path === undefined ? undefined : source.read(path));
  const membership = MEMBERSHIP_CONTROLLERS.find((controller) => dirs[controller] !== undefined);
  const files = [
    fileIn(dirs, "cpuacct", "cpuacct.stat"),
    fileIn(dirs, "cpu", "cpu.cfs_quota_us"),
    fileIn(dirs, "cpu", "cpu.cfs_period_us"),
    fileIn(dirs, "cpu", "cpu.shares"),
    fileIn(dirs, "cpu", "cpu.stat"),
    fileIn(dirs, "memory", "memory.usage_in_bytes"),
    fileIn(dirs, "memory", "memory.memsw.usage_in_bytes"),
    fileIn(dirs, "memory", "memory.limit_in_bytes"),
    fileIn(dirs, "memory", "memory.soft_limit_in_bytes"),
    fileIn(dirs, "memory", "memory.stat"),
  ];
  const texts = files.map(readIf);
  // The membership lists are counted, not kept: tens of thousands of threads make `tasks` long
  // enough to be read off the event loop.
  const countIf = (name: string) => (membership === undefined ? Promise.resolve(undefined) : source.count(fileIn(dirs, membership, name)!));
  const [tasks, procs] = await Promise.all([countIf("tasks"), countIf("cgroup.procs")]);
  if (texts.every((text) => text === undefined) && tasks === undefined && procs === undefined) return undefined;
  const [cpuacctStat, quotaText, periodText, sharesText, cpuStatText, usage, memswUsage, limit, softLimit, memStatText] = texts;
  // tasks lists every thread; pids.current counts the same tasks (plus those of child cgroups) and
  // is read only when tasks is missing, to keep the common path one file shorter.
  const pidsCurrent = tasks === undefined ? readIf(fileIn(dirs, "pids", "pids.current")) : undefined;

  const cpuacct = parseKeyed(cpuacctStat);
  const cpuStat = parseKeyed(cpuStatText);
  const memStat = parseKeyed(memStatText, MEMORY_STAT_KEYS);
  const user = cpuacct.get("user");
  const system = cpuacct.get("system");
  const throttledNs = cpuStat.get("throttled_time");

  return {
    processes: toUint32(procs),
    threads: toUint32(tasks ?? parseInteger(pidsCurrent)),
    cpusUserTimeSecs: user === undefined ? undefined : Number(user) / USER_HZ,
    cpusSystemTimeSecs: system === undefined ? undefined : Number(system) / USER_HZ,
    cpusLimit: cpusLimit(parseInteger(quotaText), parseInteger(periodText), parseInteger(sharesText)),
    cpusNrPeriods: toUint32(cpuStat.get("nr_periods")),
    cpusNrThrottled: toUint32(cpuStat.get("nr_throttled")),
    cpusThrottledTimeSecs: throttledNs === undefined ? undefined : Number(throttledNs) / NS_PER_SEC,
    memTotalBytes: toUint64(parseInteger(usage)),
    memTotalMemswBytes: toUint64(parseInteger(memswUsage)),
    memLimitBytes: v1Limit(parseInteger(limit)),
    memSoftLimitBytes: v1Limit(parseInteger(softLimit)),
    // total_* keys include child cgroups (hierarchical); Mesos' memory isolator reads the same keys
    // and reports mem_anon_bytes = total_rss and mem_file_bytes = total_cache.
    memRssBytes: toUint64(memStat.get("total_rss")),
    memCacheBytes: toUint64(memStat.get("total_cache")),
    memAnonBytes: toUint64(memStat.get("total_rss")),
    memFileBytes: toUint64(memStat.get("total_cache")),
    memMappedFileBytes: toUint64(memStat.get("total_mapped_file")),
    // total_swap is present only when the kernel accounts swap (swapaccount=1).
    memSwapBytes: toUint64(memStat.get("total_swap")),
    memUnevictableBytes: toUint64(memStat.get("total_unevictable")),
  };
}

/**
 * The CPU limit: the CFS hard cap (quota / period) when a quota is set, else the shares-derived
 * weight (shares / 1024) that Mesos' cpushare isolator reports. Berth sets both from the same
 * `cpus`, so they agree for its containers; the quota is preferred because it is what the kernel
 * enforces. A quota of -1 means no cap.
 */
function cpusLimit(quotaUs: bigint | undefined, periodUs: bigint | undefined, shares: bigint | undefined): number | undefined {
  if (quotaUs !== undefined && quotaUs > 0n && periodUs !== undefined && periodUs > 0n) {
    return Number(quotaUs) / Number(periodUs);
  }
  if (shares !== undefined && shares > 0n) return Number(shares) / SHARES_PER_CPU;
  return undefined;
}
