import { constants as fsc, createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import type { ExtractLimits } from './extract-tar.js';

/**
 * Gunzips a plain '.gz' file (not a tar) into `into`/`name`, as Mesos' fetcher runs `gunzip -d -c`
 * for a '.gz' that is no tarball. `into` is a fresh scratch directory; the output counts against the
 * extraction budget like an archive's entries (a gzip bomb stops at --archive_max_bytes). Concatenated
 * gzip members are decoded as gunzip does. Corrupt data fails the fetch.
 */
export async function extractGz(archive: string, into: string, name: string, limits: ExtractLimits): Promise<void> {
  let written = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      written += chunk.length;
      if (written > limits.maxBytes) {
        cb(new Error(`gunzipped size exceeds the limit of ${limits.maxBytes} bytes (--archive_max_bytes; at '${name}')`));
      } else {
        cb(null, chunk);
      }
    },
  });
  const fh = await open(path.join(into, name), fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644);
  try {
    // The write stream closes the handle when the pipeline ends, whichever way it ends.
    await pipeline(createReadStream(archive), zlib.createGunzip(), counter, fh.createWriteStream(), { signal: limits.signal });
  } catch (err) {
    await fh.close().catch(() => undefined);
    if (limits.signal.aborted) throw err;
    throw new Error(`could not gunzip it into '${name}': ${(err as Error).message}`, { cause: err });
  }
}
