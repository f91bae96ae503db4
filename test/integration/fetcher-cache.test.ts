import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { CacheOutcome, State, type ContainerEvent, type FetchResult } from "../../src/gen/berth/v1/containerizer_pb.js";
import { TaskState } from "../../src/gen/mesos/v1/mesos_pb.js";
import { ensureEngine, ensureTestImages, type TestImages } from "../support/engine.js";
import { launchRequest, newId } from "../harness/launches.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";

/** Watches `id` from its first event (Watch before Launch waits for it) until its termination. */
function watchUntilTerminated(t: TestBerth, id: string): Promise<ContainerEvent[]> {
  return t.client.collect([id], (e) => e.kind.case === "termination");
}

function fetchResults(events: ContainerEvent[]): FetchResult[] {
  return events.flatMap((e) => (e.kind.case === "fetchResult" ? [e.kind.value] : []));
}

describe("fetcher cache and fetcher behaviours against the real engine", function () {
  this.timeout(120_000);
  let images: TestImages;
  let t: TestBerth;
  let files: Server;
  let base: string;
  let requests = 0;
  let dir: string;

  before(async () => {
    const docker = await ensureEngine();
    images = await ensureTestImages(docker);
    dir = await mkdtemp(path.join(os.tmpdir(), "berth-fetcher-cache-it-"));
    // Local files are opened to the suite's folder only; it is traversable, so file bits decide.
    await chmod(dir, 0o755);
    await writeFile(path.join(dir, "open.txt"), "for-everyone\n", { mode: 0o644 });
    await writeFile(path.join(dir, "root-only.txt"), "root-secret\n", { mode: 0o600 });
    const policy = path.join(dir, "policy.json");
    await writeFile(policy, JSON.stringify({ file_uri_prefixes: [dir] }));
    t = await startTestBerth({ policy });
    files = createServer((req, res) => {
      if (req.url === "/payload.txt") {
        requests += 1;
        res.end("cached-payload\n");
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => files.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  });

  after(async () => {
    files?.close();
    await t?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("two launches of a cached URI: the first is a MISS, the second a HIT, the server saw one request, both containers see the file", async () => {
    const outcomes: CacheOutcome[] = [];
    for (const round of [1, 2]) {
      const id = newId(`cache${round}`);
      const watching = watchUntilTerminated(t, id);
      const launched = await t.client.launch(
        launchRequest(id, { image: images.busybox, command: { shell: true, value: 'cat "$MESOS_SANDBOX/payload.txt"', uris: [{ value: `  ${base}/payload.txt `, cache: true }] } }),
      );
      const events = await watching;
      const last = events[events.length - 1]!;
      assert.ok(last.kind.case === "termination");
      assert.equal(last.kind.value.containerTermination?.state, TaskState.TASK_FINISHED, last.kind.value.containerTermination?.message);
      const [result, ...more] = fetchResults(events);
      assert.deepEqual(more, [], "one FetchResult per URI");
      assert.equal(result!.uriIndex, 0);
      assert.equal(result!.uri, `${base}/payload.txt`, "the URI as fetched, trimmed");
      assert.equal(result!.bytes, 15n);
      outcomes.push(result!.cache);
      // Published during FETCHING: before the container left it for PULLING.
      const at = events.findIndex((e) => e.kind.case === "fetchResult");
      const pulling = events.findIndex((e) => e.kind.case === "stateChanged" && e.kind.value.state === State.PULLING);
      assert.ok(at < pulling, "the fetch result comes before PULLING");
      assert.equal(await readFile(path.join(launched.sandboxDirectory, "stdout"), "utf8"), "cached-payload\n");
      const stderr = await readFile(path.join(launched.sandboxDirectory, "stderr"), "utf8");
      assert.match(stderr, new RegExp(`fetcher\\] Fetching URI '${base.replace(/[.]/g, "\\.")}/payload\\.txt'`));
      assert.match(stderr, round === 1 ? /fetcher\] Downloaded into cache/ : /fetcher\] Fetching from cache/);
    }
    assert.deepEqual(outcomes, [CacheOutcome.MISS, CacheOutcome.HIT]);
    assert.equal(requests, 1);
    const entries = await readdir(t.config.fetcherCacheDir);
    assert.equal(entries.length, 1);
    assert.equal(t.config.fetcherCacheDir, path.join(t.workDir, "fetcher-cache"));
  });

  it("file:// reads run as the task's user: a root-only file fails the launch, a world-readable one reaches the container", async () => {
    // Without a task user, Berth reads as before (as root).
    const asRoot = newId("asroot");
    const rootWatch = watchUntilTerminated(t, asRoot);
    const rootLaunch = await t.client.launch(
      launchRequest(asRoot, { image: images.busybox, command: { shell: true, value: 'cat "$MESOS_SANDBOX/root-only.txt"', uris: [{ value: `file://${dir}/root-only.txt` }] } }),
    );
    const rootEnd = (await rootWatch).at(-1)!;
    assert.ok(rootEnd.kind.case === "termination");
    assert.equal(rootEnd.kind.value.containerTermination?.state, TaskState.TASK_FINISHED, rootEnd.kind.value.containerTermination?.message);
    assert.equal(await readFile(path.join(rootLaunch.sandboxDirectory, "stdout"), "utf8"), "root-secret\n");

    // The task's user is ContainerConfig.user (numeric here: the image need not know a name).
    const ok = newId("asuser-ok");
    const req = launchRequest(ok, { image: images.busybox, command: { shell: true, value: 'cat "$MESOS_SANDBOX/open.txt"; id -u', uris: [{ value: `file://${dir}/open.txt` }] } });
    req.containerConfig!.user = "65534";
    const watching = watchUntilTerminated(t, ok);
    const launched = await t.client.launch(req);
    const events = await watching;
    const last = events[events.length - 1]!;
    assert.ok(last.kind.case === "termination");
    assert.equal(last.kind.value.containerTermination?.state, TaskState.TASK_FINISHED, last.kind.value.containerTermination?.message);
    assert.equal(await readFile(path.join(launched.sandboxDirectory, "stdout"), "utf8"), "for-everyone\n65534\n");
    assert.equal(fetchResults(events)[0]?.cache, CacheOutcome.NOT_CACHED);

    const denied = newId("asuser-denied");
    const deniedReq = launchRequest(denied, { image: images.busybox, command: { shell: true, value: "true", uris: [{ value: `file://${dir}/root-only.txt` }] } });
    deniedReq.containerConfig!.user = "65534";
    const deniedWatch = watchUntilTerminated(t, denied);
    await t.client.launch(deniedReq);
    const deniedEvents = await deniedWatch;
    const end = deniedEvents[deniedEvents.length - 1]!;
    assert.ok(end.kind.case === "termination");
    const termination = end.kind.value.containerTermination;
    assert.equal(termination?.state, TaskState.TASK_FAILED);
    assert.match(termination?.message ?? "", /root-only\.txt.*as user '65534' \(uid 65534, gid 65534\).*EACCES: permission denied/);
    assert.deepEqual(fetchResults(deniedEvents), []);
  });
});
