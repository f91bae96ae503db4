// Behaviours replayed from Apache Mesos' fetcher tests: plain .gz files gunzipped, a zip with a bad
// CRC refused, whitespace around a URI trimmed, the fetcher's own lines in the sandbox's stderr
// (never a credential), and local files read with the task user's rights, never root's.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import { create } from '@bufbuild/protobuf';
import { ContainerConfigSchema } from '../../src/gen/mesos/slave/containerizer_pb.js';
import { ContainerInfo_Type } from '../../src/gen/mesos/v1/mesos_pb.js';
import { resolveLaunchSpec } from '../../src/containerizer/launch-spec.js';
import { fetchUris, FetchFailed, type FetchedUri, type FetchOptions } from '../../src/fetcher/fetcher.js';
import { openLocalFileAs, readAsUserOf, NOBODY } from '../../src/fetcher/read-as-user.js';
import { redactUri } from '../../src/fetcher/redact-uri.js';
import { buildZip } from '../support/crafted-archives.js';

describe('fetcher: behaviours from Mesos fetcher tests', function () {
  let server: Server;
  let base: string;
  const files = new Map<string, Buffer>();
  let root: string;
  let sandbox: string;
  let allowed: string;

  const opts = (extra: Partial<FetchOptions> = {}): FetchOptions => ({
    signal: new AbortController().signal,
    network: { allowLoopback: true, denyPrivate: false },
    filePrefixes: [allowed],
    ...extra,
  });
  const serve = (name: string, body: string | Buffer) => files.set(`/${name}`, Buffer.from(body));
  const sandboxListing = async () => (await readdir(sandbox)).sort();

  before(async function () {
    server = createServer((req, res) => {
      const body = files.get(new URL(req.url ?? '/', 'http://x').pathname);
      if (!body) {
        res.writeHead(404);
        return res.end();
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(body);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(function () {
    server.closeAllConnections();
    server.close();
  });

  beforeEach(async function () {
    files.clear();
    root = await mkdtemp(path.join(os.tmpdir(), 'berth-fetcher-fixes-'));
    sandbox = path.join(root, 'sandbox');
    allowed = path.join(root, 'allowed');
    await mkdir(sandbox);
    await mkdir(allowed);
  });

  afterEach(async function () {
    await rm(root, { recursive: true, force: true });
  });

  describe('plain .gz files', function () {
    it('are gunzipped next to the archive when extract is set (the name without .gz), as Mesos does', async function () {
      serve('notes.txt.gz', zlib.gzipSync('line one\nline two\n'));
      await fetchUris([{ value: `${base}/notes.txt.gz` }], sandbox, opts());
      assert.equal(await readFile(path.join(sandbox, 'notes.txt'), 'utf8'), 'line one\nline two\n');
      assert.deepEqual(await sandboxListing(), ['notes.txt', 'notes.txt.gz']);
    });

    it('named by output_file, land gunzipped in the sandbox root; with extract=false or executable they stay gzipped', async function () {
      serve('blob', zlib.gzipSync('payload'));
      await fetchUris([{ value: `${base}/blob`, outputFile: 'sub/data.gz' }], sandbox, opts());
      assert.equal(await readFile(path.join(sandbox, 'data'), 'utf8'), 'payload');
      await rm(sandbox, { recursive: true });
      await mkdir(sandbox);
      await fetchUris([{ value: `${base}/blob`, outputFile: 'kept.gz', extract: false }, { value: `${base}/blob`, outputFile: 'tool.gz', executable: true }], sandbox, opts());
      assert.deepEqual(await sandboxListing(), ['kept.gz', 'tool.gz']);
    });

    it('concatenated gzip members are all decoded, as gunzip does', async function () {
      serve('two.gz', Buffer.concat([zlib.gzipSync('first-'), zlib.gzipSync('second')]));
      await fetchUris([{ value: `${base}/two.gz` }], sandbox, opts());
      assert.equal(await readFile(path.join(sandbox, 'two'), 'utf8'), 'first-second');
    });

    it('a corrupt .gz fails the fetch naming the URI, and leaves nothing in the sandbox', async function () {
      const good = zlib.gzipSync('x'.repeat(1000));
      const corrupt = Buffer.concat([good.subarray(0, 10), Buffer.alloc(good.length - 10, 0xff)]);
      serve('bad.gz', corrupt);
      await assert.rejects(fetchUris([{ value: `${base}/bad.gz` }], sandbox, opts()), (err: unknown) => {
        assert.ok(err instanceof FetchFailed);
        assert.match(err.message, /fetching '.*\/bad\.gz' \(command_info\.uris\[0\]\) failed: could not gunzip it into 'bad'/);
        return true;
      });
      assert.deepEqual(await sandboxListing(), []);
    });

    it('a gzip bomb stops at the extraction budget', async function () {
      serve('bomb.gz', zlib.gzipSync(Buffer.alloc(1024 * 1024)));
      await assert.rejects(fetchUris([{ value: `${base}/bomb.gz` }], sandbox, opts({ archiveMaxBytes: 64 * 1024 })), /gunzipped size exceeds the limit of 65536 bytes \(--archive_max_bytes/);
      assert.deepEqual(await sandboxListing(), []);
    });
  });

  describe('zip CRC-32', function () {
    it('a zip entry whose bytes do not match its CRC fails the fetch naming the entry (stored and deflated)', async function () {
      const body = Buffer.from('the real contents\n');
      const wrong = (zlib.crc32(body) ^ 0x5a5a5a5a) >>> 0;
      for (const deflate of [false, true]) {
        const zip = buildZip([
          { name: 'fine.txt', body: 'ok' },
          deflate ? { name: 'dir/broken.txt', rawDeflated: { data: zlib.deflateRawSync(body), crc: wrong }, declaredSize: body.length } : { name: 'dir/broken.txt', body },
        ]);
        if (!deflate) {
          // Stored entry: flip one byte of its data after the headers were written with the right CRC.
          const at = zip.indexOf(body);
          zip[at] = zip[at]! ^ 0x01;
        }
        serve('a.zip', zip);
        await assert.rejects(fetchUris([{ value: `${base}/a.zip` }], sandbox, opts()), (err: unknown) => {
          assert.ok(err instanceof FetchFailed, String(err));
          assert.match(err.message, /archive entry 'dir\/broken\.txt' is corrupt: its CRC-32 is 0x[0-9a-f]{8}, the archive records 0x[0-9a-f]{8}/);
          return true;
        });
        assert.deepEqual(await sandboxListing(), [], 'nothing of the archive is left');
      }
    });

    it('a zip whose CRCs match extracts as before, symlinks included', async function () {
      serve('ok.zip', buildZip([{ name: 'a/b.txt', body: 'bee', deflate: true }, { name: 'a/link', body: 'b.txt', mode: 0o120777 }]));
      await fetchUris([{ value: `${base}/ok.zip` }], sandbox, opts());
      assert.equal(await readFile(path.join(sandbox, 'a', 'link'), 'utf8'), 'bee');
    });
  });

  describe('whitespace around a URI', function () {
    it('is trimmed when the launch is resolved, and the trimmed URI is fetched', async function () {
      serve('a.txt', 'alpha');
      const config = create(ContainerConfigSchema, {
        commandInfo: { value: 'true', uris: [{ value: `  \t${base}/a.txt \n`, cache: true }] },
        containerInfo: { type: ContainerInfo_Type.DOCKER, docker: { image: 'busybox' } },
      });
      const spec = resolveLaunchSpec('c1', config, {});
      assert.deepEqual(spec.uris, [{ value: `${base}/a.txt`, executable: false, extract: true, outputFile: undefined, cache: true }]);
      await fetchUris(spec.uris, sandbox, opts());
      assert.equal(await readFile(path.join(sandbox, 'a.txt'), 'utf8'), 'alpha');
    });
  });

  describe("the fetcher's lines in the sandbox's stderr", function () {
    it("appends Mesos' lines (Fetching URI, Extracted, Fetched) after what the file held, in glog's format", async function () {
      await writeFile(path.join(sandbox, 'stderr'), 'earlier line\n');
      serve('notes.txt.gz', zlib.gzipSync('n'));
      serve('plain.txt', 'p');
      await fetchUris([{ value: `${base}/notes.txt.gz` }, { value: `${base}/plain.txt` }], sandbox, opts({ logFile: 'stderr' }));
      const lines = (await readFile(path.join(sandbox, 'stderr'), 'utf8')).split('\n');
      assert.equal(lines[0], 'earlier line');
      const messages = lines.slice(1, -1).map((l) => {
        assert.match(l, /^[IWE]\d{4} \d{2}:\d{2}:\d{2}\.\d{6} fetcher\] /);
        return l.replace(/^.*? fetcher\] /, '');
      });
      assert.deepEqual(messages, [
        `Fetching URI '${base}/notes.txt.gz'`,
        'Fetching directly into the sandbox directory',
        `Extracted '${path.join(sandbox, 'notes.txt.gz')}' into '${sandbox}'`,
        `Fetched '${base}/notes.txt.gz' to '${path.join(sandbox, 'notes.txt.gz')}'`,
        `Fetching URI '${base}/plain.txt'`,
        'Fetching directly into the sandbox directory',
        `Fetched '${base}/plain.txt' to '${path.join(sandbox, 'plain.txt')}'`,
      ]);
    });

    it('never shows a credential: lines, events and errors carry *** for user:password', async function () {
      serve('private.txt', 'secret stuff');
      const withCreds = base.replace('http://', 'http://deploy:s3cr%40t@');
      const shown = base.replace('http://', 'http://***@');
      const events: FetchedUri[] = [];
      await fetchUris([{ value: `${withCreds}/private.txt` }], sandbox, opts({ logFile: 'stderr', onFetched: (r) => events.push(r) }));
      await assert.rejects(fetchUris([{ value: `${withCreds}/missing.txt` }], sandbox, opts({ logFile: 'stderr' })), (err: unknown) => {
        assert.ok(err instanceof FetchFailed);
        assert.ok(err.message.includes(`'${shown}/missing.txt'`), err.message);
        assert.ok(!/s3cr|deploy/.test(err.message), err.message);
        return true;
      });
      const log = await readFile(path.join(sandbox, 'stderr'), 'utf8');
      assert.ok(!/s3cr|deploy/.test(log), log);
      assert.match(log, new RegExp(`Fetching URI '${escape(shown)}/private\\.txt'`));
      assert.match(log, new RegExp(`E\\d{4} .* fetcher\\] Failed to fetch '${escape(shown)}/missing\\.txt': HTTP 404`));
      assert.deepEqual(events, [{ uriIndex: 0, uri: `${shown}/private.txt`, cache: 'NOT_CACHED', bytes: 12 }]);
    });

    it('a symlink planted at the log file name is not followed', async function () {
      const outside = path.join(root, 'outside.txt');
      await writeFile(outside, 'untouched');
      await symlink(outside, path.join(sandbox, 'stderr'));
      serve('a.txt', 'a');
      await fetchUris([{ value: `${base}/a.txt` }], sandbox, opts({ logFile: 'stderr' }));
      assert.equal(await readFile(outside, 'utf8'), 'untouched');
      assert.equal(await readFile(path.join(sandbox, 'a.txt'), 'utf8'), 'a');
    });

    it('no URIs, no lines', async function () {
      await fetchUris([], sandbox, opts({ logFile: 'stderr' }));
      assert.deepEqual(await sandboxListing(), []);
    });
  });

  describe('redactUri', function () {
    it('replaces the userinfo only, keeping the rest as written', function () {
      assert.equal(redactUri('https://u:p@host:8443/a@b?c=@#@'), 'https://***@host:8443/a@b?c=@#@');
      assert.equal(redactUri('http://a@b@host/x'), 'http://***@host/x');
      assert.equal(redactUri('http://host/x@y'), 'http://host/x@y');
      assert.equal(redactUri('/plain/path@1'), '/plain/path@1');
      assert.equal(redactUri('file:///a@b'), 'file:///a@b');
    });
  });

  describe('file:// reads run with the task user’s rights', function () {
    // The test root is opened for everyone to traverse, so only the files' own bits decide.
    beforeEach(async function () {
      await chmod(root, 0o755);
      await chmod(allowed, 0o755);
    });

    const nobody = { name: 'nobody', uid: NOBODY, gid: NOBODY };

    it("a root-only 0600 file is refused for the task user 'nobody' (permission denied), and the sandbox stays empty", async function () {
      const secret = path.join(allowed, 'secret.txt');
      await writeFile(secret, 'root only', { mode: 0o600 });
      await assert.rejects(fetchUris([{ value: pathToFileURL(secret).href }], sandbox, opts({ user: nobody })), (err: unknown) => {
        assert.ok(err instanceof FetchFailed, String(err));
        assert.match(err.message, /as user 'nobody' \(uid 65534, gid 65534\) failed: EACCES: permission denied/);
        return true;
      });
      assert.deepEqual(await sandboxListing(), []);
    });

    it('the same file, world-readable, is fetched for nobody; without a task user, root reads the 0600 file as before', async function () {
      const shared = path.join(allowed, 'shared.txt');
      await writeFile(shared, 'for everyone', { mode: 0o644 });
      await fetchUris([{ value: shared }], sandbox, opts({ user: nobody }));
      assert.equal(await readFile(path.join(sandbox, 'shared.txt'), 'utf8'), 'for everyone');
      const secret = path.join(allowed, 'secret.txt');
      await writeFile(secret, 'root only', { mode: 0o600 });
      await fetchUris([{ value: secret }], sandbox, opts());
      assert.equal(await readFile(path.join(sandbox, 'secret.txt'), 'utf8'), 'root only');
    });

    it('a directory the user cannot search is refused, even when the file itself is world-readable', async function () {
      const dir = path.join(allowed, 'private');
      await mkdir(dir, { mode: 0o700 });
      await writeFile(path.join(dir, 'open.txt'), 'x', { mode: 0o644 });
      await assert.rejects(fetchUris([{ value: path.join(dir, 'open.txt') }], sandbox, opts({ user: nobody })), /EACCES: permission denied/);
    });

    it('a user unknown on the host reads as nobody, never as root', async function () {
      const user = await readAsUserOf({ name: 'ghost' });
      assert.deepEqual(user, { name: 'ghost', uid: NOBODY, gid: NOBODY, groups: [NOBODY] });
      const secret = path.join(allowed, 'secret.txt');
      await writeFile(secret, 'root only', { mode: 0o600 });
      await assert.rejects(fetchUris([{ value: secret }], sandbox, opts({ user: { name: 'ghost' } })), /as user 'ghost' \(uid 65534, gid 65534\).*EACCES/);
    });

    it("group bits count through the host's supplementary groups of the user", async function () {
      const groupFile = path.join(root, 'group');
      await writeFile(groupFile, 'root:x:0:\nbuilders:x:4242:bob,alice\nother:x:4343:bob\n');
      const alice = await readAsUserOf({ name: 'alice', uid: NOBODY, gid: NOBODY }, groupFile);
      assert.deepEqual(alice.groups.sort(), [4242, NOBODY].sort());
      const explicit = await readAsUserOf({ name: 'alice:other', uid: NOBODY, gid: 4343 }, groupFile);
      assert.deepEqual(explicit.groups, [4343], "an explicit ':group' is the only group");
      const team = path.join(allowed, 'team.txt');
      await writeFile(team, 'for builders', { mode: 0o640 });
      await chown(team, 0, 4242);
      const body = await openLocalFileAs(team, [allowed], alice);
      const chunks: Buffer[] = [];
      for await (const c of body.body) chunks.push(c);
      body.close();
      assert.equal(Buffer.concat(chunks).toString(), 'for builders');
      assert.equal(body.size, 12);
      await assert.rejects(openLocalFileAs(team, [allowed], { ...alice, groups: [NOBODY] }), /EACCES/);
    });

    it('the whole file arrives even when it is read only after the reader process has exited', async function () {
      const shared = path.join(allowed, 'shared.txt');
      await writeFile(shared, 'for everyone', { mode: 0o644 });
      const body = await openLocalFileAs(shared, [allowed], { name: 'nobody', uid: NOBODY, gid: NOBODY, groups: [NOBODY] });
      await body.readerExited;
      const chunks: Buffer[] = [];
      for await (const c of body.body) chunks.push(c);
      body.close();
      assert.equal(Buffer.concat(chunks).toString(), 'for everyone');
    });

    it('the policy still decides first: a path outside the prefixes is refused before any child runs', async function () {
      await assert.rejects(openLocalFileAs('/etc/hostname', [allowed], { name: 'nobody', uid: NOBODY, gid: NOBODY, groups: [NOBODY] }), /refused: '\/etc\/hostname'.* is not under an allowed prefix/);
    });
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
