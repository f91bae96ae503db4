import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { FetcherCache } from '../../src/fetcher/fetcher-cache.js';
import { fetchUris, FetchFailed, type FetchedUri, type FetchOptions, type FetchUri } from '../../src/fetcher/fetcher.js';
import { pollUntil } from '../harness/engine-control.js';

// A local http server on 127.0.0.1 counts the requests per path; a route may hold its answer until
// the test releases it, so "N fetches share one download" is shown without any timing.

type Route = (req: IncomingMessage, res: ServerResponse) => void;

describe('fetcher cache', function () {
  let server: Server;
  let base: string;
  const routes = new Map<string, Route>();
  const requests = new Map<string, number>();
  let root: string;
  let cacheDir: string;
  let sandboxes = 0;

  const serve = (p: string, body: string | Buffer) =>
    routes.set(p, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(body);
    });
  /** A route that answers only once `release()` is called; `arrived` resolves at the first request. */
  const held = (p: string, body: string) => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let arrived!: (req: IncomingMessage) => void;
    const first = new Promise<IncomingMessage>((r) => (arrived = r));
    routes.set(p, (req, res) => {
      arrived(req);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(Buffer.byteLength(body)) });
      res.write(body.slice(0, 1));
      void released.then(() => res.end(body.slice(1)));
    });
    return { release, first };
  };
  const count = (p: string) => requests.get(p) ?? 0;
  const newSandbox = async () => {
    const dir = path.join(root, `sandbox-${++sandboxes}`);
    await mkdir(dir);
    return dir;
  };
  const cacheFiles = async () => (await readdir(cacheDir)).sort();
  const run = async (cache: FetcherCache, uris: FetchUri[], extra: Partial<FetchOptions> = {}) => {
    const sandbox = await newSandbox();
    const results: FetchedUri[] = [];
    await fetchUris(uris, sandbox, {
      signal: new AbortController().signal,
      network: { allowLoopback: true, denyPrivate: false },
      cache,
      onFetched: (r) => results.push(r),
      ...extra,
    });
    return { sandbox, results };
  };

  before(async function () {
    server = createServer((req, res) => {
      const p = new URL(req.url ?? '/', 'http://x').pathname;
      requests.set(p, count(p) + 1);
      const route = routes.get(p);
      if (route) return route(req, res);
      res.writeHead(404);
      res.end('not found');
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
    routes.clear();
    requests.clear();
    root = await mkdtemp(path.join(os.tmpdir(), 'berth-fetcher-cache-'));
    cacheDir = path.join(root, 'cache');
  });

  afterEach(async function () {
    await rm(root, { recursive: true, force: true });
  });

  it('a second fetch of a cached URI is a HIT served without a request; the directory is 0700 and entries 0600', async function () {
    const cache = await FetcherCache.open(cacheDir, 1024);
    serve('/a.txt', 'alpha');
    const first = await run(cache, [{ value: `${base}/a.txt`, cache: true }]);
    const second = await run(cache, [{ value: `${base}/a.txt`, cache: true }]);
    assert.deepEqual(first.results, [{ uriIndex: 0, uri: `${base}/a.txt`, cache: 'MISS', bytes: 5 }]);
    assert.deepEqual(second.results, [{ uriIndex: 0, uri: `${base}/a.txt`, cache: 'HIT', bytes: 5 }]);
    assert.equal(count('/a.txt'), 1);
    assert.equal(await readFile(path.join(second.sandbox, 'a.txt'), 'utf8'), 'alpha');
    assert.equal((await stat(cacheDir)).mode & 0o777, 0o700);
    const [entry] = await cacheFiles();
    assert.match(entry!, /^[0-9a-f]{64}$/);
    assert.equal((await stat(path.join(cacheDir, entry!))).mode & 0o777, 0o600);
    assert.equal((await stat(path.join(second.sandbox, 'a.txt'))).mode & 0o777, 0o644);
  });

  it('the sandbox gets a copy, not a link: a task changing its file changes neither the entry nor the next hit', async function () {
    const cache = await FetcherCache.open(cacheDir, 1024);
    serve('/a.txt', 'alpha');
    const first = await run(cache, [{ value: `${base}/a.txt`, cache: true }]);
    const inSandbox = path.join(first.sandbox, 'a.txt');
    assert.equal((await stat(inSandbox)).nlink, 1);
    await writeFile(inSandbox, 'tampered');
    const second = await run(cache, [{ value: `${base}/a.txt`, cache: true }]);
    assert.equal(await readFile(path.join(second.sandbox, 'a.txt'), 'utf8'), 'alpha');
  });

  it('URIs without cache=true are fetched directly every time and reported NOT_CACHED', async function () {
    const cache = await FetcherCache.open(cacheDir, 1024);
    serve('/a.txt', 'alpha');
    const first = await run(cache, [{ value: `${base}/a.txt` }]);
    await run(cache, [{ value: `${base}/a.txt`, cache: false }]);
    assert.equal(first.results[0]!.cache, 'NOT_CACHED');
    assert.equal(count('/a.txt'), 2);
    assert.deepEqual(await cacheFiles(), []);
  });

  it('evicts the least recently used entries, by bytes, to make room', async function () {
    const cache = await FetcherCache.open(cacheDir, 25);
    for (const n of ['a', 'b', 'c']) serve(`/${n}`, n.repeat(10));
    await run(cache, [{ value: `${base}/a`, cache: true }]);
    await run(cache, [{ value: `${base}/b`, cache: true }]);
    // 'a' is used again, so 'b' is now the least recently used.
    assert.equal((await run(cache, [{ value: `${base}/a`, cache: true }])).results[0]!.cache, 'HIT');
    await run(cache, [{ value: `${base}/c`, cache: true }]);
    assert.equal(cache.usedBytes, 20);
    assert.equal(cache.size, 2);
    assert.equal((await cacheFiles()).length, 2);
    assert.ok(!cache.has(FetcherCache.keyOf('', `${base}/b`)), "'b' was evicted");
    assert.equal((await run(cache, [{ value: `${base}/a`, cache: true }])).results[0]!.cache, 'HIT');
    assert.equal((await run(cache, [{ value: `${base}/c`, cache: true }])).results[0]!.cache, 'HIT');
    assert.equal((await run(cache, [{ value: `${base}/b`, cache: true }])).results[0]!.cache, 'MISS');
    assert.deepEqual([count('/a'), count('/b'), count('/c')], [1, 2, 1]);
  });

  it('a file larger than the whole cache is fetched but not kept (NOT_CACHED), and leaves nothing in the cache dir', async function () {
    const cache = await FetcherCache.open(cacheDir, 25);
    serve('/small', 's'.repeat(10));
    serve('/big', 'B'.repeat(30));
    await run(cache, [{ value: `${base}/small`, cache: true }]);
    const big = await run(cache, [{ value: `${base}/big`, cache: true }]);
    assert.deepEqual(big.results[0], { uriIndex: 0, uri: `${base}/big`, cache: 'NOT_CACHED', bytes: 30 });
    assert.equal(await readFile(path.join(big.sandbox, 'big'), 'utf8'), 'B'.repeat(30));
    assert.equal((await cacheFiles()).length, 1, 'only the small entry; no temp file left');
    assert.ok(cache.has(FetcherCache.keyOf('', `${base}/small`)), 'the small entry was not evicted for a file that could never fit');
    await run(cache, [{ value: `${base}/big`, cache: true }]);
    assert.equal(count('/big'), 2);
  });

  it('N concurrent fetches of one URI share one download, and all get the file', async function () {
    const cache = await FetcherCache.open(cacheDir, 1024);
    const body = 'shared-payload';
    const gate = held('/shared.bin', body);
    const uri = `${base}/shared.bin`;
    const fetches = Array.from({ length: 5 }, () => run(cache, [{ value: uri, cache: true }]));
    await gate.first;
    await pollUntil(() => cache.waiting(FetcherCache.keyOf('', uri)) === 5, 10_000, 'all five fetches wait for the one download');
    gate.release();
    const done = await Promise.all(fetches);
    assert.equal(count('/shared.bin'), 1);
    for (const d of done) {
      assert.deepEqual(d.results.map((r) => r.cache), ['MISS']);
      assert.equal(await readFile(path.join(d.sandbox, 'shared.bin'), 'utf8'), body);
    }
    assert.equal((await run(cache, [{ value: uri, cache: true }])).results[0]!.cache, 'HIT');
    assert.equal(count('/shared.bin'), 1);
  });

  it('entries are kept per task user (as Mesos keys them): another user downloads its own copy', async function () {
    const cache = await FetcherCache.open(cacheDir, 1024);
    serve('/a.txt', 'alpha');
    await run(cache, [{ value: `${base}/a.txt`, cache: true }], { user: { name: 'root', uid: 0, gid: 0 } });
    const other = await run(cache, [{ value: `${base}/a.txt`, cache: true }], { user: { name: '0:0', uid: 0, gid: 0 } });
    const again = await run(cache, [{ value: `${base}/a.txt`, cache: true }], { user: { name: 'root', uid: 0, gid: 0 } });
    assert.equal(other.results[0]!.cache, 'MISS');
    assert.equal(again.results[0]!.cache, 'HIT');
    assert.equal(count('/a.txt'), 2);
  });

  it('a failed download is never cached: an HTTP error, then a connection cut mid-body; the next fetch downloads again', async function () {
    const cache = await FetcherCache.open(cacheDir, 1024);
    const uri = `${base}/flaky`;
    routes.set('/flaky', (_req, res) => {
      res.writeHead(500);
      res.end('oops');
    });
    await assert.rejects(run(cache, [{ value: uri, cache: true }]), (err: unknown) => err instanceof FetchFailed && /HTTP 500/.test(err.message));
    routes.set('/flaky', (_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setImmediate(() => res.destroy());
    });
    await assert.rejects(run(cache, [{ value: uri, cache: true }]), FetchFailed);
    assert.deepEqual(await cacheFiles(), [], 'no entry and no temp file');
    assert.equal(cache.size, 0);
    serve('/flaky', 'finally');
    const ok = await run(cache, [{ value: uri, cache: true }]);
    assert.equal(ok.results[0]!.cache, 'MISS');
    assert.equal(count('/flaky'), 3);
  });

  it('one waiter leaving does not abort a download others wait for; the last waiter leaving aborts it and caches nothing', async function () {
    const cache = await FetcherCache.open(cacheDir, 1024);
    const uri = `${base}/slow`;
    const key = FetcherCache.keyOf('', uri);
    const gate = held('/slow', 'slow-body');
    const leaving = new AbortController();
    const left = run(cache, [{ value: uri, cache: true }], { signal: leaving.signal });
    const stays = run(cache, [{ value: uri, cache: true }]);
    await gate.first;
    await pollUntil(() => cache.waiting(key) === 2, 10_000, 'both fetches wait');
    leaving.abort(new Error('destroyed by the test'));
    await assert.rejects(left, /destroyed by the test/);
    assert.equal(cache.waiting(key), 1);
    gate.release();
    const kept = await stays;
    assert.equal(kept.results[0]!.cache, 'MISS');
    assert.equal(await readFile(path.join(kept.sandbox, 'slow'), 'utf8'), 'slow-body');
    assert.equal(count('/slow'), 1);

    // Now the only waiter leaves: the request is dropped (the server sees its socket close).
    const lone = held('/lone', 'never');
    const alone = new AbortController();
    const fetch = run(cache, [{ value: `${base}/lone`, cache: true }], { signal: alone.signal });
    const req = await lone.first;
    // (The server side may see a reset first: only the close matters.)
    req.socket.on('error', () => undefined);
    const closed = new Promise((resolve) => req.socket.once('close', resolve));
    alone.abort(new Error('last one out'));
    await assert.rejects(fetch, /last one out/);
    await closed;
    await pollUntil(async () => (await cacheFiles()).length === 1, 10_000, 'the aborted temp file is removed');
    assert.ok(!cache.has(FetcherCache.keyOf('', `${base}/lone`)));
    lone.release();
  });

  it('an aborted fetch that left a download behind does not hand a newcomer the aborted download', async function () {
    const cache = await FetcherCache.open(cacheDir, 1024);
    const uri = `${base}/again`;
    const gate = held('/again', 'fresh');
    const first = new AbortController();
    const gone = run(cache, [{ value: uri, cache: true }], { signal: first.signal });
    await gate.first;
    first.abort(new Error('gone'));
    await assert.rejects(gone, /gone/);
    serve('/again', 'fresh');
    const next = await run(cache, [{ value: uri, cache: true }]);
    assert.equal(next.results[0]!.cache, 'MISS');
    assert.equal(await readFile(path.join(next.sandbox, 'again'), 'utf8'), 'fresh');
    gate.release();
  });

  it('the index survives a restart: entries come back in their order of use, partial downloads are removed', async function () {
    let cache = await FetcherCache.open(cacheDir, 1024);
    serve('/old', 'o'.repeat(10));
    serve('/new', 'n'.repeat(10));
    await run(cache, [{ value: `${base}/old`, cache: true }]);
    await run(cache, [{ value: `${base}/new`, cache: true }]);
    const oldKey = FetcherCache.keyOf('', `${base}/old`);
    const newKey = FetcherCache.keyOf('', `${base}/new`);
    // The order of use lives in the mtimes (a hit touches them); made explicit so no clock matters.
    await utimes(path.join(cacheDir, oldKey), new Date(1_000_000), new Date(1_000_000));
    await utimes(path.join(cacheDir, newKey), new Date(2_000_000), new Date(2_000_000));
    await writeFile(path.join(cacheDir, `.tmp-${oldKey}-crashed`), 'half a downl');

    cache = await FetcherCache.open(cacheDir, 1024);
    assert.equal(cache.size, 2);
    assert.equal(cache.usedBytes, 20);
    assert.deepEqual(await cacheFiles(), [newKey, oldKey].sort(), 'the partial download is gone');
    assert.equal((await run(cache, [{ value: `${base}/old`, cache: true }])).results[0]!.cache, 'HIT');
    assert.deepEqual([count('/old'), count('/new')], [1, 1]);

    // Restarted with room for one entry: the least recently used one goes (now 'new', since 'old' was just hit).
    await utimes(path.join(cacheDir, oldKey), new Date(3_000_000), new Date(3_000_000));
    cache = await FetcherCache.open(cacheDir, 15);
    assert.deepEqual(await cacheFiles(), [oldKey]);
    assert.equal(cache.usedBytes, 10);
  });

  it('extract, executable and output_file apply to the copy in the sandbox; the entry stays the archive as downloaded', async function () {
    const cache = await FetcherCache.open(cacheDir, 1 << 20);
    const tree = path.join(root, 'tree');
    await mkdir(path.join(tree, 'bin'), { recursive: true });
    await writeFile(path.join(tree, 'bin', 'hello.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    const archive = path.join(root, 'bundle.tar.gz');
    await tar.create({ gzip: true, file: archive, cwd: tree }, ['bin']);
    serve('/bundle.tar.gz', await readFile(archive));
    serve('/tool', '#!/bin/sh\necho tool\n');
    const uris: FetchUri[] = [
      { value: `${base}/bundle.tar.gz`, cache: true, outputFile: 'pkg/renamed.tar.gz' },
      { value: `${base}/tool`, cache: true, executable: true, outputFile: 'bin/tool' },
    ];
    await run(cache, uris);
    const hit = await run(cache, uris);
    assert.deepEqual(hit.results.map((r) => r.cache), ['HIT', 'HIT']);
    assert.equal(await readFile(path.join(hit.sandbox, 'bin', 'hello.sh'), 'utf8'), '#!/bin/sh\necho hi\n');
    assert.ok((await lstat(path.join(hit.sandbox, 'pkg', 'renamed.tar.gz'))).isFile());
    assert.equal((await stat(path.join(hit.sandbox, 'bin', 'tool'))).mode & 0o777, 0o755);
    for (const entry of await cacheFiles()) assert.equal((await stat(path.join(cacheDir, entry))).mode & 0o777, 0o600);
  });

  it("a hit counts against the launch's byte budget like a download", async function () {
    const cache = await FetcherCache.open(cacheDir, 1024);
    serve('/ten', 't'.repeat(10));
    await run(cache, [{ value: `${base}/ten`, cache: true }]);
    await assert.rejects(
      run(cache, [{ value: `${base}/ten`, cache: true }, { value: `${base}/ten`, cache: true, outputFile: 'again' }], { maxLaunchBytes: 15 }),
      (err: unknown) => err instanceof FetchFailed && /uris\[1\].*--fetch_max_launch_bytes/.test(err.message),
    );
  });

  it('refuses a cache dir that is a symlink or belongs to another user', async function () {
    const real = path.join(root, 'real');
    await mkdir(real);
    await symlink(real, cacheDir);
    await assert.rejects(FetcherCache.open(cacheDir, 1024), /is not a directory/);
    const foreign = path.join(root, 'foreign');
    await mkdir(foreign);
    await chmod(foreign, 0o777);
    await chown(foreign, 65534, 65534);
    await assert.rejects(FetcherCache.open(foreign, 1024), /belongs to uid 65534, not to Berth/);
  });
});
