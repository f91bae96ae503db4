// A launch captures its container's output through the engine's attach, opened between create and
// start (issue 10: the engine's own capped copy rotates under a logs follow, which then loses or
// repeats lines). Forced with the fake engine: the order of the calls, a refused attach, a destroy
// while the attach is in flight.
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { PassThrough, Readable, type Duplex } from "node:stream";
import { finished } from "node:stream/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { filter, firstValueFrom } from "rxjs";
import type { LaunchInput } from "../../src/containerizer/containerizer.js";
import { DockerodeEngine } from "../../src/docker/dockerode-engine.js";
import { attachEndCheck, EngineRequestFailed, type LogStreams } from "../../src/docker/engine-port.js";
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

/**
 * A fake engine whose attach ends as the adapter's does: its end is checked with the port's
 * attachEndCheck, asking this engine's (logged) inspect unless the exit the launch passed is seen.
 */
class EndCheckingEngine extends FakeEngine {
  readonly exitsPassed: Array<Promise<unknown> | undefined> = [];
  override async attachOutput(id: string, signal: AbortSignal, tty: boolean, exited?: Promise<unknown>): Promise<LogStreams> {
    this.exitsPassed.push(exited);
    const streams = await super.attachOutput(id, signal, tty);
    const checkEnd = attachEndCheck(exited, async () => ((await this.inspectContainer(id))?.running === true ? new Error("attach ended while the container still runs") : undefined));
    const ended = Promise.all([finished(streams.stdout), finished(streams.stderr)]).then(() => undefined);
    return { ...streams, interrupted: ended.then(() => (signal.aborted ? undefined : checkEnd())) };
  }
}

describe("the end of a launch's attach after the container's die needs no engine round trip", () => {
  let r: FakeRig<EndCheckingEngine>;
  let workDir: string;
  beforeEach(async () => {
    workDir = await mkdtemp(path.join(tmpdir(), "berth-attach-end-"));
    r = await fakeRig(new EndCheckingEngine({ images: [PRESENT] }), workDir);
  });
  afterEach(() => closeRig(r, workDir));

  async function running(id: string): Promise<string> {
    const seen = firstValueFrom(r.cz.watch([id]).pipe(filter((e) => e.kind.type === "state" && e.kind.state === "RUNNING")));
    assert.equal((await r.cz.launch(input(id))).result, "LAUNCHED");
    await seen;
    return r.engine.calls("createContainer")[0]!.result as string;
  }

  it("die seen, then the attach ends: the termination is published with the last bytes in the sandbox and no inspect", async () => {
    const engineId = await running("seen");
    const c = r.engine.container(engineId);
    c.keepsOutputOpen = true;
    const inspectsBefore = r.engine.calls("inspectContainer").length;
    c.stdout.write("before exit\n");
    r.engine.exit(engineId, 0);
    // The launch's exit settles when the die reached the container: only then does the output end.
    const exited = r.engine.exitsPassed[0];
    assert.ok(exited, "the launch passed its exit to the attach");
    await exited;
    c.stdout.end("last\n");
    c.stderr.end();
    const t = await r.cz.wait("seen");
    assert.equal(t.containerTermination.state, TaskState.TASK_FINISHED);
    const sandbox = r.cz.list().find((x) => x.containerId === "seen")!.sandbox;
    assert.equal(await readFile(path.join(sandbox, "stdout"), "utf8"), "before exit\nlast\n");
    assert.equal(r.engine.calls("inspectContainer").length, inspectsBefore, "the attach's end was not checked with an inspect");
    assert.deepEqual(r.engine.calls("followLogs"), [], "nothing re-attached");
  });

  it("the attach ends while no die was seen yet: the engine's inspect decides (still running: re-followed, nothing lost)", async () => {
    const engineId = await running("unseen");
    const c = r.engine.container(engineId);
    c.keepsOutputOpen = true;
    const inspectsBefore = r.engine.calls("inspectContainer").length;
    c.stdout.write("one\n");
    // The connection ends while the container runs (an engine restart with live-restore).
    c.stdout.end();
    c.stderr.end();
    const inspect = await r.engine.nextCall("inspectContainer", inspectsBefore + 1);
    assert.equal(inspect.args[0], engineId);
    await r.engine.nextCall("followLogs");
    r.engine.exit(engineId, 0);
    const t = await r.cz.wait("unseen");
    assert.equal(t.containerTermination.state, TaskState.TASK_FINISHED);
    const sandbox = r.cz.list().find((x) => x.containerId === "unseen")!.sandbox;
    assert.equal(await readFile(path.join(sandbox, "stdout"), "utf8"), "one\n");
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

  /** An inspect that counts its calls and answers as `running` says. */
  function countedInspect(running: boolean): { inspect: () => Promise<unknown>; calls: () => number } {
    let n = 0;
    const answer = state(running);
    return {
      inspect: () => {
        n++;
        return answer();
      },
      calls: () => n,
    };
  }

  it("ended after the caller saw the exit (its die event): over, without an inspect", async () => {
    const socket = new PassThrough();
    // Even an engine that would say "running" is not asked: the exit is known.
    const engine = countedInspect(true);
    const exited = Promise.resolve({ exitCode: 0 });
    const streams = await engineAttaching(socket, engine.inspect).attachOutput("c", new AbortController().signal, false, exited);
    await exited;
    socket.end(frame(1, "last\n"));
    assert.equal(await drain(streams.stdout), "last\n");
    assert.equal(await streams.interrupted, undefined);
    assert.equal(engine.calls(), 0, "no inspect after a seen exit");
  });

  it("ended before any exit was seen: the inspect decides (running: broken; exited: over)", async () => {
    const never = new Promise<never>(() => undefined);
    const running = countedInspect(true);
    const broken = new PassThrough();
    const a = await engineAttaching(broken, running.inspect).attachOutput("c", new AbortController().signal, true, never);
    broken.end("bytes");
    assert.equal(await drain(a.stdout), "bytes");
    assert.match(String(await a.interrupted), /ended while the container still runs/);
    assert.equal(running.calls(), 1);
    const exitedEngine = countedInspect(false);
    const ended = new PassThrough();
    const b = await engineAttaching(ended, exitedEngine.inspect).attachOutput("c", new AbortController().signal, true, never);
    ended.end("bytes");
    assert.equal(await drain(b.stdout), "bytes");
    assert.equal(await b.interrupted, undefined);
    assert.equal(exitedEngine.calls(), 1);
  });

  it("an exit seen while the inspect is in flight decides without waiting for the engine's answer", async () => {
    let inspected = false;
    let asked!: () => void;
    const askedP = new Promise<void>((resolve) => (asked = resolve));
    // The engine never answers this inspect: only the exit can end the wait.
    const hanging = () => {
      inspected = true;
      asked();
      return new Promise<unknown>(() => undefined);
    };
    let exit!: (facts: unknown) => void;
    const exited = new Promise<unknown>((resolve) => (exit = resolve));
    const socket = new PassThrough();
    const streams = await engineAttaching(socket, hanging).attachOutput("c", new AbortController().signal, true, exited);
    socket.end();
    streams.stdout.resume();
    await askedP;
    assert.equal(inspected, true);
    exit({ exitCode: 0 });
    assert.equal(await streams.interrupted, undefined);
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
