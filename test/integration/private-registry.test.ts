/**
 * Private registries through `--docker_config`, against the real engine and a real registry that
 * requires basic auth (docker-registry with an htpasswd file, started here on 127.0.0.1).
 */
import assert from "node:assert/strict";
import { readdir, readFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type Dockerode from "dockerode";
import { StartupError } from "../../src/berth.js";
import { TaskState, TaskStatus_Reason } from "../../src/gen/mesos/v1/mesos_pb.js";
import { BerthClient } from "../harness/berth-client.js";
import { startCapturedBerth, type CapturedBerth } from "../harness/in-process-berth.js";
import { launchRequest, newId } from "../harness/launches.js";
import { startTestBerth } from "../harness/test-berth.js";
import { pushToAuthRegistry, startAuthRegistry, type AuthRegistry, type RegistryUser } from "../support/auth-registry.js";
import { ensureEngine, ensureTestImages, removeImage } from "../support/engine.js";

const ALICE: RegistryUser = { username: "alice", password: "Alice-s3cret-pw" };
const BOB: RegistryUser = { username: "bob", password: "Bob-0ther-s3cret" };
const WRONG = "Not-the-Right-pw";

const b64 = (s: string) => Buffer.from(s).toString("base64");

/** A config.json `auths` with `user`'s credentials for `host`, written as the docker CLI writes it. */
function configFor(host: string, user: RegistryUser | { username: string; password: string }): string {
  return JSON.stringify({ auths: { [`http://${host}/v2/`]: { auth: b64(`${user.username}:${user.password}`) } } });
}

/** JSON of protobuf-es messages (bigint and bytes included), for searching. */
function text(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === "bigint") return v.toString();
    if (v instanceof Uint8Array) return Buffer.from(v).toString("latin1");
    return v;
  });
}

/** Every file under `dir`, read as latin1 and joined. */
async function allFiles(dir: string): Promise<string> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(await readFile(path.join(entry.parentPath, entry.name), "latin1"));
  }
  return out.join("\n");
}

describe("private registries (--docker_config) against a basic-auth registry", function () {
  this.timeout(180_000);
  let docker: Dockerode;
  let registry: AuthRegistry;
  let image: string;
  let dir: string;
  let configFile: string;
  let b: CapturedBerth;
  let client: BerthClient;
  /** Every container this suite launched on `b`, for the leak check at the end. */
  const launched: string[] = [];

  before(async () => {
    docker = await ensureEngine();
    const images = await ensureTestImages(docker);
    registry = await startAuthRegistry([ALICE, BOB]);
    image = await pushToAuthRegistry(docker, registry, images.busybox, "berth-private/busybox", "1", ALICE);
    dir = await mkdtemp(path.join(os.tmpdir(), "berth-docker-config-"));
    configFile = path.join(dir, "config.json");
    await writeFile(configFile, configFor(registry.host, ALICE), { mode: 0o600 });
    b = await startCapturedBerth({ docker_config: configFile });
    client = new BerthClient(b.berth.addresses[0]!);
  });

  after(async () => {
    client?.close();
    await b?.close();
    if (image) await removeImage(docker, image);
    await registry?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Launches a task from the private image (which must be pulled) and waits for its termination. */
  async function run(c: BerthClient, prefix: string) {
    await removeImage(docker, image);
    const id = newId(prefix);
    if (c === client) launched.push(id);
    const res = await c.launch(launchRequest(id, { image, shell: "echo from-private-image", taskId: `task-${id}` }));
    assert.equal(res.result, 1, "LAUNCHED");
    const { termination } = await c.wait(id);
    return { id, ct: termination!.containerTermination!, sandbox: res.sandboxDirectory };
  }

  function assertAuthFailure(ct: { state: TaskState; reason: TaskStatus_Reason; message: string }, credentials: RegExp): void {
    assert.equal(ct.state, TaskState.TASK_FAILED);
    assert.equal(ct.reason, TaskStatus_Reason.CONTAINER_LAUNCH_FAILED, ct.message);
    assert.match(ct.message, new RegExp(`^Failed to launch container during PULLING: pull of '${image.replace(/[.]/g, "\\.")}' failed: authentication failed for registry ${registry.host.replace(/[.]/g, "\\.")} \\(`));
    assert.match(ct.message, credentials);
  }

  it("with the right credentials in the file the image is pulled and the task runs to TASK_FINISHED", async () => {
    const { ct, sandbox } = await run(client, "auth-ok");
    assert.equal(ct.state, TaskState.TASK_FINISHED, ct.message);
    assert.equal(await readFile(path.join(sandbox, "stdout"), "utf8"), "from-private-image\n");
  });

  it("with wrong credentials the launch ends REASON_CONTAINER_LAUNCH_FAILED: authentication failed for the registry, credentials sent", async () => {
    await writeFile(configFile, configFor(registry.host, { username: ALICE.username, password: WRONG }));
    const { ct } = await run(client, "auth-wrong");
    assertAuthFailure(ct, /\(the credentials --docker_config '.*' holds for it were sent\); the engine said: .*unauthorized/);
  });

  it("with no credentials for the registry the launch ends REASON_CONTAINER_LAUNCH_FAILED saying none were sent", async () => {
    await writeFile(configFile, configFor("registry.example.com", ALICE));
    const { ct } = await run(client, "auth-none");
    assertAuthFailure(ct, /\(--docker_config '.*' holds no credentials for it, so none were sent\); the engine said: .*no basic auth credentials/);
  });

  it("rotating the file's credentials takes effect at the next launch, without a restart", async () => {
    await writeFile(configFile, configFor(registry.host, { username: BOB.username, password: WRONG }));
    assertAuthFailure((await run(client, "rotate-wrong")).ct, /holds for it were sent/);
    await writeFile(configFile, configFor(registry.host, BOB));
    const ok = await run(client, "rotate-bob");
    assert.equal(ok.ct.state, TaskState.TASK_FINISHED, ok.ct.message);
    await writeFile(configFile, configFor(registry.host, { username: BOB.username, password: WRONG }));
    assertAuthFailure((await run(client, "rotate-back")).ct, /holds for it were sent/);
  });

  it("a file made malformed after start-up fails the launch with a message naming the file and the problem", async () => {
    await writeFile(configFile, JSON.stringify({ auths: { [registry.host]: { auth: "not base64!" } } }));
    const { ct } = await run(client, "auth-malformed");
    assert.equal(ct.reason, TaskStatus_Reason.CONTAINER_LAUNCH_FAILED);
    assert.ok(ct.message.endsWith(`failed: --docker_config '${configFile}': auths["${registry.host}"].auth is not base64 (expected base64 of 'user:password')`), ct.message);
  });

  it("no form of any password appears in the log, the Watch events, Status, the checkpoints or the messages", async () => {
    assert.ok(launched.length >= 5, "the launches above ran");
    const events = [];
    const statuses = [];
    for (const id of launched) {
      events.push(...(await client.collect([id], (e) => e.kind.case === "termination", 0n)));
      statuses.push(await client.status(id));
    }
    assert.ok(events.some((e) => e.kind.case === "pullProgress"), "the pulls reported progress");
    const places: Array<[string, string]> = [
      ["log", b.lines.map((l) => JSON.stringify(l)).join("\n")],
      ["watch events", text(events)],
      ["status", text(statuses)],
      ["checkpoints", await allFiles(path.join(b.workDir, "meta"))],
    ];
    assert.ok(b.lines.some((l) => l.msg === "launch failed"), "the failed launches were logged");
    for (const [where, haystack] of places) {
      for (const user of [ALICE, BOB, { username: ALICE.username, password: WRONG }, { username: BOB.username, password: WRONG }]) {
        for (const secret of [user.password, b64(user.password), b64(`${user.username}:${user.password}`)]) {
          assert.ok(!haystack.includes(secret), `${where} contains '${secret}'`);
        }
      }
    }
  });

  it("inline JSON works as the file does", async () => {
    const inline = await startTestBerth({ docker_config: configFor(registry.host, ALICE) });
    try {
      const { ct } = await run(inline.client, "auth-inline");
      assert.equal(ct.state, TaskState.TASK_FINISHED, ct.message);
    } finally {
      await inline.close();
    }
  });

  it("without --docker_config the launch fails saying no --docker_config is set", async () => {
    const plain = await startTestBerth();
    try {
      const { ct } = await run(plain.client, "auth-unset");
      assertAuthFailure(ct, /\(no --docker_config is set, so no credentials were sent\)/);
    } finally {
      await plain.close();
    }
  });

  it("a bad --docker_config stops start-up with a one-line StartupError naming it, never the secret", async () => {
    const missing = path.join(dir, "missing.json");
    await assert.rejects(startTestBerth({ docker_config: missing, work_dir: path.join(dir, "refused-1") }), (e: unknown) => e instanceof StartupError && e.message === `--docker_config '${missing}' cannot be read: ENOENT`);
    const badInline = `{"auths": {"${registry.host}": {"auth": "${b64(`alice:${ALICE.password}`)}"}`;
    await assert.rejects(startTestBerth({ docker_config: badInline, work_dir: path.join(dir, "refused-2") }), (e: unknown) => {
      assert.ok(e instanceof StartupError);
      assert.match(e.message, /^--docker_config \(inline JSON\) is not valid JSON \((it ends early|at line 1, column \d+)\)$/);
      assert.ok(!e.message.includes(ALICE.password) && !e.message.includes(b64(`alice:${ALICE.password}`)));
      return true;
    });
  });
});
