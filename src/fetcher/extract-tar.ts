import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import zlib from 'node:zlib';
import { Unpack, type ReadEntry } from 'tar';

/** Bounds for one extraction. */
export interface ExtractLimits {
  signal: AbortSignal;
  /** Budget for the sum of extracted entry sizes (a guard against archive bombs). */
  maxBytes: number;
  /** Budget for the number of entries (every kind counts, skipped ones too). */
  maxEntries: number;
}

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const GZIP_MAGIC = [0x1f, 0x8b];
// Headers and padding on top of file contents: 512 bytes per entry plus up to 511 of padding.
const TAR_OVERHEAD_BYTES = 16 * 1024 * 1024;

/**
 * Extracts a tar (optionally gzipped) into `into`, a fresh empty directory. node-tar already refuses
 * '..' and writes through symlinks; on top of that this fails the whole extraction (rather than
 * skipping the entry) on absolute paths, '..', links leaving the tree, and the size budget, so a
 * hostile archive is reported instead of half-applied. Device files and FIFOs are skipped.
 *
 * Gzip is undone here rather than by node-tar: when node-tar's own decompressor fails (corrupt data,
 * its ratio guard) the parser aborts and never emits 'finish', so there would be no moment at which
 * its pending writes are known to be over. Fed plain tar, it always finishes after end().
 */
export async function extractTar(archive: string, into: string, limits: ExtractLimits): Promise<void> {
  let failure: unknown;
  let extracted = 0;
  let entries = 0;
  const links = new LinkRules();
  const gzipped = await startsWith(archive, GZIP_MAGIC);
  const src = createReadStream(archive);
  const gunzip = gzipped ? zlib.createGunzip() : null;
  const streamCap = limits.maxBytes * 2 + TAR_OVERHEAD_BYTES;
  let streamed = 0;
  let head = Buffer.alloc(0);
  const plain = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      streamed += chunk.length;
      if (streamed > streamCap) {
        return cb(new Error(`decompressed archive exceeds ${streamCap} bytes`));
      }
      if (head.length < GZIP_MAGIC.length) {
        head = Buffer.concat([head, chunk]);
        // node-tar would sniff a second gzip layer and run its own, abortable, decompressor.
        if (head.length >= GZIP_MAGIC.length && GZIP_MAGIC.every((b, i) => head[i] === b)) {
          return cb(new Error('archive is compressed twice'));
        }
      }
      cb(null, chunk);
    },
  });
  const unpack = new Unpack({
    cwd: into,
    strict: false,
    // Root would otherwise chown to the archive's uids, handing files to arbitrary host users.
    preserveOwner: false,
    chmod: true,
    processUmask: 0,
    zstd: false,
    brotli: false,
    filter: (_p, e) => {
      if (failure !== undefined) return false;
      const entry = e as ReadEntry;
      entries++;
      if (entries > limits.maxEntries) {
        fail(new Error(`archive has more than ${limits.maxEntries} entries (--archive_max_entries; at entry '${entry.path}')`));
        return false;
      }
      // Every body counts, even of entries that are skipped: it is still decompressed and read.
      extracted += entry.size ?? 0;
      if (extracted > limits.maxBytes) {
        fail(new Error(`extracted size exceeds the limit of ${limits.maxBytes} bytes (--archive_max_bytes; at entry '${entry.path}')`));
        return false;
      }
      const problem = entryProblem(entry) ?? links.admit(entry);
      if (problem !== null) {
        fail(new Error(`archive entry '${entry.path}' ${problem}`));
        return false;
      }
      // Permissions are kept, but never setuid/setgid/sticky: every file is now root-owned.
      if (typeof entry.mode === 'number') entry.mode &= 0o777;
      return true;
    },
    onwarn: (code, message, data) => {
      if (code === 'TAR_ENTRY_UNSUPPORTED' || code === 'TAR_ENTRY_INFO') return;
      const entry = (data as { entry?: ReadEntry } | undefined)?.entry;
      fail(new Error(`${String(message)}${entry ? ` (entry '${entry.path}')` : ''}`));
    },
  });

  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    // Deferred: fail() may run inside the parser's own write call.
    queueMicrotask(() => {
      plain.unpipe(unpack);
      src.destroy();
      gunzip?.destroy();
      plain.destroy();
      unpack.end();
    });
  };
  function fail(err: unknown) {
    failure ??= err;
    stop();
  }
  const onAbort = () => fail(limits.signal.reason);
  if (limits.signal.aborted) onAbort();
  limits.signal.addEventListener('abort', onAbort, { once: true });

  try {
    // 'finish' comes only after every pending write has settled, so the caller may then delete `into`.
    await new Promise<void>((resolve) => {
      unpack.on('finish', () => resolve());
      // Should not happen with plain input (see above); if it does, do not hang the launch on it.
      unpack.on('abort', (err: Error) => {
        fail(err);
        resolve();
      });
      unpack.on('error', (err: Error) => fail(err));
      for (const s of [src, gunzip, plain]) s?.on('error', (err: Error) => fail(err));
      (gunzip ? src.pipe(gunzip) : src).pipe(plain).pipe(unpack);
    });
  } finally {
    limits.signal.removeEventListener('abort', onAbort);
  }
  if (failure !== undefined) throw failure;
}

function entryProblem(entry: ReadEntry): string | null {
  const p = entry.path;
  if (p.startsWith('/')) return 'has an absolute path';
  if (p.split('/').includes('..')) return "contains '..'";
  const link = entry.linkpath;
  if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
    if (!link) return 'is a link without a target';
    if (link.startsWith('/')) return `is a link to the absolute path '${link}'`;
    // Hard link targets are archive paths (relative to the root); symlink targets are relative to the link.
    const base = entry.type === 'Link' ? '.' : path.posix.dirname(p);
    const resolved = path.posix.normalize(path.posix.join(base, link));
    if (resolved === '..' || resolved.startsWith('../')) return `is a link to '${link}', outside the sandbox`;
  }
  return null;
}

/**
 * What the archive itself has made so far, so links can be judged against it. A hard link may only
 * name, by exactly the path it was extracted at, a regular file this archive already extracted (never
 * something that was in the directory before, never a path through a symlink, never '.' or '..'
 * segments, which the kernel would resolve through links that the lexical view does not see). No
 * entry may be written below a path this archive made a symlink, even if a later entry replaced it.
 */
class LinkRules {
  private readonly files = new Set<string>();
  private readonly symlinks = new Set<string>();

  /** Records the entry (when allowed) and returns why it is refused, or null. */
  admit(entry: ReadEntry): string | null {
    const p = canonical(entry.path);
    const through = this.symlinkAbove(p);
    if (through !== null) return `would be written through the archive's symlink '${through}'`;
    if (entry.type === 'Link') {
      // A leading './' (as `tar -C dir .` writes) is the extraction root itself; nothing else may be indirect.
      const raw = String(entry.linkpath ?? '').replace(/^(?:\.\/+)+/, '');
      const segments = raw.split('/');
      if (segments.includes('..') || segments.includes('.') || segments.includes('')) {
        return `is a hard link to '${raw}', which is not a plain path to a file extracted earlier`;
      }
      const viaLink = this.symlinkAbove(raw) ?? (this.symlinks.has(raw) ? raw : null);
      if (viaLink !== null) return `is a hard link to '${raw}' through the archive's symlink '${viaLink}'`;
      if (!this.files.has(raw)) {
        return `is a hard link to '${raw}', which is not a regular file extracted earlier from this archive`;
      }
      if (raw === p) return `is a hard link to itself`;
    }
    this.forget(p);
    if (FILE_TYPES.has(entry.type) || entry.type === 'Link') this.files.add(p);
    else if (entry.type === 'SymbolicLink') this.symlinks.add(p);
    return null;
  }

  /** The nearest proper ancestor of `p` that is an archive symlink, or null. */
  private symlinkAbove(p: string): string | null {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const ancestor = parts.slice(0, i).join('/');
      if (this.symlinks.has(ancestor)) return ancestor;
    }
    return null;
  }

  /**
   * Whatever was at `p` is replaced by the new entry. (Files below `p` need no forgetting: node-tar
   * replaces a directory by a non-directory only with rmdir, which fails unless it is empty.)
   */
  private forget(p: string): void {
    this.files.delete(p);
  }
}

/** An entry path as the extraction sees it: no './', no '//' and no trailing '/'. */
function canonical(p: string): string {
  const n = path.posix.normalize(p);
  return n.endsWith('/') && n.length > 1 ? n.slice(0, -1) : n;
}

async function startsWith(file: string, magic: number[]): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(magic.length);
    const { bytesRead } = await fh.read(buf, 0, magic.length, 0);
    return bytesRead === magic.length && magic.every((b, i) => buf[i] === b);
  } finally {
    await fh.close();
  }
}
