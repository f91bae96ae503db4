import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import http2 from "node:http2";
import net from "node:net";
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { status, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { LogsRequestSchema, LogStream, State, type LogsResponse } from "../../src/gen/berth/v1/containerizer_pb.js";
import { TaskState } from "../../src/gen/mesos/v1/mesos_pb.js";
import { launchRequest, newId } from "../harness/launches.js";
import Dockerode from "dockerode";
import { ENGINE_SOCKET, pollUntil } from "../harness/engine-control.js";
import { useBerth } from "../harness/use-berth.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";
import type { TestImages } from "../support/engine.js";
import type { EnginePort } from "../../src/docker/engine-port.js";
import type { OutputRegistry } from "../../src/logger/live-output.js";

const MAX_SIZE = 16 * 1024;
/** Enough that a follow reader never falls behind the ~6 files of the follow test (the attach feeds the sandbox at the container's own pace). */
const MAX_FILES = 8;
/** Lines are ~210 bytes: a few dozen per file, and little JSON overhead in the engine's own copy. */
const PAD = "x".repeat(200);

type LogsInit = MessageInitShape<typeof LogsRequestSchema>;

function logsCall(t: TestBerth, init: LogsInit): ClientReadableStream<LogsResponse> {
  const fn = (t.client.raw as unknown as Record<string, (req: unknown) => ClientReadableStream<LogsResponse>>).logs!.bind(t.client.raw);
  return fn(create(LogsRequestSchema, init));
}

/** Reads a Logs stream to its end: the text of each stream and the chunks' stream labels. */
function readLogs(call: ClientReadableStream<LogsResponse>): Promise<{ stdout: string; stderr: string; labels: Set<LogStream> }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const labels = new Set<LogStream>();
  return new Promise((resolve, reject) => {
    call.on("data", (r: LogsResponse) => {
      labels.add(r.stream);
      (r.stream === LogStream.STDERR ? err : out).push(Buffer.from(r.data));
    });
    call.on("error", reject);
    call.on("end", () => resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), labels }));
  });
}

function logs(t: TestBerth, init: LogsInit) {
  return readLogs(logsCall(t, init));
}

function expectStatus(t: TestBerth, init: LogsInit): Promise<ServiceError> {
  return readLogs(logsCall(t, init)).then(
    () => assert.fail("Logs succeeded"),
    (err: ServiceError) => err,
  );
}

/**
 * A Logs call over a bare HTTP/2 stream that is paused from the start (no WINDOW_UPDATE is sent, so
 * the server's writes back up); `resume()` reads it to its end and reports the gRPC status.
 */
function stalledLogsCall(address: string, request: ReturnType<typeof create<typeof LogsRequestSchema>>) {
  const socketPath = address.replace(/^unix:/, "");
  const session = http2.connect("http://localhost", { createConnection: () => net.connect(socketPath) });
  session.on("error", () => undefined);
  const body = toBinary(LogsRequestSchema, request);
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  const req = session.request({ ":method": "POST", ":path": "/berth.v1.Containerizer/Logs", "content-type": "application/grpc", te: "trailers" });
  req.end(frame);
  req.pause();
  let trailers: http2.IncomingHttpHeaders = {};
  let headers: http2.IncomingHttpHeaders = {};
  req.on("response", (h) => (headers = h));
  req.on("trailers", (h) => (trailers = h));
  return {
    resume(): Promise<{ grpcStatus: string; grpcMessage: string; bytes: number }> {
      let bytes = 0;
      return new Promise((resolve) => {
        req.on("data", (d: Buffer) => (bytes += d.length));
        req.on("close", () => {
          session.close();
          const h = { ...headers, ...trailers };
          resolve({ grpcStatus: String(h["grpc-status"] ?? ""), grpcMessage: String(h["grpc-message"] ?? ""), bytes });
        });
        req.resume();
      });
    },
  };
}

/** `prefix-from-PAD` … `prefix-(to-1)-PAD`, one per line. */
function numbered(prefix: string, from: number, to: number): string {
  let s = "";
  for (let i = from; i < to; i += 1) s += `${prefix}-${i}-${PAD}\n`;
  return s;
}

/** A shell loop printing `count` numbered lines to stdout and to stderr, as fast as it can. */
function chatty(count: number): string {
  return `p=${PAD}; i=0; while [ $i -lt ${count} ]; do echo out-$i-$p; echo err-$i-$p >&2; i=$((i+1)); done`;
}

/** The files of one stream in a sandbox, oldest first (rotated ones then the live one). */
async function streamFiles(sandbox: string, name: string): Promise<{ names: string[]; data: Buffer[] }> {
  const present = new Set(await readdir(sandbox));
  const names: string[] = [];
  for (let k = 1; present.has(`${name}.${k}`); k += 1) names.unshift(`${name}.${k}`);
  names.push(name);
  return { names, data: await Promise.all(names.map((n) => readFile(path.join(sandbox, n)))) };
}

/** The numbers of `prefix-N` lines, in order. */
function numbersOf(text: string, prefix: string): number[] {
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const m = new RegExp(`^${prefix}-(\\d+)-${PAD}$`).exec(l);
      assert.ok(m, `a whole line, not '${l}'`);
      return Number(m[1]);
    });
}

describe("container output: rotation and Logs against a real engine", function () {
  this.timeout(90_000);
  // The engine's own copy is capped as Berth always caps it (json-file, 2 files of
  // --container_log_max_size): it rotates all the time here, and the sandbox must not care, since a
  // launch's output comes through the engine's attach, never from that copy.
  const suite = useBerth({ container_log_max_size: String(MAX_SIZE), container_log_max_files: String(MAX_FILES) });
  let t: TestBerth;
  let images: TestImages;
  beforeEach(() => ({ t, images } = suite));

  async function run(id: string, shell: string): Promise<string> {
    const launched = await t.client.launch(launchRequest(id, { image: images.busybox, shell, taskId: `task-${id}` }));
    const { termination } = await t.client.wait(id);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_FINISHED, termination?.containerTermination?.message);
    return launched.sandboxDirectory;
  }

  it("a chatty container's output rotates by size: every line exactly once, in order, across the files, none over the size", async () => {
    const id = newId("rot");
    // ~42 KB per stream: three files each, all kept.
    const count = 200;
    const sandbox = await run(id, chatty(count));
    for (const name of ["stdout", "stderr"]) {
      const files = await streamFiles(sandbox, name);
      assert.deepEqual(files.names, [`${name}.2`, `${name}.1`, name], `${name} rotated twice`);
      for (const d of files.data) assert.ok(d.length <= MAX_SIZE, `${d.length} bytes in one file`);
      for (const d of files.data) assert.equal(d.at(-1), 0x0a, "each file ends at a line end");
      const prefix = name === "stdout" ? "out" : "err";
      assert.deepEqual(
        numbersOf(Buffer.concat(files.data).toString(), prefix),
        Array.from({ length: count }, (_, i) => i),
      );
    }
  });

  it("at most --container_log_max_files files are kept; they hold the newest output, contiguous and in order", async () => {
    const id = newId("maxf");
    const count = 1000; // ~210 KB per stream: far more than 8 files of 16 KB
    const sandbox = await run(id, chatty(count));
    const names = (await readdir(sandbox)).filter((n) => n.startsWith("stdout") && !n.startsWith("."));
    assert.deepEqual(names.sort(), ["stdout", ...Array.from({ length: MAX_FILES - 1 }, (_, k) => `stdout.${k + 1}`)].sort());
    const files = await streamFiles(sandbox, "stdout");
    const numbers = numbersOf(Buffer.concat(files.data).toString(), "out");
    assert.equal(numbers.at(-1), count - 1, "the newest line is kept");
    numbers.forEach((n, i) => assert.equal(n, numbers[0]! + i, "contiguous, each once"));
    assert.ok(numbers.length < count, "the oldest were rotated away");

    // Logs reads across the rotated files; tail takes the last lines of each stream.
    const all = await logs(t, { containerId: { value: id }, stream: LogStream.STDOUT });
    assert.equal(all.stdout, Buffer.concat(files.data).toString());
    const tail = await logs(t, { containerId: { value: id }, tail: 5 });
    assert.equal(tail.stdout, numbered("out", count - 5, count));
    assert.equal(tail.stderr, numbered("err", count - 5, count));
    assert.deepEqual([...tail.labels].sort(), [LogStream.STDOUT, LogStream.STDERR]);
    const onlyErr = await logs(t, { containerId: { value: id }, stream: LogStream.STDERR, tail: 2 });
    assert.equal(onlyErr.stdout, "");
    assert.equal(onlyErr.stderr, numbered("err", count - 2, count));
  });

  it("follow, started right after Launch, streams both outputs across rotations and ends by itself once the container terminated", async () => {
    const id = newId("follow");
    const count = 400; // ~84 KB per stream: five rotations while the reader follows
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: chatty(count), taskId: `task-${id}` }));
    const got = await logs(t, { containerId: { value: id }, follow: true });
    assert.equal(got.stdout, numbered("out", 0, count), "all of stdout, once, in order");
    assert.equal(got.stderr, numbered("err", 0, count), "all of stderr, once, in order");
    const status = await t.client.status(id);
    assert.equal(status.state, 6 /* TERMINATED */, "the stream ended after the termination");
  });

  it("since shows only output written at or after the time given", async () => {
    const id = newId("since");
    // Writes, waits for the test to drop `go` in its sandbox (bounded), then writes more.
    const shell = `echo before-1; echo before-2; n=0; while [ ! -f /mnt/mesos/sandbox/go ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done; echo after-1; echo after-2`;
    const launched = await t.client.launch(launchRequest(id, { image: images.busybox, shell, taskId: `task-${id}` }));
    const sandbox = launched.sandboxDirectory;
    await pollUntil(async () => (await readFile(path.join(sandbox, "stdout"), "utf8").catch(() => "")).includes("before-2"), 60_000, "the first lines are in the sandbox");
    // A time strictly after the first lines' millisecond, reached before the next lines are asked for.
    const since = Date.now() + 1;
    await pollUntil(() => Date.now() > since, 1000, "the clock passed the chosen time");
    await writeFile(path.join(sandbox, "go"), "");
    await t.client.wait(id);
    const seconds = BigInt(Math.floor(since / 1000));
    const nanos = (since % 1000) * 1_000_000;
    const got = await logs(t, { containerId: { value: id }, stream: LogStream.STDOUT, since: { seconds, nanos } });
    assert.equal(got.stdout, "after-1\nafter-2\n");
    const everything = await logs(t, { containerId: { value: id }, stream: LogStream.STDOUT, since: { seconds: 0n, nanos: 0 } });
    assert.equal(everything.stdout, "before-1\nbefore-2\nafter-1\nafter-2\n");
  });

  it("a client that stops reading while the container writes past the rotation is cut with RESOURCE_EXHAUSTED", async () => {
    const id = newId("slow");
    // ~6 MB in 2 KB lines: hundreds of rotations, more than the transport holds for a stalled client.
    const shell = `l=${"y".repeat(2000)}; i=0; while [ $i -lt 3000 ]; do echo $l; i=$((i+1)); done`;
    await t.client.launch(launchRequest(id, { image: images.busybox, shell, taskId: `task-${id}` }));
    // A plain HTTP/2 client that really stops reading (grpc-js's client keeps taking data off the
    // connection into its own memory while its stream is paused, so the server would never see it slow).
    const call = stalledLogsCall(t.berth.addresses[0]!, create(LogsRequestSchema, { containerId: { value: id }, stream: LogStream.STDOUT, follow: true }));
    await t.client.wait(id);
    const outcome = await call.resume();
    assert.equal(outcome.grpcStatus, String(status.RESOURCE_EXHAUSTED), `ended with ${outcome.grpcStatus} ${outcome.grpcMessage}; received ${outcome.bytes} bytes`);
    assert.match(decodeURIComponent(outcome.grpcMessage), /fell behind the rotation/);
    assert.ok(outcome.bytes < 3000 * 2001, "the stream stopped before the end of the output");
  });

  it("a restarted Berth re-attaches to a running container and keeps appending to its rotated files: no line lost, none repeated", async () => {
    const workDir = await mkdtemp(path.join(os.tmpdir(), "berth-logs-restart-"));
    const flags = { work_dir: workDir, container_log_max_size: String(MAX_SIZE), container_log_max_files: "50" };
    let second: TestBerth | undefined;
    try {
      // In-process, a stopped Berth's output capture would go on beside the new one's; a process
      // that exits takes it along. `endCapture` ends it as that exit would.
      const endCapture = new AbortController();
      const first = await startTestBerth(flags, {
        wrapEngine: (engine) => {
          const wrapped = Object.create(engine) as EnginePort;
          wrapped.attachOutput = (id, signal, tty) => engine.attachOutput(id, AbortSignal.any([signal, endCapture.signal]), tty);
          wrapped.followLogs = (id, signal, since, tty) => engine.followLogs(id, AbortSignal.any([signal, endCapture.signal]), since, tty);
          return wrapped;
        },
      });
      const id = newId("restart");
      // 200 lines (the sandbox's files rotate, and so does the engine's capped copy); once the test
      // drops `go1`, 40 more while no Berth runs (then `written`); once it drops `go2`, the exit
      // (each wait bounded). The 40 lines (~11 KB of the engine's JSON) fit in what the engine's
      // copy keeps at the least (one full file of --container_log_max_size): a restarted Berth can
      // only get them from there. Nothing is written while the restarted Berth follows that copy
      // (a follow across the engine's own rotation is what Docker 20.10 gets wrong).
      const waitFor = (f: string) => `n=0; while [ ! -f /mnt/mesos/sandbox/${f} ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done`;
      const upTo = (n: number) => `while [ $i -lt ${n} ]; do echo out-$i-$p; i=$((i+1)); done`;
      const shell = `p=${PAD}; i=0; ${upTo(200)}; ${waitFor("go1")}; ${upTo(240)}; touch /mnt/mesos/sandbox/written; ${waitFor("go2")}`;
      const launched = await first.client.launch(launchRequest(id, { image: images.busybox, shell, taskId: `task-${id}` }));
      const sandbox = launched.sandboxDirectory;
      const captured = async () => Buffer.concat((await streamFiles(sandbox, "stdout")).data).toString();
      // While a rotation renames the files, a read may miss one: polls just look again.
      const capturedNow = () => captured().catch(() => "");
      await pollUntil(async () => (await capturedNow()) === numbered("out", 0, 200), 60_000, "the first 200 lines are in the sandbox");
      const before = (await streamFiles(sandbox, "stdout")).names.length;
      assert.ok(before > 2, `rotated before the restart (${before} files)`);
      first.client.close();
      await first.berth.stop();
      endCapture.abort();
      const registry = (first.berth.containerizer as unknown as { outputs: OutputRegistry }).outputs;
      await pollUntil(() => registry.get(sandbox, "stdout") === undefined, 10_000, "the stopped Berth's capture closed its files");
      await writeFile(path.join(sandbox, "go1"), "");
      await pollUntil(() => stat(path.join(sandbox, "written")).then(() => true, () => false), 60_000, "the container wrote its second batch");
      second = await startTestBerth(flags);
      // The re-attach fetches what was written meanwhile from the engine's copy.
      await pollUntil(async () => (await capturedNow()) === numbered("out", 0, 240), 60_000, "the lines written while no Berth ran are in the sandbox");
      await writeFile(path.join(sandbox, "go2"), "");
      const { termination } = await second.client.wait(id);
      assert.equal(termination?.containerTermination?.state, TaskState.TASK_FINISHED);
      const files = await streamFiles(sandbox, "stdout");
      assert.ok(files.names.length >= before, `appended to the rotated files (${files.names.join(", ")})`);
      assert.deepEqual(files.data.map((d) => d.length > MAX_SIZE), files.data.map(() => false), `sizes ${files.data.map((d) => d.length).join(", ")}`);
      assert.deepEqual(numbersOf(await captured(), "out"), Array.from({ length: 240 }, (_, i) => i));
      const tail = await logs(second, { containerId: { value: id }, stream: LogStream.STDOUT, tail: 3 });
      assert.equal(tail.stdout, numbered("out", 237, 240));
    } finally {
      await second?.close();
      await rm(workDir, { recursive: true, force: true });
    }
  });

  it("the engine's capped copy rotating hundreds of times under a chatty container costs the sandbox no line: each once, in order", async () => {
    // 4 KB: the size with which a logs follow received 97 of 1000 lines (B-engine-cap-conflict).
    const small = 4096;
    const berth = await startTestBerth({ container_log_max_size: String(small), container_log_max_files: "1000" });
    try {
      const id = newId("engrot");
      const count = 1500; // ~315 KB per stream, ~800 KB of the engine's JSON: ~200 rotations of its 4 KB files
      const shell = `n=0; while [ ! -f /mnt/mesos/sandbox/go ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done; ${chatty(count)}`;
      const launched = await berth.client.launch(launchRequest(id, { image: images.busybox, shell, taskId: `task-${id}` }));
      const events = await berth.client.collect([id], (e) => e.kind.case === "stateChanged" && (e.kind.value.state === State.RUNNING || e.kind.value.state === State.TERMINATED));
      const last = events.at(-1);
      assert.ok(last?.kind.case === "stateChanged" && last.kind.value.state === State.RUNNING, `'${id}' reached RUNNING`);
      // The engine really keeps a capped copy of this container's output (2 files of 4 KB).
      const { engineId } = await berth.client.status(id);
      const docker = new Dockerode({ socketPath: ENGINE_SOCKET });
      const hc = (await docker.getContainer(engineId).inspect()).HostConfig;
      assert.deepEqual(hc.LogConfig, { Type: "json-file", Config: { "max-size": String(small), "max-file": "2" } });
      await writeFile(path.join(launched.sandboxDirectory, "go"), "");
      const { termination } = await berth.client.wait(id);
      assert.equal(termination?.containerTermination?.state, TaskState.TASK_FINISHED, termination?.containerTermination?.message);
      for (const name of ["stdout", "stderr"]) {
        const files = await streamFiles(launched.sandboxDirectory, name);
        assert.ok(files.names.length > 50, `${name} rotated ${files.names.length - 1} times`);
        for (const d of files.data) assert.ok(d.length <= small, `${d.length} bytes in one file`);
        const prefix = name === "stdout" ? "out" : "err";
        assert.deepEqual(
          numbersOf(Buffer.concat(files.data).toString(), prefix),
          Array.from({ length: count }, (_, i) => i),
          `every ${name} line once, in order`,
        );
      }
    } finally {
      await berth.close();
    }
  });

  it("a TTY container's output (one raw stream through the attach) lands in stdout, rotated, every line once", async () => {
    const id = newId("tty");
    const count = 300; // ~63 KB: rotated several times
    const shell = `p=${PAD}; i=0; while [ $i -lt ${count} ]; do echo out-$i-$p; echo err-$i-$p >&2; i=$((i+1)); done`;
    const req = launchRequest(id, { image: images.busybox, shell, taskId: `task-${id}` });
    // One object serves containerConfig and the task: both ask for a TTY.
    (req.containerConfig!.containerInfo as { ttyInfo?: object }).ttyInfo = {};
    const launched = await t.client.launch(req);
    const { termination } = await t.client.wait(id);
    assert.equal(termination?.containerTermination?.state, TaskState.TASK_FINISHED, termination?.containerTermination?.message);
    const files = await streamFiles(launched.sandboxDirectory, "stdout");
    assert.ok(files.names.length > 2, `rotated (${files.names.join(", ")})`);
    // The terminal turns each line end into CR LF; both streams go to the one terminal.
    const lines = Buffer.concat(files.data).toString().split("\r\n");
    assert.equal(lines.pop(), "");
    assert.deepEqual(lines.filter((l) => l.startsWith("out-")), numbered("out", 0, count).trimEnd().split("\n"));
    assert.deepEqual(lines.filter((l) => l.startsWith("err-")), numbered("err", 0, count).trimEnd().split("\n"));
    assert.equal(lines.length, 2 * count);
    assert.equal(Buffer.concat((await streamFiles(launched.sandboxDirectory, "stderr")).data).length, 0);
  });

  it("refuses what it cannot serve: NOT_FOUND, INVALID_ARGUMENT naming the field, FAILED_PRECONDITION once the sandbox is gone", async () => {
    assert.equal((await expectStatus(t, { containerId: { value: newId("nobody") } })).code, status.NOT_FOUND);
    const missing = await expectStatus(t, {});
    assert.equal(missing.code, status.INVALID_ARGUMENT);
    assert.match(missing.details, /container_id/);
    const id = newId("gone");
    const sandbox = await run(id, "echo hi");
    const badStream = await expectStatus(t, { containerId: { value: id }, stream: 7 as LogStream });
    assert.equal(badStream.code, status.INVALID_ARGUMENT);
    assert.match(badStream.details, /stream 7/);
    const badSince = await expectStatus(t, { containerId: { value: id }, since: { seconds: -5n, nanos: 0 } });
    assert.equal(badSince.code, status.INVALID_ARGUMENT);
    assert.match(badSince.details, /since/);
    assert.equal((await logs(t, { containerId: { value: id } })).stdout, "hi\n");
    await rm(sandbox, { recursive: true, force: true });
    assert.equal(await stat(sandbox).then(() => true, () => false), false);
    const gone = await expectStatus(t, { containerId: { value: id } });
    assert.equal(gone.code, status.FAILED_PRECONDITION);
    assert.match(gone.details, /sandbox .* is gone/);
  });
});
