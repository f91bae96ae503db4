// The HTTP/TCP probe program on its own (the health checker runs it through nsenter in the
// container's network namespace; here it runs in the test's own, against servers on 127.0.0.1):
// one GET or connect, the status as seen (no redirect followed, https without certificate checks
// as Mesos' curl -k), and a refusal of anything but the loopback address.
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { makeTestPki, type TestPki } from "../support/certs.js";

const PROBE = fileURLToPath(new URL("../../src/health/net-probe-main.js", import.meta.url));

async function probe(args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const { stdout } = await promisify(execFile)(process.execPath, [PROBE, JSON.stringify({ deadlineMs: 10_000, ...args })]);
  return JSON.parse(stdout.split("\n")[0]!) as Record<string, unknown>;
}

async function listen(server: net.Server, host = "127.0.0.1"): Promise<number> {
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, host, resolve));
  return (server.address() as net.AddressInfo).port;
}

async function close(server: net.Server): Promise<void> {
  server.close();
  if ("closeAllConnections" in server) (server as http.Server).closeAllConnections();
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  const port = await listen(s);
  await new Promise((resolve) => s.close(resolve));
  return port;
}

describe("health probe program", function () {
  this.timeout(20_000);
  const seen: Array<{ method?: string; url?: string; host?: string }> = [];
  let status = 200;
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, host: req.headers.host });
    res.writeHead(status, status === 302 ? { Location: `http://127.0.0.1:${redirectPort}/elsewhere` } : {}).end("body");
  });
  let elsewhereHits = 0;
  const elsewhere = http.createServer((_req, res) => {
    elsewhereHits += 1;
    res.end();
  });
  let port = 0;
  let redirectPort = 0;
  before(async () => {
    port = await listen(server);
    redirectPort = await listen(elsewhere);
  });
  after(async () => {
    await close(server);
    await close(elsewhere);
  });
  beforeEach(() => {
    seen.length = 0;
  });

  it("TCP: reports a connect, and a refused one with its errno", async () => {
    assert.deepEqual(await probe({ type: "TCP", host: "127.0.0.1", port }), { connected: true });
    const closed = await freePort();
    assert.deepEqual(await probe({ type: "TCP", host: "127.0.0.1", port: closed }), { error: `connect to 127.0.0.1:${closed} failed: ECONNREFUSED` });
  });

  it("HTTP: one GET of the path with the loopback Host, answering the status as is", async () => {
    status = 503;
    assert.deepEqual(await probe({ type: "HTTP", host: "127.0.0.1", port, path: "/health?deep=1" }), { status: 503 });
    assert.deepEqual(seen, [{ method: "GET", url: "/health?deep=1", host: `127.0.0.1:${port}` }]);
  });

  it("HTTP: a redirect is answered as its own status, never followed", async () => {
    status = 302;
    assert.deepEqual(await probe({ type: "HTTP", host: "127.0.0.1", port, path: "/" }), { status: 302 });
    assert.equal(elsewhereHits, 0);
  });

  describe("https", () => {
    let pki: TestPki;
    let tls: https.Server;
    let tlsPort = 0;
    before(async () => {
      pki = await makeTestPki();
      tls = https.createServer({ key: pki.server.key, cert: pki.server.cert }, (_req, res) => res.writeHead(204).end());
      tlsPort = await listen(tls);
    });
    after(async () => {
      await close(tls);
      await pki.remove();
    });

    it("asks whether it answers, not whether its certificate is trusted (Mesos' curl -k)", async () => {
      assert.deepEqual(await probe({ type: "HTTP", https: true, host: "127.0.0.1", port: tlsPort, path: "/" }), { status: 204 });
    });
  });

  it("refuses any address but the loopback one, before connecting", async () => {
    // TEST-NET-1: nothing is sent there; the program refuses before it opens a socket.
    assert.deepEqual(await probe({ type: "TCP", host: "192.0.2.1", port: 80 }), { error: "refusing to probe 192.0.2.1:80: only the loopback address" });
    assert.deepEqual(await probe({ type: "HTTP", host: "127.0.0.1", port: 0 }), { error: "refusing to probe 127.0.0.1:0: only the loopback address" });
  });

  it("reports its own deadline when nothing answers", async () => {
    const silent = net.createServer(() => undefined);
    const silentPort = await listen(silent);
    try {
      assert.deepEqual(await probe({ type: "HTTP", host: "127.0.0.1", port: silentPort, path: "/", deadlineMs: 200 }), { error: "probe deadline passed" });
    } finally {
      await close(silent);
    }
  });
});
