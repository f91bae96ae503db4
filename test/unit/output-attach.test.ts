// A launch captures its container's output through the engine's attach, opened between create and
// start (issue 10: the engine's own capped copy rotates under a logs follow, which then loses or
// repeats lines). Forced with the fake engine: the order of the calls, a refused attach, a destroy
// while the attach is in flight.
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { PassThrough, Readable, type Duplex } from "node:stream";
import { tmpdir } from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { filter, firstValueFrom } from "rxjs";
import type { LaunchInput } from "../../src/containerizer/containerizer.js";
import { DockerodeEngine } from "../../src/docker/dockerode-engine.js";
import { EngineRequestFailed } from "../../src/docker/engine-port.js";
import { ContainerConfigSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import { TaskState, TaskStatus_Reason } from "../../src/gen/mesos/v1/mesos_pb.js";
import { captureOutput, openOutputFiles } from "../../src/logger/sandbox-output.js";
import { pollUntil } from "../harness/engine-control.js";
import { FakeEngine } from "../harness/fake-engine.js";
import { closeRig, fakeRig, type FakeRig } from "../harness/fake-rig.js";
import { launchRequest } from "../harness/launches.js";

const PRESENT = "registry.invalid/fake/present:1";

function input(id: string): LaunchInput {
  const req = launchRequest(id, { image: PRESENT, shell: "sleep 1000" });
  return { containerId: id, nested: false, config: create(ContainerConfigSchema, req.containerConfig), environment: {} };
}

describe("a launch's output is captured through the engine's attach, opened before the start", () => {
  let r: FakeRig<FakeEngine>;
  let workDir: string;
  beforeEach(async () => {
    workDir = await mkdtemp(path.join(tmpdir(), "berth-attach-"));
    r = await fakeRig(new FakeEngine({ images: [PRESENT] }), workDir);
  });
  afterEach(() => closeRig(r, workDir));

  it("attach comes after the create and is answered before the start; the first bytes and the last reach the sandbox before the termination", async () => {
    const start = r.engine.hold("startContainer");
    assert.equal((await r.cz.launch(input("order"))).result, "LAUNCHED");
    const startCall = await start.entered;
    const [created] = r.engine.calls("createContainer");
    const [attach] = r.engine.calls("attachOutput");
    assert.ok(created && attach, "created and attached");
    assert.ok(attach.enteredAt > created.settledAt!, "attached to a created container");
    assert.ok(attach.settledAt! < startCall.enteredAt, "the attach was answered before the start was asked for");
    assert.equal(attach.error, undefined);
    assert.deepEqual(r.engine.calls("followLogs"), [], "the engine's logs are not followed for a launch");
    const engineId = r.engine.calls("createContainer")[0]!.result as string;
    // The process writes at once, while the start call has not even returned.
    r.engine.container(engineId).stdout.write("first\n");
    const running = firstValueFrom(r.cz.watch(["order"]).pipe(filter((e) => e.kind.type === "state" && e.kind.state === "RUNNING")));
    start();
    await running;
    const sandbox = r.cz.list().find((c) => c.containerId === "order")!.sandbox;
    r.engine.container(engineId).stderr.write("err\n");
    r.engine.container(engineId).stdout.write("last\n");
    r.engine.exit(engineId, 0);
    const t = await r.cz.wait("order");
    assert.equal(t.containerTermination.state, TaskState.TASK_FINISHED);
    assert.equal(await readFile(path.join(sandbox, "stdout"), "utf8"), "first\nlast\n");
    assert.equal(await readFile(path.join(sandbox, "stderr"), "utf8"), "err\n");
  });

  it("an attach the engine refuses fails the launch before anything runs, and nothing is left in the engine", async () => {
    r.engine.failNext("attachOutput", new EngineRequestFailed("container is restarting", 409));
    await r.cz.launch(input("refused"));
    const ct = (await r.cz.wait("refused")).containerTermination;
    assert.equal(ct.state, TaskState.TASK_FAILED);
    assert.equal(ct.reason, TaskStatus_Reason.CONTAINER_LAUNCH_FAILED);
    assert.match(ct.message, /could not attach to the container's output/);
    assert.match(ct.message, /container is restarting/);
    assert.deepEqual(r.engine.calls("startContainer"), [], "never started");
    assert.equal(r.engine.containers.size, 0, "the created container was removed");
    const sandbox = r.cz.list().find((c) => c.containerId === "refused")!.sandbox;
    // The output files stay as the launch made them (empty), with nothing rotated beside them.
    assert.deepEqual((await readdir(sandbox)).filter((n) => n.startsWith("std")).sort(), ["stderr", "stdout"]);
  });

  it("a destroy while the attach is in flight ends the launch: never started, removed, the capture closed", async () => {
    const attach = r.engine.hold("attachOutput");
    await r.cz.launch(input("destroyed"));
    await attach.entered;
    const destroyed = r.cz.destroy("destroyed");
    const ct = (await destroyed).containerTermination;
    assert.equal(ct.state, TaskState.TASK_KILLED);
    attach();
    assert.deepEqual(r.engine.calls("startContainer"), []);
    assert.equal(r.engine.containers.size, 0);
  });
});

describe("output in pieces (as an attach delivers it) still rotates at line ends", () => {
  let dir: string;
  beforeEach(async () => (dir = await mkdtemp(path.join(tmpdir(), "berth-pieces-"))));
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("a line that arrives in two pieces is never split across two files", async () => {
    const files = await openOutputFiles(dir, { maxSize: 16, maxFiles: 10 });
    // 9 bytes, then a 11-byte line in two pieces (each its own chunk): it does not fit beside the
    // first, so the rotation must come before it, not in its middle.
    const stdout = Readable.from(["12345678\n", "abcdef", "ghij\n", "last\n"].map((t) => Buffer.from(t)));
    await captureOutput({ stdout, stderr: Readable.from([]) }, files);
    await Promise.all([files.stdout.close(), files.stderr.close()]);
    assert.equal(await readFile(path.join(dir, "stdout.1"), "utf8"), "12345678\n");
    assert.equal(await readFile(path.join(dir, "stdout"), "utf8"), "abcdefghij\nlast\n");
  });

  it("an unfinished line (a prompt) is written after a moment, without waiting for its end", async () => {
    const files = await openOutputFiles(dir, { maxSize: 1024, maxFiles: 2 });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const done = captureOutput({ stdout, stderr }, files);
    stdout.write("done\nname? ");
    await pollUntil(async () => (await readFile(path.join(dir, "stdout"), "utf8")) === "done\nname? ", 5000, "the prompt is in the file");
    stdout.end("berth\n");
    stderr.end();
    await done;
    await Promise.all([files.stdout.close(), files.stderr.close()]);
    assert.equal(await readFile(path.join(dir, "stdout"), "utf8"), "done\nname? berth\n");
  });
});

describe("the dockerode adapter tells an attach that ended from one that broke", () => {
  /** An adapter whose engine answers the attach with `source` and inspects as `running` says (or fails). */
  function engineAttaching(source: Duplex, inspect: () => Promise<unknown>): DockerodeEngine {
    const engine = new DockerodeEngine({ socketPath: "/nonexistent/berth-test.sock", requestTimeoutMs: 1000 });
    (engine as unknown as { docker: unknown }).docker = { getContainer: () => ({ attach: async () => source, inspect }) };
    return engine;
  }
  const state = (running: boolean) => async () => ({ Id: "c", Name: "/c", Config: {}, State: { Running: running, Status: running ? "running" : "exited" } });

  /** A multiplexed frame of the engine's attach stream. */
  function frame(type: 1 | 2, text: string): Buffer {
    const header = Buffer.alloc(8);
    header[0] = type;
    header.writeUInt32BE(Buffer.byteLength(text), 4);
    return Buffer.concat([header, Buffer.from(text)]);
  }

  async function drain(stream: Readable): Promise<string> {
    let s = "";
    for await (const chunk of stream) s += String(chunk);
    return s;
  }

  it("ended with the container exited: over; the frames split into stdout and stderr", async () => {
    const socket = new PassThrough();
    const streams = await engineAttaching(socket, state(false)).attachOutput("c", new AbortController().signal, false);
    socket.write(frame(1, "out\n"));
    socket.end(frame(2, "err\n"));
    assert.deepEqual(await Promise.all([drain(streams.stdout), drain(streams.stderr)]), ["out\n", "err\n"]);
    assert.equal(await streams.interrupted, undefined);
  });

  it("ended while the container still runs (an engine restart with live-restore): broken", async () => {
    const socket = new PassThrough();
    const streams = await engineAttaching(socket, state(true)).attachOutput("c", new AbortController().signal, true);
    socket.end("raw tty bytes");
    assert.equal(await drain(streams.stdout), "raw tty bytes");
    assert.match(String(await streams.interrupted), /ended while the container still runs/);
  });

  it("ended and the engine does not answer the inspect: broken; aborted by Berth: over, the connection closed", async () => {
    const gone = new PassThrough();
    const unanswered = await engineAttaching(gone, async () => Promise.reject(Object.assign(new Error("connect ENOENT"), { code: "ENOENT" }))).attachOutput("c", new AbortController().signal, true);
    gone.end();
    unanswered.stdout.resume();
    assert.match(String(await unanswered.interrupted), /unreachable/);
    const ac = new AbortController();
    const open = new PassThrough();
    const aborted = await engineAttaching(open, state(true)).attachOutput("c", ac.signal, false);
    ac.abort(new Error("output grace period over"));
    assert.equal(await aborted.interrupted, undefined);
    assert.equal(open.destroyed, true);
  });
});
