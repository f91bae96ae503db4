import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import Dockerode from "dockerode";
import * as tar from "tar";
import { DockerodeEngine } from "../../src/docker/dockerode-engine.js";
import { EngineRequestFailed, EngineUnreachable, type CreateSpec, type EngineEvent, type PullProgress } from "../../src/docker/engine-port.js";
import { ImagePuller } from "../../src/docker/image-puller.js";
import { ensureTestImages, startThrottledRegistry, type ThrottledRegistry } from "../support/engine.js";

const SOCKET = "/var/run/docker.sock";
const IMAGE = "berth-adapter-test:1";
const TEST_LABELS = { "berth.test": "adapter" };
/** Distinguishes this run's containers (and events) from any other run on the same engine. */
const RUN = randomBytes(4).toString("hex");

/** Builds a one-binary image from this machine's static busybox (no registry needed). */
async function importBusyboxImage(docker: Dockerode): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), "berth-adapter-rootfs-"));
  try {
    await mkdir(join(root, "bin"));
    await copyFile("/bin/busybox", join(root, "bin", "busybox"));
    for (const applet of ["sh", "echo", "sleep", "true", "cat"]) await symlink("busybox", join(root, "bin", applet));
    const archive = tar.create({ cwd: root, portable: true }, ["bin"]) as unknown as Readable;
    const stream = (await docker.importImage(archive, {
      repo: "berth-adapter-test",
      tag: "1",
      changes: ["LABEL berth.test=adapter"],
    } as object)) as Readable;
    let text = "";
    for await (const chunk of stream) text += String(chunk);
    if (/"error"/.test(text)) throw new Error(`importing ${IMAGE} failed: ${text}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

async function removeLabelled(docker: Dockerode): Promise<void> {
  const rows = await docker.listContainers({ all: true, filters: { label: ["berth.test=adapter"] } });
  await Promise.all(rows.map((r) => docker.getContainer(r.Id).remove({ force: true, v: true }).catch(() => undefined)));
}

let seq = 0;
function spec(cmd: string, extraLabels: Record<string, string> = {}): CreateSpec {
  return {
    name: `berth-adapter-test-${RUN}-${++seq}`,
    Image: IMAGE,
    Labels: { ...TEST_LABELS, "berth.run": RUN, ...extraLabels },
    Env: ["GREETING=hello"],
    Cmd: ["/bin/sh", "-c", cmd],
    HostConfig: { NetworkMode: "none", Mounts: [] },
  };
}

async function readAll(stream: Readable): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += String(chunk);
  return text;
}

describe("DockerodeEngine against the real engine", function () {
  this.timeout(60_000);
  const docker = new Dockerode({ socketPath: SOCKET });
  const engine = new DockerodeEngine({ socketPath: SOCKET, requestTimeoutMs: 10_000 });

  before(async () => {
    await importBusyboxImage(docker);
  });

  after(async () => {
    await removeLabelled(docker);
    await docker.getImage(IMAGE).remove({ force: true }).catch(() => undefined);
  });

  it("ping answers", async () => {
    await engine.ping();
  });

  it("inspecting a missing container gives undefined; imagePresent tells present from missing", async () => {
    assert.equal(await engine.inspectContainer(`berth-adapter-missing-${RUN}`), undefined);
    assert.equal(await engine.imagePresent(IMAGE), true);
    assert.equal(await engine.imagePresent(`berth-adapter-missing-${RUN}:1`), false);
  });

  it("creates and starts a labelled container with network none, then reads it back", async () => {
    const s = spec("sleep 100");
    const id = await engine.createContainer(s);
    await engine.startContainer(id);
    await engine.startContainer(id); // 304 already started = done
    const info = await engine.inspectContainer(id);
    assert.ok(info);
    assert.equal(info.id, id);
    assert.equal(info.name, s.name);
    assert.equal(info.image, IMAGE);
    assert.equal(info.labels["berth.run"], RUN);
    assert.equal(info.running, true);
    assert.equal(info.status, "running");
    assert.ok(info.pid > 0);
    assert.ok(info.startedAt);
    assert.equal(info.finishedAt, undefined);
    const raw = await docker.getContainer(id).inspect();
    assert.equal(raw.HostConfig.NetworkMode, "none");
    assert.deepEqual(raw.Config.Env.filter((e) => e.startsWith("GREETING=")), ["GREETING=hello"]);
    await engine.removeContainer(id);
  });

  it("create with a missing image fails with EngineRequestFailed carrying the engine's message", async () => {
    const s = { ...spec("true"), Image: `berth-adapter-missing-${RUN}:1` };
    await assert.rejects(engine.createContainer(s), (err: unknown) => {
      assert.ok(err instanceof EngineRequestFailed);
      assert.equal(err.statusCode, 404);
      assert.match(err.message, /No such image/i);
      assert.match(err.message, new RegExp(s.name));
      return true;
    });
  });

  it("followLogs splits stdout and stderr and delivers everything before both streams end", async () => {
    const id = await engine.createContainer(
      spec("for i in 1 2 3; do echo out$i; echo err$i >&2; done; echo $GREETING"),
    );
    await engine.startContainer(id);
    const { stdout, stderr } = await engine.followLogs(id, new AbortController().signal);
    const [out, err] = await Promise.all([readAll(stdout), readAll(stderr)]);
    assert.equal(out, "out1\nout2\nout3\nhello\n");
    assert.equal(err, "err1\nerr2\nerr3\n");
  });

  it("followLogs of a running container ends both streams on abort", async () => {
    const id = await engine.createContainer(spec("echo ready; sleep 100"));
    await engine.startContainer(id);
    const ac = new AbortController();
    const { stdout, stderr } = await engine.followLogs(id, ac.signal);
    const out = readAll(stdout);
    const err = readAll(stderr);
    await new Promise<void>((resolve) => stdout.once("data", () => resolve()));
    ac.abort(new Error("test done"));
    await Promise.all([out, err]);
    await engine.removeContainer(id);
  });

  it("the events stream reports create, start and die with exitCode for a labelled container, and replays with since", async () => {
    const labels = { ...TEST_LABELS, "berth.events": RUN };
    const ac = new AbortController();
    const seen: EngineEvent[] = [];
    let subscribed!: () => void;
    const isSubscribed = new Promise<void>((resolve) => (subscribed = resolve));
    let id = "";
    const collected = (async () => {
      for await (const ev of engine.events(labels, undefined, ac.signal, subscribed)) {
        seen.push(ev);
        if (ev.id === id && ev.action === "die") return;
      }
    })();
    await isSubscribed;
    id = await engine.createContainer(spec("exit 3", { "berth.events": RUN }));
    await engine.startContainer(id);
    await collected;
    const mine = seen.filter((e) => e.id === id);
    assert.deepEqual(
      mine.map((e) => e.action).filter((a) => ["create", "start", "die"].includes(a)),
      ["create", "start", "die"],
    );
    const die = mine.find((e) => e.action === "die")!;
    assert.equal(die.attributes.exitCode, "3");
    assert.equal(die.attributes["berth.events"], RUN);
    // Nanosecond precision survives (the value exceeds 2^53).
    assert.ok(die.timeNano > 1_600_000_000_000_000_000n);
    ac.abort();

    // Replaying from the start event's time yields start (inclusive) and die again.
    const start = mine.find((e) => e.action === "start")!;
    const replay = new AbortController();
    const replayed: string[] = [];
    for await (const ev of engine.events(labels, start.timeNano, replay.signal)) {
      if (ev.id !== id) continue;
      replayed.push(ev.action);
      if (ev.action === "die") break;
    }
    assert.equal(replayed[0], "start");
    assert.ok(replayed.includes("die"));
    assert.ok(!replayed.includes("create"));
    await engine.removeContainer(id);
  });

  it("an aborted events stream ends quietly", async () => {
    const ac = new AbortController();
    let subscribed!: () => void;
    const isSubscribed = new Promise<void>((resolve) => (subscribed = resolve));
    const loop = (async () => {
      let n = 0;
      for await (const _ of engine.events({ ...TEST_LABELS, "berth.quiet": RUN }, undefined, ac.signal, subscribed)) n++;
      return n;
    })();
    await isSubscribed;
    ac.abort(new Error("shutting down"));
    assert.equal(await loop, 0);
  });

  it("stop with a grace period sends SIGTERM, then SIGKILLs a container that ignores it once the grace is over", async () => {
    // The trap records the TERM and carries on, as a task ignoring it would.
    const id = await engine.createContainer(spec("trap 'echo got-TERM' TERM; echo trapped; while :; do sleep 0.1; done"));
    await engine.startContainer(id);
    const { stdout, stderr } = await engine.followLogs(id, new AbortController().signal);
    stderr.resume();
    let out = "";
    const trapped = new Promise<void>((resolve) =>
      stdout.on("data", (chunk) => {
        out += String(chunk);
        if (out.includes("trapped")) resolve();
      }),
    );
    const ended = new Promise<void>((resolve) => stdout.on("end", () => resolve()));
    await trapped;
    const t0 = Date.now();
    await engine.stopContainer(id, 2);
    const took = Date.now() - t0;
    await ended;
    const info = await engine.inspectContainer(id);
    assert.ok(info);
    assert.equal(info.running, false);
    assert.match(out, /got-TERM/, "SIGTERM came first");
    assert.equal(info.exitCode, 137, "then SIGKILL");
    // A 2 s grace: a stop that killed at once would return in a few ms.
    assert.ok(took >= 1000, `stop returned after ${took} ms, before the grace period`);
    assert.ok(info.finishedAt);
    // Stopping or killing a stopped container is fine.
    await engine.stopContainer(id, 1);
    await engine.killContainer(id);
    await engine.removeContainer(id);
  });

  it("kill sends SIGKILL by default", async () => {
    const id = await engine.createContainer(spec("trap '' TERM; sleep 100; true"));
    await engine.startContainer(id);
    await engine.killContainer(id);
    const info = await engine.inspectContainer(id);
    assert.equal(info?.running, false);
    assert.equal(info?.exitCode, 137);
    await engine.removeContainer(id);
  });

  it("remove force-removes a running container and is idempotent; calls on a gone container are done", async () => {
    const id = await engine.createContainer(spec("sleep 100"));
    await engine.startContainer(id);
    await engine.removeContainer(id);
    await engine.removeContainer(id);
    assert.equal(await engine.inspectContainer(id), undefined);
    await engine.killContainer(id);
    await engine.stopContainer(id, 1);
    await assert.rejects(engine.startContainer(id), (err: unknown) => err instanceof EngineRequestFailed && err.statusCode === 404);
  });

  it("listContainers finds every container carrying the labels, running or not", async () => {
    const labels = { "berth.list": RUN };
    const a = await engine.createContainer(spec("true", labels));
    const b = await engine.createContainer(spec("sleep 100", labels));
    await engine.startContainer(b);
    await engine.createContainer(spec("true")); // not carrying berth.list
    const rows = await engine.listContainers({ ...TEST_LABELS, ...labels });
    assert.deepEqual(rows.map((r) => r.id).sort(), [a, b].sort());
    const byId = new Map(rows.map((r) => [r.id, r]));
    assert.equal(byId.get(a)?.state, "created");
    assert.equal(byId.get(b)?.state, "running");
    assert.equal(byId.get(b)?.labels["berth.list"], RUN);
  });

  it("a pull the engine cannot complete rejects with the engine's message", async () => {
    // Nothing listens on port 1 of the loopback address; the engine itself reports the failure.
    const ref = "127.0.0.1:1/berth-adapter-test/nothing:1";
    await assert.rejects(engine.pullImage(ref, () => undefined, new AbortController().signal), (err: unknown) => {
      assert.ok(err instanceof EngineRequestFailed, String(err));
      assert.match(err.message, /127\.0\.0\.1:1/);
      return true;
    });
  });

  it("an already-aborted pull rejects with the signal's reason", async () => {
    const ac = new AbortController();
    const reason = new Error("destroyed");
    ac.abort(reason);
    await assert.rejects(engine.pullImage(IMAGE, () => undefined, ac.signal), (err: unknown) => err === reason);
  });

  it("an engine at a bogus socket path is EngineUnreachable at once, naming the socket", async () => {
    // A request timeout of an hour: "at once" is then any time far short of it.
    const bogus = new DockerodeEngine({ socketPath: `/nonexistent/berth-${RUN}.sock`, requestTimeoutMs: 3_600_000 });
    const t0 = Date.now();
    await assert.rejects(bogus.ping(), (err: unknown) => {
      assert.ok(err instanceof EngineUnreachable);
      assert.match(err.message, new RegExp(`unix:///nonexistent/berth-${RUN}\\.sock`));
      assert.match(err.message, /ENOENT/);
      return true;
    });
    assert.ok(Date.now() - t0 < 30_000, "failed at once, not after the request timeout");
    await assert.rejects(bogus.inspectContainer("x"), EngineUnreachable);
  });

  describe("pulls from the local registry (through a throttling proxy, so refs are private to this run)", () => {
    const MiB = 1024 * 1024;
    let proxy: ThrottledRegistry | undefined;
    const pulled: string[] = [];

    before(async function () {
      this.timeout(300_000);
      await ensureTestImages(docker);
      proxy = await startThrottledRegistry({ bytesPerSecond: 4 * MiB });
    });
    after(async () => {
      for (const ref of pulled) await docker.getImage(ref).remove({ force: true }).catch(() => undefined);
      await proxy?.close();
    });

    it("pulls an image, reporting progress lines, after which it is present", async () => {
      const ref = `${proxy!.host}/berth-test/busybox:1`;
      pulled.push(ref);
      const lines: PullProgress[] = [];
      await engine.pullImage(ref, (p) => lines.push(p), new AbortController().signal);
      assert.ok(lines.some((l) => l.status.startsWith("Status:")), JSON.stringify(lines));
      // Per-layer lines appear only when the layer is not already stored under another tag
      // (earlier tests may have pulled the same image through another registry address).
      const layerLines = lines.filter((l) => l.layer !== undefined && l.status !== `Pulling from berth-test/busybox`);
      assert.ok(layerLines.length === 0 || layerLines.some((l) => l.status === "Pull complete" || l.status === "Already exists"), JSON.stringify(lines));
      assert.equal(await engine.imagePresent(ref), true);
    });

    it("aborting a pull mid-transfer rejects with the signal's reason and stops the transfer", async () => {
      const ref = `${proxy!.host}/berth-test/big:1`;
      pulled.push(ref);
      const ac = new AbortController();
      const reason = new Error("container destroyed during PULLING");
      let downloading!: () => void;
      const isDownloading = new Promise<void>((resolve) => (downloading = resolve));
      const pull = engine.pullImage(ref, (p) => {
        if (p.status === "Downloading" && (p.current ?? 0) > 0) downloading();
      }, ac.signal);
      await isDownloading;
      ac.abort(reason);
      // A pull that ignored the abort would run to its end (16 s at 4 MiB/s) and leave the image.
      await assert.rejects(pull, (err: unknown) => err === reason);
      // Observation window: at 4 MiB/s a transfer still running would send ~4 MiB more.
      const before = proxy!.bytesSent();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.ok(proxy!.bytesSent() - before < MiB, `proxy still sent ${proxy!.bytesSent() - before} bytes after abort`);
      assert.equal(await engine.imagePresent(ref), false);
    });

    it("ImagePuller: two waiters share one transfer, and when both leave the engine transfer stops", async () => {
      const ref = `${proxy!.host}/berth-test/big:1`;
      pulled.push(ref);
      let enginePulls = 0;
      const counting = new Proxy(engine, {
        get(target, prop, receiver) {
          if (prop === "pullImage") {
            return (r: string, on: (p: PullProgress) => void, s: AbortSignal) => {
              enginePulls++;
              return target.pullImage(r, on, s);
            };
          }
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const puller = new ImagePuller({ engine: counting, overallTimeoutMs: 120_000, activityTimeoutMs: 30_000 });
      const a = new AbortController();
      const b = new AbortController();
      let moving!: () => void;
      const isMoving = new Promise<void>((resolve) => (moving = resolve));
      const pa = puller.pull(ref, { signal: a.signal, onProgress: (p) => p.bytesCurrent > 0 && moving() });
      const pb = puller.pull(ref, { signal: b.signal });
      await isMoving;
      assert.equal(enginePulls, 1);
      a.abort(new Error("a destroyed"));
      await assert.rejects(pa, /a destroyed/);
      b.abort(new Error("b destroyed"));
      await assert.rejects(pb, /b destroyed/);
      const before = proxy!.bytesSent();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.ok(proxy!.bytesSent() - before < MiB, `proxy still sent ${proxy!.bytesSent() - before} bytes after both left`);
      assert.equal(puller.activePulls, 0);
    });
  });

  describe("against an engine that accepts connections but never answers", () => {
    let server: Server;
    let dir: string;
    const sockets: Socket[] = [];
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "berth-hung-engine-"));
      server = createServer((s) => {
        sockets.push(s);
      });
      await new Promise<void>((resolve) => server.listen(join(dir, "docker.sock"), resolve));
    });
    after(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    });

    it("a short call gives up after requestTimeoutMs with EngineUnreachable", async () => {
      const hung = new DockerodeEngine({ host: `unix://${join(dir, "docker.sock")}`, requestTimeoutMs: 200 });
      await assert.rejects(hung.inspectContainer("abc"), (err: unknown) => {
        assert.ok(err instanceof EngineUnreachable);
        assert.match(err.message, /did not answer inspect container 'abc' within 200 ms/);
        return true;
      });
    });
  });
});
