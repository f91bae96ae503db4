// CgroupStatsReader against a real busybox container with CPU and memory limits, resolved from the
// engine's State.Pid exactly as the containerizer will. The engine's stats endpoint is never used.
import { strict as assert } from "node:assert";
import { setTimeout as delay } from "node:timers/promises";
import type Dockerode from "dockerode";
import type { ResourceStatistics } from "../../src/gen/mesos/v1/mesos_pb.js";
import { CgroupNotFound, type CgroupPaths, CgroupStatsReader } from "../../src/stats/cgroup-stats.js";
import { TEST_LABEL, ensureEngine, ensureTestImages, removeImage, removeTestContainers, type TestImages } from "../support/engine.js";
import { readProgress } from "../support/progress.js";

const LABELS = { [TEST_LABEL]: "stats" };
const MiB = 1024 * 1024;
const TIMING_READS = 200;
const POLL_MS = 20;

/** Polls `probe` until it returns a value, failing after `timeoutMs` with `what`. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(POLL_MS);
  }
}

const cpuSecs = (s: ResourceStatistics): number => s.cpusUserTimeSecs + s.cpusSystemTimeSecs;

describe("cgroup stats of a real container (busy loop + sleeps, 0.5 CPU quota, 64 MiB)", function () {
  this.timeout(120_000);
  let docker: Dockerode;
  let images: TestImages;
  let container: Dockerode.Container;
  let pid: number;
  const reader = new CgroupStatsReader();
  let paths: CgroupPaths;

  before(async function () {
    this.timeout(180_000);
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
    await removeTestContainers(docker, LABELS);
    await readProgress(await docker.pull(images.busybox), `pull of '${images.busybox}'`);
    container = await docker.createContainer({
      Image: images.busybox,
      Cmd: ["sh", "-c", "sleep 600 & sleep 600 & while :; do :; done"],
      Labels: LABELS,
      HostConfig: { NetworkMode: "none", CpuShares: 512, CpuQuota: 50_000, CpuPeriod: 100_000, Memory: 64 * MiB },
    });
    await container.start();
    const info = await container.inspect();
    assert.ok(info.State.Running && info.State.Pid > 0, `container ${info.Id} running with a pid, state ${JSON.stringify(info.State)}`);
    pid = info.State.Pid;
  });

  after(async function () {
    if (!docker) return;
    await removeTestContainers(docker, LABELS);
    // Other suites expect to pull the image themselves.
    if (images) await removeImage(docker, images.busybox);
  });

  it("resolves the container's cgroup dirs from its State.Pid", async () => {
    paths = await reader.resolve(pid);
    const id = container.id;
    for (const [controller, dir] of Object.entries(paths.dirs)) {
      assert.ok(dir.includes(id), `${controller} dir '${dir}' belongs to container ${id}`);
    }
    assert.ok(paths.version === 2 || (paths.dirs.cpu && paths.dirs.cpuacct && paths.dirs.memory), `dirs ${JSON.stringify(paths.dirs)}`);
  });

  it("reports the configured limits, the processes, and growing CPU time and CFS periods", async () => {
    // The shell starts its sleeps asynchronously: wait until they are in the cgroup.
    const first = await waitFor("the shell and its two sleeps in the cgroup", async () => {
      const stats = await reader.read(paths);
      return stats.processes >= 3 ? stats : undefined;
    });
    assert.equal(first.cpusLimit, 0.5);
    assert.equal(first.memLimitBytes, BigInt(64 * MiB));
    assert.ok(first.processes >= 2, `processes ${first.processes}`);
    assert.ok(first.threads >= first.processes, `threads ${first.threads} ≥ processes ${first.processes}`);
    assert.ok(first.memTotalBytes > 0n && first.memTotalBytes <= BigInt(64 * MiB), `mem_total_bytes ${first.memTotalBytes}`);
    assert.ok(first.memRssBytes > 0n, `mem_rss_bytes ${first.memRssBytes}`);

    const second = await waitFor("CPU time and nr_periods to grow", async () => {
      const stats = await reader.read(paths);
      return cpuSecs(stats) > cpuSecs(first) && stats.cpusNrPeriods > first.cpusNrPeriods ? stats : undefined;
    });
    assert.ok(second.timestamp > first.timestamp, `timestamp ${second.timestamp} after ${first.timestamp}`);
    // A busy loop under a 0.5 CPU quota gets throttled.
    await waitFor("the busy loop to be throttled", async () => ((await reader.read(paths)).cpusNrThrottled > 0 ? true : undefined));
  });

  it(`reads quickly (median of ${TIMING_READS} reads printed, not asserted)`, async () => {
    const times: number[] = [];
    for (let i = 0; i < TIMING_READS; i += 1) {
      const start = process.hrtime.bigint();
      await reader.read(paths);
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    times.sort((a, b) => a - b);
    const at = (q: number): string => times[Math.floor(q * (times.length - 1))].toFixed(3);
    console.log(`      cgroup v${paths.version} read(): median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms over ${TIMING_READS} reads`);
  });

  it("keeps the files' descriptors open between reads, and release() closes them", async () => {
    const own = new CgroupStatsReader();
    try {
      const first = await own.read(paths);
      const kept = own.keptFds;
      assert.ok(kept >= 8, `at least the cpu and memory files are kept open (${kept})`);
      // Read again until the busy loop's CPU time shows through the kept descriptors.
      await waitFor("CPU time read through the kept descriptors to move", async () => {
        const again = await own.read(paths);
        assert.equal(own.keptFds, kept, "a later read reuses the descriptors");
        return cpuSecs(again) > cpuSecs(first) ? again : undefined;
      });
      own.release(paths);
      assert.equal(own.keptFds, 0);
    } finally {
      own.close();
    }
  });

  it("once the container is gone, read() and resolve() reject with CgroupNotFound", async () => {
    await reader.read(paths);
    assert.ok(reader.keptFds > 0, "descriptors kept from the last read");
    await container.remove({ force: true });
    await waitFor("read() to reject with CgroupNotFound", async () => {
      try {
        await reader.read(paths);
        return undefined;
      } catch (err) {
        assert.ok(err instanceof CgroupNotFound, `expected CgroupNotFound, got ${String(err)}`);
        return true;
      }
    });
    assert.equal(reader.keptFds, 0, "the removed cgroup's descriptors (ENODEV) were closed, not kept pinning it");
    // The pid may be reused by an unrelated process, so only a CgroupNotFound (or a different cgroup) is acceptable.
    try {
      const again = await reader.resolve(pid);
      assert.notDeepEqual(again, paths, `pid ${pid} no longer resolves to the removed container's cgroup`);
    } catch (err) {
      assert.ok(err instanceof CgroupNotFound, `expected CgroupNotFound, got ${String(err)}`);
    }
  });
});
