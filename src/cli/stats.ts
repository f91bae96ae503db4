/** `berth stats`: a refreshing table from the Usage RPC, CPU % from successive cpu times (as `docker stats`). */
import type { ResourceStatistics } from "../gen/mesos/v1/mesos_pb.js";
import { humanBytes, table } from "./format.js";

/** One container's row. */
export interface StatsRow {
  id: string;
  /** CPU use over the last interval, in % of one cpu (200% = two cpus busy); undefined for the first sample. */
  cpuPercent?: number;
  memUsage?: bigint;
  memLimit?: bigint;
  processes?: number;
  diskUsed?: bigint;
  diskLimit?: bigint;
  netRx?: bigint;
  netTx?: bigint;
  /** Why there is no sample (`NOT_FOUND: …`). */
  error?: string;
}

/**
 * CPU % between two samples: the growth of user + system cpu seconds over the growth of the
 * sample's own timestamp; undefined when the samples do not move forward.
 */
export function cpuPercent(prev: ResourceStatistics | undefined, cur: ResourceStatistics): number | undefined {
  if (!prev) return undefined;
  const dt = cur.timestamp - prev.timestamp;
  if (!(dt > 0)) return undefined;
  const used = cur.cpusUserTimeSecs + cur.cpusSystemTimeSecs - (prev.cpusUserTimeSecs + prev.cpusSystemTimeSecs);
  return Math.max(0, (used / dt) * 100);
}

/** The memory a person means by "used": resident (rss), else the cgroup's total. */
export function memoryUsed(s: ResourceStatistics): bigint {
  return s.memRssBytes > 0n ? s.memRssBytes : s.memTotalBytes;
}

export function statsRow(id: string, prev: ResourceStatistics | undefined, cur: ResourceStatistics): StatsRow {
  return {
    id,
    cpuPercent: cpuPercent(prev, cur),
    memUsage: memoryUsed(cur),
    memLimit: cur.memLimitBytes > 0n ? cur.memLimitBytes : undefined,
    processes: cur.processes || undefined,
    diskUsed: cur.diskUsedBytes || undefined,
    diskLimit: cur.diskLimitBytes || undefined,
    netRx: cur.netRxBytes,
    netTx: cur.netTxBytes,
  };
}

const pct = (n: number | undefined) => (n === undefined ? "--" : `${n.toFixed(2)}%`);

/** The table `berth stats` prints (one row per container, in the order given). */
export function statsTable(rows: StatsRow[]): string {
  return table(
    ["CONTAINER ID", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "DISK", "PIDS"],
    rows.map((r) => {
      if (r.error !== undefined) return [r.id, "--", "--", "--", "--", "--", r.error];
      const mem = `${r.memUsage !== undefined ? humanBytes(r.memUsage) : "--"} / ${r.memLimit !== undefined ? humanBytes(r.memLimit) : "--"}`;
      const memPct = r.memUsage !== undefined && r.memLimit !== undefined ? (Number(r.memUsage) * 100) / Number(r.memLimit) : undefined;
      const net = `${humanBytes(r.netRx ?? 0n)} / ${humanBytes(r.netTx ?? 0n)}`;
      const disk = r.diskUsed !== undefined ? `${humanBytes(r.diskUsed)}${r.diskLimit !== undefined ? ` / ${humanBytes(r.diskLimit)}` : ""}` : "--";
      return [r.id, pct(r.cpuPercent), mem, pct(memPct), net, disk, r.processes !== undefined ? String(r.processes) : "--"];
    }),
  );
}
