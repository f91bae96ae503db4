import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import zlib from 'node:zlib';
import { Unpack, type ReadEntry } from 'tar';

/** Bounds for one extraction. */
export interface ExtractLimits {
  signal: AbortSignal;
  /** Budget for the sum of extracted file sizes (a guard against archive bombs). */
  maxBytes: number;
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
      const problem = entryProblem(entry);
      if (problem !== null) {
        fail(new Error(`archive entry '${entry.path}' ${problem}`));
        return false;
      }
      if (FILE_TYPES.has(entry.type)) {
        extracted += entry.size ?? 0;
        if (extracted > limits.maxBytes) {
          fail(new Error(`extracted size exceeds the limit of ${limits.maxBytes} bytes (at entry '${entry.path}')`));
          return false;
        }
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
