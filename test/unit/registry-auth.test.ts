import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { filter, firstValueFrom, lastValueFrom, takeWhile, toArray } from "rxjs";
import { CheckpointStore } from "../../src/checkpoint/checkpoint-store.js";
import { Containerizer } from "../../src/containerizer/containerizer.js";
import type { ContainerEvent } from "../../src/containerizer/container-event.js";
import { EngineRequestFailed, type PullProgress, type RegistryAuth } from "../../src/docker/engine-port.js";
import { EventMonitor } from "../../src/docker/event-monitor.js";
import { ImagePuller } from "../../src/docker/image-puller.js";
import { agentLabels } from "../../src/docker/names.js";
import {
  checkedDockerConfig,
  DockerConfigError,
  DockerConfigSource,
  normalizeRegistryKey,
  parseDockerConfig,
  redactCredentials,
  registryOfImage,
} from "../../src/docker/registry-auth.js";
import { ContainerConfigSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import { TaskState, TaskStatus_Reason } from "../../src/gen/mesos/v1/mesos_pb.js";
import { CgroupStatsReader } from "../../src/stats/cgroup-stats.js";
import { FakeEngine } from "../harness/fake-engine.js";
import { launchRequest, newId } from "../harness/launches.js";

const SRC = "--docker_config 'test.json'";
const b64 = (s: string) => Buffer.from(s).toString("base64");

describe("registry-auth", () => {
  describe("registryOfImage", () => {
    const cases: Array<[string, string]> = [
      ["busybox", "docker.io"],
      ["busybox:1", "docker.io"],
      ["library/busybox", "docker.io"],
      ["someone/app:2@sha256:" + "a".repeat(64), "docker.io"],
      ["docker.io/library/busybox", "docker.io"],
      ["index.docker.io/library/busybox", "docker.io"],
      ["127.0.0.1:5001/berth/busybox:1", "127.0.0.1:5001"],
      ["localhost/app", "localhost"],
      ["localhost:5000/app", "localhost:5000"],
      ["registry.example.com/team/app:3", "registry.example.com"],
      ["Registry.Example.com/app", "registry.example.com"],
      ["[::1]:5000/app", "[::1]:5000"],
    ];
    for (const [ref, host] of cases) it(`${ref} → ${host}`, () => assert.equal(registryOfImage(ref), host));
  });

  describe("normalizeRegistryKey", () => {
    const cases: Array<[string, string]> = [
      ["127.0.0.1:5001", "127.0.0.1:5001"],
      ["https://127.0.0.1:5001", "127.0.0.1:5001"],
      ["http://127.0.0.1:5001/v2/", "127.0.0.1:5001"],
      ["HTTPS://Registry.Example.COM/v1/", "registry.example.com"],
      ["https://index.docker.io/v1/", "docker.io"],
      ["index.docker.io", "docker.io"],
      ["registry-1.docker.io", "docker.io"],
      ["docker.io", "docker.io"],
      ["  127.0.0.1:5001  ", "127.0.0.1:5001"],
      ["https://", ""],
    ];
    for (const [key, host] of cases) it(`'${key}' → '${host}'`, () => assert.equal(normalizeRegistryKey(key), host));
  });

  describe("parseDockerConfig", () => {
    it("decodes `auth` (base64 of user:password; the password may hold colons)", () => {
      const c = parseDockerConfig(JSON.stringify({ auths: { "https://127.0.0.1:5001": { auth: b64("alice:pa:ss") } } }), SRC);
      assert.deepEqual(c.byRegistry.get("127.0.0.1:5001")?.auth, { serveraddress: "127.0.0.1:5001", username: "alice", password: "pa:ss" });
    });

    it("takes username/password, and `auth` wins over them as in the docker CLI", () => {
      const plain = parseDockerConfig(JSON.stringify({ auths: { "r.example.com": { username: "bob", password: "pw" } } }), SRC);
      assert.deepEqual(plain.byRegistry.get("r.example.com")?.auth, { serveraddress: "r.example.com", username: "bob", password: "pw" });
      const both = parseDockerConfig(JSON.stringify({ auths: { "r.example.com": { username: "bob", password: "pw", auth: b64("carol:x") } } }), SRC);
      assert.deepEqual(both.byRegistry.get("r.example.com")?.auth, { serveraddress: "r.example.com", username: "carol", password: "x" });
    });

    it("takes an identitytoken, and Docker Hub keys get the CLI's server address", () => {
      const c = parseDockerConfig(JSON.stringify({ auths: { "https://index.docker.io/v1/": { auth: b64("u:p"), identitytoken: "tok" } } }), SRC);
      assert.deepEqual(c.byRegistry.get("docker.io")?.auth, { serveraddress: "https://index.docker.io/v1/", identitytoken: "tok" });
    });

    it("an empty entry (credentials kept by a helper) or no auths at all means no credentials", () => {
      const c = parseDockerConfig(JSON.stringify({ auths: { "127.0.0.1:5001": {} }, credsStore: "desktop" }), SRC);
      assert.equal(c.byRegistry.get("127.0.0.1:5001")?.auth, undefined);
      assert.equal(parseDockerConfig("{}", SRC).byRegistry.size, 0);
    });

    it("several keys naming one host: the exact host key wins, else the first", () => {
      const exact = parseDockerConfig(JSON.stringify({ auths: { "https://h:1/": { auth: b64("a:1") }, "h:1": { auth: b64("b:2") } } }), SRC);
      assert.equal((exact.byRegistry.get("h:1")?.auth as { username: string }).username, "b");
      const first = parseDockerConfig(JSON.stringify({ auths: { "https://h:1/": { auth: b64("a:1") }, "http://h:1/v2/": { auth: b64("b:2") } } }), SRC);
      assert.equal((first.byRegistry.get("h:1")?.auth as { username: string }).username, "a");
    });

    const SECRET = "Sup3r-secret-pw";
    const bad: Array<[string, string, RegExp]> = [
      ["not JSON", `{"auths": {"h": {"auth": "${SECRET}"`, /test\.json' is not valid JSON( \(it ends early\)| \(at line 1, column 43\))$/],
      ["not JSON (two lines)", `{"auths": {\n"h": {"auth": "${SECRET}"}},}`, /test\.json' is not valid JSON \(at line 2, column 3\d\)$/],
      ["garbage", `{"auths": ${SECRET}}`, /test\.json' is not valid JSON$/],
      ["not an object", "[1]", /is not a JSON object/],
      ["auths not an object", JSON.stringify({ auths: [SECRET] }), /"auths" is not an object/],
      ["entry not an object", JSON.stringify({ auths: { h: SECRET } }), /auths\["h"\] is not an object/],
      ["key without host", JSON.stringify({ auths: { "https://": { auth: b64("a:b") } } }), /auths\["https:\/\/"\] names no registry host/],
      ["auth not base64", JSON.stringify({ auths: { h: { auth: `${SECRET}!` } } }), /auths\["h"\]\.auth is not base64/],
      ["auth without colon", JSON.stringify({ auths: { h: { auth: b64(SECRET) } } }), /auths\["h"\]\.auth does not decode to 'user:password'/],
      ["auth with empty user", JSON.stringify({ auths: { h: { auth: b64(`:${SECRET}`) } } }), /does not decode to 'user:password'/],
      ["username without password", JSON.stringify({ auths: { h: { username: "u" } } }), /auths\["h"\] has a username but no password/],
      ["password without username", JSON.stringify({ auths: { h: { password: SECRET } } }), /auths\["h"\] has a password but no username/],
      ["password not a string", JSON.stringify({ auths: { h: { username: "u", password: 12345 } } }), /auths\["h"\]\.password is not a string/],
    ];
    for (const [what, text, message] of bad) {
      it(`refuses ${what}, naming the source and the field but never the secret`, () => {
        assert.throws(
          () => parseDockerConfig(text, SRC),
          (e: unknown) => {
            assert.ok(e instanceof DockerConfigError);
            assert.match(e.message, message);
            assert.ok(e.message.startsWith(SRC), e.message);
            assert.ok(!e.message.includes(SECRET) && !e.message.includes(b64(SECRET)), e.message);
            return true;
          },
        );
      });
    }
  });

  describe("DockerConfigSource", () => {
    let dir: string;
    beforeEach(async () => (dir = await mkdtemp(path.join(tmpdir(), "berth-dockercfg-"))));
    afterEach(() => rm(dir, { recursive: true, force: true }));

    it("reads the file again at every lookup, so a rotated credential applies at once", async () => {
      const file = path.join(dir, "config.json");
      await writeFile(file, JSON.stringify({ auths: { "127.0.0.1:5001": { auth: b64("alice:one") } } }));
      const source = await checkedDockerConfig(file);
      assert.equal(source.description, `--docker_config '${file}'`);
      assert.deepEqual((await source.credentialsFor("127.0.0.1:5001/a/b:1")).auth, { serveraddress: "127.0.0.1:5001", username: "alice", password: "one" });
      await writeFile(file, JSON.stringify({ auths: { "http://127.0.0.1:5001/v2/": { username: "bob", password: "two" } } }));
      assert.deepEqual((await source.credentialsFor("127.0.0.1:5001/a/b:1")).auth, { serveraddress: "127.0.0.1:5001", username: "bob", password: "two" });
      assert.deepEqual(await source.credentialsFor("other.example.com/a:1"), { registry: "other.example.com" });
    });

    it("names the credential helper that applies (credHelpers first, then credsStore) when it holds no credentials", async () => {
      const source = await checkedDockerConfig(
        JSON.stringify({ auths: { "127.0.0.1:5001": { auth: b64("u:p") }, "a.example.com": {} }, credHelpers: { "https://b.example.com": "ecr-login" }, credsStore: "desktop" }),
      );
      assert.deepEqual(await source.credentialsFor("b.example.com/x:1"), { registry: "b.example.com", helper: "ecr-login" });
      assert.deepEqual(await source.credentialsFor("a.example.com/x:1"), { registry: "a.example.com", helper: "desktop" });
      assert.equal((await source.credentialsFor("127.0.0.1:5001/x:1")).helper, undefined, "credentials win");
      await assert.rejects(checkedDockerConfig('{"credHelpers": {"h": 1}}'), /credHelpers\["h"\] is not a string/);
      await assert.rejects(checkedDockerConfig('{"credsStore": []}'), /"credsStore" is not a string/);
    });

    it("takes inline JSON when the value starts with '{'", async () => {
      const source = await checkedDockerConfig(` {"auths": {"127.0.0.1:5001": {"auth": "${b64("u:p")}"}}}`);
      assert.equal(source.description, "--docker_config (inline JSON)");
      assert.deepEqual((await source.credentialsFor("127.0.0.1:5001/x:1")).auth, { serveraddress: "127.0.0.1:5001", username: "u", password: "p" });
    });

    it("a missing file, a directory, an empty value or malformed inline JSON is refused with a message naming it", async () => {
      const missing = path.join(dir, "nope.json");
      await assert.rejects(checkedDockerConfig(missing), new DockerConfigError(`--docker_config '${missing}' cannot be read: ENOENT`));
      await assert.rejects(checkedDockerConfig(dir), new DockerConfigError(`--docker_config '${dir}' is not a regular file`));
      await assert.rejects(checkedDockerConfig(""), /--docker_config is empty/);
      await assert.rejects(checkedDockerConfig('{"auths": {"h": {"auth": "s3cret-inline"'), (e: Error) => /^--docker_config \(inline JSON\) is not valid JSON \((it ends early|at line 1, column \d+)\)$/.test(e.message) && !e.message.includes("s3cret"));
    });

    it("a file made malformed after start-up fails the lookup with the same message", async () => {
      const file = path.join(dir, "config.json");
      await writeFile(file, "{}");
      const source = new DockerConfigSource(file);
      await source.load();
      await writeFile(file, '{"auths": {"h": 1}}');
      await assert.rejects(source.credentialsFor("h/x:1"), new DockerConfigError(`--docker_config '${file}': auths["h"] is not an object`));
    });
  });

  describe("redactCredentials", () => {
    it("removes the password, user:password, their base64 forms and the header JSON", () => {
      const auth: RegistryAuth = { serveraddress: "h:1", username: "u", password: "pw-123" };
      const header = Buffer.from(JSON.stringify(auth)).toString("base64url");
      const text = `a pw-123 b ${b64("u:pw-123")} c ${b64("pw-123")} d ${header} e`;
      const out = redactCredentials(text, auth);
      for (const secret of ["pw-123", b64("u:pw-123"), b64("pw-123"), header]) assert.ok(!out.includes(secret), out);
      assert.equal(redactCredentials(text, undefined), text);
    });
  });

  describe("credentials never leak (containerizer over a fake engine)", () => {
    const PASSWORD = "Hunter2-registry-pw";
    const USER = "alice";
    const IMAGE = "127.0.0.1:5999/private/app:1";
    let dir: string;
    beforeEach(async () => (dir = await mkdtemp(path.join(tmpdir(), "berth-leak-"))));
    afterEach(() => rm(dir, { recursive: true, force: true }));

    /**
     * A registry behind a fake engine that accepts only alice's password, and whose error text
     * (adversarially) quotes the header and the password it was sent.
     */
    class AuthCheckingEngine extends FakeEngine {
      readonly auths: Array<RegistryAuth | undefined> = [];
      override async pullImage(ref: string, onProgress: (p: PullProgress) => void, signal: AbortSignal, auth?: RegistryAuth): Promise<void> {
        this.auths.push(auth);
        if (auth === undefined) throw new EngineRequestFailed(`engine answered 500 to pull of '${ref}': Head "http://127.0.0.1:5999/v2/private/app/manifests/1": no basic auth credentials`, 500);
        if (!("password" in auth) || auth.password !== PASSWORD) {
          const header = Buffer.from(JSON.stringify(auth)).toString("base64url");
          throw new EngineRequestFailed(`engine answered 500 to pull of '${ref}': unauthorized: authentication required (header ${header}, password ${"password" in auth ? auth.password : ""})`, 500);
        }
        return super.pullImage(ref, onProgress, signal);
      }
    }

    async function rig(configFile: string) {
      const engine = new AuthCheckingEngine();
      const lines: string[] = [];
      const log = pino({ level: "trace" }, { write: (line: string) => void lines.push(line) });
      const store = new CheckpointStore(path.join(dir, "meta"));
      await store.init();
      const monitor = new EventMonitor({ engine, labels: agentLabels("unit-agent"), backoff: { initialMs: 2, maxMs: 10 } });
      const puller = new ImagePuller({ engine, overallTimeoutMs: 60_000, activityTimeoutMs: 60_000, credentials: await checkedDockerConfig(configFile) });
      const stats = new CgroupStatsReader();
      const cz = new Containerizer(
        { agentId: "unit-agent", workDir: dir, sandboxDirectory: "/mnt/mesos/sandbox", stopTimeoutMs: 3000, removeDelayMs: 0, launchTimeoutMs: 60_000, terminationRetention: 100, outputGraceMs: 5000, engineAddress: "fake://engine" },
        { engine, puller, monitor, fetch: async () => {}, log, checkpoints: store, stats },
      );
      cz.start();
      monitor.start();
      await firstValueFrom(monitor.connected$.pipe(filter(Boolean)));
      const close = async () => {
        engine.releaseAll();
        await cz.idle();
        cz.shutdown();
        await monitor.stop();
        stats.close();
      };
      return { engine, cz, lines, close };
    }

    function launch(cz: Containerizer, id: string) {
      const req = launchRequest(id, { image: IMAGE, shell: "true", taskId: `task-${id}` });
      // Resumed from the journal's start: every event of the container, up to its termination.
      const events = lastValueFrom(cz.watch([id], 0n).pipe(takeWhile((e) => e.kind.type !== "termination", true), toArray()));
      return { launched: cz.launch({ containerId: id, nested: false, config: create(ContainerConfigSchema, req.containerConfig), environment: {} }), events };
    }

    function eventText(events: ContainerEvent[]): string {
      return JSON.stringify(events, (_k, v: unknown) => {
        if (typeof v === "bigint") return v.toString();
        if (v instanceof Uint8Array) return Buffer.from(v).toString("latin1");
        return v;
      });
    }

    /** Every form of the secret a leak could take. */
    function assertNoSecret(text: string, where: string, password: string): void {
      for (const form of [password, b64(password), b64(`${USER}:${password}`), Buffer.from(password).toString("base64url")]) {
        assert.ok(!text.includes(form), `${where} contains a form of the password ('${form}'): ${text.slice(0, 2000)}`);
      }
    }

    function checkpointsText(): string {
      const root = path.join(dir, "meta");
      const out: string[] = [];
      const walk = (d: string): void => {
        for (const e of readdirSync(d, { withFileTypes: true })) {
          const p = path.join(d, e.name);
          if (e.isDirectory()) walk(p);
          else out.push(readFileSync(p).toString("latin1"));
        }
      };
      walk(root);
      return out.join("\n");
    }

    it("a refused pull ends LAUNCH_FAILED saying authentication failed for the registry, with no form of the password in its message, events, logs or checkpoints", async () => {
      const wrong = "Wr0ng-but-still-secret";
      const file = path.join(dir, "config.json");
      await writeFile(file, JSON.stringify({ auths: { "http://127.0.0.1:5999": { auth: b64(`${USER}:${wrong}`) } } }));
      const r = await rig(file);
      try {
        const id = newId("leak-fail");
        const { launched, events } = launch(r.cz, id);
        assert.equal((await launched).result, "LAUNCHED");
        const all = await events;
        const termination = await r.cz.wait(id);
        const ct = termination.containerTermination;
        assert.equal(ct.state, TaskState.TASK_FAILED);
        assert.equal(ct.reason, TaskStatus_Reason.CONTAINER_LAUNCH_FAILED);
        assert.match(ct.message, /authentication failed for registry 127\.0\.0\.1:5999 \(the credentials --docker_config '.*' holds for it were sent\)/);
        assert.deepEqual(r.engine.auths, [{ serveraddress: "127.0.0.1:5999", username: USER, password: wrong }], "the engine got the credentials");
        assert.ok(r.lines.some((l) => l.includes("launch failed")), "the failure is logged");
        for (const [where, text] of [["message", ct.message], ["events", eventText(all)], ["log", r.lines.join("\n")], ["checkpoints", checkpointsText()]] as const) {
          assertNoSecret(text, where, wrong);
        }
      } finally {
        await r.close();
      }
    });

    it("with no credentials for the registry the message says none were sent; with the right ones the pull succeeds and nothing leaks", async () => {
      const file = path.join(dir, "config.json");
      await writeFile(file, JSON.stringify({ auths: { "other.example.com": { auth: b64(`${USER}:${PASSWORD}`) } } }));
      const r = await rig(file);
      try {
        const none = newId("leak-none");
        const first = launch(r.cz, none);
        await first.launched;
        const failed = await r.cz.wait(none);
        assert.equal(failed.containerTermination.reason, TaskStatus_Reason.CONTAINER_LAUNCH_FAILED);
        assert.match(failed.containerTermination.message, /authentication failed for registry 127\.0\.0\.1:5999 \(--docker_config '.*' holds no credentials for it, so none were sent\)/);
        assert.match(failed.containerTermination.message, /no basic auth credentials/);

        // Rotated: the next pull reads the file again.
        await writeFile(file, JSON.stringify({ auths: { "127.0.0.1:5999": { auth: b64(`${USER}:${PASSWORD}`) } } }));
        const ok = newId("leak-ok");
        const second = launch(r.cz, ok);
        await second.launched;
        const running = await firstValueFrom(r.cz.watch([ok]).pipe(filter((e) => e.kind.type === "state" && e.kind.state === "RUNNING")));
        assert.ok(running);
        r.engine.exit((await r.cz.status(ok)).engineId!, 0);
        const finished = await r.cz.wait(ok);
        assert.equal(finished.containerTermination.state, TaskState.TASK_FINISHED);
        assert.deepEqual(r.engine.auths, [undefined, { serveraddress: "127.0.0.1:5999", username: USER, password: PASSWORD }]);
        const all = [...(await first.events), ...(await second.events)];
        for (const [where, text] of [["messages", failed.containerTermination.message + finished.containerTermination.message], ["events", eventText(all)], ["log", r.lines.join("\n")], ["checkpoints", checkpointsText()]] as const) {
          assertNoSecret(text, where, PASSWORD);
        }
      } finally {
        await r.close();
      }
    });
  });
});
