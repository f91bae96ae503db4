// Hostile archives written byte by byte: node-tar's packer refuses '..', absolute names and links it
// deems unsafe, and yauzl only reads zips. Sizes are bounded: bombs are produced by streaming a
// repeated chunk through zlib, never by allocating the inflated size.
import zlib from 'node:zlib';

export interface TarEntry {
  name: string;
  /** '0' file, '1' hard link, '2' symlink, '3' char device, '5' directory. */
  type?: '0' | '1' | '2' | '3' | '5';
  body?: string | Buffer;
  linkname?: string;
  mode?: number;
  /** Size written in the header; defaults to the body's length for files, 0 otherwise. */
  declaredSize?: number;
}

function put(buf: Buffer, offset: number, length: number, value: string): void {
  buf.write(value, offset, Math.min(length, Buffer.byteLength(value)), 'utf8');
}

function octal(n: number, length: number): string {
  return n.toString(8).padStart(length - 1, '0') + '\0';
}

/** One 512-byte ustar header (names taken verbatim, even hostile ones; at most 100 bytes). */
export function tarHeader(e: TarEntry): Buffer {
  const type = e.type ?? '0';
  const size = e.declaredSize ?? (type === '0' ? Buffer.byteLength(e.body ?? '') : 0);
  const header = Buffer.alloc(512);
  put(header, 0, 100, e.name);
  put(header, 100, 8, octal(e.mode ?? (type === '5' ? 0o755 : 0o644), 8));
  put(header, 108, 8, octal(0, 8));
  put(header, 116, 8, octal(0, 8));
  put(header, 124, 12, octal(size, 12));
  put(header, 136, 12, octal(1_700_000_000, 12));
  header.fill(' ', 148, 156);
  put(header, 156, 1, type);
  put(header, 157, 100, e.linkname ?? '');
  put(header, 257, 6, 'ustar\0');
  put(header, 263, 2, '00');
  let sum = 0;
  for (const b of header) sum += b;
  put(header, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return header;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

/** A plain tar from raw entries, with the two zero blocks at the end. */
export function rawTar(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    blocks.push(tarHeader(e));
    if ((e.type ?? '0') === '0') {
      const body = Buffer.from(e.body ?? '');
      blocks.push(body, pad(body.length));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** `count` tiny files f0..f{count-1}, gzipped: a bomb of entries rather than bytes. */
export function manyEntriesTarGz(count: number): Buffer {
  return zlib.gzipSync(rawTar(Array.from({ length: count }, (_, i) => ({ name: `f${i}`, body: 'x' }))));
}

/**
 * A .tar.gz holding one file `name` of `size` zero bytes, built by streaming 1 MiB chunks through
 * gzip, so memory stays at a few MiB while `size` may be hundreds of MiB (100 MiB gzips to ~100 KiB).
 */
export async function gzipTarBomb(name: string, size: number): Promise<Buffer> {
  const gzip = zlib.createGzip({ level: 9 });
  const out: Buffer[] = [];
  gzip.on('data', (b: Buffer) => out.push(b));
  const done = new Promise<void>((resolve, reject) => {
    gzip.on('end', resolve);
    gzip.on('error', reject);
  });
  const write = (b: Buffer) =>
    new Promise<void>((resolve) => {
      if (gzip.write(b)) resolve();
      else gzip.once('drain', resolve);
    });
  await write(tarHeader({ name, declaredSize: size }));
  const chunk = Buffer.alloc(1024 * 1024);
  for (let left = size; left > 0; left -= chunk.length) await write(left >= chunk.length ? chunk : chunk.subarray(0, left));
  await write(pad(size));
  await write(Buffer.alloc(1024));
  gzip.end();
  await done;
  return Buffer.concat(out);
}

export interface ZipEntry {
  name: string;
  body?: string | Buffer;
  /** Full unix st_mode (type bits included); defaults to a regular 0644 file (0755 dir for 'x/'). */
  mode?: number;
  deflate?: boolean;
  /** Uncompressed size written in both headers (a lie, when it differs from the body). */
  declaredSize?: number;
  /** Already deflated data stored as is, with the CRC of its inflated bytes (see deflatedZeros). */
  rawDeflated?: { data: Buffer; crc: number };
}

/** A minimal zip (stored or deflated entries, unix "version made by", no data descriptors). */
export function buildZip(entries: ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const body = Buffer.from(e.body ?? '');
    const data = e.rawDeflated?.data ?? (e.deflate ? zlib.deflateRawSync(body) : body);
    const method = e.rawDeflated || e.deflate ? 8 : 0;
    const crc = e.rawDeflated?.crc ?? zlib.crc32(body);
    const size = e.declaredSize ?? body.length;
    const mode = e.mode ?? (e.name.endsWith('/') ? 0o040755 : 0o100644);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    locals.push(local, name, data);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by unix
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE((mode << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += local.length + name.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** `size` zero bytes deflated (raw), streamed in 1 MiB chunks; with the CRC of the inflated bytes. */
export async function deflatedZeros(size: number): Promise<{ data: Buffer; crc: number }> {
  const deflate = zlib.createDeflateRaw({ level: 9 });
  const out: Buffer[] = [];
  deflate.on('data', (b: Buffer) => out.push(b));
  const done = new Promise<void>((resolve, reject) => {
    deflate.on('end', resolve);
    deflate.on('error', reject);
  });
  const chunk = Buffer.alloc(1024 * 1024);
  let crc = 0;
  for (let left = size; left > 0; left -= chunk.length) {
    const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
    crc = zlib.crc32(piece, crc);
    if (!deflate.write(piece)) await new Promise((r) => deflate.once('drain', r));
  }
  deflate.end();
  await done;
  return { data: Buffer.concat(out), crc };
}
