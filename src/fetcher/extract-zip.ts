import { constants as fsc } from 'node:fs';
import { chmod, mkdir, open, symlink } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import yauzl from 'yauzl';
import type { ExtractLimits } from './extract-tar.js';

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;
const MAX_LINK_TARGET = 4096;

/**
 * Extracts a zip into `into`, a fresh empty directory. Every name is validated (yauzl rejects absolute
 * paths, '..' and, with strictFileNames, backslashes; we re-check), unix mode bits are honoured (minus
 * setuid/setgid/sticky), symlinks are created only after all files so nothing is written through
 * them, and the real decompressed bytes are counted against the budget. yauzl does not check CRC-32
 * ("No CRC-32 Checking" in its README): each entry's is computed here while it is written, and a
 * mismatch with the central directory fails the extraction naming the entry, as `unzip` and Mesos'
 * libarchive do.
 */
export async function extractZip(archive: string, into: string, limits: ExtractLimits): Promise<void> {
  const zip = await yauzl.openPromise(archive, {
    lazyEntries: true,
    autoClose: false,
    decodeStrings: true,
    validateEntrySizes: true,
    strictFileNames: true,
  });
  const links: Array<{ at: string; target: string }> = [];
  let extracted = 0;
  let entries = 0;
  const tooMany = () => new Error(`archive has more than ${limits.maxEntries} entries (--archive_max_entries)`);
  try {
    // The central directory says how many entries follow: refuse a bomb of names before reading one.
    if (zip.entryCount > limits.maxEntries) throw tooMany();
    for await (const entry of zip.eachEntry()) {
      limits.signal.throwIfAborted();
      if (++entries > limits.maxEntries) throw tooMany();
      const name = entry.fileName;
      const problem = nameProblem(name);
      if (problem !== null) throw new Error(`archive entry '${name}' ${problem}`);
      const dest = path.join(into, ...name.split('/').filter((s) => s !== '' && s !== '.'));
      if (dest === into) continue;
      const madeByUnix = entry.versionMadeBy >> 8 === 3;
      const unixMode = madeByUnix ? (entry.externalFileAttributes >>> 16) & 0xffff : 0;
      const isDir = name.endsWith('/') || (unixMode & S_IFMT) === S_IFDIR;
      if (isDir) {
        await mkdir(dest, { recursive: true, mode: 0o755 });
        continue;
      }
      // Check the declared size first so a bomb is refused before inflating; then count real bytes.
      if (extracted + entry.uncompressedSize > limits.maxBytes) {
        throw new Error(
          `extracted size exceeds the limit of ${limits.maxBytes} bytes (--archive_max_bytes; entry '${name}' declares ${entry.uncompressedSize})`,
        );
      }
      await mkdir(path.dirname(dest), { recursive: true, mode: 0o755 });
      if ((unixMode & S_IFMT) === S_IFLNK) {
        // No await between opening the stream and reading it: its errors always have a listener.
        const stream = await zip.openReadStreamPromise(entry);
        try {
          links.push({ at: dest, target: await readSmall(stream, name, entry.crc32) });
        } finally {
          stream.destroy();
        }
        continue;
      }
      const mode = unixMode & 0o777 || 0o644;
      let crc = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          extracted += chunk.length;
          crc = zlib.crc32(chunk, crc);
          if (extracted > limits.maxBytes) {
            cb(new Error(`extracted size exceeds the limit of ${limits.maxBytes} bytes (--archive_max_bytes; at entry '${name}')`));
          } else {
            cb(null, chunk);
          }
        },
        flush(cb) {
          cb(crcProblem(name, crc, entry.crc32));
        },
      });
      // O_NOFOLLOW: `into` is fresh and links come last, but a duplicate name must still never follow one.
      // The file is opened before the entry's stream: yauzl starts inflating as soon as the stream
      // exists, and an error it raised while we awaited something else would have no listener.
      const fh = await open(dest, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_NOFOLLOW, mode);
      let stream: NodeJS.ReadableStream & { destroy(): void };
      try {
        stream = await zip.openReadStreamPromise(entry);
      } catch (err) {
        await fh.close().catch(() => undefined);
        throw err;
      }
      await pipeline(stream, counter, fh.createWriteStream(), { signal: limits.signal });
      // open()'s mode is filtered by the umask; set it exactly, as `unzip` does for unix entries.
      await chmod(dest, mode);
    }
    for (const { at, target } of links) {
      if (target === '' || target.includes('\0') || path.isAbsolute(target)) {
        throw new Error(`archive symlink '${path.relative(into, at)}' has an unsafe target '${target}'`);
      }
      await symlink(target, at);
    }
  } finally {
    zip.close();
  }
}

function nameProblem(name: string): string | null {
  if (name.includes('\\')) return 'contains a backslash';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'has an absolute path';
  if (name.split('/').includes('..')) return "contains '..'";
  if (name.includes('\0')) return 'contains NUL';
  return null;
}

async function readSmall(stream: NodeJS.ReadableStream, name: string, expectedCrc: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_LINK_TARGET) throw new Error(`archive symlink '${name}' has an oversized target`);
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks);
  const problem = crcProblem(name, zlib.crc32(body), expectedCrc);
  if (problem !== null) throw problem;
  return body.toString('utf8');
}

/** A corrupt entry's error (its bytes do not have the CRC-32 the central directory records), or null. */
function crcProblem(name: string, actual: number, expected: number): Error | null {
  if (actual >>> 0 === expected >>> 0) return null;
  const hex = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
  return new Error(`archive entry '${name}' is corrupt: its CRC-32 is ${hex(actual)}, the archive records ${hex(expected)}`);
}
