import assert from 'node:assert/strict';
import dc from 'node:diagnostics_channel';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fetchUris, FetchFailed, type FetchOptions } from '../../src/fetcher/fetcher.js';
import { httpGet, type HttpGetOptions } from '../../src/fetcher/http-get.js';
import type { Resolver } from '../../src/fetcher/safe-lookup.js';

// Every server here listens on 127.0.0.1 only. Refused addresses (link-local, private, the metadata
// service) are never contacted: the tests record every client socket Node creates (the
// 'net.client.socket' diagnostics channel) and every address it attempts to connect to, and assert
// that a refused address never appears there.

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

describe('fetcher: network rules, redirects, timeouts, caps', function () {
  let server: Server;
  let port: number;
  let base: string;
  const routes = new Map<string, Handler>();
  const serverSockets = new Set<Socket>();
  let hits: string[];

  let stall: TcpServer;
  let stallPort: number;
  const stallSockets = new Set<Socket>();

  let clientSockets: number;
  let attempts: string[];
  const onClientSocket = (message: unknown) => {
    clientSockets++;
    const { socket } = message as { socket: Socket };
    socket.on('connectionAttempt', (ip: string) => attempts.push(ip));
  };

  let root: string;
  let sandbox: string;
  let controller: AbortController;

  before(async function () {
    server = createServer((req, res) => {
      const p = new URL(req.url ?? '/', 'http://x').pathname;
      hits.push(p);
      const handler = routes.get(p);
      if (handler) return handler(req, res);
      res.writeHead(404);
      res.end('not found');
    });
    server.on('connection', (s: Socket) => {
      serverSockets.add(s);
      s.on('close', () => serverSockets.delete(s));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;

    // Accepts connections and never answers a byte: the far end of a stalled connect.
    stall = createTcpServer((s) => {
      stallSockets.add(s);
      s.on('close', () => stallSockets.delete(s));
      s.on('error', () => undefined);
      s.resume(); // read (and discard) the request, so the client's FIN is seen and the socket closes
    });
    stall.listen(0, '127.0.0.1');
    await once(stall, 'listening');
    stallPort = (stall.address() as AddressInfo).port;
    dc.subscribe('net.client.socket', onClientSocket);
  });

  after(async function () {
    dc.unsubscribe('net.client.socket', onClientSocket);
    server.closeAllConnections();
    server.close();
    for (const s of stallSockets) s.destroy();
    stall.close();
  });

  beforeEach(async function () {
    routes.clear();
    hits = [];
    clientSockets = 0;
    attempts = [];
    root = await mkdtemp(path.join(os.tmpdir(), 'berth-fetcher-net-'));
    sandbox = path.join(root, 'sandbox');
    await mkdir(sandbox);
    controller = new AbortController();
  });

  afterEach(async function () {
    controller.abort(new Error('test over'));
    await rm(root, { recursive: true, force: true });
  });

  const loopbackOk = { allowLoopback: true, denyPrivate: false };
  const opts = (extra: Partial<FetchOptions> = {}): FetchOptions => ({ signal: controller.signal, network: loopbackOk, ...extra });
  const serve = (p: string, body: string | Buffer) =>
    routes.set(p, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    });
  const redirect = (from: string, to: string, status = 302) =>
    routes.set(from, (_req, res) => {
      res.writeHead(status, { location: to });
      res.end();
    });
  /** Resolves once every connection the servers accepted has been closed (event-driven, no timer). */
  const allServerSocketsClosed = async () => {
    // Sockets leave these sets on 'close', so whatever is still in them is waited for.
    for (const s of [...serverSockets, ...stallSockets]) await once(s, 'close');
  };

  async function fails(uri: string, why: RegExp, extra: Partial<FetchOptions> = {}, index = 0, uris?: string[]): Promise<FetchFailed> {
    let caught: FetchFailed | undefined;
    await assert.rejects(fetchUris((uris ?? [uri]).map((value) => ({ value })), sandbox, opts(extra)), (err: unknown) => {
      assert.ok(err instanceof FetchFailed, String(err));
      assert.ok(err.message.includes(`'${uri}' (command_info.uris[${index}])`), err.message);
      assert.match(err.message, why);
      caught = err;
      return true;
    });
    assert.deepEqual((await readdir(sandbox)).filter((n) => n.startsWith('.berth-')), [], 'no scratch left');
    return caught!;
  }

  describe('addresses', function () {
    it('by default (no network option) refuses loopback before creating a socket', async function () {
      serve('/a.txt', 'a');
      const uri = `${base}/a.txt`;
      await assert.rejects(fetchUris([{ value: uri }], sandbox, { signal: controller.signal }), /refused to connect to 127\.0\.0\.1: 127\.0\.0\.1 is a loopback address/);
      assert.equal(clientSockets, 0);
      assert.deepEqual(hits, []);
    });

    const literals: Array<[string, RegExp, FetchOptions['network']]> = [
      ['http://169.254.169.254/latest/meta-data/iam', /169\.254\.169\.254 is a link-local address/, loopbackOk],
      ['http://[fe80::1]/x', /fe80::1 is a link-local address/, loopbackOk],
      ['http://[::ffff:169.254.169.254]/x', /::ffff:a9fe:a9fe is a link-local address/, loopbackOk],
      ['http://0.0.0.0/x', /0\.0\.0\.0 is an unspecified address/, loopbackOk],
      ['http://[::]/x', /:: is an unspecified address/, loopbackOk],
      ['http://224.0.0.1/x', /224\.0\.0\.1 is a multicast or reserved address/, loopbackOk],
      ['http://10.1.2.3/x', /10\.1\.2\.3 is in a private range/, { allowLoopback: true, denyPrivate: true }],
      ['https://192.168.1.1/x', /192\.168\.1\.1 is in a private range/, { allowLoopback: true, denyPrivate: true }],
      ['http://[fd00::1]/x', /fd00::1 is in a private range/, { allowLoopback: true, denyPrivate: true }],
      ['http://2130706433/x', /127\.0\.0\.1 is a loopback address/, { allowLoopback: false, denyPrivate: false }],
      ['http://[::1]/x', /::1 is a loopback address/, { allowLoopback: false, denyPrivate: false }],
      ['http://[::ffff:127.0.0.1]/x', /::ffff:7f00:1 is a loopback address/, { allowLoopback: false, denyPrivate: false }],
    ];
    for (const [uri, why, network] of literals) {
      it(`refuses the literal ${uri} before any socket exists`, async function () {
        await fails(uri, why, { network });
        assert.equal(clientSockets, 0, 'a socket was created');
        assert.deepEqual(attempts, []);
      });
    }

    it("refuses a name resolving to loopback ('localhost') when loopback is not allowed, without a connection attempt", async function () {
      serve('/a.txt', 'a');
      const uri = `http://localhost:${port}/a.txt`;
      await fails(uri, /refused to connect to 'localhost': it resolves to (127\.0\.0\.1|::1) is a loopback address/, {
        network: { allowLoopback: false, denyPrivate: false },
      });
      assert.deepEqual(attempts, []);
      assert.deepEqual(hits, []);
    });

    it("fetches through a name ('localhost') when loopback is allowed", async function () {
      serve('/a.txt', 'hello');
      await fetchUris([{ value: `http://localhost:${port}/a.txt` }], sandbox, opts());
      assert.equal(await readFile(path.join(sandbox, 'a.txt'), 'utf8'), 'hello');
      assert.ok(attempts.every((ip) => ip === '127.0.0.1' || ip === '::1'), attempts.join());
    });

    it('a redirect from an allowed server to the metadata address fails naming it, and nothing connects there', async function () {
      redirect('/artifact.bin', 'http://169.254.169.254/latest/meta-data/iam/');
      const err = await fails(`${base}/artifact.bin`, /refused to connect to 169\.254\.169\.254: 169\.254\.169\.254 is a link-local address/);
      assert.ok(err.message.includes('169.254.169.254'));
      assert.deepEqual(attempts, ['127.0.0.1']);
      assert.equal(clientSockets, 1);
      assert.deepEqual(hits, ['/artifact.bin']);
      await allServerSocketsClosed();
    });
  });

  function getOpts(extra: Partial<HttpGetOptions> = {}): HttpGetOptions {
    return {
      signal: controller.signal,
      network: loopbackOk,
      connectTimeoutMs: 10_000,
      idleTimeoutMs: 10_000,
      maxRedirects: 5,
      maxBytes: 1_000_000,
      ...extra,
    };
  }

  async function drain(body: AsyncIterable<Buffer>): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c);
    return Buffer.concat(chunks).toString('utf8');
  }

  describe('the guarded lookup (resolver seam)', function () {
    it('connects to exactly the address the lookup checked', async function () {
      serve('/a', 'from the resolved address');
      const asked: string[] = [];
      const resolve: Resolver = async (host) => {
        asked.push(host);
        return [{ address: '127.0.0.1', family: 4 }];
      };
      const got = await httpGet(new URL(`http://artifacts.test:${port}/a`), getOpts({ resolve }));
      assert.equal(await drain(got.body), 'from the resolved address');
      assert.deepEqual(asked, ['artifacts.test']);
      assert.deepEqual(attempts, ['127.0.0.1']);
    });

    it('refuses a name resolving to the metadata address, with no connection attempt', async function () {
      const resolve: Resolver = async () => [{ address: '169.254.169.254', family: 4 }];
      await assert.rejects(
        httpGet(new URL('http://metadata.test/latest/'), getOpts({ resolve })),
        /refused to connect to 'metadata\.test': it resolves to 169\.254\.169\.254 is a link-local address/,
      );
      assert.deepEqual(attempts, []);
    });

    it('refuses the whole answer when any address in it is forbidden (no packet to the others either)', async function () {
      const resolve: Resolver = async () => [
        { address: '192.0.2.10', family: 4 },
        { address: '::ffff:127.0.0.1', family: 6 },
      ];
      await assert.rejects(
        httpGet(new URL('http://mixed.test/'), getOpts({ resolve, network: { allowLoopback: false, denyPrivate: false } })),
        /'mixed\.test': it resolves to ::ffff:127\.0\.0\.1 is a loopback address/,
      );
      assert.deepEqual(attempts, []);
    });

    it('DNS rebinding across a redirect: the second hop re-resolves, gets a private address, and is refused before connecting', async function () {
      redirect('/start', `http://rebind.test:${port}/next`);
      serve('/next', 'must not be served');
      let calls = 0;
      const resolve: Resolver = async () => (++calls === 1 ? [{ address: '127.0.0.1', family: 4 }] : [{ address: '10.0.0.7', family: 4 }]);
      await assert.rejects(
        httpGet(new URL(`http://rebind.test:${port}/start`), getOpts({ resolve, network: { allowLoopback: true, denyPrivate: true } })),
        /refused to connect to 'rebind\.test': it resolves to 10\.0\.0\.7 is in a private range/,
      );
      assert.equal(calls, 2);
      assert.deepEqual(attempts, ['127.0.0.1']);
      assert.deepEqual(hits, ['/start']);
    });

    it('a resolver failure surfaces as the error of the fetch', async function () {
      const resolve: Resolver = async () => {
        throw Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.test'), { code: 'ENOTFOUND' });
      };
      await assert.rejects(httpGet(new URL('http://nowhere.test/'), getOpts({ resolve })), /ENOTFOUND nowhere\.test/);
      assert.deepEqual(attempts, []);
    });
  });

  describe('redirects', function () {
    it('follows 301/302/303/307/308 with relative and absolute Locations', async function () {
      serve('/final/file.bin', 'payload');
      redirect('/a/start.bin', 'hop1', 301); // relative to /a/
      redirect('/a/hop1', '../b/hop2', 303);
      redirect('/b/hop2', `${base}/c/hop3`, 307);
      redirect('/c/hop3', '/final/file.bin', 308);
      await fetchUris([{ value: `${base}/a/start.bin` }], sandbox, opts());
      assert.equal(await readFile(path.join(sandbox, 'start.bin'), 'utf8'), 'payload');
      assert.deepEqual(hits, ['/a/start.bin', '/a/hop1', '/b/hop2', '/c/hop3', '/final/file.bin']);
      await allServerSocketsClosed();
    });

    it('follows exactly maxRedirects and fails on one more, naming the limit', async function () {
      serve('/end', 'ok');
      for (let i = 0; i < 3; i++) redirect(`/r${i}`, i === 2 ? '/end' : `/r${i + 1}`);
      await fetchUris([{ value: `${base}/r0`, outputFile: 'out' }], sandbox, opts({ maxRedirects: 3 }));
      assert.equal(await readFile(path.join(sandbox, 'out'), 'utf8'), 'ok');
      await fails(`${base}/r0`, /too many redirects: more than the limit of 2 \(--fetch_max_redirects\)/, { maxRedirects: 2 });
    });

    it('a redirect loop ends at the limit (default 5)', async function () {
      redirect('/loop', '/loop');
      await fails(`${base}/loop`, /too many redirects: more than the limit of 5/);
      assert.equal(hits.length, 6);
    });

    it('refuses a redirect to a non-http(s) target', async function () {
      redirect('/to-file', 'file:///etc/passwd');
      await fails(`${base}/to-file`, /to 'file:\/\/\/etc\/passwd' refused: only http and https targets are followed/);
    });

    it('fails a redirect without Location', async function () {
      routes.set('/bare', (_req, res) => {
        res.writeHead(302);
        res.end();
      });
      await fails(`${base}/bare`, /HTTP 302 from '.*\/bare' has no Location header/);
    });
  });

  describe('timeouts and abort', function () {
    it('fails on the connect timeout when no response headers come, and closes the connection', async function () {
      const uri = `http://127.0.0.1:${stallPort}/never`;
      await fails(uri, /no response from '.*' within 50 ms \(connect timeout, --fetch_connect_timeout\)/, {
        connectTimeoutMs: 50,
        idleTimeoutMs: 600_000,
      });
      await allServerSocketsClosed();
      assert.equal(stallSockets.size, 0);
    });

    it('fails on the idle timeout when the body stalls, and closes the connection', async function () {
      routes.set('/trickle', (_req, res) => {
        res.writeHead(200, { 'content-length': '1000' });
        res.write('first bytes'); // then nothing, ever
      });
      await fails(`${base}/trickle`, /no data received for 50 ms \(idle timeout, --fetch_idle_timeout\)/, {
        connectTimeoutMs: 600_000,
        idleTimeoutMs: 50,
      });
      await allServerSocketsClosed();
      assert.equal(serverSockets.size, 0);
    });

    it('the signal aborts a stalled connect even with long timeouts, rejecting with its reason', async function () {
      const reason = new Error('launch cancelled');
      const stalled = new Promise<void>((resolve) => stall.once('connection', () => resolve()));
      const pending = fetchUris([{ value: `http://127.0.0.1:${stallPort}/x` }], sandbox, opts({ connectTimeoutMs: 600_000, idleTimeoutMs: 600_000 }));
      await stalled;
      controller.abort(reason);
      await assert.rejects(pending, (err: unknown) => err === reason);
      await allServerSocketsClosed();
      assert.deepEqual(await readdir(sandbox), []);
    });

    it('the signal aborts a stalled body even with long timeouts', async function () {
      let started!: () => void;
      const gotHeaders = new Promise<void>((resolve) => (started = resolve));
      routes.set('/stuck', (_req, res) => {
        res.writeHead(200);
        res.write('x');
      });
      const reason = new Error('destroyed');
      const pending = fetchUris([{ value: `${base}/stuck` }], sandbox, opts({
        connectTimeoutMs: 600_000,
        idleTimeoutMs: 600_000,
        onProgress: () => started(),
      }));
      await gotHeaders;
      controller.abort(reason);
      await assert.rejects(pending, (err: unknown) => err === reason);
      await allServerSocketsClosed();
      assert.deepEqual(await readdir(sandbox), []);
    });
  });

  describe('byte caps', function () {
    it('caps all URIs of a launch together: by Content-Length before the body, and by counting', async function () {
      serve('/one.bin', Buffer.alloc(6000, 1));
      serve('/two.bin', Buffer.alloc(6000, 2));
      routes.set('/chunked.bin', (_req, res) => {
        res.writeHead(200);
        res.write(Buffer.alloc(3000, 3));
        res.end(Buffer.alloc(3000, 3));
      });
      const uris = [`${base}/one.bin`, `${base}/two.bin`];
      await fails(uris[1]!, /Content-Length 6000 takes the launch's URIs past their combined limit of 10000 bytes \(--fetch_max_launch_bytes; 6000 already fetched\)/, { maxLaunchBytes: 10_000 }, 1, uris);
      const chunked = [`${base}/one.bin`, `${base}/chunked.bin`];
      await rm(path.join(sandbox, 'one.bin'));
      await fails(chunked[1]!, /size \d+ takes the launch's URIs past their combined limit of 10000 bytes/, { maxLaunchBytes: 10_000 }, 1, chunked);
      await allServerSocketsClosed();
    });

    it('within the launch cap every URI is fetched', async function () {
      serve('/one.bin', Buffer.alloc(6000, 1));
      serve('/two.bin', Buffer.alloc(4000, 2));
      await fetchUris([{ value: `${base}/one.bin` }, { value: `${base}/two.bin` }], sandbox, opts({ maxLaunchBytes: 10_000 }));
      assert.deepEqual((await readdir(sandbox)).sort(), ['one.bin', 'two.bin']);
    });

    it('the per-URI cap names its flag', async function () {
      serve('/big.bin', Buffer.alloc(5000));
      await fails(`${base}/big.bin`, /Content-Length 5000 exceeds the limit of 4999 bytes \(--fetch_max_uri_bytes\)/, { maxBytes: 4999 });
    });

    it('an HTTP error status closes the connection and names the status', async function () {
      await fails(`${base}/missing`, /HTTP 404 Not Found/);
      await allServerSocketsClosed();
      assert.equal(serverSockets.size, 0);
    });
  });
});
