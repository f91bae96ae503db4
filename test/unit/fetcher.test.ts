import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readdirSync, watch } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import * as tar from 'tar';
import {
  fetchUris,
  FetchFailed,
  FetchUriInvalid,
  validateFetchUris,
  type FetchOptions,
  type FetchUri,
} from '../../src/fetcher/fetcher.js';
import { buildZip, rawTar, type TarEntry, type ZipEntry } from '../support/crafted-archives.js';

// Hostile archives are written byte by byte by the shared builders (node-tar's packer refuses
// '..' and absolute names; yauzl only reads zips).

// ---------------------------------------------------------------------------------------------
// Fixtures: a local HTTP server serving an in-memory file map, and per-test temp dirs laid out as
// <root>/sandbox plus <root>/outside, so "nothing escaped" is a listing of <root>.

type Handler = (res: ServerResponse) => void;

describe('fetcher', function () {
  let server: Server;
  let base: string;
  const routes = new Map<string, Handler>();
  let root: string;
  let sandbox: string;
  let outside: string;
  let controller: AbortController;

  // Local servers on 127.0.0.1 and local files under <root>/outside: both doors are closed by default.
  const opts = (extra: Partial<FetchOptions> = {}): FetchOptions => ({
    signal: controller.signal,
    network: { allowLoopback: true, denyPrivate: false },
    filePrefixes: [outside],
    ...extra,
  });
  const serve = (p: string, body: string | Buffer, headers: Record<string, string> = {}) =>
    routes.set(p, (res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', ...headers });
      res.end(body);
    });
  const scratchLeft = async () => (await readdir(sandbox)).filter((n) => n.startsWith('.berth-'));
  const assertOutsideUntouched = async () => {
    assert.deepEqual((await readdir(root)).sort(), ['outside', 'sandbox']);
    assert.deepEqual(await readdir(outside), []);
  };

  before(async function () {
    server = createServer((req, res) => {
      const handler = routes.get(new URL(req.url ?? '/', 'http://x').pathname);
      if (handler) return handler(res);
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async function () {
    server.closeAllConnections();
    server.close();
  });

  beforeEach(async function () {
    routes.clear();
    root = await mkdtemp(path.join(os.tmpdir(), 'berth-fetcher-'));
    sandbox = path.join(root, 'sandbox');
    outside = path.join(root, 'outside');
    await mkdir(sandbox);
    await mkdir(outside);
    controller = new AbortController();
  });

  afterEach(async function () {
    controller.abort(new Error('test over'));
    await rm(root, { recursive: true, force: true });
  });

  describe('validateFetchUris', function () {
    const invalid = (uris: FetchUri[], pattern: RegExp) =>
      assert.throws(() => validateFetchUris(uris), (err: unknown) => {
        assert.ok(err instanceof FetchUriInvalid, `expected FetchUriInvalid, got ${String(err)}`);
        assert.match(err.message, pattern);
        return true;
      });

    it('accepts http, https, file URIs and absolute paths', function () {
      validateFetchUris([
        { value: 'http://example.test/a.txt' },
        { value: 'https://example.test/dir/b.tar.gz' },
        { value: 'file:///etc/hostname' },
        { value: '/etc/hostname' },
        { value: 'http://example.test/', outputFile: 'index.html' },
      ]);
    });

    for (const value of ['ftp://h/x', 'hdfs://nn/x', 's3://bucket/x', 'data:text/plain,hi', 'relative/path', 'x']) {
      it(`rejects the unsupported URI '${value}' naming the field and value`, function () {
        invalid([{ value: 'http://ok.test/a' }, { value }], new RegExp(`command_info\\.uris\\[1\\]\\.value '${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`));
      });
    }

    it('rejects an empty value', function () {
      invalid([{ value: '' }], /command_info\.uris\[0\]\.value is empty/);
    });

    it('rejects control characters in the value and in output_file', function () {
      invalid([{ value: 'http://h/a\nb' }], /uris\[0\]\.value .*control character/);
      invalid([{ value: 'http://h/a', outputFile: 'a\u0000b' }], /uris\[0\]\.output_file .*control character/);
    });

    it("rejects output_file that is absolute, has '..' or names no file", function () {
      invalid([{ value: 'http://h/a', outputFile: '/etc/passwd' }], /output_file "\/etc\/passwd" is absolute/);
      invalid([{ value: 'http://h/a', outputFile: '../evil' }], /output_file "\.\.\/evil" contains a '\.\.' segment/);
      invalid([{ value: 'http://h/a', outputFile: 'a/../../evil' }], /contains a '\.\.' segment/);
      invalid([{ value: 'http://h/a', outputFile: 'dir/' }], /does not end in a file name/);
    });

    it('rejects a URI whose last segment is not a usable name when output_file is absent', function () {
      invalid([{ value: 'http://h/' }], /has no usable file name/);
      invalid([{ value: 'http://h/a/%2e%2e' }], /has no usable file name/);
      invalid([{ value: 'http://h/a%2Fb' }], /has no usable file name/);
    });

    it('fetchUris rejects an invalid list before touching the network or the disk', async function () {
      let hits = 0;
      routes.set('/a.txt', (res) => {
        hits++;
        res.end('a');
      });
      await assert.rejects(
        fetchUris([{ value: `${base}/a.txt` }, { value: 'ftp://h/x' }], sandbox, opts()),
        FetchUriInvalid,
      );
      assert.equal(hits, 0);
      assert.deepEqual(await readdir(sandbox), []);
    });
  });

  describe('downloads', function () {
    it('downloads over http into the sandbox under the URL-decoded last segment', async function () {
      serve('/files/hello%20world.txt', 'hello');
      const seen: number[] = [];
      await fetchUris([{ value: `${base}/files/hello%20world.txt` }], sandbox, opts({ onProgress: (_u, b) => seen.push(b) }));
      assert.equal(await readFile(path.join(sandbox, 'hello world.txt'), 'utf8'), 'hello');
      assert.deepEqual(seen, [5]);
      assert.deepEqual(await scratchLeft(), []);
    });

    it('follows redirects and names the file after the original URI', async function () {
      serve('/real/target.bin', 'payload');
      routes.set('/moved.txt', (res) => {
        res.writeHead(302, { location: '/real/target.bin' });
        res.end();
      });
      await fetchUris([{ value: `${base}/moved.txt` }], sandbox, opts());
      assert.equal(await readFile(path.join(sandbox, 'moved.txt'), 'utf8'), 'payload');
    });

    it('fails with FetchFailed naming the URI and the HTTP status on 404, leaving nothing behind', async function () {
      const uri = `${base}/missing.txt`;
      await assert.rejects(fetchUris([{ value: uri }], sandbox, opts()), (err: unknown) => {
        assert.ok(err instanceof FetchFailed);
        assert.ok(err.message.includes(`'${uri}'`), err.message);
        assert.match(err.message, /HTTP 404/);
        return true;
      });
      assert.deepEqual(await readdir(sandbox), []);
    });

    it('fetches URIs sequentially in order, a later one overwriting an earlier one', async function () {
      const order: string[] = [];
      routes.set('/one/same.txt', (res) => {
        order.push('one');
        res.end('first');
      });
      routes.set('/two/same.txt', (res) => {
        order.push('two');
        res.end('second');
      });
      await fetchUris([{ value: `${base}/one/same.txt` }, { value: `${base}/two/same.txt` }], sandbox, opts());
      assert.deepEqual(order, ['one', 'two']);
      assert.equal(await readFile(path.join(sandbox, 'same.txt'), 'utf8'), 'second');
    });

    it('copies file:// URIs and bare absolute paths from the local filesystem', async function () {
      const src = path.join(outside, 'local data.txt');
      await writeFile(src, 'local');
      await fetchUris(
        [{ value: pathToFileURL(src).href }, { value: src, outputFile: 'copy.txt' }],
        sandbox,
        opts(),
      );
      assert.equal(await readFile(path.join(sandbox, 'local data.txt'), 'utf8'), 'local');
      assert.equal(await readFile(path.join(sandbox, 'copy.txt'), 'utf8'), 'local');
      await rm(src);
    });

    it('fails clearly when a local source is missing', async function () {
      await assert.rejects(fetchUris([{ value: path.join(outside, 'nope') }], sandbox, opts()), /nope.*ENOENT/);
    });

    it('marks executable URIs 0755 and never extracts them', async function () {
      serve('/tool.tar.gz', 'not really an archive');
      await fetchUris([{ value: `${base}/tool.tar.gz`, executable: true }], sandbox, opts());
      const st = await stat(path.join(sandbox, 'tool.tar.gz'));
      assert.equal(st.mode & 0o777, 0o755);
      assert.deepEqual(await readdir(sandbox), ['tool.tar.gz']);
    });

    it('writes output_file into a subdirectory it creates', async function () {
      serve('/x', 'content');
      await fetchUris([{ value: `${base}/x`, outputFile: 'deep/er/name.txt' }], sandbox, opts());
      assert.equal(await readFile(path.join(sandbox, 'deep/er/name.txt'), 'utf8'), 'content');
    });

    it('refuses an output_file whose directory is a planted symlink pointing outside', async function () {
      serve('/x', 'content');
      await symlink(outside, path.join(sandbox, 'planted'));
      await assert.rejects(
        fetchUris([{ value: `${base}/x`, outputFile: 'planted/x.txt' }], sandbox, opts()),
        /'planted' in the sandbox is a symlink/,
      );
      await assertOutsideUntouched();
      assert.deepEqual(await scratchLeft(), []);
    });

    it('replaces a planted symlink at the destination name instead of writing through it', async function () {
      serve('/hello.txt', 'new');
      const victim = path.join(outside, 'victim');
      await writeFile(victim, 'precious');
      await symlink(victim, path.join(sandbox, 'hello.txt'));
      await fetchUris([{ value: `${base}/hello.txt` }], sandbox, opts());
      assert.equal(await readFile(victim, 'utf8'), 'precious');
      assert.ok(!(await lstat(path.join(sandbox, 'hello.txt'))).isSymbolicLink());
      assert.equal(await readFile(path.join(sandbox, 'hello.txt'), 'utf8'), 'new');
    });

    it('caps a download at maxBytes, with or without Content-Length, and removes the partial file', async function () {
      const big = Buffer.alloc(100_000, 1);
      serve('/declared.bin', big);
      routes.set('/chunked.bin', (res) => {
        res.writeHead(200); // no content-length: chunked encoding
        res.write(big.subarray(0, 50_000));
        res.end(big.subarray(50_000));
      });
      for (const name of ['declared.bin', 'chunked.bin']) {
        await assert.rejects(
          fetchUris([{ value: `${base}/${name}` }], sandbox, opts({ maxBytes: 10_000 })),
          (err: unknown) => err instanceof FetchFailed && /exceeds the limit of 10000 bytes/.test(err.message),
        );
        assert.deepEqual(await readdir(sandbox), []);
      }
    });

    it('abort during a trickling download rejects promptly with the reason and leaves no temp file', async function () {
      let responses = 0;
      routes.set('/slow.bin', (res) => {
        responses++;
        res.writeHead(200);
        const timer = setInterval(() => res.write(Buffer.alloc(16, 7)), 20);
        res.on('close', () => clearInterval(timer));
      });
      const reason = new Error('container destroyed');
      let firstBytes!: () => void;
      const gotBytes = new Promise<void>((resolve) => (firstBytes = resolve));
      const pendingFetch = fetchUris([{ value: `${base}/slow.bin` }], sandbox, opts({
        // The temp file is opened asynchronously; wait (on progress events, not a timer) until it is there.
        onProgress: () => {
          if (readdirSync(sandbox).some((n) => n.startsWith('.berth-fetch-'))) firstBytes();
        },
      }));
      await gotBytes;
      controller.abort(reason);
      // The server streams forever, so settling at all (with the abort's reason) is the proof.
      await assert.rejects(pendingFetch, (err: unknown) => err === reason);
      assert.deepEqual(await readdir(sandbox), []);
      assert.equal(responses, 1);
    });

    it('an already-aborted signal rejects with its reason and fetches nothing', async function () {
      serve('/a.txt', 'a');
      const reason = new Error('gone');
      controller.abort(reason);
      await assert.rejects(fetchUris([{ value: `${base}/a.txt` }], sandbox, opts()), (err: unknown) => err === reason);
      assert.deepEqual(await readdir(sandbox), []);
    });
  });

  describe('abort during extraction', function () {
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `f${i}.bin`, body: Buffer.alloc(64_000, i) }));
    const archives: Array<[string, () => Buffer]> = [
      ['big.tar.gz', () => zlib.gzipSync(rawTar(many(100)))],
      ['big.zip', () => buildZip(many(100).map((e) => ({ ...e, deflate: true })))],
    ];
    for (const [name, build] of archives) {
      it(`aborting once ${name} starts extracting rejects with the reason and leaves the sandbox empty`, async function () {
        serve(`/${name}`, build());
        const reason = new Error('destroyed while extracting');
        // Abort on the event of the scratch directory appearing, wherever the extraction then is.
        const watcher = watch(sandbox, (_event, file) => {
          if (String(file).startsWith('.berth-extract-')) controller.abort(reason);
        });
        try {
          await assert.rejects(fetchUris([{ value: `${base}/${name}` }], sandbox, opts()), (err: unknown) => err === reason);
        } finally {
          watcher.close();
        }
        assert.deepEqual(await readdir(sandbox), []);
      });
    }
  });

  describe('tar extraction', function () {
    it('extracts a tar.gz built with node-tar into the sandbox, keeping the archive and modes', async function () {
      const src = path.join(outside, 'src');
      await mkdir(path.join(src, 'bin'), { recursive: true });
      await writeFile(path.join(src, 'bin', 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
      await writeFile(path.join(src, 'README'), 'readme', { mode: 0o644 });
      await symlink('bin/run.sh', path.join(src, 'run'));
      const archive = path.join(outside, 'app.tar.gz');
      await tar.c({ gzip: true, cwd: src, file: archive, portable: true }, ['bin', 'README', 'run']);
      serve('/app.tar.gz', await readFile(archive));
      await rm(src, { recursive: true });
      await rm(archive);

      await fetchUris([{ value: `${base}/app.tar.gz` }], sandbox, opts());
      assert.deepEqual((await readdir(sandbox)).sort(), ['README', 'app.tar.gz', 'bin', 'run']);
      assert.equal((await stat(path.join(sandbox, 'bin/run.sh'))).mode & 0o777, 0o755);
      assert.equal((await stat(path.join(sandbox, 'README'))).mode & 0o777, 0o644);
      assert.equal(await readlink(path.join(sandbox, 'run')), 'bin/run.sh');
      assert.deepEqual(await scratchLeft(), []);
    });

    it('extracts next to output_file into the sandbox root, and not at all when extract is false', async function () {
      serve('/a.tgz', zlib.gzipSync(rawTar([{ name: 'inside.txt', body: 'in' }])));
      await fetchUris([{ value: `${base}/a.tgz`, outputFile: 'archives/b.tar.gz' }], sandbox, opts());
      assert.equal(await readFile(path.join(sandbox, 'inside.txt'), 'utf8'), 'in');
      assert.ok(existsSync(path.join(sandbox, 'archives/b.tar.gz')));

      serve('/keep.tar', rawTar([{ name: 'never.txt', body: 'x' }]));
      await fetchUris([{ value: `${base}/keep.tar`, extract: false }], sandbox, opts());
      assert.ok(!existsSync(path.join(sandbox, 'never.txt')));
      assert.ok(existsSync(path.join(sandbox, 'keep.tar')));
    });

    it('strips setuid/setgid bits from archive modes', async function () {
      serve('/s.tar', rawTar([{ name: 'suid', body: 'x', mode: 0o4755 }]));
      await fetchUris([{ value: `${base}/s.tar` }], sandbox, opts());
      assert.equal((await stat(path.join(sandbox, 'suid'))).mode & 0o7777, 0o755);
    });

    const hostile: Array<[string, () => TarEntry[], RegExp]> = [
      ['a ../evil entry', () => [{ name: 'ok.txt', body: 'ok' }, { name: '../evil', body: 'x' }], /'\.\.\/evil' contains '\.\.'/],
      ['an absolute entry', () => [{ name: path.join(outside, 'abs-evil'), body: 'x' }], /has an absolute path/],
      [
        'an absolute symlink then a write through it',
        () => [{ name: 'esc', type: '2', linkname: outside }, { name: 'esc/evil', body: 'x' }],
        /'esc' is a link to the absolute path/,
      ],
      [
        'a relative symlink out then a write through it',
        () => [{ name: 'esc', type: '2', linkname: '../outside' }, { name: 'esc/evil', body: 'x' }],
        /'esc' is a link to '\.\.\/outside', outside the sandbox/,
      ],
      [
        'a symlink chain that is lexically inside but really escapes',
        () => [{ name: 'b', type: '2', linkname: '.' }, { name: 'a', type: '2', linkname: 'b/../outside' }],
        /archive symlink 'a' -> 'b\/\.\.\/outside' (resolves outside|is dangling and uses)/,
      ],
      ['a hard link to an absolute path', () => [{ name: 'h', type: '1', linkname: '/etc/passwd' }], /'h' is a link to the absolute path/],
    ];
    for (const [what, entries, why] of hostile) {
      it(`fails the fetch on ${what}, writing nothing outside and keeping nothing of it`, async function () {
        serve('/evil.tar', rawTar(entries()));
        await assert.rejects(fetchUris([{ value: `${base}/evil.tar` }], sandbox, opts()), (err: unknown) => {
          assert.ok(err instanceof FetchFailed, String(err));
          assert.match(err.message, why);
          assert.ok(err.message.includes(`${base}/evil.tar`));
          return true;
        });
        await assertOutsideUntouched();
        assert.deepEqual(await readdir(sandbox), []);
      });
    }

    it('skips device files and FIFOs instead of creating them', async function () {
      serve('/dev.tar', rawTar([{ name: 'fifo', type: '3' }, { name: 'plain.txt', body: 'p' }]));
      await fetchUris([{ value: `${base}/dev.tar` }], sandbox, opts());
      assert.ok(!existsSync(path.join(sandbox, 'fifo')));
      assert.equal(await readFile(path.join(sandbox, 'plain.txt'), 'utf8'), 'p');
    });

    it('replaces a planted symlink to outside instead of extracting through it', async function () {
      await symlink(outside, path.join(sandbox, 'planted'));
      serve('/p.tar', rawTar([{ name: 'planted/', type: '5' }, { name: 'planted/evil', body: 'x' }]));
      await fetchUris([{ value: `${base}/p.tar` }], sandbox, opts());
      await assertOutsideUntouched();
      assert.ok((await lstat(path.join(sandbox, 'planted'))).isDirectory());
      assert.equal(await readFile(path.join(sandbox, 'planted/evil'), 'utf8'), 'x');
    });

    it('fails a tar whose content exceeds archiveMaxBytes once extracted', async function () {
      serve('/bomb.tar.gz', zlib.gzipSync(rawTar([{ name: 'zeros', body: Buffer.alloc(2_000_000) }])));
      await assert.rejects(
        fetchUris([{ value: `${base}/bomb.tar.gz` }], sandbox, opts({ archiveMaxBytes: 100_000 })),
        /extracted size exceeds the limit of 100000 bytes \(--archive_max_bytes; at entry 'zeros'\)/,
      );
      assert.deepEqual(await readdir(sandbox), []);
    });

    it('fails (and does not hang on) a tar.gz whose gzip stream is corrupt midway', async function () {
      const good = zlib.gzipSync(rawTar([{ name: 'a.txt', body: Buffer.alloc(200_000, 'a') }, { name: 'b.txt', body: 'b' }]));
      const corrupt = Buffer.from(good);
      corrupt.fill(0xff, 40, Math.min(corrupt.length - 8, 400));
      serve('/corrupt.tar.gz', corrupt);
      await assert.rejects(fetchUris([{ value: `${base}/corrupt.tar.gz` }], sandbox, opts()), FetchFailed);
      assert.deepEqual(await readdir(sandbox), []);
    });

    it('fails a doubly gzipped tar instead of handing the inner layer to node-tar', async function () {
      serve('/twice.tar.gz', zlib.gzipSync(zlib.gzipSync(rawTar([{ name: 'a.txt', body: 'a' }]))));
      await assert.rejects(fetchUris([{ value: `${base}/twice.tar.gz` }], sandbox, opts()), /compressed twice/);
      assert.deepEqual(await readdir(sandbox), []);
    });

    it('fails a .tar.gz that is not an archive', async function () {
      serve('/junk.tar.gz', 'this is not gzip');
      await assert.rejects(fetchUris([{ value: `${base}/junk.tar.gz` }], sandbox, opts()), FetchFailed);
      assert.deepEqual(await readdir(sandbox), []);
    });
  });

  describe('zip extraction', function () {
    it('extracts stored and deflated entries, honouring unix executable bits', async function () {
      serve(
        '/pkg.zip',
        buildZip([
          { name: 'pkg/' },
          { name: 'pkg/run.sh', body: '#!/bin/sh\n', mode: 0o100755 },
          { name: 'pkg/data.txt', body: 'd'.repeat(1000), deflate: true },
          { name: 'pkg/link', body: 'data.txt', mode: 0o120777 },
        ]),
      );
      await fetchUris([{ value: `${base}/pkg.zip` }], sandbox, opts());
      assert.deepEqual((await readdir(sandbox)).sort(), ['pkg', 'pkg.zip']);
      assert.equal((await stat(path.join(sandbox, 'pkg/run.sh'))).mode & 0o777, 0o755);
      assert.equal((await stat(path.join(sandbox, 'pkg/data.txt'))).mode & 0o777, 0o644);
      assert.equal(await readFile(path.join(sandbox, 'pkg/data.txt'), 'utf8'), 'd'.repeat(1000));
      assert.equal(await readlink(path.join(sandbox, 'pkg/link')), 'data.txt');
    });

    const hostile: Array<[string, ZipEntry[], RegExp]> = [
      ['a ../evil entry', [{ name: 'ok.txt', body: 'ok' }, { name: '../evil', body: 'x' }], /invalid relative path: \.\.\/evil/],
      ['an absolute entry', [{ name: '/tmp/berth-zip-evil', body: 'x' }], /absolute path: \/tmp\/berth-zip-evil/],
      ['a backslash entry', [{ name: '..\\evil', body: 'x' }], /invalid characters in fileName/],
      ['a symlink out', [{ name: 'esc', body: '../outside', mode: 0o120777 }], /symlink 'esc' -> '\.\.\/outside' points outside/],
      ['an absolute symlink', [{ name: 'esc', body: '/etc', mode: 0o120777 }], /symlink 'esc' has an unsafe target '\/etc'/],
    ];
    for (const [what, entries, why] of hostile) {
      it(`fails the fetch on ${what}, writing nothing outside and keeping nothing of it`, async function () {
        serve('/evil.zip', buildZip(entries));
        await assert.rejects(fetchUris([{ value: `${base}/evil.zip` }], sandbox, opts()), (err: unknown) => {
          assert.ok(err instanceof FetchFailed, String(err));
          assert.match(err.message, why);
          assert.ok(err.message.includes(`${base}/evil.zip`));
          return true;
        });
        await assertOutsideUntouched();
        assert.ok(!existsSync('/tmp/berth-zip-evil'));
        assert.deepEqual(await readdir(sandbox), []);
      });
    }

    it('fails a zip bomb against the archiveMaxBytes budget and removes everything', async function () {
      serve('/bomb.zip', buildZip([{ name: 'zeros', body: Buffer.alloc(5_000_000), deflate: true }]));
      await assert.rejects(
        fetchUris([{ value: `${base}/bomb.zip` }], sandbox, opts({ archiveMaxBytes: 100_000 })),
        /extracted size exceeds the limit of 100000 bytes/,
      );
      assert.deepEqual(await readdir(sandbox), []);
    });
  });
});
