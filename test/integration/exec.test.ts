import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type Dockerode from "dockerode";
import { DockerodeEngine } from "../../src/docker/dockerode-engine.js";
import { EngineRequestFailed } from "../../src/docker/engine-port.js";
import { execSync } from "../../src/exec/exec-sync.js";
import { ensureEngine, ensureTestImages, removeTestContainers, TEST_LABEL, type TestImages } from "../support/engine.js";
import { readProgress } from "../support/progress.js";

const RUN = randomBytes(4).toString("hex");
/** A sleep duration no other process uses: it marks the process in `ps` (busybox sleep takes one operand). */
const uniqueSleep = (): string => String(1_000_000 + randomBytes(3).readUIntBE(0, 3));
const LABELS = { [TEST_LABEL]: "exec", "berth.test.run": RUN };
const MIB = 1024 * 1024;

/** A running busybox container (network none) to exec into; `sleep` as init so it stays up. */
async function startContainer(docker: Dockerode, image: string): Promise<string> {
  const c = await docker.createContainer({
    name: `berth-exec-test-${RUN}-${randomBytes(3).toString("hex")}`,
    Image: image,
    Labels: LABELS,
    Cmd: ["/bin/sleep", "3600"],
    HostConfig: { NetworkMode: "none" },
  });
  await c.start();
  return c.id;
}

function never(): AbortSignal {
  return new AbortController().signal;
}

describe("exec against the real engine (domain)", function () {
  this.timeout(60_000);
  let docker: Dockerode;
  let images: TestImages;
  let engine: DockerodeEngine;
  let id: string;

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
    await readProgress(await docker.pull(images.busybox), `pull ${images.busybox}`);
    engine = new DockerodeEngine({ socketPath: "/var/run/docker.sock", requestTimeoutMs: 10_000 });
    id = await startContainer(docker, images.busybox);
  });

  after(async () => {
    if (docker) await removeTestContainers(docker, LABELS);
  });

  const opts = { timeoutMs: 30_000, maxOutputBytes: MIB };

  it("execSync returns stdout, stderr and the exit code", async () => {
    const r = await execSync(engine, id, { ...opts, argv: ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"] }, never());
    assert.equal(r.stdout.toString(), "out\n");
    assert.equal(r.stderr.toString(), "err\n");
    assert.equal(r.exitCode, 3);
    assert.equal(r.timedOut, false);
    assert.equal(r.stdoutTruncated, false);
  });

  it("execSync passes stdin, env, user and working dir", async () => {
    const r = await execSync(
      engine,
      id,
      { ...opts, argv: ["/bin/sh", "-c", 'cat; echo "$GREETING"; id -u; pwd'], stdin: Buffer.from("from stdin\n"), env: { GREETING: "hi there" }, user: "65534", workingDir: "/tmp" },
      never(),
    );
    assert.equal(r.stdout.toString(), "from stdin\nhi there\n65534\n/tmp\n");
    assert.equal(r.exitCode, 0);
  });

  it("execSync caps each stream and flags it truncated, still reaching the exit", async () => {
    const r = await execSync(engine, id, { ...opts, maxOutputBytes: 1000, argv: ["/bin/sh", "-c", "head -c 300000 /dev/zero; head -c 10 /dev/zero >&2; exit 4"] }, never());
    assert.equal(r.stdout.length, 1000);
    assert.equal(r.stdoutTruncated, true);
    assert.equal(r.stderr.length, 10);
    assert.equal(r.stderrTruncated, false);
    assert.equal(r.exitCode, 4);
  });

  it("execSync past its timeout kills the process tree: timed_out, exit 137, no process left", async () => {
    const marker = uniqueSleep();
    // A shell with a child: both must go (the child would keep the output open otherwise).
    const r = await execSync(engine, id, { ...opts, timeoutMs: 500, argv: ["/bin/sh", "-c", `sleep ${marker} & echo started; wait`] }, never());
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, 137);
    assert.equal(r.stdout.toString(), "started\n");
    const ps = await execSync(engine, id, { ...opts, argv: ["ps", "-o", "pid,args"] }, never());
    assert.doesNotMatch(ps.stdout.toString(), new RegExp(`sleep ${marker}`));
  });

  it("an aborted execSync kills the process and rejects with the abort reason", async () => {
    const ac = new AbortController();
    const marker = uniqueSleep();
    const running = execSync(engine, id, { ...opts, argv: ["/bin/sh", "-c", `echo go; exec sleep ${marker}`] }, ac.signal);
    // Wait until the process is there, seen from a second exec.
    for (;;) {
      const ps = await execSync(engine, id, { ...opts, argv: ["ps", "-o", "args"] }, never());
      if (ps.stdout.toString().includes(marker)) break;
    }
    ac.abort(new Error("client went away"));
    await assert.rejects(running, /client went away/);
    const ps = await execSync(engine, id, { ...opts, argv: ["ps", "-o", "args"] }, never());
    assert.doesNotMatch(ps.stdout.toString(), new RegExp(`sleep ${marker}`));
  });

  it("exec into a stopped container is refused by the engine with 409", async () => {
    const stopped = await startContainer(docker, images.busybox);
    await docker.getContainer(stopped).kill();
    await docker.getContainer(stopped).wait();
    await assert.rejects(
      execSync(engine, stopped, { ...opts, argv: ["true"] }, never()),
      (err: unknown) => err instanceof EngineRequestFailed && err.statusCode === 409 && /not running/.test(err.message),
    );
  });
});
