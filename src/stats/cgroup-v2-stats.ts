import { join } from "node:path";
import { type CgroupFileSource, asBigInt, asNumber, integerText, keyedInteger, toUint32, toUint64, v2Limit } from "./cgroup-files.js";
import { sharesFromWeight } from "./cpu-weight.js";
import type { StatsFields } from "./stats-fields.js";

const US_PER_SEC = 1e6;
const SHARES_PER_CPU = 1024;

/** The files one v2 sample reads, joined once per container (v2Files) rather than on every Usage() call. */
export interface V2Files {
  cpuStat: string;
  cpuMax: string;
  cpuWeight: string;
  memCurrent: string;
  memMax: string;
  memHigh: string;
  swapCurrent: string;
  memStat: string;
  procs: string;
  threads: string;
  pidsCurrent: string;
}

/** The files of a v2 cgroup's sample, from its unified dir. */
export function v2Files(dir: string): V2Files {
  return {
    cpuStat: join(dir, "cpu.stat"),
    cpuMax: join(dir, "cpu.max"),
    cpuWeight: join(dir, "cpu.weight"),
    memCurrent: join(dir, "memory.current"),
    memMax: join(dir, "memory.max"),
    memHigh: join(dir, "memory.high"),
    swapCurrent: join(dir, "memory.swap.current"),
    memStat: join(dir, "memory.stat"),
    procs: join(dir, "cgroup.procs"),
    threads: join(dir, "cgroup.threads"),
    pidsCurrent: join(dir, "pids.current"),
  };
}

/**
 * The texts of one sample's files, keyed as the files are (undefined: absent); the membership lists
 * are counted, not kept, and pids.current is read only when needed.
 */
type V2Texts = { [K in Exclude<keyof V2Files, "procs" | "threads" | "pidsCurrent">]?: string };

const seconds = (usec: number | undefined): number | undefined => (usec === undefined ? undefined : usec / US_PER_SEC);

/**
 * Reads a cgroup v2 container's statistics from its files; undefined when none of the files exist
 * (the cgroup is gone). The answer is synchronous unless a membership list is long enough to be
 * counted off the event loop (thousands of threads), and then it is a promise.
 */
export function readV2Stats(files: V2Files, source: CgroupFileSource): StatsFields | undefined | Promise<StatsFields | undefined> {
  const texts: V2Texts = {
    cpuStat: source.read(files.cpuStat),
    cpuMax: source.read(files.cpuMax),
    cpuWeight: source.read(files.cpuWeight),
    memCurrent: source.read(files.memCurrent),
    memMax: source.read(files.memMax),
    memHigh: source.read(files.memHigh),
    swapCurrent: source.read(files.swapCurrent),
    memStat: source.read(files.memStat),
  };
  // The membership lists are counted, not kept: tens of thousands of threads make them long
  // enough to be read off the event loop.
  const procs = source.count(files.procs);
  const threads = source.count(files.threads);
  if (procs instanceof Promise || threads instanceof Promise) {
    return Promise.all([procs, threads]).then(([p, t]) => v2Fields(texts, p, t, () => source.read(files.pidsCurrent)));
  }
  return v2Fields(texts, procs, threads, () => source.read(files.pidsCurrent));
}

function v2Fields(texts: V2Texts, procs: number | undefined, threads: number | undefined, pidsCurrent: () => string | undefined): StatsFields | undefined {
  if (procs === undefined && threads === undefined && Object.values(texts).every((text) => text === undefined)) return undefined;
  const { cpuStat, memStat } = texts;
  const anon = toUint64(asBigInt(keyedInteger(memStat, "anon")));
  const file = toUint64(asBigInt(keyedInteger(memStat, "file")));
  // cpu.stat always has usage/user/system_usec; the nr_* and throttled_usec keys appear only when
  // the cpu controller is enabled for the cgroup.
  return {
    processes: toUint32(procs),
    // pids.current counts the same tasks as cgroup.threads (plus those of child cgroups); it is read
    // only when cgroup.threads is missing (kernels before 4.14), to keep the common path one file shorter.
    threads: toUint32(threads ?? asNumber(integerText(pidsCurrent()))),
    cpusUserTimeSecs: seconds(asNumber(keyedInteger(cpuStat, "user_usec"))),
    cpusSystemTimeSecs: seconds(asNumber(keyedInteger(cpuStat, "system_usec"))),
    cpusLimit: cpusLimit(texts.cpuMax, asNumber(integerText(texts.cpuWeight))),
    cpusNrPeriods: toUint32(asNumber(keyedInteger(cpuStat, "nr_periods"))),
    cpusNrThrottled: toUint32(asNumber(keyedInteger(cpuStat, "nr_throttled"))),
    cpusThrottledTimeSecs: seconds(asNumber(keyedInteger(cpuStat, "throttled_usec"))),
    memTotalBytes: toUint64(asBigInt(integerText(texts.memCurrent))),
    // v2 has no memory+swap counter (memory.swap.current is swap alone), so memsw stays unset.
    memLimitBytes: v2Limit(texts.memMax),
    // memory.high is v2's throttling threshold, the nearest thing to v1's soft limit.
    memSoftLimitBytes: v2Limit(texts.memHigh),
    memRssBytes: anon,
    memCacheBytes: file,
    memAnonBytes: anon,
    memFileBytes: file,
    memMappedFileBytes: toUint64(asBigInt(keyedInteger(memStat, "file_mapped"))),
    // memory.swap.current is absent when the kernel does not account swap.
    memSwapBytes: toUint64(asBigInt(integerText(texts.swapCurrent))),
    memUnevictableBytes: toUint64(asBigInt(keyedInteger(memStat, "unevictable"))),
  };
}

/**
 * The CPU limit: the CFS hard cap from cpu.max ("<quota> <period>") when a quota is set, else the
 * weight converted back to v1 shares (see cpu-weight.ts) / 1024, the shares-derived figure Mesos
 * reports. "max" as the quota means no cap. Both files are absent when the cpu controller is not
 * enabled for the cgroup, and then the limit stays unset.
 */
function cpusLimit(cpuMax: string | undefined, weight: number | undefined): number | undefined {
  if (cpuMax !== undefined) {
    const [quota, period] = cpuMax.trim().split(/\s+/);
    if (quota !== "max" && /^\d+$/.test(quota ?? "") && /^\d+$/.test(period ?? "") && Number(period) > 0) {
      return Number(quota) / Number(period);
    }
  }
  if (weight !== undefined && weight > 0) return sharesFromWeight(weight) / SHARES_PER_CPU;
  return undefined;
}
