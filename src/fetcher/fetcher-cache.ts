import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, open, readdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import path from 'node:path';

/** How one URI reached the sandbox, as the FETCHING events report it. */
export type CacheOutcome = 'NOT_CACHED' | 'HIT' | 'MISS';

/** Downloads the URI into `temp` (a new file), honouring `signal`; called once per coalesced download. */
export type CacheFill = (temp: string, signal: AbortSignal) => Promise<void>;

/** What the cache did for one fetch. */
export interface CachedCopy {
  /** HIT: copied from an entry; MISS: downloaded (or joined a download) and kept; NOT_CACHED: downloaded but too large to keep. */
  outcome: CacheOutcome;
  bytes: number;
}

/** Where the cache writes its warnings (a pino logger fits). */
export interface CacheLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** A file in the cache directory: a kept entry, or a downloaded file too large to keep. */
interface Blob {
  file: string;
  size: number;
  /** Fetches copying from it right now; a pinned entry is never evicted, an unkept blob is removed at 0. */
  pins: number;
  kept: boolean;
}

/** One download in flight, shared by every fetch of the same key. */
interface Inflight {
  waiters: Set<Waiter>;
  controller: AbortController;
  done: Promise<Blob>;
}

interface Waiter {
  /** Set when the download finished while this fetch still waited: it holds one pin of the blob. */
  pinned?: Blob;
}

const ENTRY_NAME = /^[0-9a-f]{64}$/;
const TEMP_PREFIX = '.tmp-';

/**
 * Mesos' fetcher cache for `URI.cache = true`: files kept under one directory of Berth's own (0700,
 * root's), bounded in bytes with the least recently used entries evicted first. An entry is keyed
 * by the task's user and the URI (as Mesos keys it: one user never gets what another user's rights
 * fetched). Concurrent fetches of one key share one download; a fetch that is cancelled detaches
 * from it, and the download is aborted only when its last waiter has gone. Downloads land in a
 * temp file that is fsync'd and renamed only on success, so a failed or aborted download is never
 * an entry, and a crash leaves at most a temp file, removed at the next start. The index is the
 * directory itself: at start every entry is re-read with its size, in the order of its last use
 * (its mtime, touched on every hit).
 *
 * Entries are copied into sandboxes (copy_file_range/reflink through copyFile's FICLONE, never a
 * hard link: a hard link would be the same inode in two sandboxes, and one task could change the
 * file another task and every later hit get).
 */
export class FetcherCache {
  /** Kept entries by key, least recently used first (Map order: a use re-inserts). */
  private readonly entries = new Map<string, Blob>();
  private readonly inflight = new Map<string, Inflight>();
  private used = 0;

  private constructor(
    readonly dir: string,
    readonly maxBytes: number,
    private readonly log?: CacheLog,
  ) {}

  /**
   * Opens (creating it 0700) the cache directory, removes partial downloads a crash left, and
   * rebuilds the index from the entries there (evicting down to `maxBytes`, which may have shrunk).
   * Refuses a directory that is a symlink or not root's when Berth runs as root.
   */
  static async open(dir: string, maxBytes: number, log?: CacheLog): Promise<FetcherCache> {
    if (!Number.isFinite(maxBytes) || maxBytes < 0) throw new RangeError(`fetcher cache size must be a non-negative number of bytes, got ${maxBytes}`);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const st = await lstat(dir);
    if (st.isSymbolicLink() || !st.isDirectory()) throw new Error(`fetcher cache dir '${dir}' is not a directory`);
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) {
      throw new Error(`fetcher cache dir '${dir}' belongs to uid ${st.uid}, not to Berth (uid ${uid}); its entries are served to tasks, so it must be Berth's own`);
    }
    await chmod(dir, 0o700);
    const cache = new FetcherCache(dir, maxBytes, log);
    await cache.rebuild();
    return cache;
  }

  /** Bytes held by kept entries. */
  get usedBytes(): number {
    return this.used;
  }

  /** Number of kept entries. */
  get size(): number {
    return this.entries.size;
  }

  /** The entry key of a URI fetched for a user ('' = no task user): a hash, so it is a safe file name. */
  static keyOf(user: string, uri: string): string {
    return createHash('sha256').update(user).update('\0').update(uri).digest('hex');
  }

  /** True when a kept entry exists for `key` (for tests and diagnostics). */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** How many fetches wait for the download of `key` in flight (0 when none runs; for tests and diagnostics). */
  waiting(key: string): number {
    return this.inflight.get(key)?.waiters.size ?? 0;
  }

  /**
   * Puts the cached file for `key` at `dest` (a new file, created exclusively, mode 0644), filling
   * the cache with `fill` first when there is no entry (or joining the download in flight).
   * `onReady` runs with the size once the file is ready and before it is copied; it may throw
   * (a per-launch byte budget), which fails this fetch only.
   */
  async fetchInto(key: string, dest: string, fill: CacheFill, signal: AbortSignal, onReady?: (bytes: number) => void): Promise<CachedCopy> {
    signal.throwIfAborted();
    const hit = this.entries.get(key);
    if (hit) {
      hit.pins++;
      try {
        this.touch(key, hit);
        onReady?.(hit.size);
        await this.copyOut(hit, dest);
        return { outcome: 'HIT', bytes: hit.size };
      } catch (err) {
        // An entry removed behind Berth's back is forgotten, and fetched again.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || (err as NodeJS.ErrnoException).path !== hit.file) throw err;
        this.log?.warn({ entry: hit.file }, 'fetcher cache entry vanished; fetching it again');
        this.forget(key, hit);
      } finally {
        this.unpin(hit);
      }
    }
    const blob = await this.join(key, fill, signal);
    // Whether this download was kept (a later download of the key may replace the entry meanwhile).
    const kept = blob.kept;
    try {
      onReady?.(blob.size);
      signal.throwIfAborted();
      await this.copyOut(blob, dest);
      return { outcome: kept ? 'MISS' : 'NOT_CACHED', bytes: blob.size };
    } finally {
      this.unpin(blob);
    }
  }

  /** Waits for the shared download of `key` (starting it if none runs); resolves with the blob pinned once for this waiter. */
  private async join(key: string, fill: CacheFill, signal: AbortSignal): Promise<Blob> {
    let flight = this.inflight.get(key);
    if (!flight) flight = this.start(key, fill);
    const me: Waiter = {};
    flight.waiters.add(me);
    const current = flight;
    let onAbort: (() => void) | undefined;
    try {
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
      });
      aborted.catch(() => undefined);
      await Promise.race([current.done, aborted]);
      // The download finished while this fetch still waited, so it holds a pin.
      return me.pinned!;
    } catch (err) {
      // A waiter that leaves gives back what the completion gave it; the last to leave a running download aborts it.
      if (me.pinned) this.unpin(me.pinned);
      if (current.waiters.delete(me) && current.waiters.size === 0 && this.inflight.get(key) === current) {
        // Out of the map at once: a fetch arriving now starts afresh instead of joining a download being torn down.
        this.inflight.delete(key);
        current.controller.abort(signal.aborted ? signal.reason : err);
      }
      throw err;
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  private start(key: string, fill: CacheFill): Inflight {
    const controller = new AbortController();
    const temp = path.join(this.dir, `${TEMP_PREFIX}${key}-${randomBytes(6).toString('hex')}`);
    const flight: Inflight = { waiters: new Set(), controller, done: Promise.resolve(undefined as unknown as Blob) };
    flight.done = (async () => {
      try {
        await fill(temp, controller.signal);
        controller.signal.throwIfAborted();
        // On disk before it is named: a crash must never leave a short file under an entry's name.
        const fh = await open(temp, fsc.O_RDONLY | fsc.O_NOFOLLOW);
        let size: number;
        try {
          await fh.sync();
          size = (await fh.stat()).size;
        } finally {
          await fh.close();
        }
        const blob = await this.admit(key, temp, size);
        // Hand one pin to each fetch still waiting, before any of them (or an eviction) runs.
        for (const w of flight.waiters) {
          w.pinned = blob;
          blob.pins++;
        }
        // Every fetch left while it was being kept: a file too large to keep has no one to remove it.
        if (blob.pins === 0 && !blob.kept) await unlink(temp).catch(() => undefined);
        return blob;
      } catch (err) {
        await unlink(temp).catch(() => undefined);
        throw err;
      } finally {
        if (this.inflight.get(key) === flight) this.inflight.delete(key);
      }
    })();
    flight.done.catch(() => undefined);
    this.inflight.set(key, flight);
    return flight;
  }

  /**
   * Keeps the downloaded file as the entry of `key` when it fits: least recently used entries that
   * no fetch is copying are evicted to make room. A file larger than the whole cache, or one that
   * would only fit by evicting entries in use, is not kept (it still serves the fetches that waited
   * for it, then it is removed).
   */
  private async admit(key: string, temp: string, size: number): Promise<Blob> {
    // A second download of the key (one started after an abandoned one) replaces the first's entry:
    // the rename below swaps the file under any copy still reading the old one; when the new file
    // is not kept, the old one goes (unless a copy is reading it: then a restart finds it again).
    const previous = this.entries.get(key);
    if (previous) this.forget(key, previous);
    const unkept = async (): Promise<Blob> => {
      if (previous && previous.pins === 0) await unlink(previous.file).catch(() => undefined);
      return { file: temp, size, pins: 0, kept: false };
    };
    if (size > this.maxBytes) {
      this.log?.info({ bytes: size, cache_bytes: this.maxBytes }, 'fetched file is larger than the whole fetcher cache; not cached');
      return unkept();
    }
    const evictable = [...this.entries].filter(([, b]) => b.pins === 0);
    let free = this.maxBytes - this.used;
    const victims: Array<[string, Blob]> = [];
    for (const e of evictable) {
      if (free >= size) break;
      victims.push(e);
      free += e[1].size;
    }
    if (free < size) {
      this.log?.info({ bytes: size }, 'fetcher cache is full of entries in use; this file is not cached');
      return unkept();
    }
    // The bookkeeping is done before the first await: a hit can no longer pin a victim, and a second
    // download finishing meanwhile sees the space as taken.
    for (const [k, b] of victims) this.forget(k, b);
    this.used += size;
    try {
      for (const [, b] of victims) {
        await unlink(b.file).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') this.log?.warn({ err, entry: b.file }, 'could not remove an evicted fetcher cache entry');
        });
      }
      const file = path.join(this.dir, key);
      await rename(temp, file);
      const blob: Blob = { file, size, pins: 0, kept: true };
      this.entries.set(key, blob);
      return blob;
    } catch (err) {
      this.used -= size;
      throw err;
    }
  }

  private async copyOut(blob: Blob, dest: string): Promise<void> {
    // EXCL: never through a name planted at dest; FICLONE: a reflink where the filesystem has them.
    await copyFile(blob.file, dest, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
    // The entry is 0600 root's; the sandbox copy is an ordinary fetched file.
    await chmod(dest, 0o644);
  }

  private touch(key: string, blob: Blob): void {
    this.entries.delete(key);
    this.entries.set(key, blob);
    // The order of use survives a restart through the mtime; losing one touch only ages an entry.
    const now = new Date();
    utimes(blob.file, now, now).catch(() => undefined);
  }

  private forget(key: string, blob: Blob): void {
    if (this.entries.get(key) !== blob) return;
    this.entries.delete(key);
    this.used -= blob.size;
    blob.kept = false;
  }

  private unpin(blob: Blob): void {
    blob.pins--;
    if (blob.pins <= 0 && !blob.kept && blob.file.includes(`${path.sep}${TEMP_PREFIX}`)) {
      unlink(blob.file).catch(() => undefined);
    }
  }

  /** Reads the directory back into the index: partial downloads removed, entries in order of last use. */
  private async rebuild(): Promise<void> {
    const found: Array<{ key: string; file: string; size: number; mtime: number }> = [];
    for (const entry of await readdir(this.dir, { withFileTypes: true })) {
      const file = path.join(this.dir, entry.name);
      if (entry.name.startsWith(TEMP_PREFIX)) {
        await unlink(file).catch(() => undefined);
        continue;
      }
      if (!ENTRY_NAME.test(entry.name) || !entry.isFile()) {
        this.log?.warn({ file }, 'unexpected file in the fetcher cache dir; left alone and not served');
        continue;
      }
      const st = await stat(file);
      found.push({ key: entry.name, file, size: st.size, mtime: st.mtimeMs });
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) {
      this.entries.set(f.key, { file: f.file, size: f.size, pins: 0, kept: true });
      this.used += f.size;
    }
    for (const [key, blob] of this.entries) {
      if (this.used <= this.maxBytes) break;
      this.forget(key, blob);
      await unlink(blob.file).catch(() => undefined);
    }
    if (found.length > 0) this.log?.info({ entries: this.entries.size, bytes: this.used }, 'fetcher cache index rebuilt');
  }
}
