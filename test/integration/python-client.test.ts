import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type Dockerode from "dockerode";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import { repoRoot } from "../support/dev-dir.js";
import { ensureEngine, ensureTestImages, removeTestContainers, type TestImages } from "../support/engine.js";
import { makeTestPki, type TestPki } from "../support/certs.js";
import { BerthClient } from "../harness/berth-client.js";
import { newId } from "../harness/launches.js";
import { BerthProcess, freePort } from "../harness/process-berth.js";

/**
 * The Python client of examples/python, run as a person runs it: Debian's python3 with
 * python3-grpcio, stubs generated from proto/ by examples/python/generate.sh, against a real
 * `berth serve` child process on the real engine. The cross-language claim, tested.
 */

// Debian's interpreter: python3-grpcio installs into its dist-packages. A python3 earlier on PATH
// (pyenv, a venv) would not see it; BERTH_PYTHON overrides.
const PYTHON = process.env.BERTH_PYTHON ?? "/usr/bin/python3";
const CLIENT = path.join(repoRoot(), "examples", "python", "berth_run.py");
const GENERATE = path.join(repoRoot(), "examples", "python", "generate.sh");
/** A safety bound on one client run (it is killed past it); the tests wait for its exit, never a time. */
const RUN_BOUND_MS = 120_000;

interface ClientRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `python3 examples/python/berth_run.py ARGS…` to its exit. */
function runClient(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ClientRun> {
  const child = spawn(PYTHON, [CLIENT, ...args], { env: { ...process.env, BERTH_TOKEN: "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const bound = setTimeout(() => child.kill("SIGKILL"), RUN_BOUND_MS);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(bound);
      resolve({ code, stdout, stderr });
    });
  });
}

const show = (r: ClientRun) => `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

describe("the Python client (examples/python) against a real berth serve", function () {
  this.timeout(180_000);
  let docker: Dockerode;
  let images: TestImages;
  let pki: TestPki | undefined;
  const dirs: string[] = [];
  const processes: BerthProcess[] = [];
  const agents = new Set<string>();

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "berth-py-"));
    dirs.push(dir);
    return dir;
  }

  /** `berth serve` on a fresh work dir; returns the first listen address. */
  async function serve(args: string[] = []): Promise<{ addr: string; workDir: string }> {
    const workDir = await tempDir();
    const p = new BerthProcess(["serve", "--work_dir", workDir, "--docker_stop_timeout", "2secs", ...args]);
    processes.push(p);
    const serving = await p.serving();
    agents.add(serving.agent_id);
    return { addr: serving.listen[0]!, workDir };
  }

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
    await promisify(execFile)(PYTHON, ["-c", "import grpc"]).catch((err: Error) => {
      throw new Error(`${PYTHON} cannot import grpc (Debian's python3-grpcio; scripts/engine-up.sh installs it): ${err.message}`);
    });
    await promisify(execFile)("sh", [GENERATE]);
  });

  after(async () => {
    for (const p of processes) p.kill("SIGTERM");
    await Promise.all(processes.map((p) => p.exited));
    for (const agent of agents) await removeTestContainers(docker, { [LABEL_AGENT_ID]: agent });
    await pki?.remove();
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it("launches, follows the states, prints the output and the termination; Berth agrees", async () => {
    const { addr } = await serve();
    const id = newId("py");
    const run = await runClient(["--addr", addr, "--image", images.busybox, "--id", id, "--", "echo hello from python; echo to stderr >&2; exit 3"]);
    assert.equal(run.code, 0, show(run));
    assert.equal(run.stdout, "hello from python\nterminated: TASK_FAILED, exit code 3 (Container exited with status 3)\n", show(run));
    const stderr = run.stderr.split("\n");
    for (const state of ["FETCHING", "PULLING", "MOUNTING", "RUNNING", "TERMINATED"]) {
      assert.ok(stderr.some((l) => l.startsWith(`berth: ${id} ${state}`)), `stderr shows ${state}:\n${run.stderr}`);
    }
    assert.ok(stderr.includes("to stderr"), `the container's stderr goes to stderr:\n${run.stderr}`);

    const client = new BerthClient(addr);
    try {
      const { termination } = await client.wait(id);
      assert.equal(termination?.exitCode, 3, "Berth recorded the exit code the client printed");
    } finally {
      client.close();
    }
  });

  it("several command words are quoted as words for /bin/sh -c", async () => {
    const { addr } = await serve();
    const run = await runClient(["--addr", addr, "--image", images.busybox, "--", "printf", "%s|", "a b", "$HOME", "it's"]);
    assert.equal(run.code, 0, show(run));
    assert.equal(run.stdout, "a b|$HOME|it's|terminated: TASK_FINISHED, exit code 0 (Container exited with status 0)\n", show(run));
  });

  it("a bad request: one line with the RPC, the gRPC code and Berth's message, exit 1, nothing launched", async () => {
    const { addr } = await serve();
    const id = newId("py-bad");
    const run = await runClient(["--addr", addr, "--image", "NOT a/valid::ref", "--id", id, "--", "true"]);
    assert.equal(run.code, 1, show(run));
    assert.equal(run.stdout, "", show(run));
    assert.equal(
      run.stderr,
      "berth_run: Launch failed: INVALID_ARGUMENT (code 3): container_info.docker.image 'NOT a/valid::ref' is not a valid image reference (e.g. 'registry:5000/name:tag')\n",
    );
    const client = new BerthClient(addr);
    try {
      assert.deepEqual((await client.containers()).containers, [], "the refused launch left nothing");
    } finally {
      client.close();
    }
  });

  it("a launch that fails in the engine (no such image in the registry): the termination says why", async () => {
    const { addr } = await serve();
    const missing = images.busybox.replace(/busybox:1$/, "no-such-image:1");
    assert.notEqual(missing, images.busybox);
    const run = await runClient(["--addr", addr, "--image", missing, "--", "true"]);
    assert.equal(run.code, 0, show(run));
    assert.match(run.stdout, /^terminated: TASK_FAILED, no exit code, REASON_CONTAINER_LAUNCH_FAILED \(Failed to launch container during PULLING: .*no-such-image.*\)\n$/, show(run));
  });

  it("no server at --addr: UNAVAILABLE, exit 1", async () => {
    const socket = path.join(await tempDir(), "nobody.sock");
    const run = await runClient(["--addr", `unix://${socket}`, "--image", images.busybox, "--", "true"]);
    assert.equal(run.code, 1, show(run));
    assert.match(run.stderr, /^berth_run: Launch failed: UNAVAILABLE \(code 14\): .*nobody\.sock/, show(run));
  });

  it("with --auth_token_file: no token is UNAUTHENTICATED (exit 1); --token-file or BERTH_TOKEN runs", async () => {
    const dir = await tempDir();
    const tokens = path.join(dir, "tokens");
    await writeFile(tokens, "py-client-secret-token\n", { mode: 0o600 });
    const mine = path.join(dir, "my-token");
    await writeFile(mine, "py-client-secret-token\n", { mode: 0o600 });
    const { addr } = await serve(["--auth_token_file", tokens]);

    const refused = await runClient(["--addr", addr, "--image", images.busybox, "--", "echo hi"]);
    assert.equal(refused.code, 1, show(refused));
    assert.match(refused.stderr, /^berth_run: Launch failed: UNAUTHENTICATED \(code 16\): /, show(refused));

    const withFile = await runClient(["--addr", addr, "--image", images.busybox, "--token-file", mine, "--", "echo with a token file"]);
    assert.equal(withFile.code, 0, show(withFile));
    assert.equal(withFile.stdout, "with a token file\nterminated: TASK_FINISHED, exit code 0 (Container exited with status 0)\n", show(withFile));

    const withEnv = await runClient(["--addr", addr, "--image", images.busybox, "--", "echo with BERTH_TOKEN"], { BERTH_TOKEN: "py-client-secret-token" });
    assert.equal(withEnv.code, 0, show(withEnv));
    assert.match(withEnv.stdout, /^with BERTH_TOKEN\nterminated: TASK_FINISHED, exit code 0/, show(withEnv));
  });

  it("over mutual TLS on loopback TCP with --ca/--cert/--key", async () => {
    pki = await makeTestPki();
    const port = await freePort();
    const { addr } = await serve([
      "--listen", `127.0.0.1:${port}`,
      "--tls_cert", pki.server.certFile, "--tls_key", pki.server.keyFile, "--tls_client_ca", pki.ca.certFile,
    ]);
    const tls = ["--ca", pki.ca.certFile, "--cert", pki.client.certFile, "--key", pki.client.keyFile];
    const run = await runClient(["--addr", addr, ...tls, "--image", images.busybox, "--", "echo over TLS"]);
    assert.equal(run.code, 0, show(run));
    assert.equal(run.stdout, "over TLS\nterminated: TASK_FINISHED, exit code 0 (Container exited with status 0)\n", show(run));

    // Without a client certificate the server refuses the handshake: UNAVAILABLE, exit 1.
    const noCert = await runClient(["--addr", addr, "--ca", pki.ca.certFile, "--image", images.busybox, "--", "true"]);
    assert.equal(noCert.code, 1, show(noCert));
    assert.match(noCert.stderr, /^berth_run: Launch failed: UNAVAILABLE \(code 14\): [^\n]*\n$/, show(noCert));
  });
});
