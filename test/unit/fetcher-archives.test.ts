import assert from 'node:assert/strict';
import { link, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { assertSymlinksConfined } from '../../src/fetcher/confine-symlinks.js';
import { fetchUris, FetchFailed, type FetchOptions } from '../../src/fetcher/fetcher.js';
import {
  buildZip,
  deflatedZeros,
  gzipTarBomb,
  manyEntriesTarGz,
  rawTar,
  type TarEntry,
} from '../support/crafted-archives.js';

// Archives are served from local files (<root>/src, the one allowed prefix); <root>/outside holds a
// secret that no archive may reach: after every test it is unchanged and has exactly one name.

describe('fetcher: hostile archives', function () {
  let root: string;
  let src: string;
  let sandbox: string;
  let outside: string;
  let secret: string;
  let controller: AbortController;

  beforeEach(async function () {
    root = await mkdtemp(path.join(os.tmpdir(), 'berth-fetcher-archives-'));
    src = path.join(root, 'src');
    sandbox = path.join(root, 'sandbox');
    outside = path.join(root, 'outside');
    secret = path.join(outside, 'secret');
    for (const d of [src, sandbox, outside]) await mkdir(d);
    await writeFile(secret, 'precious');
    controller = new AbortController();
  });

  afterEach(async function () {
    controller.abort(new Error('test over'));
    await rm(root, { recursive: true, force: true });
  });

  const opts = (extra: Partial<FetchOptions> = {}): FetchOptions => ({
    signal: controller.signal,
    filePrefixes: [src],
    ...extra,
  });

  async function publish(name: string, bytes: Buffer): Promise<string> {
    const p = path.join(src, name);
    await writeFile(p, bytes);
    return p;
  }

  async function assertNothingEscaped(): Promise<void> {
    assert.deepEqual((await readdir(root)).sort(), ['outside', 'sandbox', 'src']);
    assert.deepEqual(await readdir(outside), ['secret']);
    const st = await stat(secret);
    assert.equal(st.nlink, 1, 'the secret gained a hard link');
    assert.equal(await readFile(secret, 'utf8'), 'precious');
  }

  async function refused(uri: string, why: RegExp, extra: Partial<FetchOptions> = {}): Promise<void> {
    await assert.rejects(fetchUris([{ value: uri }], sandbox, opts(extra)), (err: unknown) => {
      assert.ok(err instanceof FetchFailed, String(err));
      assert.ok(err.message.includes(`'${uri}' (command_info.uris[0])`), err.message);
      assert.match(err.message, why);
      return true;
    });
    await assertNothingEscaped();
    assert.deepEqual(await readdir(sandbox), [], 'the sandbox keeps nothing of a refused archive');
  }

  describe('tar links', function () {
    it('extracts a legitimate hard link to a file extracted earlier (also in the ./ form of `tar -C dir .`)', async function () {
      const uri = await publish(
        'ok.tar',
        rawTar([
          { name: './', type: '5' },
          { name: './bin/', type: '5' },
          { name: './bin/tool', body: 'tool', mode: 0o755 },
          { name: './bin/alias', type: '1', linkname: './bin/tool' },
          { name: 'top', type: '1', linkname: 'bin/tool' },
        ]),
      );
      await fetchUris([{ value: uri }], sandbox, opts());
      const a = await stat(path.join(sandbox, 'bin/tool'));
      const b = await stat(path.join(sandbox, 'bin/alias'));
      assert.equal(a.ino, b.ino);
      assert.equal(a.nlink, 3);
      assert.equal(await readFile(path.join(sandbox, 'top'), 'utf8'), 'tool');
      await assertNothingEscaped();
    });

    const hostile: Array<[string, TarEntry[], RegExp]> = [
      [
        'a hard link to a file outside (relative)',
        [{ name: 'h', type: '1', linkname: '../outside/secret' }],
        /'h' is a link to '\.\.\/outside\/secret', outside the sandbox/,
      ],
      [
        'a hard link to a path the archive never extracted',
        [{ name: 'h', type: '1', linkname: 'etc/passwd' }],
        /'h' is a hard link to 'etc\/passwd', which is not a regular file extracted earlier/,
      ],
      [
        'a hard link to a file that comes later in the archive',
        [{ name: 'h', type: '1', linkname: 'later' }, { name: 'later', body: 'x' }],
        /'h' is a hard link to 'later', which is not a regular file extracted earlier/,
      ],
      [
        'a hard link to a directory',
        [{ name: 'd/', type: '5' }, { name: 'h', type: '1', linkname: 'd' }],
        /'h' is a hard link to 'd', which is not a regular file extracted earlier/,
      ],
      [
        'a hard link to a symlink',
        [{ name: 'f', body: 'x' }, { name: 's', type: '2', linkname: 'f' }, { name: 'h', type: '1', linkname: 's' }],
        /'h' is a hard link to 's' through the archive's symlink 's'/,
      ],
      [
        'a hard link to a name that was a file and then became a symlink',
        [
          { name: 'sub/', type: '5' },
          { name: 'sub/x', body: 'x' },
          { name: 'sub/x', type: '2', linkname: '..' },
          { name: 'h', type: '1', linkname: 'sub/x' },
        ],
        /'h' is a hard link to 'sub\/x' through the archive's symlink 'sub\/x'/,
      ],
      [
        'a hard link through a symlinked directory component',
        [
          { name: 'real/', type: '5' },
          { name: 'real/f', body: 'x' },
          { name: 'd', type: '2', linkname: 'real' },
          { name: 'h', type: '1', linkname: 'd/f' },
        ],
        /'h' is a hard link to 'd\/f' through the archive's symlink 'd'/,
      ],
      [
        "a hard link whose target uses '..' through a symlink (lexically a known file)",
        [
          { name: 'f', body: 'x' },
          { name: 'b', type: '2', linkname: '.' },
          { name: 'x', type: '2', linkname: 'b/..' },
          { name: 'h', type: '1', linkname: 'x/../f' },
        ],
        /'h' is a hard link to 'x\/\.\.\/f', which is not a plain path to a file extracted earlier/,
      ],
      [
        'a symlink chain escaping (a -> ., d -> a/..) then a file written through it',
        [
          { name: 'a', type: '2', linkname: '.' },
          { name: 'd', type: '2', linkname: 'a/..' },
          { name: 'd/outside/evil', body: 'x' },
        ],
        /'d\/outside\/evil' would be written through the archive's symlink 'd'/,
      ],
      [
        'a symlink chain escaping and left for the container (a -> ., d -> a/../outside)',
        [
          { name: 'a', type: '2', linkname: '.' },
          { name: 'd', type: '2', linkname: 'a/../outside' },
        ],
        /archive symlink 'd' -> 'a\/\.\.\/outside' (resolves outside|is dangling and uses)/,
      ],
      [
        'a symlinked directory then a file written through it',
        [
          { name: 'real/', type: '5' },
          { name: 'd', type: '2', linkname: 'real' },
          { name: 'd/f', body: 'x' },
        ],
        /'d\/f' would be written through the archive's symlink 'd'/,
      ],
      [
        'a symlink replaced by a directory, then a file below it',
        [
          { name: 'd', type: '2', linkname: '.' },
          { name: 'd/', type: '5' },
          { name: 'd/f', body: 'x' },
        ],
        /would be written through the archive's symlink 'd'/,
      ],
    ];
    for (const [what, entries, why] of hostile) {
      it(`refuses ${what}`, async function () {
        await refused(await publish('evil.tar', rawTar(entries)), why);
      });
    }

    it('post-check: a file hard-linked to something outside the tree is refused', async function () {
      const tree = path.join(root, 'sandbox', 'tree');
      await mkdir(tree);
      await link(secret, path.join(tree, 'stolen'));
      await assert.rejects(assertSymlinksConfined(tree), /'stolen' is hard-linked to a file outside the sandbox \(2 links, 1 inside\)/);
      await writeFile(path.join(tree, 'mine'), 'm');
      await rm(path.join(tree, 'stolen'));
      await link(path.join(tree, 'mine'), path.join(tree, 'also-mine'));
      await assertSymlinksConfined(tree);
    });
  });

  describe('bombs', function () {
    it('refuses a tar with more entries than archiveMaxEntries', async function () {
      await refused(await publish('many.tar.gz', manyEntriesTarGz(50)), /more than 20 entries \(--archive_max_entries; at entry 'f20'\)/, {
        archiveMaxEntries: 20,
      });
    });

    it('accepts a tar with exactly archiveMaxEntries entries', async function () {
      const uri = await publish('many.tar.gz', manyEntriesTarGz(20));
      await fetchUris([{ value: uri }], sandbox, opts({ archiveMaxEntries: 20 }));
      assert.equal((await readdir(sandbox)).length, 21);
    });

    it('refuses a gzip bomb (100 MiB of zeros in a small .tar.gz) past archiveMaxBytes before writing it', async function () {
      const bomb = await gzipTarBomb('zeros', 100 * 1024 * 1024);
      assert.ok(bomb.length < 1024 * 1024, `bomb is ${bomb.length} bytes`);
      await refused(await publish('bomb.tar.gz', bomb), /extracted size exceeds the limit of 1048576 bytes \(--archive_max_bytes; at entry 'zeros'\)/, {
        archiveMaxBytes: 1024 * 1024,
      });
    });

    it('refuses a tar whose small entries add up past archiveMaxBytes', async function () {
      const entries = Array.from({ length: 10 }, (_, i) => ({ name: `part${i}`, body: Buffer.alloc(1000, i) }));
      await refused(await publish('parts.tar', rawTar(entries)), /exceeds the limit of 4500 bytes \(--archive_max_bytes; at entry 'part4'\)/, {
        archiveMaxBytes: 4500,
      });
    });

    it('refuses a zip with more entries than archiveMaxEntries, before extracting any', async function () {
      const entries = Array.from({ length: 30 }, (_, i) => ({ name: `f${i}`, body: 'x' }));
      await refused(await publish('many.zip', buildZip(entries)), /archive has more than 10 entries \(--archive_max_entries\)/, {
        archiveMaxEntries: 10,
      });
    });

    it('refuses a zip bomb by its declared size before inflating it', async function () {
      const zeros = await deflatedZeros(50 * 1024 * 1024);
      const zip = buildZip([{ name: 'zeros', rawDeflated: zeros, declaredSize: 50 * 1024 * 1024 }]);
      assert.ok(zip.length < 1024 * 1024);
      await refused(await publish('bomb.zip', zip), /limit of 1048576 bytes \(--archive_max_bytes; entry 'zeros' declares 52428800\)/, {
        archiveMaxBytes: 1024 * 1024,
      });
    });

    it('refuses a zip bomb that lies about its size, by the bytes really inflated', async function () {
      const zeros = await deflatedZeros(50 * 1024 * 1024);
      // Declares 1000 bytes; the real stream inflates to 50 MiB.
      const zip = buildZip([{ name: 'zeros', rawDeflated: zeros, declaredSize: 1000 }]);
      await refused(await publish('liar.zip', zip), /too many bytes in the stream|extracted size exceeds/, {
        archiveMaxBytes: 1024 * 1024,
      });
    });

    it('refuses zip entries that together inflate past archiveMaxBytes', async function () {
      const entries = Array.from({ length: 5 }, (_, i) => ({ name: `p${i}`, body: Buffer.alloc(1000, i), deflate: true }));
      await refused(await publish('parts.zip', buildZip(entries)), /limit of 2500 bytes \(--archive_max_bytes; entry 'p2' declares 1000\)/, {
        archiveMaxBytes: 2500,
      });
    });

    it('a gzip stream that inflates to junk is a refusal, not a hang', async function () {
      await refused(await publish('junk.tgz', zlib.gzipSync(Buffer.alloc(100_000, 0x41))), /.+/);
    });
  });

  it('leaves no scratch behind and keeps modes sane on a legitimate zip beside the caps', async function () {
    const uri = await publish('ok.zip', buildZip([{ name: 'a/', mode: 0o040755 }, { name: 'a/b', body: 'b', deflate: true }]));
    await fetchUris([{ value: uri }], sandbox, opts({ archiveMaxEntries: 2, archiveMaxBytes: 1 }));
    assert.deepEqual((await readdir(sandbox)).sort(), ['a', 'ok.zip']);
    assert.ok((await lstat(path.join(sandbox, 'a'))).isDirectory());
  });
});
