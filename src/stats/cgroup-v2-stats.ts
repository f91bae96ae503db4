import { join } from "node:path";
import { type CgroupFileSource, parseInteger, parseKeyed, toUint32, toUint64, v2Limit } from "./cgroup-files.js";
import { sharesFromWeight } from "./cpu-weight.js";
import type { StatsFields } from "./stats-fields.js";

const US_PER_SEC = 1e6;
const SHARES_PER_CPU = 1024;

const FILES = [
  "cpu.stat",
  "cpu.max",
  "cpu.weight",
  "memory.current",
  "memory.max",
  "memory.high",
  "memory.swap.current",
  "memory.stat",
] as const;

// The memory.stat keys reported (see the mapping below).
const MEMORY_STAT_KEYS: ReadonlySet<string> = new Set(["anon", "file", "file_mapped", "unevictable"]);

const seconds = (usec: bigint | undefined): number | undefined => (usec === undefined ? undefined : Number(usec) / US_PER_SEC);

/** Reads a cgroup v2 container's statistics from its unified dir; returns undefined when none of the files exist (the cgroup is gone). */
export async function readV2Stats(dir: string, source: CgroupFileSource): Promise<StatsFields | undefined> {
  const texts = FILES.map((name) => source.read(join(dir, name)));
  // The membership lists are counted, not kept: tens of thousands of threads make them long
  // enough to be read off the event loop.
  const [procs, threads] = await Promise.all([source.count(join(dir, "cgroup.procs")), source.count(join(dir, "cgroup.threads"))]);
  if (texts.every((text) => text === undefined) && procs === undefined && threads === undefined) return undefined;
  const [cpuStatText, cpuMax, cpuWeight, current, max, high, swapCurrent, memStatText] = texts;
  // pids.current counts the same tasks as cgroup.threads (plus those of child cgroups); it is read
  // only when cgroup.threads is missing (kernels before 4.14), to keep the common path one file shorter.
  const pidsCurrent = threads === undefined ? source.read(join(dir, "pids.current")) : undefined;

  // cpu.stat always has usage/user/system_usec; the nr_* and throttled_usec keys appear only when
  // the cpu controller is enabled for the cgroup.
  const cpuStat = parseKeyed(cpuStatText);
  const memStat = parseKeyed(memStatText, MEMORY_STAT_KEYS);
  return {
    processes: toUint32(procs),
    threads: toUint32(threads ?? parseInteger(pidsCurrent)),
    cpusUserTimeSecs: seconds(cpuStat.get("user_usec")),
    cpusSystemTimeSecs: seconds(cpuStat.get("system_usec")),
    cpusLimit: cpusLimit(cpuMax, parseInteger(cpuWeight)),
    cpusNrPeriods: toUint32(cpuStat.get("nr_periods")),
    cpusNrThrottled: toUint32(cpuStat.get("nr_throttled")),
    cpusThrottledTimeSecs: seconds(cpuStat.get("throttled_usec")),
    memTotalBytes: toUint64(parseInteger(current)),
    // v2 has no memory+swap counter (memory.swap.current is swap alone), so memsw stays unset.
    memLimitBytes: v2Limit(max),
    // memory.high is v2's throttling threshold, the nearest thing to v1's soft limit.
    memSoftLimitBytes: v2Limit(high),
    memRssBytes: toUint64(memStat.get("anon")),
    memCacheBytes: toUint64(memStat.get("file")),
    memAnonBytes: toUint64(memStat.get("anon")),
    memFileBytes: toUint64(memStat.get("file")),
    memMappedFileBytes: toUint64(memStat.get("file_mapped")),
    // memory.swap.current is absent when the kernel does not account swap.
    memSwapBytes: toUint64(parseInteger(swapCurrent)),
    memUnevictableBytes: toUint64(memStat.get("unevictable")),
  };
}

/**
 * The CPU limit: the CFS hard cap from cpu.max ("<quota> <period>") when a quota is set, else the
 * weight converted back to v1 shares (see cpu-weight.ts) / 1024, the shares-derived figure Mesos
 * reports. "max" as the quota means no cap. Both files are absent when the cpu controller is not
 * enabled for the cgroup, and then the limit stays unset.
 */
function cpusLimit(cpuMax: string | undefined, weight: bigint | undefined): number | undefined {
  if (cpuMax !== undefined) {
    const [quota, period] = cpuMax.trim().split(/\s+/);
    if (quota !== "max" && /^\d+$/.test(quota ?? "") && /^\d+$/.test(period ?? "") && Number(period) > 0) {
      return Number(quota) / Number(period);
    }
  }
  if (weight !== undefined && weight > 0n) return sharesFromWeight(Number(weight)) / SHARES_PER_CPU;
  return undefined;
}
