import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { OutputRegistry } from "../../src/logger/live-output.js";
import { FellBehind, LogReader, type LogChunk, type LogReadOptions, type LogSource } from "../../src/logger/log-reader.js";
import { RotatingFile, type RotationOptions } from "../../src/logger/rotating-file.js";
import { create } from "@bufbuild/protobuf";
import { LogsRequestSchema, LogStream } from "../../src/gen/berth/v1/containerizer_pb.js";
import { InvalidRequest } from "../../src/containerizer/errors.js";
import { logsQuery } from "../../src/rpc/logs-handler.js";

function numbered(prefix: string, from: number, to: number): string {
  let s = "";
  for (let i = from; i < to; i += 1) s += `${prefix}-${i}\n`;
  return s;
}

/** A container as the reader sees it: terminated on demand. */
function fakeSource(sandbox: string, registry: OutputRegistry): { source: LogSource; terminate(): void } {
  let terminated = false;
  const wakes = new Set<() => void>();
  return {
    source: {
      sandbox,
      registry,
      isTerminated: () => terminated,
      onTerminated(wake) {
        if (terminated) wake();
        wakes.add(wake);
        return () => wakes.delete(wake);
      },
    },
    terminate() {
      terminated = true;
      for (const w of wakes) w();
    },
  };
}

/** Opens both writers and registers them, as followOutput does. */
async function openWriters(dir: string, registry: OutputRegistry, rotation: RotationOptions, now?: () => number) {
  const stdout = await RotatingFile.open(dir, "stdout", rotation, { now });
  const stderr = await RotatingFile.open(dir, "stderr", rotation, { now });
  const unregister = registry.register(dir, { stdout: stdout.live, stderr: stderr.live });
  return {
    stdout,
    stderr,
    async close() {
      await Promise.all([stdout.close(), stderr.close()]);
      unregister();
    },
  };
}

async function readAll(reader: LogReader): Promise<{ stdout: string; stderr: string; chunks: LogChunk[] }> {
  const chunks: LogChunk[] = [];
  for await (const c of reader) chunks.push(c);
  const of = (s: string) => Buffer.concat(chunks.filter((c) => c.stream === s).map((c) => c.data)).toString();
  return { stdout: of("stdout"), stderr: of("stderr"), chunks };
}

function read(source: LogSource, options: Partial<LogReadOptions>) {
  return new LogReader(source, { streams: ["stdout", "stderr"], follow: false, ...options });
}

const openFds = () => readdirSync("/proc/self/fd").length;

describe("log reader (unit)", () => {
  let dir: string;
  let registry: OutputRegistry;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "berth-logs-"));
    registry = new OutputRegistry();
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it("tail gives the last N lines of each stream across rotated files", async () => {
    const w = await openWriters(dir, registry, { maxSize: 30, maxFiles: 50 });
    await w.stdout.write(Buffer.from(numbered("out", 0, 40)));
    await w.stderr.write(Buffer.from(numbered("err", 0, 3)));
    const { source } = fakeSource(dir, registry);
    const got = await readAll(read(source, { tail: 7 }));
    assert.equal(got.stdout, numbered("out", 33, 40));
    assert.equal(got.stderr, numbered("err", 0, 3), "fewer lines than asked: all of them");
    assert.ok(got.chunks.every((c) => c.stream === "stdout" || c.stream === "stderr"));
    assert.equal((await readAll(read(source, { tail: 0 }))).stdout, "");
    assert.equal((await readAll(read(source, { streams: ["stdout"] }))).stdout, numbered("out", 0, 40));
    await w.close();
  });

  it("tail counts a last line without its newline", async () => {
    const w = await openWriters(dir, registry, { maxSize: 1000, maxFiles: 2 });
    await w.stdout.write(Buffer.from("a\nb\nc"));
    const { source } = fakeSource(dir, registry);
    assert.equal((await readAll(read(source, { streams: ["stdout"], tail: 2 }))).stdout, "b\nc");
    await w.close();
  });

  it("one stream only: no chunk of the other", async () => {
    const w = await openWriters(dir, registry, { maxSize: 1000, maxFiles: 2 });
    await w.stdout.write(Buffer.from("o\n"));
    await w.stderr.write(Buffer.from("e\n"));
    const { source } = fakeSource(dir, registry);
    const got = await readAll(read(source, { streams: ["stderr"] }));
    assert.deepEqual(got.chunks.map((c) => c.stream), ["stderr"]);
    assert.equal(got.stderr, "e\n");
    await w.close();
  });

  it("follow reads every byte exactly once while the writer rotates dozens of times, and ends after termination", async () => {
    const { source, terminate } = fakeSource(dir, registry);
    // Started before the writer exists (a container still pulling its image).
    const reader = new LogReader(source, { streams: ["stdout", "stderr"], follow: true });
    const done = readAll(reader);
    const w = await openWriters(dir, registry, { maxSize: 64, maxFiles: 1000 });
    const out = numbered("out", 0, 600);
    const err = numbered("err", 0, 300);
    for (let i = 0, j = 0; i < out.length || j < err.length; i += 41, j += 29) {
      if (i < out.length) await w.stdout.write(Buffer.from(out.slice(i, i + 41)));
      if (j < err.length) await w.stderr.write(Buffer.from(err.slice(j, j + 29)));
      // Let the reader run between writes now and then, so it follows live.
      if (i % 410 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.ok(w.stdout.live.generation > 50, `rotated ${w.stdout.live.generation} times`);
    await w.close();
    terminate();
    const got = await done;
    assert.equal(got.stdout, out);
    assert.equal(got.stderr, err);
  });

  it("follow of a terminated container reads what is there and ends", async () => {
    const w = await openWriters(dir, registry, { maxSize: 50, maxFiles: 10 });
    await w.stdout.write(Buffer.from(numbered("x", 0, 20)));
    await w.close();
    const { source, terminate } = fakeSource(dir, registry);
    terminate();
    const got = await readAll(new LogReader(source, { streams: ["stdout"], follow: true }));
    assert.equal(got.stdout, numbered("x", 0, 20));
  });

  it("since starts at the first output written at or after it, across rotated files, live and after the writer closed", async () => {
    let now = 5_000_000;
    const w = await openWriters(dir, registry, { maxSize: 40, maxFiles: 10 }, () => now);
    await w.stdout.write(Buffer.from(numbered("early", 0, 6)));
    now += 10;
    await w.stdout.write(Buffer.from(numbered("mid", 0, 6)));
    now += 10;
    await w.stdout.write(Buffer.from(numbered("late", 0, 3)));
    const { source } = fakeSource(dir, registry);
    const expected = numbered("mid", 0, 6) + numbered("late", 0, 3);
    assert.equal((await readAll(read(source, { streams: ["stdout"], sinceMs: 5_000_010 }))).stdout, expected);
    assert.equal((await readAll(read(source, { streams: ["stdout"], sinceMs: 5_000_005 }))).stdout, expected, "a time between writes starts at the next one");
    assert.equal((await readAll(read(source, { streams: ["stdout"], sinceMs: 5_000_021 }))).stdout, "");
    assert.equal((await readAll(read(source, { streams: ["stdout"], sinceMs: 5_000_010, tail: 2 }))).stdout, numbered("late", 1, 3), "since and tail together");
    await w.close();
    // After the writer closed, from the sidecars.
    const closed = fakeSource(dir, new OutputRegistry()).source;
    assert.equal((await readAll(read(closed, { streams: ["stdout"], sinceMs: 5_000_010 }))).stdout, expected);
  });

  it("with both streams, what was already written comes in the order it was written, across rotations, live and from the sidecars", async () => {
    let now = 7_000_000;
    const w = await openWriters(dir, registry, { maxSize: 40, maxFiles: 100 }, () => now);
    const expected: string[] = [];
    for (let i = 0; i < 30; i += 1) {
      now += 1;
      const out = `out-${i}\n`;
      await w.stdout.write(Buffer.from(out));
      expected.push(`stdout:${out}`);
      if (i % 3 === 0) {
        now += 1;
        const err = `err-${i}\n`;
        await w.stderr.write(Buffer.from(err));
        expected.push(`stderr:${err}`);
      }
    }
    const order = (chunks: LogChunk[]) => chunks.flatMap((c) => c.data.toString().split(/(?<=\n)/).map((l) => `${c.stream}:${l}`));
    const { source } = fakeSource(dir, registry);
    assert.deepEqual(order((await readAll(read(source, {}))).chunks), expected);
    await w.close();
    const closed = fakeSource(dir, new OutputRegistry()).source;
    assert.deepEqual(order((await readAll(read(closed, {}))).chunks), expected);
    assert.deepEqual(order((await readAll(read(closed, { tail: 2 }))).chunks), ["stderr:err-24\n", "stderr:err-27\n", "stdout:out-28\n", "stdout:out-29\n"]);
  });

  it("a reader that is not being read and falls behind the rotation is told (overrun), and reading then fails", async () => {
    const w = await openWriters(dir, registry, { maxSize: 20, maxFiles: 2 });
    await w.stdout.write(Buffer.from("first\n"));
    const { source } = fakeSource(dir, registry);
    const reader = new LogReader(source, { streams: ["stdout"], follow: true });
    const it = reader[Symbol.asyncIterator]();
    const first = await it.next();
    assert.equal(first.value?.data.toString(), "first\n");
    let overrun: FellBehind | undefined;
    void reader.overrun.then((e) => (overrun = e));
    for (let i = 0; i < 20 && overrun === undefined; i += 1) {
      await w.stdout.write(Buffer.from(numbered(`b${i}`, 0, 3)));
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(overrun instanceof FellBehind, "overrun settled");
    assert.match(overrun.message, /fell behind the rotation/);
    await assert.rejects(async () => {
      for (;;) if ((await it.next()).done) break;
    }, FellBehind);
    await w.close();
  });

  it("a reader stopped midway (a cancelled call) closes every file it opened", async () => {
    const w = await openWriters(dir, registry, { maxSize: 30, maxFiles: 20 });
    await w.stdout.write(Buffer.from(numbered("y", 0, 60)));
    await w.stderr.write(Buffer.from(numbered("z", 0, 60)));
    const before = openFds();
    const { source } = fakeSource(dir, registry);
    const reader = new LogReader(source, { streams: ["stdout", "stderr"], follow: true });
    const it = reader[Symbol.asyncIterator]();
    await it.next();
    assert.ok(openFds() > before, "files are open while reading");
    reader.dispose();
    await it.return(undefined);
    assert.equal(openFds(), before);
    await w.close();
  });

  it("reads output an earlier writer left (the fetcher's lines in stderr) before the container's", async () => {
    await writeFile(path.join(dir, "stderr"), "fetched\n");
    const { source, terminate } = fakeSource(dir, registry);
    const reader = new LogReader(source, { streams: ["stderr"], follow: true });
    const done = readAll(reader);
    const w = await openWriters(dir, registry, { maxSize: 1000, maxFiles: 2 });
    await w.stderr.write(Buffer.from("ran\n"));
    await w.close();
    terminate();
    assert.equal((await done).stderr, "fetched\nran\n");
  });
});

describe("Logs request decoding (unit)", () => {
  const base = { containerId: { value: "c1" } };
  const decode = (init: Parameters<typeof create<typeof LogsRequestSchema>>[1]) => logsQuery(create(LogsRequestSchema, init));

  it("maps the stream, tail, follow and since to the domain's terms", () => {
    assert.deepEqual(decode(base).query, { streams: ["stdout", "stderr"], tail: undefined, follow: false, sinceMs: undefined });
    assert.deepEqual(decode({ ...base, stream: LogStream.STDERR, tail: 0, follow: true }).query.streams, ["stderr"]);
    assert.equal(decode({ ...base, tail: 0 }).query.tail, 0, "tail 0 is kept (no lines), not unset");
    assert.equal(decode({ ...base, since: { seconds: 1_700_000_000n, nanos: 987_654_321 } }).query.sinceMs, 1_700_000_000_987);
  });

  it("refuses what it cannot mean, naming the field and value", () => {
    assert.throws(() => decode({}), (e: Error) => e instanceof InvalidRequest && /container_id is missing/.test(e.message));
    assert.throws(() => decode({ ...base, stream: 5 as LogStream }), (e: Error) => e instanceof InvalidRequest && /stream 5 is not a LogStream/.test(e.message));
    assert.throws(() => decode({ ...base, since: { seconds: -1n, nanos: 0 } }), (e: Error) => e instanceof InvalidRequest && /since -1s/.test(e.message));
    assert.throws(() => decode({ ...base, since: { seconds: 1n, nanos: 1_000_000_000 } }), (e: Error) => e instanceof InvalidRequest && /nanos/.test(e.message));
  });
});
