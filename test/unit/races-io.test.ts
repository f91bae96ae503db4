// Races and I/O failures of issue 9 (items 3, 4, 5, 6, 11), forced with fakes: an engine that keeps
// failing, a writable that holds its writes, a disk whose writes fail, a cgroup file too long to read
// in one go.
import assert from "node:assert/strict";
import { ReplaySubject } from "rxjs";
import { RuntimeFacts, type StatsSource } from "../../src/containerizer/runtime-facts.js";
import type { Container } from "../../src/containerizer/container.js";
import type { EnginePort } from "../../src/docker/engine-port.js";
import { EngineUnreachable } from "../../src/docker/engine-port.js";
import type { Termination } from "../../src/containerizer/termination.js";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { PassThrough, Readable } from "node:stream";
import { readFile, stat } from "node:fs/promises";
import type { LogStreams } from "../../src/docker/engine-port.js";
import { DockerodeEngine } from "../../src/docker/dockerode-engine.js";
import { tmpdir } from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { filter, firstValueFrom, lastValueFrom, toArray } from "rxjs";
import { ImagePuller, type PullProgressSummary } from "../../src/docker/image-puller.js";
import type { PullProgress } from "../../src/docker/engine-port.js";
import { CheckpointStore } from "../../src/checkpoint/checkpoint-store.js";
import { DiskFailed } from "../../src/checkpoint/disk-health.js";
import { writeFileAtomic } from "../../src/checkpoint/atomic-file.js";
import { SequenceFile } from "../../src/checkpoint/sequence-file.js";
import type { Containerizer, LaunchInput } from "../../src/containerizer/containerizer.js";
import { ContainerConfigSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import { FakeEngine } from "../harness/fake-engine.js";
import { closeRig, fakeRig, type FakeRig } from "../harness/fake-rig.js";
import { launchRequest } from "../harness/launches.js";
import { CgroupStatsReader, V2_DIR_KEY, type CgroupPaths } from "../../src/stats/cgroup-stats.js";

const PRESENT = "registry.invalid/fake/present:1";

function input(id: string, image = PRESENT): LaunchInput {
  const req = launchRequest(id, { image, shell: "sleep 1000" });
  return { containerId: id, nested: false, config: create(ContainerConfigSchema, req.containerConfig), environment: {} };
}

function stateIs(cz: Containerizer, id: string, state: string): Promise<unknown> {
  return firstValueFrom(cz.watch([id]).pipe(filter((e) => e.kind.type === "state" && e.kind.state === state)));
}

/** A durable write that fails with ENOSPC while `full` is set. */
function fullDisk() {
  const disk = {
    full: false,
    failures: 0,
    write: async (file: string, data: Uint8Array): Promise<void> => {
      if (disk.full) {
        disk.failures += 1;
        throw Object.assign(new Error(`ENOSPC: no space left on device, write '${file}'`), { code: "ENOSPC" });
      }
      await writeFileAtomic(file, data);
    },
  };
  return disk;
}

/** Observers currently subscribed to a subject (rxjs 7 keeps them in `observers`). */
function observerCount<T>(subject: ReplaySubject<T>): number {
  return (subject as unknown as { observers: unknown[] }).observers.length;
}

describe("runtime facts during an engine outage (issue 9 item 4)", () => {
  it("repeated Usage/Status lookups that fail do not pile up termination subscriptions", async () => {
    const termination$ = new ReplaySubject<Termination>(1);
    const c = { id: "outage", engineId: "engine-outage", state: "RUNNING", termination$ } as unknown as Container;
    let inspects = 0;
    const engine = {
      inspectContainer: async () => {
        inspects += 1;
        throw new EngineUnreachable("engine socket refused (test)");
      },
    } as unknown as EnginePort;
    const stats: StatsSource = {
      resolve: async () => ({ version: 1, dirs: {} }),
      read: async () => {
        throw new Error("not reached");
      },
      release: () => undefined,
    };
    const facts = new RuntimeFacts(engine, stats);
    for (let i = 0; i < 50; i += 1) {
      await assert.rejects(facts.process(c), EngineUnreachable);
      await assert.rejects(facts.read(c), EngineUnreachable);
    }
    assert.equal(inspects, 100, "each failed lookup is retried on the next call");
    assert.ok(observerCount(termination$) <= 1, `${observerCount(termination$)} termination subscriptions after 100 failed lookups`);
  });
});

describe("a failing checkpoint disk (issue 9 item 6)", () => {
  let workDir: string;
  let rig: FakeRig | undefined;
  beforeEach(async () => {
    workDir = await mkdtemp(path.join(tmpdir(), "berth-races-io-"));
  });
  afterEach(async () => {
    if (rig) {
      rig.engine.releaseAll();
      await rig.cz.idle();
      rig.cz.shutdown();
      await rig.monitor.stop();
      rig = undefined;
    }
    await rm(workDir, { recursive: true, force: true });
  });

  it("Wait and Destroy end with a clear DiskFailed error (never hang) when no sequence number can be reserved, and health turns unhealthy", async () => {
    const disk = fullDisk();
    const store = new CheckpointStore(path.join(workDir, "meta"), { write: disk.write });
    await store.init();
    const sequence = await SequenceFile.open(path.join(workDir, "meta", "sequence"), { block: 40n, write: disk.write, health: store.health });
    rig = await fakeRig(new FakeEngine({ images: [PRESENT] }), workDir, {}, { checkpoints: store, sequence });
    const { cz } = rig;
    assert.equal((await cz.launch(input("full-disk"))).result, "LAUNCHED");
    await stateIs(cz, "full-disk", "RUNNING");
    await sequence.settled();
    const healthy: boolean[] = [];
    const sub = store.health.ok$.subscribe((ok) => healthy.push(ok));
    disk.full = true;
    // Other containers' events use up what is durably reserved; the next reservation fails.
    for (;;) {
      try {
        sequence.next();
      } catch (err) {
        assert.ok(err instanceof DiskFailed, String(err));
        break;
      }
    }
    await sequence.settled();
    assert.ok(disk.failures > 0);
    const waited = cz.wait("full-disk");
    const destroyed = cz.destroy("full-disk");
    // A disk error (DiskFailed, or the domain's translation of it), naming the container and the cause.
    const diskError = (err: Error) => {
      assert.ok(["DiskFailed", "StorageFailed"].includes(err.name), `${err.name}: ${err.message}`);
      assert.match(err.message, /container 'full-disk' terminated .* could not be recorded: .*ENOSPC/);
      return true;
    };
    await assert.rejects(destroyed, diskError);
    await assert.rejects(waited, diskError);
    assert.deepEqual(healthy, [true, false]);
    sub.unsubscribe();
    // The disk comes back: the next write succeeds and health follows.
    disk.full = false;
    assert.throws(() => sequence.next(), DiskFailed);
    await sequence.settled();
    assert.ok(sequence.next() > 0n);
    assert.equal(store.health.failure, undefined);
  });
});

describe("Usage of a container with very many threads (issue 9 item 11)", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "berth-threads-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Resolves `read` while counting the event-loop turns taken meanwhile. */
  async function turnsDuring<T>(read: () => Promise<T>): Promise<{ value: T; turns: number }> {
    let turns = 0;
    let reading = true;
    const spin = (): void => {
      if (!reading) return;
      turns += 1;
      setImmediate(spin);
    };
    setImmediate(spin);
    try {
      const value = await read();
      return { value, turns };
    } finally {
      reading = false;
    }
  }

  const THREADS = 200_000;
  const ids = (n: number, from: number) => Array.from({ length: n }, (_, i) => `${from + i}\n`).join("");

  for (const version of [1, 2] as const) {
    it(`counts a cgroup v${version} thread list of ${THREADS} lines off the event loop, and counts it right`, async () => {
      const cg = path.join(dir, `v${version}`);
      await mkdir(cg, { recursive: true });
      if (version === 1) {
        await writeFile(path.join(cg, "tasks"), ids(THREADS, 1000));
        await writeFile(path.join(cg, "cgroup.procs"), ids(3, 1000));
        await writeFile(path.join(cg, "memory.usage_in_bytes"), "4096\n");
      } else {
        await writeFile(path.join(cg, "cgroup.threads"), ids(THREADS, 1000));
        await writeFile(path.join(cg, "cgroup.procs"), ids(3, 1000));
        await writeFile(path.join(cg, "memory.current"), "4096\n");
      }
      const paths: CgroupPaths = version === 1 ? { version, dirs: { cpu: cg, cpuacct: cg, memory: cg, pids: cg } } : { version, dirs: { [V2_DIR_KEY]: cg } };
      const reader = new CgroupStatsReader({ keptFds: 16 });
      try {
        // Twice: the second read goes through the kept descriptors.
        for (let i = 0; i < 2; i++) {
          const { value: stats, turns } = await turnsDuring(() => reader.read(paths));
          assert.equal(stats.threads, THREADS);
          assert.equal(stats.processes, 3);
          assert.equal(stats.memTotalBytes, 4096n);
          assert.ok(turns > 0, `the event loop never turned while a ${THREADS}-line thread list was read (read ${i + 1})`);
        }
        // A short list is still counted at once.
        await writeFile(path.join(cg, version === 1 ? "tasks" : "cgroup.threads"), ids(5, 1));
        assert.equal((await reader.read(paths)).threads, 5);
      } finally {
        reader.close();
      }
    });
  }
});

describe("pull progress is coalesced at the source (issue 9 item 3)", () => {
  const ABSENT = "registry.invalid/fake/large:1";
  const LINES = 10_000;
  /** A large pull: one layer reporting every few bytes, as the engine does. */
  function largePull(): PullProgress[] {
    const total = LINES * 10;
    return [
      { status: "Pulling from fake/large", layer: "1" },
      { status: "Pulling fs layer", layer: "big" },
      ...Array.from({ length: LINES }, (_, i): PullProgress => ({ status: "Downloading", layer: "big", current: (i + 1) * 10, total })),
      { status: "Download complete", layer: "big" },
      { status: "Pull complete", layer: "big" },
      { status: "Status: Downloaded newer image for fake/large:1" },
    ];
  }

  it("a burst of progress lines reaches each waiter as a few summaries, the final one included", async () => {
    const engine = new FakeEngine();
    engine.pullLines = largePull();
    const puller = new ImagePuller({ engine, overallTimeoutMs: 60_000, activityTimeoutMs: 60_000 });
    const seen: PullProgressSummary[][] = [[], []];
    await Promise.all(seen.map((list) => puller.pull(ABSENT, { signal: new AbortController().signal, onProgress: (p) => list.push(p) })));
    for (const list of seen) {
      assert.ok(list.length <= 4, `${list.length} progress reports for one pull of ${LINES + 5} lines`);
      assert.deepEqual(list.at(-1), {
        ref: ABSENT,
        layersTotal: 1,
        layersDone: 1,
        bytesCurrent: LINES * 10,
        bytesTotal: LINES * 10,
        status: "Status: Downloaded newer image for fake/large:1",
        // Per-layer detail rides on the same few summaries.
        layers: [{ id: "big", bytesCurrent: LINES * 10, bytesTotal: LINES * 10, status: "Pull complete", done: true }],
      });
    }
  });

  it("a large shared pull does not push state changes and terminations out of the watch retention", async () => {
    const workDir = await mkdtemp(path.join(tmpdir(), "berth-pull-flood-"));
    const engine = new FakeEngine();
    engine.pullLines = largePull();
    const rig = await fakeRig(engine, workDir, { eventRetention: 200 });
    try {
      const { cz } = rig;
      const ids = ["flood-a", "flood-b", "flood-c"];
      const mark = cz.lastSequence;
      // The transfer is held until every launch has joined it: one pull, three waiters.
      const hold = engine.hold("pullImage");
      for (const id of ids) assert.equal((await cz.launch(input(id, ABSENT))).result, "LAUNCHED");
      await Promise.all(ids.map((id) => stateIs(cz, id, "PULLING")));
      await hold.entered;
      const running = Promise.all(ids.map((id) => stateIs(cz, id, "RUNNING")));
      hold();
      await running;
      assert.equal(engine.calls("pullImage").length, 1, "one shared pull");
      for (const id of ids) await cz.destroy(id);
      // A client that was away for the whole pull resumes from before the launches.
      const events = await lastValueFrom(cz.watch(ids, mark).pipe(toArray()));
      for (const id of ids) {
        const states = events.filter((e) => e.containerId === id && e.kind.type === "state").map((e) => (e.kind.type === "state" ? e.kind.state : ""));
        assert.deepEqual(states.filter((s) => s === "FETCHING" || s === "PULLING" || s === "RUNNING" || s === "TERMINATED"), ["FETCHING", "PULLING", "RUNNING", "TERMINATED"], `${id}: ${states.join(",")}`);
        assert.equal(events.filter((e) => e.containerId === id && e.kind.type === "termination").length, 1);
        const pulls = events.filter((e) => e.containerId === id && e.kind.type === "pull");
        // A few per 250 ms while the lines stream in (how many depends on the machine's speed), far
        // from one per line; the state and termination checks above are what retention must keep.
        assert.ok(pulls.length >= 1 && pulls.length <= 40, `${id}: ${pulls.length} pull events for ${LINES} progress lines`);
      }
    } finally {
      await closeRig(rig, workDir);
    }
  });
});

/** A DockerodeEngine whose logs call answers `source` (no engine involved). */
function engineAnsweringLogs(source: Readable): DockerodeEngine {
  const engine = new DockerodeEngine({ socketPath: "/nonexistent/berth-test.sock", requestTimeoutMs: 1000 });
  (engine as unknown as { docker: unknown }).docker = { getContainer: () => ({ logs: async () => source }) };
  return engine;
}

describe("output capture honours back-pressure (issue 9 item 5)", () => {
  const FRAMES = 1000;
  const PAYLOAD = 16 * 1024;

  /** A log stream produced on demand: FRAMES frames (multiplexed unless tty), alternating stdout/stderr. */
  function logSource(tty: boolean): { source: Readable; produced: () => number } {
    let n = 0;
    const source = new Readable({
      read() {
        if (n === FRAMES) return void this.push(null);
        const payload = Buffer.alloc(PAYLOAD, 97 + (n % 26));
        n += 1;
        if (tty) return void this.push(payload);
        const header = Buffer.alloc(8);
        header[0] = n % 2 === 1 ? 1 : 2;
        header.writeUInt32BE(PAYLOAD, 4);
        // Header and payload split across chunks as the socket may deliver them.
        this.push(Buffer.concat([header, payload.subarray(0, 100)]));
        this.push(payload.subarray(100));
      },
    });
    return { source, produced: () => n };
  }

  const engineAnswering = engineAnsweringLogs;

  async function drain(stream: Readable): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  for (const tty of [false, true]) {
    it(`a ${tty ? "TTY" : "multiplexed"} log stream is paused while the sandbox side does not keep up, and nothing is lost`, async () => {
      const { source, produced } = logSource(tty);
      const streams = await engineAnswering(source).followLogs("c1", new AbortController().signal, undefined, tty);
      // Nobody reads stdout/stderr yet (a slow disk): the source must stop being read.
      const outcome = await new Promise<string>((resolve) => {
        source.once("pause", () => resolve("paused"));
        source.once("end", () => resolve("read to the end"));
      });
      assert.equal(outcome, "paused", `the log stream was ${outcome} with no consumer: ${produced()} of ${FRAMES} frames buffered in Berth`);
      assert.ok(produced() < FRAMES / 4, `${produced()} of ${FRAMES} frames read while nothing was written`);
      const [out, err] = await Promise.all([drain(streams.stdout), drain(streams.stderr)]);
      assert.equal(out.length + err.length, FRAMES * PAYLOAD);
      if (!tty) assert.equal(out.length, err.length);
      // In order: each payload is one letter, cycling.
      const letters = [...out].filter((_, i) => i % PAYLOAD === 0).map((b) => String.fromCharCode(b));
      assert.equal(letters[0], "a");
      assert.equal(letters[1], tty ? "b" : "c");
    });
  }
});

describe("output capture re-attaches after the logs stream breaks (issue 9 item 5)", () => {
  it("the engine adapter tells a broken logs stream from one that ended", async () => {
    const broken = new PassThrough();
    const brokenStreams = await engineAnsweringLogs(broken).followLogs("c1", new AbortController().signal, undefined, true);
    broken.write("partial\n");
    broken.destroy(Object.assign(new Error("aborted"), { code: "ECONNRESET" }));
    const err = await brokenStreams.interrupted;
    assert.match(String(err), /aborted/);
    const ended = new PassThrough();
    const endedStreams = await engineAnsweringLogs(ended).followLogs("c2", new AbortController().signal, undefined, true);
    ended.end("all\n");
    endedStreams.stdout.resume();
    assert.equal(await endedStreams.interrupted, undefined);
    const ac = new AbortController();
    const aborted = new PassThrough();
    const abortedStreams = await engineAnsweringLogs(aborted).followLogs("c3", ac.signal, undefined, true);
    ac.abort(new Error("output grace period over"));
    assert.equal(await abortedStreams.interrupted, undefined);
  });

  /** A fake engine whose logs streams the test writes, ends and breaks. */
  class BreakingLogsEngine extends FakeEngine {
    readonly follows: { since: number | undefined; stdout: PassThrough; stderr: PassThrough; interrupt: (err: Error | undefined) => void }[] = [];
    private waiters: (() => void)[] = [];

    override async followLogs(id: string, signal: AbortSignal, sinceSeconds?: number): Promise<LogStreams> {
      await super.followLogs(id, signal, sinceSeconds);
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let interrupt!: (err: Error | undefined) => void;
      const interrupted = new Promise<Error | undefined>((resolve) => (interrupt = resolve));
      const end = (err: Error | undefined) => {
        interrupt(err);
        stdout.end();
        stderr.end();
      };
      signal.addEventListener("abort", () => end(undefined), { once: true });
      this.follows.push({ since: sinceSeconds, stdout, stderr, interrupt: end });
      for (const w of this.waiters.splice(0)) w();
      return { stdout, stderr, interrupted };
    }

    // A launch's first stream is its attach; it breaks and ends like the logs streams.
    override async attachOutput(id: string, signal: AbortSignal, tty: boolean): Promise<LogStreams> {
      await super.attachOutput(id, signal, tty);
      return this.followLogs(id, signal, undefined);
    }

    async follow(n: number) {
      while (this.follows.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
      return this.follows[n - 1]!;
    }
  }

  it("a logs stream that breaks while the container runs is followed again from the sandbox files' watermark, losing nothing", async () => {
    const workDir = await mkdtemp(path.join(tmpdir(), "berth-reattach-"));
    const engine = new BreakingLogsEngine({ images: [PRESENT] });
    const rig = await fakeRig(engine, workDir);
    try {
      const { cz } = rig;
      assert.equal((await cz.launch(input("reattach"))).result, "LAUNCHED");
      await stateIs(cz, "reattach", "RUNNING");
      const sandbox = cz.list().find((c) => c.containerId === "reattach")!.sandbox;
      const first = await engine.follow(1);
      first.stdout.write("before the engine restart\n");
      first.stderr.write("err before\n");
      // The engine restarts (live-restore): the stream breaks, the container runs on.
      first.interrupt(new Error("socket hang up"));
      const second = await engine.follow(2);
      assert.equal(typeof second.since, "number", "the re-attach starts from the sandbox files' watermark");
      const mtime = Math.max(...(await Promise.all(["stdout", "stderr"].map((f) => stat(path.join(sandbox, f))))).map((s) => s.mtimeMs)) / 1000;
      assert.equal(second.since, mtime);
      second.stdout.write("after the engine restart\n");
      second.stdout.end();
      second.stderr.end();
      second.interrupt(undefined);
      await cz.destroy("reattach");
      assert.equal(await readFile(path.join(sandbox, "stdout"), "utf8"), "before the engine restart\nafter the engine restart\n");
      assert.equal(await readFile(path.join(sandbox, "stderr"), "utf8"), "err before\n");
    } finally {
      await closeRig(rig, workDir);
    }
  });
});
