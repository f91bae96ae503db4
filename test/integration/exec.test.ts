import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type Dockerode from "dockerode";
import { DockerodeEngine } from "../../src/docker/dockerode-engine.js";
import { EngineRequestFailed } from "../../src/docker/engine-port.js";
import { execSync } from "../../src/exec/exec-sync.js";
import { ExecProcess } from "../../src/exec/exec-process.js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Metadata, status, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import {
  ExecRequestSchema,
  ExecResponseSchema,
  ExecSyncRequestSchema,
  State,
  type ExecRequest,
  type ExecResponse,
  type ExecSyncResponse,
} from "../../src/gen/berth/v1/containerizer_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { useBerth } from "../harness/use-berth.js";
import { startTestBerth } from "../harness/test-berth.js";
import { launchRequest, newId } from "../harness/launches.js";
import { pollUntil } from "../harness/engine-control.js";
import { RawClient } from "../harness/raw-client.js";
import { mkdtempSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

  it("a process dying of a signal exits 128+N as the engine reports it", async () => {
    const r = await execSync(engine, id, { ...opts, argv: ["/bin/sh", "-c", "kill -TERM $$"] }, never());
    assert.equal(r.exitCode, 128 + 15);
    assert.equal(r.timedOut, false);
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

  it("a process that closes its output and runs on is waited for, and killed at the timeout", async () => {
    const ran = await execSync(engine, id, { ...opts, argv: ["/bin/sh", "-c", "echo bye; exec >&- 2>&-; sleep 0.3; exit 6"] }, never());
    assert.equal(ran.stdout.toString(), "bye\n");
    assert.equal(ran.exitCode, 6);
    assert.equal(ran.timedOut, false);
    const marker = uniqueSleep();
    const killed = await execSync(engine, id, { ...opts, timeoutMs: 500, argv: ["/bin/sh", "-c", `exec >&- 2>&-; exec sleep ${marker}`] }, never());
    assert.equal(killed.timedOut, true);
    assert.equal(killed.exitCode, 137);
    const ps = await execSync(engine, id, { ...opts, argv: ["ps", "-o", "args"] }, never());
    assert.doesNotMatch(ps.stdout.toString(), new RegExp(`sleep ${marker}`));
  });

  it("an aborted execSync kills the process and rejects with the abort reason", async () => {
    const ac = new AbortController();
    const marker = uniqueSleep();
    const running = execSync(engine, id, { ...opts, argv: ["/bin/sh", "-c", `echo go; exec sleep ${marker}`] }, ac.signal);
    // Wait until the process is there, seen from a second exec.
    await pollUntil(
      async () => (await execSync(engine, id, { ...opts, argv: ["ps", "-o", "args"] }, never())).stdout.toString().includes(`sleep ${marker}`),
      10_000,
      `'sleep ${marker}' runs in the container`,
    );
    ac.abort(new Error("client went away"));
    await assert.rejects(running, /client went away/);
    const ps = await execSync(engine, id, { ...opts, argv: ["ps", "-o", "args"] }, never());
    assert.doesNotMatch(ps.stdout.toString(), new RegExp(`sleep ${marker}`));
  });

  it("a killed exec is over in the engine's inspect, with the exit code of SIGKILL", async () => {
    const proc = await ExecProcess.start(engine, id, { Cmd: ["sleep", uniqueSleep()], Tty: false, AttachStdin: false });
    try {
      // Killed before or after the engine has a pid for it: either way it ends.
      const state = await proc.kill();
      assert.equal(state.running, false);
      assert.equal(state.exitCode, 137);
      const again = await engine.inspectExec(proc.execId);
      assert.equal(again.running, false);
    } finally {
      proc.close();
    }
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

type ExecSyncInit = MessageInitShape<typeof ExecSyncRequestSchema>;

describe("ExecSync and Exec through Berth (real engine)", function () {
  this.timeout(60_000);
  const s = useBerth({ exec_max_output_bytes: "1000", exec_timeout: "2secs" });
  const launched: string[] = [];

  after(async () => {
    for (const id of launched) await s.t.client.destroy(id).catch(() => undefined);
  });

  /** Launches `sleep 3600` (network none) and resolves once it is RUNNING. */
  async function running(shell = "sleep 3600"): Promise<string> {
    const id = newId("exec");
    launched.push(id);
    await s.t.client.launch(launchRequest(id, { image: s.images.busybox, shell }));
    await s.t.client.collect([id], (e) => e.kind.case === "stateChanged" && e.kind.value.state === State.RUNNING);
    return id;
  }

  function execSyncCall(init: ExecSyncInit): Promise<ExecSyncResponse> {
    return s.t.client.call<ExecSyncResponse>("execSync", create(ExecSyncRequestSchema, init));
  }

  async function refused(p: Promise<unknown>, code: status, pattern: RegExp): Promise<void> {
    await assert.rejects(p, (err: ServiceError) => {
      assert.equal(err.code, code, `${status[err.code]}: ${err.details}`);
      assert.match(err.details, pattern);
      return true;
    });
  }

  function openExec(): ClientDuplexStream<ExecRequest, ExecResponse> {
    const raw = s.t.client.raw as unknown as { exec(): ClientDuplexStream<ExecRequest, ExecResponse> };
    return raw.exec();
  }

  /** Everything an Exec call answered, and how it ended. */
  interface ExecOutcome {
    stdout: string;
    stderr: string;
    exitCode?: number;
    code: status;
    details: string;
  }

  function outcome(call: ClientDuplexStream<ExecRequest, ExecResponse>, onStdout?: (all: string) => void): Promise<ExecOutcome> {
    return new Promise((resolve) => {
      const o: ExecOutcome = { stdout: "", stderr: "", code: status.OK, details: "" };
      call.on("data", (r: ExecResponse) => {
        if (r.kind.case === "stdout") {
          o.stdout += Buffer.from(r.kind.value).toString();
          onStdout?.(o.stdout);
        } else if (r.kind.case === "stderr") o.stderr += Buffer.from(r.kind.value).toString();
        else if (r.kind.case === "exitCode") o.exitCode = r.kind.value;
      });
      call.on("error", () => undefined);
      call.on("status", (st: { code: status; details: string }) => resolve({ ...o, code: st.code, details: st.details }));
    });
  }

  const req = (init: MessageInitShape<typeof ExecRequestSchema>): ExecRequest => create(ExecRequestSchema, init);

  async function processGone(id: string, marker: string): Promise<void> {
    await pollUntil(
      async () => !(await execSyncCall({ containerId: { value: id }, command: ["ps", "-o", "args"] })).stdout.toString().includes(`sleep ${marker}`),
      10_000,
      `no 'sleep ${marker}' is left in container ${id}`,
    );
  }

  it("ExecSync answers stdout, stderr and the exit code; stdin, environment, user and working_dir apply", async () => {
    const id = await running();
    const r = await execSyncCall({
      containerId: { value: id },
      command: ["/bin/sh", "-c", 'cat; echo "$A"; id -u; pwd; echo oops >&2; exit 5'],
      stdin: Buffer.from("in\n"),
      environment: { A: "b c" },
      user: "nobody",
      workingDir: "/tmp",
    });
    assert.equal(Buffer.from(r.stdout).toString(), "in\nb c\n65534\n/tmp\n");
    assert.equal(Buffer.from(r.stderr).toString(), "oops\n");
    assert.equal(r.exitCode, 5);
    assert.equal(r.timedOut, false);
  });

  it("ExecSync caps each stream at --exec_max_output_bytes and flags it", async () => {
    const id = await running();
    const r = await execSyncCall({ containerId: { value: id }, command: ["/bin/sh", "-c", "head -c 200000 /dev/zero; head -c 2000 /dev/zero >&2"] });
    assert.equal(r.stdout.length, 1000);
    assert.equal(r.stderr.length, 1000);
    assert.equal(r.stdoutTruncated, true);
    assert.equal(r.stderrTruncated, true);
    assert.equal(r.exitCode, 0);
  });

  it("ExecSync past its timeout kills the process: timed_out, exit 137, and no such process left", async () => {
    const id = await running();
    const marker = uniqueSleep();
    const r = await execSyncCall({ containerId: { value: id }, command: ["/bin/sh", "-c", `sleep ${marker} & wait`], timeout: { seconds: 0n, nanos: 300_000_000 } });
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, 137);
    const ps = await execSyncCall({ containerId: { value: id }, command: ["ps", "-o", "args"] });
    assert.doesNotMatch(ps.stdout.toString(), new RegExp(`sleep ${marker}`));
  });

  it("ExecSync without a timeout gets --exec_timeout", async () => {
    const id = await running();
    const r = await execSyncCall({ containerId: { value: id }, command: ["sleep", uniqueSleep()] });
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, 137);
  });

  it("ExecSync refuses bad fields with INVALID_ARGUMENT naming them", async () => {
    const id = await running();
    const c = { value: id };
    await refused(execSyncCall({ containerId: c, command: [] }), status.INVALID_ARGUMENT, /command is empty/);
    await refused(execSyncCall({ containerId: c, command: ["echo", "a\0b"] }), status.INVALID_ARGUMENT, /command\[1\].*NUL/);
    await refused(execSyncCall({ containerId: c, command: ["true"], environment: { "A=B": "x" } }), status.INVALID_ARGUMENT, /environment name 'A=B'/);
    await refused(execSyncCall({ containerId: c, command: ["true"], user: "no body" }), status.INVALID_ARGUMENT, /user 'no body'/);
    await refused(execSyncCall({ containerId: c, command: ["true"], workingDir: "tmp" }), status.INVALID_ARGUMENT, /working_dir 'tmp' is not an absolute path/);
    await refused(execSyncCall({ containerId: c, command: ["true"], timeout: { seconds: -1n } }), status.INVALID_ARGUMENT, /timeout .* negative/);
    await refused(execSyncCall({ command: ["true"] }), status.INVALID_ARGUMENT, /container_id is missing/);
  });

  it("ExecSync into an unknown container is NOT_FOUND, into a terminated one FAILED_PRECONDITION naming its state", async () => {
    await refused(execSyncCall({ containerId: { value: newId("nope") }, command: ["true"] }), status.NOT_FOUND, /not known/);
    const id = newId("exec-done");
    launched.push(id);
    await s.t.client.launch(launchRequest(id, { image: s.images.busybox, shell: "true" }));
    await s.t.client.wait(id);
    await refused(execSyncCall({ containerId: { value: id }, command: ["true"] }), status.FAILED_PRECONDITION, /is TERMINATED; exec needs a RUNNING container/);
    const call = openExec();
    const ended = outcome(call);
    call.write(req({ kind: { case: "start", value: { containerId: { value: id }, command: ["true"] } } }));
    const o = await ended;
    assert.equal(o.code, status.FAILED_PRECONDITION, o.details);
    assert.match(o.details, /TERMINATED/);
  });

  it("Exec without a TTY: stdin round trip, close_stdin, stdout and stderr apart, the exit code last", async () => {
    const id = await running();
    const call = openExec();
    const ended = outcome(call);
    call.write(req({ kind: { case: "start", value: { containerId: { value: id }, command: ["/bin/sh", "-c", "cat; echo done >&2; exit 7"], stdin: true } } }));
    call.write(req({ kind: { case: "stdin", value: Buffer.from("hello ") } }));
    call.write(req({ kind: { case: "stdin", value: Buffer.from("world\n") } }));
    call.write(req({ kind: { case: "closeStdin", value: true } }));
    const o = await ended;
    assert.equal(o.code, status.OK, o.details);
    assert.equal(o.stdout, "hello world\n");
    assert.equal(o.stderr, "done\n");
    assert.equal(o.exitCode, 7);
    call.end();
  });

  it("Exec carries a large stdin whole (requests wait while the process's stdin is full)", async () => {
    const id = await running();
    const call = openExec();
    const ended = outcome(call);
    call.write(req({ kind: { case: "start", value: { containerId: { value: id }, command: ["wc", "-c"], stdin: true } } }));
    const chunk = Buffer.alloc(128 * 1024, 0x61);
    for (let i = 0; i < 64; i += 1) call.write(req({ kind: { case: "stdin", value: chunk } }));
    call.end(); // half-close: closes the process's stdin
    const o = await ended;
    assert.equal(o.code, status.OK, o.details);
    assert.equal(o.stdout.trim(), String(64 * chunk.length));
    assert.equal(o.exitCode, 0);
  });

  it("Exec with a TTY: the initial size and a resize reach the terminal", async () => {
    const id = await running();
    const call = openExec();
    let asked = false;
    const ended = outcome(call, (all) => {
      // Ask for the size again once the first answer is in, after resizing.
      if (!asked && /30 100/.test(all)) {
        asked = true;
        call.write(req({ kind: { case: "resize", value: { rows: 40, columns: 120 } } }));
        call.write(req({ kind: { case: "stdin", value: Buffer.from("busybox stty size; exit 3\n") } }));
      }
    });
    call.write(req({ kind: { case: "start", value: { containerId: { value: id }, command: ["/bin/sh"], tty: true, stdin: true, size: { rows: 30, columns: 100 } } } }));
    call.write(req({ kind: { case: "stdin", value: Buffer.from("test -t 0 && echo is-a-tty; busybox stty size\n") } }));
    const o = await ended;
    assert.equal(o.code, status.OK, o.details);
    assert.match(o.stdout, /is-a-tty/);
    assert.match(o.stdout, /30 100/);
    assert.match(o.stdout, /40 120/);
    assert.equal(o.stderr, "");
    assert.equal(o.exitCode, 3);
    call.end();
  });

  it("a client that does not read holds the process back: Exec output waits for the call's flow control", async () => {
    const id = await running();
    const total = 64 * MIB;
    const pidFile = `/tmp/pid-${uniqueSleep()}`;
    const call = openExec();
    let bytes = 0;
    let exitCode: number | undefined;
    const ended = new Promise<{ code: status; details: string }>((resolve) => call.on("status", resolve));
    call.on("error", () => undefined);
    call.on("data", (r: ExecResponse) => {
      if (r.kind.case === "stdout") bytes += r.kind.value.length;
      else if (r.kind.case === "exitCode") exitCode = r.kind.value;
    });
    call.pause();
    call.write(req({ kind: { case: "start", value: { containerId: { value: id }, command: ["/bin/sh", "-c", `echo $$ > ${pidFile}; exec head -c ${total} /dev/zero`] } } }));
    const sh = async (script: string): Promise<string> => Buffer.from((await execSyncCall({ containerId: { value: id }, command: ["/bin/sh", "-c", script] })).stdout).toString();
    // Stalled: blocked writing its pipe, and no byte written between two looks.
    await pollUntil(
      async () => {
        const look = `p=$(cat ${pidFile} 2>/dev/null) && cat /proc/$p/wchan && echo && grep wchar /proc/$p/io`;
        const first = await sh(look);
        const second = await sh(look);
        const written = Number(/wchar: (\d+)/.exec(first)?.[1] ?? NaN);
        return /pipe_write/.test(first) && first === second && written < total;
      },
      20_000,
      "the exec'd writer is blocked while the client does not read",
    );
    call.resume();
    const st = await ended;
    assert.equal(st.code, status.OK, st.details);
    assert.equal(bytes, total);
    assert.equal(exitCode, 0);
    call.end();
  });

  it("a cancelled Exec kills its process", async () => {
    const id = await running();
    const marker = uniqueSleep();
    const call = openExec();
    const ended = outcome(call, (all) => {
      if (all.includes("go")) call.cancel();
    });
    call.write(req({ kind: { case: "start", value: { containerId: { value: id }, command: ["/bin/sh", "-c", `echo go; exec sleep ${marker}`] } } }));
    const o = await ended;
    assert.equal(o.code, status.CANCELLED);
    await processGone(id, marker);
  });

  it("Exec past start.timeout kills the process, sends exit code 137 and ends DEADLINE_EXCEEDED", async () => {
    const id = await running();
    const marker = uniqueSleep();
    const call = openExec();
    const ended = outcome(call);
    call.write(req({ kind: { case: "start", value: { containerId: { value: id }, command: ["sleep", marker], timeout: { nanos: 300_000_000 } } } }));
    const o = await ended;
    assert.equal(o.exitCode, 137);
    assert.equal(o.code, status.DEADLINE_EXCEEDED, o.details);
    await processGone(id, marker);
    call.end();
  });

  it("Exec refuses a first message other than start, stdin without start.stdin, and a resize without a TTY", async () => {
    const id = await running();
    const first = openExec();
    const firstEnded = outcome(first);
    first.write(req({ kind: { case: "stdin", value: Buffer.from("x") } }));
    let o = await firstEnded;
    assert.equal(o.code, status.INVALID_ARGUMENT);
    assert.match(o.details, /first message of an Exec must be 'start', got 'stdin'/);

    const noStdin = openExec();
    const noStdinEnded = outcome(noStdin);
    noStdin.write(req({ kind: { case: "start", value: { containerId: { value: id }, command: ["sleep", uniqueSleep()] } } }));
    noStdin.write(req({ kind: { case: "stdin", value: Buffer.from("x") } }));
    o = await noStdinEnded;
    assert.equal(o.code, status.INVALID_ARGUMENT);
    assert.match(o.details, /start.stdin is false/);

    const noTty = openExec();
    const noTtyEnded = outcome(noTty);
    noTty.write(req({ kind: { case: "start", value: { containerId: { value: id }, command: ["sleep", uniqueSleep()] } } }));
    noTty.write(req({ kind: { case: "resize", value: { rows: 10, columns: 10 } } }));
    o = await noTtyEnded;
    assert.equal(o.code, status.INVALID_ARGUMENT);
    assert.match(o.details, /resize needs a TTY/);
  });

  it("Exec answers undecodable bytes with INVALID_ARGUMENT, also after a good start", async () => {
    const id = await running();
    const raw = new RawClient(s.t.berth.addresses[0]!);
    try {
      const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]);
      let o = await raw.bidi("/berth.v1.Containerizer/Exec", [garbage]);
      assert.equal(o.code, status.INVALID_ARGUMENT, o.details);
      assert.match(o.details, /berth.v1.Containerizer.Exec: the request is not a valid protobuf message/);
      const start = Buffer.from(toBinary(ExecRequestSchema, req({ kind: { case: "start", value: { containerId: { value: id }, command: ["sleep", uniqueSleep()], stdin: true } } })));
      o = await raw.bidi("/berth.v1.Containerizer/Exec", [start, garbage]);
      assert.equal(o.code, status.INVALID_ARGUMENT, o.details);
      // Nothing but the status came back: no exit code of a process left behind unkilled.
      assert.deepEqual(o.messages.map((m) => fromBinary(ExecResponseSchema, m).kind.case), []);
    } finally {
      raw.close();
    }
  });
});

describe("Exec under an operator policy with require_non_root_user (real engine)", function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), "berth-exec-policy-"));
  const policyFile = join(dir, "policy.json");
  writeFileSync(policyFile, JSON.stringify({ require_non_root_user: true }));
  const s = useBerth({ policy: policyFile });
  const id = newId("exec-policy");

  after(async () => {
    await s.t?.client.destroy(id).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it("an exec as root is PERMISSION_DENIED naming the rule; without a user it runs as the container's (admitted) user", async () => {
    const launch = launchRequest(id, { image: s.images.busybox, shell: "sleep 3600" });
    launch.containerConfig!.user = "nobody";
    await s.t.client.launch(launch);
    await s.t.client.collect([id], (e) => e.kind.case === "stateChanged" && e.kind.value.state === State.RUNNING);
    const call = (user: string) => s.t.client.call<ExecSyncResponse>("execSync", create(ExecSyncRequestSchema, { containerId: { value: id }, command: ["id", "-u"], user }));
    await assert.rejects(call("root"), (err: ServiceError) => {
      assert.equal(err.code, status.PERMISSION_DENIED, err.details);
      assert.match(err.details, /policy rule 'require_non_root_user' refuses user "root"/);
      return true;
    });
    await assert.rejects(call("0:0"), (err: ServiceError) => err.code === status.PERMISSION_DENIED);
    const r = await call("");
    assert.equal(Buffer.from(r.stdout).toString(), "65534\n");
  });
});

describe("Exec when Berth stops (real engine)", function () {
  this.timeout(60_000);
  let docker: Dockerode;
  let images: TestImages;
  let engineId: string | undefined;

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
  });

  after(async () => {
    if (engineId) await docker.getContainer(engineId).remove({ force: true }).catch(() => undefined);
  });

  it("an open Exec ends UNAVAILABLE and its process is killed; the container keeps running", async () => {
    const t = await startTestBerth();
    let stopped = false;
    try {
      const id = newId("exec-stop");
      await t.client.launch(launchRequest(id, { image: images.busybox, shell: "sleep 3600" }));
      await t.client.collect([id], (e) => e.kind.case === "stateChanged" && e.kind.value.state === State.RUNNING);
      engineId = (await t.client.status(id)).engineId;
      const marker = uniqueSleep();
      const call = (t.client.raw as unknown as { exec(): ClientDuplexStream<ExecRequest, ExecResponse> }).exec();
      call.on("error", () => undefined);
      const ended = new Promise<{ code: status; details: string }>((resolve) => call.on("status", resolve));
      const going = new Promise<void>((resolve) => call.on("data", (r: ExecResponse) => r.kind.case === "stdout" && resolve()));
      call.write(create(ExecRequestSchema, { kind: { case: "start", value: { containerId: { value: id }, command: ["/bin/sh", "-c", `echo go; exec sleep ${marker}`] } } }));
      await going;
      await t.close();
      stopped = true;
      const st = await ended;
      assert.equal(st.code, status.UNAVAILABLE, st.details);
      assert.match(st.details, /shutting down; the exec'd process was killed/);
      const engine = new DockerodeEngine({ socketPath: "/var/run/docker.sock", requestTimeoutMs: 10_000 });
      const ps = await execSync(engine, engineId, { argv: ["ps", "-o", "args"], timeoutMs: 10_000, maxOutputBytes: MIB }, never());
      assert.doesNotMatch(ps.stdout.toString(), new RegExp(`sleep ${marker}`));
      assert.match(ps.stdout.toString(), /sleep 3600/);
    } finally {
      if (!stopped) await t.close();
    }
  });
});
