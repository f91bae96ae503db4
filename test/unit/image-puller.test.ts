import assert from "node:assert/strict";
import { mock } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import type { EnginePort, PullProgress, RegistryAuth } from "../../src/docker/engine-port.js";
import { EngineRequestFailed, EngineUnreachable } from "../../src/docker/engine-port.js";
import { ImagePuller, MAX_LAYERS_REPORTED, PullFailed, PullTimedOut, type CredentialsSource, type PullProgressSummary } from "../../src/docker/image-puller.js";
import { DockerConfigError, type RegistryCredentials } from "../../src/docker/registry-auth.js";

/** One engine pull on the fake engine, driven by the test. */
class FakePull {
  private settle!: { resolve: () => void; reject: (e: unknown) => void };
  readonly done: Promise<void>;

  constructor(
    readonly ref: string,
    readonly onProgress: (p: PullProgress) => void,
    readonly signal: AbortSignal,
    readonly auth?: RegistryAuth,
  ) {
    this.done = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Like the adapter: an aborted pull rejects with the signal's reason.
    signal.addEventListener("abort", () => this.settle.reject(signal.reason), { once: true });
  }
  progress(p: PullProgress): void {
    this.onProgress(p);
  }
  finish(): void {
    this.settle.resolve();
  }
  fail(err: Error): void {
    this.settle.reject(err);
  }
  /** Resolves when the engine request was aborted. */
  aborted(): Promise<void> {
    if (this.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.signal.addEventListener("abort", () => resolve(), { once: true }));
  }
}

class FakeEngine implements EnginePort {
  readonly pulls: FakePull[] = [];
  pullImage(ref: string, onProgress: (p: PullProgress) => void, signal: AbortSignal, auth?: RegistryAuth): Promise<void> {
    const pull = new FakePull(ref, onProgress, signal, auth);
    this.pulls.push(pull);
    return pull.done;
  }
  ping = unused;
  imagePresent = unused;
  createContainer = unused;
  startContainer = unused;
  stopContainer = unused;
  killContainer = unused;
  removeContainer = unused;
  inspectContainer = unused;
  listContainers = unused;
  events = unused;
  followLogs = unused;
  attachOutput = unused;
  updateContainer = unused;
  removeImage = unused;
  createExec = unused;
  startExec = unused;
  inspectExec = unused;
  resizeExec = unused;
}

function unused(): never {
  throw new Error("not used by the image puller");
}

const REF = "127.0.0.1:5000/berth-test/busybox:1";

function puller(engine: EnginePort, overallTimeoutMs = 10_000, activityTimeoutMs = 10_000): ImagePuller {
  return new ImagePuller({ engine, overallTimeoutMs, activityTimeoutMs });
}

/** Settles to "resolved", "rejected: <err>" — for asserting a promise is still pending too. */
function track(p: Promise<void>): { state: string; error?: unknown } {
  const t: { state: string; error?: unknown } = { state: "pending" };
  p.then(
    () => (t.state = "resolved"),
    (e: unknown) => {
      t.state = "rejected";
      t.error = e;
    },
  );
  return t;
}

describe("ImagePuller", () => {
  it("two waiters of one ref share a single engine pull and both see progress", async () => {
    const engine = new FakeEngine();
    const p = puller(engine);
    const seenA: PullProgressSummary[] = [];
    const seenB: PullProgressSummary[] = [];
    const a = p.pull(REF, { signal: new AbortController().signal, onProgress: (s) => seenA.push(s) });
    const b = p.pull(REF, { signal: new AbortController().signal, onProgress: (s) => seenB.push(s) });
    assert.equal(engine.pulls.length, 1);
    assert.equal(p.activePulls, 1);
    const pull = engine.pulls[0]!;
    assert.equal(pull.ref, REF);
    pull.progress({ status: "Pulling fs layer", layer: "l1" });
    pull.finish();
    await Promise.all([a, b]);
    assert.equal(seenA.at(-1)?.status, "Pulling fs layer");
    assert.equal(seenB.at(-1)?.status, "Pulling fs layer");
    assert.equal(p.activePulls, 0);
  });

  it("a late waiter joins the running pull and gets the current progress at once", async () => {
    const engine = new FakeEngine();
    const p = puller(engine);
    const a = p.pull(REF, { signal: new AbortController().signal });
    engine.pulls[0]!.progress({ status: "Downloading", layer: "l1", current: 10, total: 100 });
    const late: PullProgressSummary[] = [];
    const b = p.pull(REF, { signal: new AbortController().signal, onProgress: (s) => late.push(s) });
    assert.equal(engine.pulls.length, 1);
    assert.equal(late[0]?.bytesCurrent, 10);
    engine.pulls[0]!.finish();
    await Promise.all([a, b]);
  });

  it("first waiter aborting detaches only that waiter; the pull goes on for the second", async () => {
    const engine = new FakeEngine();
    const p = puller(engine);
    const first = new AbortController();
    const a = track(p.pull(REF, { signal: first.signal }));
    const b = p.pull(REF, { signal: new AbortController().signal });
    const reason = new Error("container c1 destroyed");
    first.abort(reason);
    await delay(0);
    assert.equal(a.state, "rejected");
    assert.equal(a.error, reason);
    const pull = engine.pulls[0]!;
    assert.equal(pull.signal.aborted, false);
    pull.finish();
    await b;
    assert.equal(engine.pulls.length, 1);
  });

  it("when every waiter has aborted the engine request is aborted", async () => {
    const engine = new FakeEngine();
    const p = puller(engine);
    const c1 = new AbortController();
    const c2 = new AbortController();
    const a = p.pull(REF, { signal: c1.signal });
    const b = p.pull(REF, { signal: c2.signal });
    c1.abort(new Error("destroy c1"));
    await assert.rejects(a, /destroy c1/);
    assert.equal(engine.pulls[0]!.signal.aborted, false);
    c2.abort(new Error("destroy c2"));
    await assert.rejects(b, /destroy c2/);
    await engine.pulls[0]!.aborted();
    assert.equal(p.activePulls, 0);
    // The next pull of the same ref is a fresh engine pull.
    const c = p.pull(REF, { signal: new AbortController().signal });
    assert.equal(engine.pulls.length, 2);
    engine.pulls[1]!.finish();
    await c;
  });

  it("an already-aborted signal rejects without starting a pull", async () => {
    const engine = new FakeEngine();
    const c = new AbortController();
    c.abort(new Error("gone"));
    await assert.rejects(puller(engine).pull(REF, { signal: c.signal }), /gone/);
    assert.equal(engine.pulls.length, 0);
  });

  it("a pull with no progress for activityTimeoutMs is aborted with PullTimedOut for every waiter", async () => {
    const engine = new FakeEngine();
    const p = puller(engine, 10_000, 50);
    const a = p.pull(REF, { signal: new AbortController().signal });
    const b = p.pull(REF, { signal: new AbortController().signal });
    const pull = engine.pulls[0]!;
    // Repeating the same line is not progress.
    const repeat = setInterval(() => pull.progress({ status: "Downloading", layer: "l1", current: 5, total: 100 }), 10);
    try {
      for (const w of [a, b]) {
        await assert.rejects(w, (err: unknown) => {
          assert.ok(err instanceof PullTimedOut);
          assert.equal(err.message, `pull of '${REF}' made no progress for 0.05s`);
          return true;
        });
      }
    } finally {
      clearInterval(repeat);
    }
    await pull.aborted();
    assert.ok(pull.signal.reason instanceof PullTimedOut);
  });

  describe("with the clock driven by hand", () => {
    beforeEach(() => mock.timers.enable({ apis: ["setTimeout"] }));
    afterEach(() => mock.timers.reset());
    /** Lets promise callbacks and I/O run (setImmediate is not mocked). */
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

    it("download bytes, extraction bytes and layer status changes each count as activity", async () => {
      const engine = new FakeEngine();
      const p = puller(engine, 10_000, 150);
      const w = track(p.pull(REF, { signal: new AbortController().signal }));
      const pull = engine.pulls[0]!;
      const lines: PullProgress[] = [
        { status: "Pulling fs layer", layer: "l1" },
        { status: "Downloading", layer: "l1", current: 10, total: 30 },
        { status: "Downloading", layer: "l1", current: 20, total: 30 },
        { status: "Download complete", layer: "l1" },
        { status: "Extracting", layer: "l1", current: 10, total: 30 },
        { status: "Extracting", layer: "l1", current: 20, total: 30 },
        { status: "Extracting", layer: "l1", current: 30, total: 30 },
        { status: "Pull complete", layer: "l1" },
      ];
      // The clock is driven by hand (mocked setTimeout): each line comes after 2/3 of the activity
      // timeout, 8 lines ≈ 5 timeouts, whatever the machine's load.
      for (const line of lines) {
        mock.timers.tick(100);
        await turn();
        assert.equal(w.state, "pending", `timed out before ${JSON.stringify(line)}`);
        pull.progress(line);
        await turn();
      }
      pull.finish();
      await turn();
      assert.equal(w.state, "resolved");
    });

    it("per-layer detail rides on the coalesced summaries: 2000 engine lines over 1 s of four layers give at most one summary per interval plus the final one", async () => {
      const engine = new FakeEngine();
      const p = new ImagePuller({ engine, overallTimeoutMs: 10_000, activityTimeoutMs: 10_000, progressIntervalMs: 250 });
      const seen: PullProgressSummary[] = [];
      const w = track(p.pull(REF, { signal: new AbortController().signal, onProgress: (s) => seen.push(s) }));
      const pull = engine.pulls[0]!;
      const layers = ["l1", "l2", "l3", "l4"];
      // 2000 lines, one every half millisecond of the driven clock, every layer downloading 500 times.
      for (let i = 0; i < 2000; i++) {
        const layer = layers[i % 4]!;
        pull.progress({ status: "Downloading", layer, current: Math.floor(i / 4) + 1, total: 500 });
        if (i % 2 === 1) mock.timers.tick(1);
      }
      for (const layer of layers) pull.progress({ status: "Pull complete", layer });
      pull.finish();
      await turn();
      assert.equal(w.state, "resolved");
      // The first line at once, one per 250 ms over the 1000 ms, and the final summary.
      assert.ok(seen.length <= 1 + 1000 / 250 + 1, `${seen.length} summaries`);
      assert.ok(seen.length >= 3, `${seen.length} summaries`);
      assert.deepEqual(seen[0]?.layers, [{ id: "l1", bytesCurrent: 1, bytesTotal: 500, status: "Downloading", done: false }]);
      // A middle summary carries every layer's bytes as of its time.
      assert.deepEqual(seen[1]?.layers.map((l) => l.id), layers);
      assert.ok(seen[1]!.layers.every((l) => l.bytesCurrent > 1 && l.bytesCurrent < 500 && l.status === "Downloading"), JSON.stringify(seen[1]?.layers));
      const final = seen.at(-1)!;
      assert.deepEqual(final.layers, layers.map((id) => ({ id, bytesCurrent: 500, bytesTotal: 500, status: "Pull complete", done: true })));
      assert.equal(final.layersDone, 4);
    });

    it("the same pull with one silent stretch longer than the activity timeout is aborted (the driven clock is the puller's)", async () => {
      const engine = new FakeEngine();
      const p = puller(engine, 10_000, 150);
      const w = track(p.pull(REF, { signal: new AbortController().signal }));
      const pull = engine.pulls[0]!;
      pull.progress({ status: "Pulling fs layer", layer: "l1" });
      await turn();
      mock.timers.tick(149);
      await turn();
      assert.equal(w.state, "pending");
      mock.timers.tick(2);
      await pull.aborted();
      assert.ok(pull.signal.reason instanceof PullTimedOut);
    });
  });

  it("a pull still running after overallTimeoutMs is aborted with PullTimedOut even while progressing", async () => {
    const engine = new FakeEngine();
    const p = puller(engine, 150, 10_000);
    const w = p.pull(REF, { signal: new AbortController().signal });
    const pull = engine.pulls[0]!;
    let current = 0;
    const trickle = setInterval(() => pull.progress({ status: "Downloading", layer: "l1", current: ++current, total: 1e9 }), 10);
    try {
      await assert.rejects(w, (err: unknown) => {
        assert.ok(err instanceof PullTimedOut);
        assert.equal(err.message, `pull of '${REF}' did not finish within 0.15s`);
        return true;
      });
    } finally {
      clearInterval(trickle);
    }
    await pull.aborted();
  });

  it("an engine error rejects every waiter with PullFailed naming the ref and the engine's message", async () => {
    const engine = new FakeEngine();
    const p = puller(engine);
    const a = p.pull(REF, { signal: new AbortController().signal });
    const b = p.pull(REF, { signal: new AbortController().signal });
    const cause = new EngineRequestFailed("manifest for 127.0.0.1:5000/berth-test/busybox:1 not found: manifest unknown", 500);
    engine.pulls[0]!.fail(cause);
    for (const w of [a, b]) {
      await assert.rejects(w, (err: unknown) => {
        assert.ok(err instanceof PullFailed);
        assert.equal(err.ref, REF);
        assert.match(err.message, new RegExp(`^pull of '${REF.replace(/[.]/g, "\\.")}' failed: manifest for .* not found`));
        assert.equal(err.cause, cause);
        return true;
      });
    }
    assert.equal(p.activePulls, 0);
  });

  it("summarises progress across layers", async () => {
    const engine = new FakeEngine();
    // Every line reported (no coalescing), so each summary can be checked.
    const p = new ImagePuller({ engine, overallTimeoutMs: 10_000, activityTimeoutMs: 10_000, progressIntervalMs: 0 });
    let last: PullProgressSummary | undefined;
    const w = p.pull(REF, { signal: new AbortController().signal, onProgress: (s) => (last = s) });
    const pull = engine.pulls[0]!;
    pull.progress({ status: "Pulling from berth-test/busybox", layer: "1" });
    pull.progress({ status: "Pulling fs layer", layer: "a" });
    pull.progress({ status: "Pulling fs layer", layer: "b" });
    pull.progress({ status: "Already exists", layer: "c" });
    pull.progress({ status: "Downloading", layer: "a", current: 40, total: 100 });
    pull.progress({ status: "Downloading", layer: "b", current: 10, total: 50 });
    const before = last;
    assert.deepEqual(last, {
      ref: REF,
      layersTotal: 3,
      layersDone: 1,
      bytesCurrent: 50,
      bytesTotal: 150,
      status: "Downloading",
      // Layer by layer, in the order the engine first named them; the "Pulling from" line is no layer.
      layers: [
        { id: "a", bytesCurrent: 40, bytesTotal: 100, status: "Downloading", done: false },
        { id: "b", bytesCurrent: 10, bytesTotal: 50, status: "Downloading", done: false },
        { id: "c", bytesCurrent: 0, bytesTotal: 0, status: "Already exists", done: true },
      ],
    });
    pull.progress({ status: "Download complete", layer: "a" });
    // Extraction reports its own counter: the layer's bytes stay its downloaded size.
    pull.progress({ status: "Extracting", layer: "a", current: 30, total: 100 });
    assert.deepEqual(last?.layers[0], { id: "a", bytesCurrent: 100, bytesTotal: 100, status: "Extracting", done: false });
    pull.progress({ status: "Pull complete", layer: "a" });
    assert.deepEqual(last, {
      ref: REF,
      layersTotal: 3,
      layersDone: 2,
      bytesCurrent: 110,
      bytesTotal: 150,
      status: "Pull complete",
      layers: [
        { id: "a", bytesCurrent: 100, bytesTotal: 100, status: "Pull complete", done: true },
        { id: "b", bytesCurrent: 10, bytesTotal: 50, status: "Downloading", done: false },
        { id: "c", bytesCurrent: 0, bytesTotal: 0, status: "Already exists", done: true },
      ],
    });
    // A summary handed out is not changed by later lines.
    assert.equal(before?.layers[0]?.status, "Downloading");
    pull.finish();
    await w;
  });

  it(`lists at most ${MAX_LAYERS_REPORTED} layers one by one (the first named); the totals count every layer`, async () => {
    const engine = new FakeEngine();
    const p = new ImagePuller({ engine, overallTimeoutMs: 10_000, activityTimeoutMs: 10_000, progressIntervalMs: 0 });
    let last: PullProgressSummary | undefined;
    const w = p.pull(REF, { signal: new AbortController().signal, onProgress: (s) => (last = s) });
    const pull = engine.pulls[0]!;
    const ids = Array.from({ length: 200 }, (_, i) => `layer${String(i).padStart(3, "0")}`);
    for (const id of ids) pull.progress({ status: "Pulling fs layer", layer: id });
    for (const id of ids) pull.progress({ status: "Downloading", layer: id, current: 1, total: 2 });
    assert.equal(last?.layersTotal, 200);
    assert.equal(last?.bytesCurrent, 200);
    assert.equal(last?.bytesTotal, 400);
    assert.equal(last?.layers.length, MAX_LAYERS_REPORTED);
    assert.deepEqual(last?.layers.map((l) => l.id), ids.slice(0, MAX_LAYERS_REPORTED));
    pull.finish();
    await w;
  });

  it("different refs are pulled independently", async () => {
    const engine = new FakeEngine();
    const p = puller(engine);
    const a = p.pull("a:1", { signal: new AbortController().signal });
    const b = p.pull("b:1", { signal: new AbortController().signal });
    assert.deepEqual(engine.pulls.map((x) => x.ref), ["a:1", "b:1"]);
    engine.pulls[1]!.fail(new Error("boom"));
    await assert.rejects(b, PullFailed);
    assert.equal(engine.pulls[0]!.signal.aborted, false);
    engine.pulls[0]!.finish();
    await a;
  });

  describe("registry credentials", () => {
    const PRIVATE = "127.0.0.1:5001/team/app:1";
    const ALICE: RegistryAuth = { serveraddress: "127.0.0.1:5001", username: "alice", password: "pa55-w0rd" };

    /** A credentials source the test steers; counts its reads. */
    class Source implements CredentialsSource {
      readonly description = "--docker_config '/etc/berth/docker.json'";
      reads = 0;
      constructor(public next: () => Promise<RegistryCredentials>) {}
      credentialsFor(): Promise<RegistryCredentials> {
        this.reads++;
        return this.next();
      }
    }

    /** Waits until the engine has seen `n` pulls (the credentials read is asynchronous). */
    async function pulls(engine: FakeEngine, n: number): Promise<FakePull> {
      for (let i = 0; i < 1000 && engine.pulls.length < n; i++) await delay(0);
      assert.ok(engine.pulls.length >= n, `the engine saw ${engine.pulls.length} pulls, expected ${n}`);
      return engine.pulls[n - 1]!;
    }

    it("sends the credentials held for the ref's registry, read again at every engine pull", async () => {
      const engine = new FakeEngine();
      let auth = ALICE;
      const source = new Source(async () => ({ registry: "127.0.0.1:5001", auth }));
      const p = new ImagePuller({ engine, overallTimeoutMs: 10_000, activityTimeoutMs: 10_000, credentials: source });
      const a = p.pull(PRIVATE, { signal: new AbortController().signal });
      const joined = p.pull(PRIVATE, { signal: new AbortController().signal });
      (await pulls(engine, 1)).finish();
      await Promise.all([a, joined]);
      assert.deepEqual(engine.pulls[0]!.auth, ALICE);
      assert.equal(source.reads, 1, "one engine pull, one read");
      auth = { ...ALICE, username: "bob", password: "rotated" };
      const b = p.pull(PRIVATE, { signal: new AbortController().signal });
      (await pulls(engine, 2)).finish();
      await b;
      assert.deepEqual(engine.pulls[1]!.auth, auth, "the rotated credentials");
      assert.equal(source.reads, 2);
    });

    it("without credentials for the registry, none are sent", async () => {
      const engine = new FakeEngine();
      const p = new ImagePuller({ engine, overallTimeoutMs: 10_000, activityTimeoutMs: 10_000, credentials: new Source(async () => ({ registry: "docker.io" })) });
      const w = p.pull("busybox:1", { signal: new AbortController().signal });
      (await pulls(engine, 1)).finish();
      await w;
      assert.equal(engine.pulls[0]!.auth, undefined);
    });

    it("an unusable config fails the pull with its message and never reaches the engine", async () => {
      const engine = new FakeEngine();
      const source = new Source(async () => {
        throw new DockerConfigError(`--docker_config '/etc/berth/docker.json': auths["h"] is not an object`);
      });
      const p = new ImagePuller({ engine, overallTimeoutMs: 10_000, activityTimeoutMs: 10_000, credentials: source });
      await assert.rejects(p.pull(PRIVATE, { signal: new AbortController().signal }), (e: unknown) => {
        assert.ok(e instanceof PullFailed);
        assert.equal(e.message, `pull of '${PRIVATE}' failed: --docker_config '/etc/berth/docker.json': auths["h"] is not an object`);
        return true;
      });
      assert.equal(engine.pulls.length, 0);
      assert.equal(p.activePulls, 0);
    });

    it("a waiter aborting while the credentials are read leaves no engine pull behind", async () => {
      const engine = new FakeEngine();
      let release!: (c: RegistryCredentials) => void;
      const source = new Source(() => new Promise((resolve) => (release = resolve)));
      const p = new ImagePuller({ engine, overallTimeoutMs: 10_000, activityTimeoutMs: 10_000, credentials: source });
      const ac = new AbortController();
      const w = track(p.pull(PRIVATE, { signal: ac.signal }));
      ac.abort(new Error("destroyed"));
      await delay(0);
      assert.equal(w.state, "rejected");
      release({ registry: "127.0.0.1:5001", auth: ALICE });
      await delay(0);
      assert.equal(engine.pulls.length, 0, "the engine was never asked");
      assert.equal(p.activePulls, 0);
    });

    const refusals: Array<[string, CredentialsSource | undefined, string, RegExp]> = [
      ["no --docker_config", undefined, "Head \"http://127.0.0.1:5001/v2/team/app/manifests/1\": no basic auth credentials", /\(no --docker_config is set, so no credentials were sent\); the engine said: Head .*no basic auth credentials$/],
      ["a config without an entry for it", new Source(async () => ({ registry: "127.0.0.1:5001" })), "no basic auth credentials", /\(--docker_config '\/etc\/berth\/docker\.json' holds no credentials for it, so none were sent\)/],
      ["only a credential helper for it", new Source(async () => ({ registry: "127.0.0.1:5001", helper: "desktop" })), "no basic auth credentials", /\(--docker_config '\/etc\/berth\/docker\.json' holds no credentials for it, only the credential helper 'desktop', which Berth does not run; so none were sent\)/],
      ["refused credentials", new Source(async () => ({ registry: "127.0.0.1:5001", auth: ALICE })), "unauthorized: authentication required", /\(the credentials --docker_config '\/etc\/berth\/docker\.json' holds for it were sent\); the engine said: unauthorized: authentication required$/],
    ];
    for (const [what, source, engineSays, expected] of refusals) {
      it(`an authentication refusal with ${what} says authentication failed for the registry`, async () => {
        const engine = new FakeEngine();
        const p = new ImagePuller({ engine, overallTimeoutMs: 10_000, activityTimeoutMs: 10_000, credentials: source });
        const w = p.pull(PRIVATE, { signal: new AbortController().signal });
        (await pulls(engine, 1)).fail(new EngineRequestFailed(`engine answered 500 to pull of '${PRIVATE}': ${engineSays}`, 500));
        await assert.rejects(w, (e: unknown) => {
          assert.ok(e instanceof PullFailed);
          assert.ok(e.message.startsWith(`pull of '${PRIVATE}' failed: authentication failed for registry 127.0.0.1:5001 (`), e.message);
          assert.match(e.message, expected);
          return true;
        });
      });
    }

    it("whatever the engine says, no form of the sent credentials survives in the message or its cause", async () => {
      const engine = new FakeEngine();
      const p = new ImagePuller({ engine, overallTimeoutMs: 10_000, activityTimeoutMs: 10_000, credentials: new Source(async () => ({ registry: "127.0.0.1:5001", auth: ALICE })) });
      const header = Buffer.from(JSON.stringify(ALICE)).toString("base64url");
      const basic = Buffer.from("alice:pa55-w0rd").toString("base64");
      for (const [i, err] of [
        new EngineRequestFailed(`engine answered 500 to pull of '${PRIVATE}': unauthorized (sent ${header}, Basic ${basic}, pa55-w0rd)`, 500),
        new EngineUnreachable(`engine unreachable during pull: socket hang up after Basic ${basic}`),
      ].entries()) {
        const w = p.pull(PRIVATE, { signal: new AbortController().signal });
        (await pulls(engine, i + 1)).fail(err);
        await assert.rejects(w, (e: unknown) => {
          assert.ok(e instanceof PullFailed);
          const cause = e.cause as Error;
          assert.equal(cause.constructor, err.constructor, "the cause keeps its kind");
          for (const text of [e.message, cause.message, String(cause.stack)]) {
            for (const secret of ["pa55-w0rd", header, basic]) assert.ok(!text.includes(secret), `'${secret}' in: ${text}`);
          }
          assert.match(e.message, /\[redacted\]/);
          return true;
        });
      }
    });
  });
});
