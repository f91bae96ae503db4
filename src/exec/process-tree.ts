/**
 * Killing an exec'd process from the host. The engine has no API to kill an exec, but it reports
 * the process's host pid, and Berth runs as root in the host pid namespace, so the process (and
 * what it forked) is signalled directly. A pid is only signalled when /proc says it still belongs
 * to the container (its cgroup names the engine id) and started no earlier than the exec was
 * created, so a pid reused by an unrelated process is left alone.
 */
import { readdir, readFile } from "node:fs/promises";

/** Linux reports process start times in USER_HZ ticks since boot, which is 100 on every architecture Node runs on. */
const USER_HZ = 100;
/** Boot time has one-second resolution in /proc/stat; a start this much before `notBefore` still counts. */
const START_SLACK_MS = 1_000;
/** Rounds of "find the tree, stop new members" before the kill; a fork bomb cannot keep us here. */
const MAX_STOP_ROUNDS = 20;

/** pid, ppid and start time (ms since the epoch) of one /proc/<pid>/stat. */
interface ProcStat {
  pid: number;
  ppid: number;
  startMs: number;
}

let bootMs: number | undefined;

async function bootTimeMs(): Promise<number> {
  if (bootMs === undefined) {
    const text = await readFile("/proc/stat", "utf8");
    const m = /^btime\s+(\d+)$/m.exec(text);
    if (!m) throw new Error("/proc/stat has no btime line");
    bootMs = Number(m[1]) * 1000;
  }
  return bootMs;
}

/** Parses /proc/<pid>/stat (the command may hold spaces and parentheses: fields follow the last ')'). */
export function parseProcStat(text: string, boot: number): ProcStat | undefined {
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  const pid = Number(text.slice(0, text.indexOf(" ")));
  const fields = text.slice(close + 2).split(" ");
  // fields[0] is field 3 (state); ppid is field 4, starttime field 22.
  const ppid = Number(fields[1]);
  const start = Number(fields[19]);
  if (!Number.isInteger(pid) || !Number.isInteger(ppid) || !Number.isFinite(start)) return undefined;
  return { pid, ppid, startMs: boot + (start * 1000) / USER_HZ };
}

async function readStat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, "utf8"), await bootTimeMs());
  } catch {
    return undefined; // gone
  }
}

/** True when /proc/<pid>/cgroup places the process in the engine container's cgroup. */
async function inContainer(pid: number, engineId: string): Promise<boolean> {
  try {
    return (await readFile(`/proc/${pid}/cgroup`, "utf8")).includes(engineId);
  } catch {
    return false;
  }
}

/** Every process on the host: pid → parent pid. */
async function parentsOf(): Promise<Map<number, number>> {
  const parents = new Map<number, number>();
  const boot = await bootTimeMs();
  const entries = await readdir("/proc");
  await Promise.all(
    entries.map(async (name) => {
      if (!/^\d+$/.test(name)) return;
      try {
        const st = parseProcStat(await readFile(`/proc/${name}/stat`, "utf8"), boot);
        if (st) parents.set(st.pid, st.ppid);
      } catch {
        // exited meanwhile
      }
    }),
  );
  return parents;
}

/** `root` and its descendants, as found now. */
async function treeOf(root: number): Promise<number[]> {
  const parents = await parentsOf();
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parents) {
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const tree: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * SIGKILLs `pid` and every process it forked, when `pid` is still the exec'd process: in the
 * container `engineId`'s cgroup and started at or after `notBefore` (ms since the epoch, taken
 * before the exec was created). The tree is first stopped with SIGSTOP, round by round until no
 * new member appears, so nothing forks away between finding the tree and killing it; processes
 * that had already left the tree (daemonized to the container's init) are not followed.
 * Returns how many processes were signalled (0: it was not, or no longer, the exec'd process).
 */
export async function killProcessTree(pid: number, engineId: string, notBefore: number): Promise<number> {
  if (!(pid > 0)) return 0;
  const root = await readStat(pid);
  if (!root || root.startMs < notBefore - START_SLACK_MS || !(await inContainer(pid, engineId))) return 0;
  const stopped = new Set<number>();
  for (let round = 0; round < MAX_STOP_ROUNDS; round += 1) {
    const tree = await treeOf(pid);
    const fresh: number[] = [];
    for (const p of tree) if (!stopped.has(p) && (await inContainer(p, engineId))) fresh.push(p);
    if (fresh.length === 0) break;
    for (const p of fresh) {
      signal(p, "SIGSTOP");
      stopped.add(p);
    }
  }
  for (const p of stopped) signal(p, "SIGKILL");
  return stopped.size;
}
