// --http_listen against the real engine: /metrics scraped before and after real launches (the
// counters and histograms move by exactly what the Watch stream shows happened), the loopback-only
// rule, a taken port, HTTPS with --tls_cert/--tls_key, and --auth_token_file (bearer header, the
// login form's session cookie, revocation by SIGHUP-style reload, gRPC refusals counted).
import assert from "node:assert/strict";
import { request as httpRequest, createServer, type Server } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import { StartupError } from "../../src/berth.js";
import { checkHttpListen } from "../../src/http/http-server.js";
import type { ContainerEvent } from "../../src/gen/berth/v1/containerizer_pb.js";
import { TaskState } from "../../src/gen/mesos/v1/mesos_pb.js";
import { ensureEngine, ensureTestImages, type TestImages } from "../support/engine.js";
import { makeTestPki, type TestPki } from "../support/certs.js";
import { startCapturedBerth, type CapturedBerth } from "../harness/in-process-berth.js";
import { BerthClient } from "../harness/berth-client.js";
import { launchRequest, newId } from "../harness/launches.js";
import { pollUntil } from "../harness/engine-control.js";
import { parseMetrics, sampleValue, type Sample } from "../harness/metrics-text.js";

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP(S) request; `ca` makes it HTTPS trusting that CA. */
export function httpGet(url: string, o: { method?: string; headers?: Record<string, string>; body?: string; ca?: Buffer; cert?: Buffer; key?: Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith("https:") ? httpsRequest : httpRequest)(url, { method: o.method ?? "GET", headers: o.headers, ca: o.ca, cert: o.cert, key: o.key }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(o.body);
  });
}

const tcpOf = (b: CapturedBerth) => b.berth.addresses.find((a) => !a.startsWith("unix://"))!;

describe("metrics and the HTTP listener (--http_listen) against the real engine", function () {
  this.timeout(180_000);
  let images: TestImages;
  let pki: TestPki;
  let dir: string;
  const berths: CapturedBerth[] = [];
  const clients: BerthClient[] = [];

  async function serve(flags: Record<string, string | string[]>): Promise<CapturedBerth> {
    const b = await startCapturedBerth(flags);
    berths.push(b);
    return b;
  }
  function client(address: string): BerthClient {
    const c = new BerthClient(address);
    clients.push(c);
    return c;
  }

  before(async () => {
    const docker = await ensureEngine();
    images = await ensureTestImages(docker);
    pki = await makeTestPki();
    dir = await mkdtemp(path.join(os.tmpdir(), "berth-metrics-it-"));
  });

  after(async () => {
    for (const c of clients) c.raw.close();
    for (const b of berths) await b.close();
    await pki?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("is off by default: no HTTP listener", async () => {
    const b = await serve({ listen: ["127.0.0.1:0"] });
    assert.equal(b.berth.http, undefined);
  });

  it("/metrics moves by exactly what two real launches did (stages, launches, terminations, pull bytes, fetcher cache, RPCs, engine events, checkpoints)", async () => {
    let fileRequests = 0;
    const files: Server = createServer((req, res) => {
      fileRequests += 1;
      res.end("payload\n");
    });
    await new Promise<void>((r) => files.listen(0, "127.0.0.1", r));
    try {
      const uri = `http://127.0.0.1:${(files.address() as AddressInfo).port}/payload.txt`;
      const b = await serve({ listen: ["127.0.0.1:0"], http_listen: "127.0.0.1:0", fetch_allow_loopback: "true" });
      const http = b.berth.http!.address;
      assert.match(http, /^127\.0\.0\.1:\d+$/);
      assert.ok(b.lines.some((l) => typeof l.msg === "string" && l.msg.includes(`http://${http}/metrics`)), "the bound port is logged");
      const scrape = async (): Promise<Sample[]> => {
        const r = await httpGet(`http://${http}/metrics`);
        assert.equal(r.status, 200);
        assert.match(String(r.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
        return parseMetrics(r.body);
      };
      const c = client(tcpOf(b));
      const before = await scrape();
      const all: ContainerEvent[][] = [];
      for (const round of [1, 2]) {
        const id = newId(`metrics${round}`);
        const watching = c.collect([id], (e) => e.kind.case === "termination");
        await c.launch(launchRequest(id, { image: images.busybox, command: { shell: true, value: "cat \"$MESOS_SANDBOX/payload.txt\"", uris: [{ value: uri, cache: true }] } }));
        const events = await watching;
        const last = events.at(-1)!;
        assert.ok(last.kind.case === "termination");
        assert.equal(last.kind.value.containerTermination?.state, TaskState.TASK_FINISHED, last.kind.value.containerTermination?.message);
        all.push(events);
      }
      assert.equal(fileRequests, 1, "the second launch was served from the fetcher cache");
      // The Watch streams end client-side first; the gauge follows the server's own count.
      await pollUntil(async () => sampleValue(await scrape(), "berth_watch_streams_open") === 0, 10_000, "Watch streams closed in berth_watch_streams_open");
      const after = await scrape();
      const delta = (name: string, labels: Record<string, string> = {}) => sampleValue(after, name, labels) - sampleValue(before, name, labels);

      assert.equal(delta("berth_launches_total", { result: "running" }), 2);
      assert.equal(delta("berth_launches_total", { result: "failed" }), 0);
      for (const stage of ["fetch", "pull", "mount", "start"]) assert.equal(delta("berth_launch_stage_duration_seconds_count", { stage }), 2, stage);
      // The stage times are the Watch events' own times: fetch+pull+mount is the whole launch.
      const stageSum = (stage: string) => delta("berth_launch_stage_duration_seconds_sum", { stage });
      assert.ok(Math.abs(stageSum("fetch") + stageSum("pull") + stageSum("mount") - stageSum("start")) < 1e-6);
      assert.equal(delta("berth_terminations_total", { state: "TASK_FINISHED", reason: "none" }), 2);
      assert.equal(delta("berth_fetcher_cache_total", { outcome: "miss" }), 1);
      assert.equal(delta("berth_fetcher_cache_total", { outcome: "hit" }), 1);
      const pulled = all.map((events) => Math.max(0, ...events.flatMap((e) => (e.kind.case === "pullProgress" ? [Number(e.kind.value.bytesCurrent)] : []))));
      assert.equal(delta("berth_pull_bytes_total"), pulled[0]! + pulled[1]!, "pull bytes are what Watch's pull progress reported");
      assert.equal(delta("berth_rpc_duration_seconds_count", { method: "/berth.v1.Containerizer/Launch", code: "OK" }), 2);
      // A Watch of one container ends OK at its termination (or CANCELLED, when the client's cancel wins).
      const watches = (samples: Sample[]) => samples.filter((x) => x.name === "berth_rpc_duration_seconds_count" && x.labels.method === "/berth.v1.Containerizer/Watch").reduce((n, x) => n + x.value, 0);
      assert.equal(watches(after) - watches(before), 2);
      // create, start, die at least, per container (the engine's events with Berth's labels).
      assert.ok(delta("berth_engine_events_total") >= 6, `engine events ${delta("berth_engine_events_total")}`);
      assert.equal(sampleValue(after, "berth_engine_connected"), 1);
      // Each launch records its launch, RUNNING and termination durably; a ran container's
      // termination is published before its record is durable, so the last write may still be on
      // its way when the Watch streams end: wait for it.
      await pollUntil(
        async () => sampleValue(await scrape(), "berth_checkpoint_write_duration_seconds_count", { result: "ok" }) - sampleValue(before, "berth_checkpoint_write_duration_seconds_count", { result: "ok" }) >= 6,
        10_000,
        "the two launches' six records (launch, RUNNING, termination) counted in berth_checkpoint_write_duration_seconds_count",
      );
      assert.equal(sampleValue(after, "berth_containers", { state: "TERMINATED" }), 2);
      assert.ok(after.some((s) => s.name === "nodejs_eventloop_lag_seconds"), "event-loop lag is served");
    } finally {
      files.close();
    }
  });

  it("a failed launch counts as failed with its reason", async () => {
    const b = await serve({ listen: ["127.0.0.1:0"], http_listen: "127.0.0.1:0" });
    const http = b.berth.http!.address;
    const c = client(tcpOf(b));
    const id = newId("metrics-fail");
    const watching = c.collect([id], (e) => e.kind.case === "termination");
    // An image the local registry does not have: the pull fails, so the launch does.
    await c.launch(launchRequest(id, { image: "127.0.0.1:5000/berth-no-such-image:missing" }));
    const events = await watching;
    const last = events.at(-1)!;
    assert.ok(last.kind.case === "termination");
    const s = parseMetrics((await httpGet(`http://${http}/metrics`)).body);
    assert.equal(sampleValue(s, "berth_launches_total", { result: "failed" }), 1);
    assert.equal(sampleValue(s, "berth_launches_total", { result: "running" }), 0);
    assert.equal(sampleValue(s, "berth_terminations_total", { state: "TASK_FAILED", reason: "CONTAINER_LAUNCH_FAILED" }), 1);
    assert.equal(sampleValue(s, "berth_launch_stage_duration_seconds_count", { stage: "pull" }), 0, "a pull that failed is no pull time");
    assert.equal(sampleValue(s, "berth_launch_stage_duration_seconds_count", { stage: "fetch" }), 1);
  });

  it("refuses a non-loopback address without TLS, naming the flag; a taken port is a start-up error", async () => {
    await assert.rejects(
      startCapturedBerth({ listen: ["127.0.0.1:0"], http_listen: "192.0.2.1:9090" }),
      (err: Error) => err instanceof StartupError && /--http_listen '192\.0\.2\.1:9090' is not a loopback address and TLS is not configured/.test(err.message),
    );
    // With TLS a non-loopback address is accepted (checked without binding one here).
    assert.doesNotThrow(() => checkHttpListen("192.0.2.1:9090", { tls: { cert: pki.server.cert, key: pki.server.key } }));
    const taken = createNetServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    try {
      const port = (taken.address() as AddressInfo).port;
      await assert.rejects(
        startCapturedBerth({ listen: ["127.0.0.1:0"], http_listen: `127.0.0.1:${port}` }),
        (err: Error) => err instanceof StartupError && err.message.startsWith(`cannot listen on --http_listen '127.0.0.1:${port}'`) && /EADDRINUSE/.test(err.message) && !err.message.includes("\n"),
      );
    } finally {
      taken.close();
    }
    // A bad value is refused by the flag parser.
    await assert.rejects(startCapturedBerth({ http_listen: "nonsense" }), /--http_listen 'nonsense' is not HOST:PORT/);
  });

  it("serves HTTPS with --tls_cert/--tls_key (plain HTTP is not answered)", async () => {
    const b = await serve({ listen: ["127.0.0.1:0"], tls_cert: pki.server.certFile, tls_key: pki.server.keyFile, http_listen: "127.0.0.1:0" });
    const port = b.berth.http!.address.split(":")[1];
    const r = await httpGet(`https://localhost:${port}/metrics`, { ca: pki.ca.cert });
    assert.equal(r.status, 200);
    assert.ok(parseMetrics(r.body).some((s) => s.name === "berth_launches_total"));
    await assert.rejects(httpGet(`http://127.0.0.1:${port}/metrics`));
  });

  it("with --tls_client_ca, HTTPS wants a client certificate that CA signed, as gRPC does", async () => {
    const b = await serve({ listen: ["127.0.0.1:0"], tls_cert: pki.server.certFile, tls_key: pki.server.keyFile, tls_client_ca: pki.ca.certFile, http_listen: "127.0.0.1:0" });
    const url = `https://localhost:${b.berth.http!.address.split(":")[1]}/metrics`;
    await assert.rejects(httpGet(url, { ca: pki.ca.cert }), "no client certificate");
    await assert.rejects(httpGet(url, { ca: pki.ca.cert, cert: pki.otherClient.cert, key: pki.otherClient.key }), "a certificate of another CA");
    assert.equal((await httpGet(url, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key })).status, 200);
  });

  it("with --auth_token_file: bearer header or the login form's cookie; nothing open without; a removed token closes its sessions; gRPC refusals counted", async () => {
    const tokenFile = path.join(dir, "tokens");
    await writeFile(tokenFile, "first-token-0123456789\nsecond-token-abcdef\n", { mode: 0o600 });
    const b = await serve({ listen: ["127.0.0.1:0"], auth_token_file: tokenFile, http_listen: "127.0.0.1:0" });
    const base = `http://${b.berth.http!.address}`;

    // Nothing without a token: metrics, script, events and the page (a login form instead).
    for (const p of ["/metrics", "/status.js", "/events"]) {
      const r = await httpGet(base + p);
      assert.equal(r.status, 401, p);
      assert.equal(r.headers["www-authenticate"], 'Bearer realm="berth"');
    }
    const page = await httpGet(base + "/");
    assert.equal(page.status, 401);
    assert.match(page.body, /<form method="post" action="\/login"/);
    assert.doesNotMatch(page.body, /status\.js/, "the login form loads no script");
    assert.equal((await httpGet(base + "/metrics", { headers: { authorization: "Bearer wrong-token" } })).status, 401);
    assert.equal((await httpGet(base + "/metrics", { headers: { authorization: "Basic Zmlyc3Q=" } })).status, 401);

    // Prometheus: the bearer header.
    const ok = await httpGet(base + "/metrics", { headers: { authorization: "Bearer first-token-0123456789" } });
    assert.equal(ok.status, 200);

    // A browser: the form, then an HttpOnly SameSite=Strict session cookie (not the token).
    const bad = await httpGet(base + "/login", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "token=nope" });
    assert.equal(bad.status, 401);
    assert.match(bad.body, /not valid/);
    const login = await httpGet(base + "/login", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "token=second-token-abcdef" });
    assert.equal(login.status, 303);
    assert.equal(login.headers.location, "/");
    const setCookie = String(login.headers["set-cookie"]);
    assert.match(setCookie, /^berth_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    assert.ok(!setCookie.includes("second-token"), "the cookie is a session id, not the token");
    const cookie = setCookie.split(";")[0]!;
    const withCookie = await httpGet(base + "/", { headers: { cookie } });
    assert.equal(withCookie.status, 200);
    assert.match(withCookie.body, /<script src="\/status\.js" defer><\/script>/);
    assert.equal((await httpGet(base + "/metrics", { headers: { cookie } })).status, 200);
    assert.equal((await httpGet(base + "/", { headers: { cookie: "berth_session=forged" } })).status, 401);

    // The token behind the session is removed from the file and reloaded (SIGHUP): the session ends.
    await writeFile(tokenFile, "first-token-0123456789\n");
    assert.equal(await b.berth.server.reloadTokens(), 1);
    assert.equal((await httpGet(base + "/", { headers: { cookie } })).status, 401);

    // gRPC calls refused by the token check are counted as UNAUTHENTICATED.
    const c = client(tcpOf(b));
    await assert.rejects(c.containers(), (err: ServiceError) => err.code === status.UNAUTHENTICATED);
    const s = parseMetrics((await httpGet(base + "/metrics", { headers: { authorization: "Bearer first-token-0123456789" } })).body);
    assert.equal(sampleValue(s, "berth_rpc_duration_seconds_count", { method: "/berth.v1.Containerizer/Containers", code: "UNAUTHENTICATED" }), 1);
  });

  it("answers with the security headers, refuses a foreign Host (DNS rebinding) and writes", async () => {
    const b = await serve({ listen: ["127.0.0.1:0"], http_listen: "127.0.0.1:0" });
    const base = `http://${b.berth.http!.address}`;
    const r = await httpGet(base + "/");
    assert.equal(r.status, 200);
    assert.match(String(r.headers["content-security-policy"]), /default-src 'none'; script-src 'self';/);
    assert.doesNotMatch(String(r.headers["content-security-policy"]), /unsafe-inline/);
    assert.equal(r.headers["x-content-type-options"], "nosniff");
    assert.equal((await httpGet(base + "/status.js")).headers["content-type"], "text/javascript; charset=utf-8");
    assert.equal((await httpGet(base + "/metrics", { headers: { host: "attacker.example:80" } })).status, 421);
    assert.equal((await httpGet(base + "/metrics", { headers: { host: `localhost:${b.berth.http!.address.split(":")[1]}` } })).status, 200);
    assert.equal((await httpGet(base + "/metrics", { method: "DELETE" })).status, 405);
    assert.equal((await httpGet(base + "/nope")).status, 404);
  });
});
