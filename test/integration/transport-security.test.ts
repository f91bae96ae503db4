import assert from "node:assert/strict";
import { access, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { credentials, status } from "@grpc/grpc-js";
import { StartupError } from "../../src/berth.js";
import { ensureEngine } from "../support/engine.js";
import { makeTestPki, type TestPki } from "../support/certs.js";
import { startCapturedBerth, type CapturedBerth } from "../harness/in-process-berth.js";
import { BerthProcess, humanLines, runBerth } from "../harness/process-berth.js";
import { bearer, RawClient } from "../harness/raw-client.js";

const CONTAINERS = "/berth.v1.Containerizer/Containers";
const WATCH = "/berth.v1.Containerizer/Watch";
const HEALTH_CHECK = "/grpc.health.v1.Health/Check";
const REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const EMPTY = Buffer.alloc(0);
/** HealthCheckResponse { status: SERVING } */
const SERVING = Buffer.from([0x08, 0x01]);
/** ServerReflectionRequest { list_services: "" } */
const LIST_SERVICES = Buffer.from([0x3a, 0x00]);

const socketOf = (b: CapturedBerth) => b.berth.addresses.find((a) => a.startsWith("unix://"))!.slice("unix://".length);
const tcpOf = (b: CapturedBerth) => b.berth.addresses.find((a) => !a.startsWith("unix://"))!;
/** The server certificate names localhost and 127.0.0.1; TLS wants a name, not an IP, as the server name. */
const TLS_NAME = { "grpc.ssl_target_name_override": "localhost" };

describe("who may call: socket permissions, TLS, bearer tokens", function () {
  this.timeout(120_000);
  let pki: TestPki;
  const berths: CapturedBerth[] = [];
  const clients: RawClient[] = [];
  const dirs: string[] = [];

  async function serve(flags: Record<string, string | string[]>): Promise<CapturedBerth> {
    const b = await startCapturedBerth(flags);
    berths.push(b);
    return b;
  }

  function client(...args: ConstructorParameters<typeof RawClient>): RawClient {
    const c = new RawClient(...args);
    clients.push(c);
    return c;
  }

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "berth-sec-"));
    dirs.push(dir);
    return dir;
  }

  before(async () => {
    await ensureEngine();
    pki = await makeTestPki();
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const b of berths) await b.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    await pki?.remove();
  });

  describe("the unix socket", () => {
    it("is created 0600 even when the process umask would leave it open to everyone", async () => {
      const previous = process.umask(0);
      let b: CapturedBerth;
      try {
        b = await serve({});
      } finally {
        process.umask(previous);
      }
      const st = await stat(socketOf(b));
      assert.ok(st.isSocket());
      assert.equal((st.mode & 0o777).toString(8), "600");
      assert.equal(st.uid, process.getuid!());
      const outcome = await client(`unix://${socketOf(b)}`).unary(CONTAINERS, EMPTY);
      assert.equal(outcome.code, status.OK, outcome.details);
    });

    it("is 0660 and owned by --socket_group (a name from /etc/group or a numeric gid)", async () => {
      const byName = await serve({ socket_group: "daemon" });
      const st = await stat(socketOf(byName));
      assert.equal((st.mode & 0o777).toString(8), "660");
      assert.equal(st.gid, 1, "daemon is gid 1 in /etc/group");
      const byGid = await serve({ socket_group: "4" });
      assert.equal((await stat(socketOf(byGid))).gid, 4);
      assert.equal(((await stat(socketOf(byGid))).mode & 0o777).toString(8), "660");
    });

    it("an unknown --socket_group refuses to start, naming the group, before the work dir is touched", async () => {
      const dir = path.join(await tempDir(), "never-created");
      await assert.rejects(startCapturedBerth({ socket_group: "no-such-group-berth", work_dir: dir }), (err: Error) => {
        assert.ok(err instanceof StartupError);
        assert.match(err.message, /--socket_group 'no-such-group-berth' is not a group on this host/);
        return true;
      });
      await assert.rejects(access(dir), "the work dir was not created");
    });
  });

  describe("TCP", () => {
    it("plaintext on loopback serves, with a warning that every local user and HOST-network container can reach it", async () => {
      const b = await serve({ listen: ["127.0.0.1:0"] });
      const warning = b.lines.find((l) => l.level === 40 && /without TLS/.test(String(l.msg)));
      assert.ok(warning, `a warn line about plaintext TCP; lines: ${JSON.stringify(b.lines.map((l) => l.msg))}`);
      assert.match(String(warning.msg), /every local user and every container on the HOST network/);
      assert.equal(warning.listen, tcpOf(b));
      const outcome = await client(tcpOf(b)).unary(CONTAINERS, EMPTY);
      assert.equal(outcome.code, status.OK, outcome.details);
    });

    it("TLS: a client trusting the CA is served; a plaintext client is not; no plaintext warning", async () => {
      const b = await serve({ listen: ["127.0.0.1:0"], tls_cert: pki.server.certFile, tls_key: pki.server.keyFile });
      assert.equal(b.lines.filter((l) => /without TLS/.test(String(l.msg))).length, 0);
      const ok = await client(tcpOf(b), credentials.createSsl(pki.ca.cert), TLS_NAME).unary(CONTAINERS, EMPTY);
      assert.equal(ok.code, status.OK, ok.details);
      const plain = await client(tcpOf(b)).unary(CONTAINERS, EMPTY, undefined);
      assert.equal(plain.code, status.UNAVAILABLE, `plaintext against TLS: ${status[plain.code]} ${plain.details}`);
    });

    it("TLS leaves the unix socket plaintext (its file mode guards it)", async () => {
      const dir = await tempDir();
      const b = await serve({ listen: [`unix://${path.join(dir, "b.sock")}`, "127.0.0.1:0"], tls_cert: pki.server.certFile, tls_key: pki.server.keyFile });
      const outcome = await client(`unix://${socketOf(b)}`).unary(CONTAINERS, EMPTY);
      assert.equal(outcome.code, status.OK, outcome.details);
    });

    it("mutual TLS: a client certificate signed by --tls_client_ca is served; none, or one from another CA, is refused in the handshake", async () => {
      const b = await serve({ listen: ["127.0.0.1:0"], tls_cert: pki.server.certFile, tls_key: pki.server.keyFile, tls_client_ca: pki.ca.certFile });
      const good = await client(tcpOf(b), credentials.createSsl(pki.ca.cert, pki.client.key, pki.client.cert), TLS_NAME).unary(CONTAINERS, EMPTY);
      assert.equal(good.code, status.OK, good.details);
      const none = await client(tcpOf(b), credentials.createSsl(pki.ca.cert), TLS_NAME).unary(CONTAINERS, EMPTY);
      assert.equal(none.code, status.UNAVAILABLE, `no client certificate: ${status[none.code]} ${none.details}`);
      const other = await client(tcpOf(b), credentials.createSsl(pki.ca.cert, pki.otherClient.key, pki.otherClient.cert), TLS_NAME).unary(CONTAINERS, EMPTY);
      assert.equal(other.code, status.UNAVAILABLE, `certificate from another CA: ${status[other.code]} ${other.details}`);
    });

    it("inconsistent TLS flags refuse to start with one line naming the flags", async () => {
      const cases: [Record<string, string | string[]>, RegExp][] = [
        [{ tls_key: pki.server.keyFile }, /--tls_key is given without --tls_cert/],
        [{ tls_cert: pki.server.certFile }, /--tls_cert is given without --tls_key/],
        [{ tls_client_ca: pki.ca.certFile }, /--tls_client_ca needs --tls_cert and --tls_key/],
        [{ tls_cert: pki.server.certFile, tls_key: pki.client.keyFile }, /not usable/],
        [{ tls_cert: "/nonexistent/cert.pem", tls_key: pki.server.keyFile }, /--tls_cert '\/nonexistent\/cert.pem' cannot be read/],
      ];
      for (const [flags, message] of cases) {
        await assert.rejects(startCapturedBerth({ listen: ["127.0.0.1:0"], ...flags }), (err: Error) => {
          assert.ok(err instanceof StartupError, `${JSON.stringify(flags)}: ${err.message}`);
          assert.match(err.message, message);
          assert.ok(!err.message.includes("\n"), "one line");
          return true;
        });
      }
    });

    it("berth serve on a non-loopback address without TLS exits 1 with one line, before binding or touching the work dir", async () => {
      const dir = path.join(await tempDir(), "never-created");
      const result = await runBerth(["serve", "--listen", "0.0.0.0:0", "--work_dir", dir]);
      assert.equal(result.code, 1, `exit code 1 expected; stderr:\n${result.stderr}`);
      const lines = humanLines(result.stderr);
      assert.equal(lines.length, 1, `one line for a person; got:\n${result.stderr}`);
      assert.match(lines[0]!, /^berth: --listen '0\.0\.0\.0:0' is not a loopback address and TLS is not configured: give --tls_cert and --tls_key/);
      await assert.rejects(access(dir), "the work dir was not created");
    });
  });

  describe("bearer tokens", () => {
    let b: CapturedBerth;
    const TOKEN = "s3cret-token-0123456789";
    const OTHER = "second-token-abcdef";

    before(async () => {
      const dir = await tempDir();
      const file = path.join(dir, "tokens");
      await writeFile(file, `# operators\n\n${TOKEN}\n   \n# ci\n${OTHER}\n`);
      b = await serve({ auth_token_file: file });
    });

    it("a call without a token, with a wrong one, or with another scheme is UNAUTHENTICATED; a listed token is served", async () => {
      const c = client(`unix://${socketOf(b)}`);
      for (const md of [bearer(undefined), bearer("wrong"), bearer(`${TOKEN}x`), bearer(undefined, `Basic ${TOKEN}`), bearer(undefined, TOKEN)]) {
        const refused = await c.unary(CONTAINERS, EMPTY, md);
        assert.equal(refused.code, status.UNAUTHENTICATED, `${JSON.stringify(md.getMap())}: ${status[refused.code]}`);
        assert.equal(refused.details, "missing or invalid bearer token");
      }
      for (const token of [TOKEN, OTHER]) {
        const ok = await c.unary(CONTAINERS, EMPTY, bearer(token));
        assert.equal(ok.code, status.OK, ok.details);
      }
      const lower = await c.unary(CONTAINERS, EMPTY, bearer(undefined, `bearer ${TOKEN}`));
      assert.equal(lower.code, status.OK, "the scheme is case-insensitive");
    });

    it("Watch is refused without a token before its request is read (even garbage bytes are UNAUTHENTICATED)", async () => {
      const c = client(`unix://${socketOf(b)}`);
      const refused = await c.serverStream(WATCH, Buffer.from([0xff, 0xff]), bearer(undefined));
      assert.equal(refused.code, status.UNAUTHENTICATED);
    });

    it("Health stays callable without a token; reflection needs one", async () => {
      const c = client(`unix://${socketOf(b)}`);
      const health = await c.unary(HEALTH_CHECK, EMPTY);
      assert.equal(health.code, status.OK, health.details);
      assert.deepEqual(health.messages[0], SERVING);
      const refused = await c.bidi(REFLECTION, [LIST_SERVICES]);
      assert.equal(refused.code, status.UNAUTHENTICATED);
      const listed = await c.bidi(REFLECTION, [LIST_SERVICES], bearer(TOKEN));
      assert.equal(listed.code, status.OK, listed.details);
      assert.ok(listed.messages[0]!.includes(Buffer.from("berth.v1.Containerizer")));
    });

    it("refusals are logged at warn with the peer and method, and no token appears in any log line", async () => {
      const c = client(`unix://${socketOf(b)}`);
      await c.unary(CONTAINERS, EMPTY, bearer("a-wrong-token-that-must-not-be-logged"));
      const refusals = b.lines.filter((l) => l.msg === "call refused: missing or invalid bearer token");
      assert.ok(refusals.length > 0);
      for (const r of refusals) {
        assert.equal(r.level, 40);
        assert.match(String(r.peer), /^unix:.*#\d+$/, "the peer names the unix connection");
        assert.match(String(r.method), /^\/[\w.]+\/\w+$/);
      }
      const all = JSON.stringify(b.lines);
      for (const secret of [TOKEN, OTHER, "a-wrong-token-that-must-not-be-logged"]) assert.ok(!all.includes(secret), `log holds '${secret}'`);
    });

    it("under mutual TLS a refusal also names the client certificate's subject", async () => {
      const dir = await tempDir();
      const file = path.join(dir, "tokens");
      await writeFile(file, `${TOKEN}\n`);
      const m = await serve({ listen: ["127.0.0.1:0"], auth_token_file: file, tls_cert: pki.server.certFile, tls_key: pki.server.keyFile, tls_client_ca: pki.ca.certFile });
      const c = client(tcpOf(m), credentials.createSsl(pki.ca.cert, pki.client.key, pki.client.cert), TLS_NAME);
      assert.equal((await c.unary(CONTAINERS, EMPTY)).code, status.UNAUTHENTICATED);
      assert.equal((await c.unary(CONTAINERS, EMPTY, bearer(TOKEN))).code, status.OK);
      const refusal = m.lines.find((l) => l.msg === "call refused: missing or invalid bearer token");
      assert.equal(refusal?.client_cert, "berth-test-client");
      assert.match(String(refusal?.peer), /^127\.0\.0\.1:\d+$/);
    });

    it("a token file with no token refuses to start", async () => {
      const dir = await tempDir();
      const file = path.join(dir, "empty");
      await writeFile(file, "# nothing yet\n\n");
      await assert.rejects(startCapturedBerth({ auth_token_file: file }), (err: Error) => err instanceof StartupError && /holds no token/.test(err.message));
    });
  });

  describe("SIGHUP reloads the token file of a running berth serve", () => {
    let proc: BerthProcess | undefined;

    after(async () => {
      proc?.kill("SIGTERM");
      await proc?.exited;
    });

    it("a rotated token is served after the reload, the old one refused; a failed reload keeps the tokens in use", async () => {
      const dir = await tempDir();
      const file = path.join(dir, "tokens");
      const sock = path.join(dir, "berth.sock");
      await writeFile(file, "first-token\n");
      proc = new BerthProcess(["serve", "--work_dir", path.join(dir, "work"), "--listen", `unix://${sock}`, "--auth_token_file", file, "--docker_stop_timeout", "2secs"]);
      await proc.serving();
      const c = client(`unix://${sock}`);
      assert.equal((await c.unary(CONTAINERS, EMPTY, bearer("first-token"))).code, status.OK);

      await writeFile(file, "# rotated\nsecond-token\n");
      proc.kill("SIGHUP");
      const reloaded = await proc.waitForLog((l) => l.msg === "auth tokens reloaded");
      assert.equal(reloaded.tokens, 1);
      assert.equal((await c.unary(CONTAINERS, EMPTY, bearer("first-token"))).code, status.UNAUTHENTICATED);
      assert.equal((await c.unary(CONTAINERS, EMPTY, bearer("second-token"))).code, status.OK);

      await rm(file);
      proc.kill("SIGHUP");
      const failed = await proc.waitForLog((l) => l.msg === "auth token reload failed; the tokens in use stay");
      assert.match(String(failed.err), /cannot be read/);
      assert.equal((await c.unary(CONTAINERS, EMPTY, bearer("second-token"))).code, status.OK);
      assert.ok(proc.running, "SIGHUP does not stop the server");
      assert.ok(!proc.stderr.includes("second-token") && !proc.stderr.includes("first-token"), "no token in the log");

      proc.kill("SIGTERM");
      const exit = await proc.exited;
      assert.equal(exit.code, 0);
    });
  });
});
