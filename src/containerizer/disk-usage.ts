import { lstat, opendir } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import type { Container } from "./container.js";
import { diskLimit, formatBytes, type LimitReached } from "./limitation.js";

/** The shortest pause between two measurements of one sandbox (a 0 interval would walk without rest). */
export const MIN_WATCH_INTERVAL_MS = 10;

/** Past this many entries a walk stops and reports what it counted (a lower bound). */
export const DEFAULT_MAX_WALK_ENTRIES = 1_000_000;

const MiB = 1024n * 1024n;

/** What one walk of a sandbox found. */
export interface DiskUsage {
  /** Bytes of disk the tree occupies (st_blocks × 512, as `du` counts them; hard links once). */
  bytes: bigint;
  entries: number;
  /** True when the walk stopped at `maxEntries`: `bytes` is then a lower bound. */
  partial: boolean;
}

/**
 * Measures a directory tree's disk usage the way Mesos' disk/du isolator does with `du -k -s`:
 * allocated blocks, each hard-linked file once, symbolic links counted as themselves and never
 * followed (lstat only; a link cannot lead the walk out of the sandbox). The cost is bounded:
 * one lstat in flight at a time (one libuv thread, never the whole pool), each awaited so the
 * event loop serves calls between any two, at most `maxEntries` entries, and the signal stops it.
 * Entries that vanish during the walk are skipped.
 */
export async function measureDiskUsage(root: string, options: { maxEntries?: number; signal?: AbortSignal } = {}): Promise<DiskUsage> {
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_WALK_ENTRIES;
  const seen = new Set<string>();
  let bytes = 0n;
  let entries = 0;
  const count = async (p: string): Promise<boolean> => {
    const st = await lstat(p, { bigint: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT" || err.code === "ENOTDIR") return undefined;
      throw err;
    });
    if (!st) return false;
    entries += 1;
    if (st.nlink > 1n && !st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) return false;
      seen.add(key);
    }
    bytes += st.blocks * 512n;
    return st.isDirectory();
  };
  const dirs: string[] = [];
  if (await count(root)) dirs.push(root);
  while (dirs.length > 0) {
    const dir = dirs.pop()!;
    let handle;
    try {
      handle = await opendir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ENOTDIR") continue;
      throw err;
    }
    // The iterator closes the handle when the loop ends, also on a break or a throw.
    for await (const entry of handle) {
      options.signal?.throwIfAborted();
      if (entries >= maxEntries) return { bytes, entries, partial: true };
      const p = path.join(dir, entry.name);
      if (await count(p)) dirs.push(p);
    }
  }
  return { bytes, entries, partial: false };
}

/** Settings of the disk watcher (Mesos' disk/du flags). */
export interface DiskWatcherOptions {
  /** --container_disk_watch_interval: the pause between two measurements of one sandbox. */
  intervalMs: number;
  /** --enforce_container_disk_quota: kill a container past its `disk`; otherwise only report it. */
  enforce: boolean;
  maxEntries?: number;
  log: Logger;
  /** Kills a container whose sandbox outgrew its `disk` (only with `enforce`). */
  onExceeded(c: Container, limit: LimitReached): void;
}

/**
 * Measures every running container's sandbox, each every `intervalMs` (counted from the end of
 * its previous measurement), one walk at a time across all containers: a queue feeds a single
 * walker, so a thousand sandboxes cost one walk in flight, never a thousand. A container is first
 * measured as soon as it runs. Usage reports the last measurement; a sandbox past its `disk` is
 * killed with `enforce`, else logged once.
 */
export class DiskWatcher {
  private readonly used = new WeakMap<Container, bigint>();
  private readonly timers = new Map<Container, NodeJS.Timeout>();
  private readonly queue: Container[] = [];
  private readonly queued = new Set<Container>();
  private readonly warned = new WeakSet<Container>();
  private readonly partialWarned = new WeakSet<Container>();
  private readonly abort = new AbortController();
  private walking = false;
  /** The walk in progress, for idle() and close(). */
  private draining: Promise<void> = Promise.resolve();

  constructor(private readonly options: DiskWatcherOptions) {}

  /** Starts measuring `c` once it is RUNNING (at once for an adopted one); stops at its end. */
  watch(c: Container): void {
    let started = false;
    c.state$.subscribe({
      next: (state) => {
        if (state !== "RUNNING" || started) return;
        started = true;
        this.enqueue(c);
      },
      complete: () => this.forget(c),
    });
  }

  /** The sandbox's last measured usage in bytes (undefined before the first measurement). */
  usedBytes(c: Container): bigint | undefined {
    return this.used.get(c);
  }

  /** Stops every timer and the walk in progress. */
  async close(): Promise<void> {
    this.abort.abort(new Error("disk watcher closed"));
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
    await this.draining;
  }

  private enqueue(c: Container): void {
    if (this.abort.signal.aborted || this.queued.has(c) || c.state !== "RUNNING") return;
    this.queued.add(c);
    this.queue.push(c);
    if (!this.walking) this.draining = this.drain();
  }

  private forget(c: Container): void {
    clearTimeout(this.timers.get(c));
    this.timers.delete(c);
    this.queued.delete(c);
  }

  private async drain(): Promise<void> {
    this.walking = true;
    try {
      for (let c = this.queue.shift(); c !== undefined; c = this.queue.shift()) {
        if (!this.queued.delete(c) || c.state !== "RUNNING") continue;
        await this.measure(c);
        if (c.state === "RUNNING" && !this.abort.signal.aborted) {
          const timer = setTimeout(() => {
            this.timers.delete(c);
            this.enqueue(c);
          }, Math.max(this.options.intervalMs, MIN_WATCH_INTERVAL_MS));
          timer.unref();
          this.timers.set(c, timer);
        }
      }
    } finally {
      this.walking = false;
    }
  }

  private async measure(c: Container): Promise<void> {
    const { log } = this.options;
    let usage: DiskUsage;
    try {
      usage = await measureDiskUsage(c.sandbox, { maxEntries: this.options.maxEntries, signal: this.abort.signal });
    } catch (err) {
      if (!this.abort.signal.aborted) log.warn({ err, container_id: c.id, sandbox: c.sandbox }, "could not measure the sandbox's disk usage");
      return;
    }
    this.used.set(c, usage.bytes);
    if (usage.partial && !this.partialWarned.has(c)) {
      this.partialWarned.add(c);
      log.warn({ container_id: c.id, entries: usage.entries }, "sandbox has more entries than one disk usage walk counts; its usage is a lower bound");
    }
    const diskMb = c.resources.diskMb;
    const limitBytes = diskLimitBytes(c);
    if (diskMb === undefined || limitBytes === undefined || c.state !== "RUNNING") return;
    if (usage.bytes <= limitBytes) return;
    const limit = diskLimit(usage.bytes, diskMb);
    if (this.options.enforce) {
      log.warn({ container_id: c.id, used_bytes: Number(usage.bytes), limit_bytes: Number(limitBytes) }, "sandbox outgrew its disk resource; killing the container");
      this.options.onExceeded(c, limit);
    } else if (!this.warned.has(c)) {
      this.warned.add(c);
      log.warn(
        { container_id: c.id, used_bytes: Number(usage.bytes), limit_bytes: Number(limitBytes) },
        `sandbox uses ${formatBytes(usage.bytes)}, more than its disk resource of ${diskMb} MB; not enforced (--enforce_container_disk_quota is off)`,
      );
    }
  }
}

/** The `disk` resource in bytes, when the container has one. */
export function diskLimitBytes(c: Container): bigint | undefined {
  const mb = c.resources.diskMb;
  return mb === undefined ? undefined : BigInt(Math.floor(mb * Number(MiB)));
}
