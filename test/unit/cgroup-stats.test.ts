// CgroupStatsReader against recorded cgroup trees (see test/fixtures/cgroup/README.md): the v1
// tree is a copy of a real container on this machine, the v2 trees are written layouts of real
// v2 hosts. Variants (missing files, sentinels, a vanished cgroup) are made on temp copies.
import { strict as assert } from "node:assert";
import { appendFile, cp, mkdir, mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isFieldSet } from "@bufbuild/protobuf";
import { type ResourceStatistics, ResourceStatisticsSchema } from "../../src/gen/mesos/v1/mesos_pb.js";
import { v1Limit, v2Limit } from "../../src/stats/cgroup-files.js";
import { CgroupNotFound, CgroupStatsReader, V2_DIR_KEY } from "../../src/stats/cgroup-stats.js";
import { sharesFromWeight } from "../../src/stats/cpu-weight.js";
import { parseCgroupMounts } from "../../src/stats/mountinfo.js";

// From dist/test/unit back to the sources' fixture tree (fixtures are not compiled).
const FIXTURES = fileURLToPath(new URL("../../../test/fixtures/cgroup/", import.meta.url));

const V1_REAL = { tree: "v1-docker-cgroupfs", pid: 25607, id: "e8f475aa2c91d7f1dc6d9581f72785caface1d300552c7a44438d9aa14d0b14c" };
const V1_SYSTEMD = { tree: "v1-docker-systemd-comounted", pid: 1934, id: "5d0c7e2a9b8f41d6a3e2c1b0f9e8d7c6b5a4938271605f4e3d2c1b0a99887766" };
const V2_SYSTEMD = { tree: "v2-docker-systemd", pid: 41877, id: "3f1c2b9a8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170605f4e3" };
const V2_CGROUPFS = { tree: "v2-docker-cgroupfs", pid: 2718, id: "b7e4d1a2c3f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9" };

const MiB = 1024n * 1024n;

/** A reader over a miniature root laid out like the fixtures (<root>/proc, <root>/sys/fs/cgroup). */
function readerFor(root: string, mountsFile?: string): CgroupStatsReader {
  return new CgroupStatsReader({ procRoot: join(root, "proc"), cgroupRoot: join(root, "sys", "fs", "cgroup"), mountsFile });
}

/** Every set field except the timestamp, by protobuf-es local name: compares "set" as well as value. */
function setFields(stats: ResourceStatistics): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of ResourceStatisticsSchema.fields) {
    if (field.localName === "timestamp") continue;
    if (isFieldSet(stats, field)) out[field.localName] = (stats as unknown as Record<string, unknown>)[field.localName];
  }
  return out;
}

/** runc's v1 shares → v2 weight conversion, to check that sharesFromWeight inverts it. */
const runcWeight = (shares: number): number => 1 + Math.floor(((shares - 2) * 9999) / 262142);

describe("cgroup stats reader", () => {
  let scratch: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "berth-cgroup-stats-"));
  });

  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  /** A private, mutable copy of a fixture tree. */
  let copies = 0;
  async function copyOf(tree: string): Promise<string> {
    copies += 1;
    const root = join(scratch, `${copies}-${tree}`);
    await cp(join(FIXTURES, tree), root, { recursive: true });
    return root;
  }

  describe("cgroup v1, recorded from a real container on this machine (hybrid host, cgroupfs driver)", () => {
    const root = join(FIXTURES, V1_REAL.tree);

    it("resolves one dir per stats controller through /proc/<pid>/cgroup and mountinfo, ignoring the empty unified hierarchy", async () => {
      const paths = await readerFor(root).resolve(V1_REAL.pid);
      assert.equal(paths.version, 1);
      const base = join(root, "sys", "fs", "cgroup");
      assert.deepEqual(paths.dirs, {
        cpu: join(base, "cpu", "docker", V1_REAL.id),
        cpuacct: join(base, "cpuacct", "docker", V1_REAL.id),
        memory: join(base, "memory", "docker", V1_REAL.id),
        pids: join(base, "pids", "docker", V1_REAL.id),
      });
    });

    it("reads every field the kernel exposes, converting ticks and nanoseconds to seconds", async () => {
      const reader = readerFor(root);
      const before = Date.now() / 1000;
      const stats = await reader.read(await reader.resolve(V1_REAL.pid));
      assert.ok(stats.timestamp >= before && stats.timestamp <= Date.now() / 1000 + 1, `timestamp ${stats.timestamp} is now`);
      assert.deepEqual(setFields(stats), {
        processes: 3,
        threads: 3,
        cpusUserTimeSecs: 48.24, // cpuacct.stat user 4824 ticks at USER_HZ 100
        cpusSystemTimeSecs: 0.39,
        cpusLimit: 0.5, // cfs_quota_us 50000 / cfs_period_us 100000
        cpusNrPeriods: 1010,
        cpusNrThrottled: 759,
        cpusThrottledTimeSecs: 21.124740462, // throttled_time 21124740462 ns
        memTotalBytes: 614400n,
        memTotalMemswBytes: 614400n,
        memLimitBytes: 64n * MiB,
        // memSoftLimitBytes: the file holds the 9223372036854771712 "unlimited" sentinel → unset
        memRssBytes: 176128n,
        memCacheBytes: 0n,
        memAnonBytes: 176128n, // Mesos: total_rss
        memFileBytes: 0n, // Mesos: total_cache
        memMappedFileBytes: 0n,
        memSwapBytes: 0n,
        memUnevictableBytes: 0n,
      });
    });

    it("leaves memsw, swap and pids-derived fields unset when the kernel does not expose them", async () => {
      const copy = await copyOf(V1_REAL.tree);
      const memory = join(copy, "sys", "fs", "cgroup", "memory", "docker", V1_REAL.id);
      await unlink(join(memory, "memory.memsw.usage_in_bytes"));
      const stat = await readFile(join(memory, "memory.stat"), "utf8");
      await writeFile(join(memory, "memory.stat"), stat.split("\n").filter((line) => !/^(total_)?swap /.test(line)).join("\n"));
      await rm(join(copy, "sys", "fs", "cgroup", "cpu", "docker", V1_REAL.id, "cpu.stat"));

      const reader = readerFor(copy);
      const fields = setFields(await reader.read(await reader.resolve(V1_REAL.pid)));
      for (const unset of ["memTotalMemswBytes", "memSwapBytes", "cpusNrPeriods", "cpusNrThrottled", "cpusThrottledTimeSecs"]) {
        assert.ok(!(unset in fields), `${unset} is unset, got ${String(fields[unset])}`);
      }
      assert.equal(fields.memTotalBytes, 614400n);
      assert.equal(fields.cpusLimit, 0.5);
    });

    it("treats page-rounded LONG_MAX limits (4 KiB and 64 KiB pages) as no limit", async () => {
      const copy = await copyOf(V1_REAL.tree);
      const memory = join(copy, "sys", "fs", "cgroup", "memory", "docker", V1_REAL.id);
      await writeFile(join(memory, "memory.limit_in_bytes"), "9223372036854710272\n");
      const reader = readerFor(copy);
      const stats = await reader.read(await reader.resolve(V1_REAL.pid));
      assert.ok(!isFieldSet(stats, ResourceStatisticsSchema.field.memLimitBytes), `mem_limit_bytes unset, got ${stats.memLimitBytes}`);
      assert.ok(!isFieldSet(stats, ResourceStatisticsSchema.field.memSoftLimitBytes));

      for (const sentinel of [9223372036854771712n, 9223372036854710272n, 9223372036854775807n]) {
        assert.equal(v1Limit(sentinel), undefined, `${sentinel} is unlimited`);
      }
      assert.equal(v1Limit(64n * MiB), 64n * MiB);
      assert.equal(v2Limit("max\n"), undefined);
      assert.equal(v2Limit("67108864\n"), 64n * MiB);
    });

    it("counts processes and threads in lists far larger than one read buffer", async () => {
      const copy = await copyOf(V1_REAL.tree);
      const pids = join(copy, "sys", "fs", "cgroup", "pids", "docker", V1_REAL.id);
      const ids = (n: number, from: number): string => Array.from({ length: n }, (_, i) => `${from + i}\n`).join("");
      await writeFile(join(pids, "cgroup.procs"), ids(5000, 100_000));
      await writeFile(join(pids, "tasks"), ids(12_345, 100_000));
      const reader = readerFor(copy);
      const stats = await reader.read(await reader.resolve(V1_REAL.pid));
      assert.equal(stats.processes, 5000);
      assert.equal(stats.threads, 12_345);
    });

    it("counts threads from pids.current when the tasks list is missing", async () => {
      const copy = await copyOf(V1_REAL.tree);
      await unlink(join(copy, "sys", "fs", "cgroup", "pids", "docker", V1_REAL.id, "tasks"));
      const reader = readerFor(copy);
      const stats = await reader.read(await reader.resolve(V1_REAL.pid));
      assert.equal(stats.threads, 3);
      assert.equal(stats.processes, 3);
    });

    it("falls back to the shares-derived limit when cfs_quota_us is -1", async () => {
      const copy = await copyOf(V1_REAL.tree);
      await writeFile(join(copy, "sys", "fs", "cgroup", "cpu", "docker", V1_REAL.id, "cpu.cfs_quota_us"), "-1\n");
      const reader = readerFor(copy);
      const stats = await reader.read(await reader.resolve(V1_REAL.pid));
      assert.equal(stats.cpusLimit, 0.5); // cpu.shares 512 / 1024
    });
  });

  describe("cgroup v1, systemd driver with co-mounted cpu,cpuacct (written layout)", () => {
    const root = join(FIXTURES, V1_SYSTEMD.tree);

    it("maps co-mounted controllers to one dir and skips controllers the host lacks", async () => {
      const paths = await readerFor(root).resolve(V1_SYSTEMD.pid);
      const scope = join("system.slice", `docker-${V1_SYSTEMD.id}.scope`);
      const base = join(root, "sys", "fs", "cgroup");
      assert.deepEqual(paths, {
        version: 1,
        dirs: { memory: join(base, "memory", scope), cpu: join(base, "cpu,cpuacct", scope), cpuacct: join(base, "cpu,cpuacct", scope) },
      });
    });

    it("reads shares as the limit, no memsw or swap without swap accounting, threads from tasks", async () => {
      const reader = readerFor(root);
      const stats = await reader.read(await reader.resolve(V1_SYSTEMD.pid));
      assert.deepEqual(setFields(stats), {
        processes: 2,
        threads: 4,
        cpusUserTimeSecs: 12.34,
        cpusSystemTimeSecs: 5.67,
        cpusLimit: 1.5, // no quota: cpu.shares 1536 / 1024
        cpusNrPeriods: 0,
        cpusNrThrottled: 0,
        cpusThrottledTimeSecs: 0,
        memTotalBytes: 55050240n,
        // memLimitBytes: unlimited sentinel → unset
        memSoftLimitBytes: 256n * MiB,
        memRssBytes: 40960000n,
        memCacheBytes: 12288000n,
        memAnonBytes: 40960000n,
        memFileBytes: 12288000n,
        memMappedFileBytes: 6144000n,
        memUnevictableBytes: 0n,
      });
    });
  });

  describe("cgroup v2 (written layouts of real v2 hosts)", () => {
    it("systemd driver: resolves the scope under system.slice and reads every v2 field", async () => {
      const root = join(FIXTURES, V2_SYSTEMD.tree);
      const reader = readerFor(root);
      const paths = await reader.resolve(V2_SYSTEMD.pid);
      assert.deepEqual(paths, {
        version: 2,
        dirs: { [V2_DIR_KEY]: join(root, "sys", "fs", "cgroup", "system.slice", `docker-${V2_SYSTEMD.id}.scope`) },
      });
      assert.deepEqual(setFields(await reader.read(paths)), {
        processes: 3,
        threads: 3,
        cpusUserTimeSecs: 12.803117,
        cpusSystemTimeSecs: 0.218427,
        cpusLimit: 0.5, // cpu.max "50000 100000"
        cpusNrPeriods: 262,
        cpusNrThrottled: 241,
        cpusThrottledTimeSecs: 12.993402,
        memTotalBytes: 1085440n,
        // memTotalMemswBytes: v2 has no memory+swap counter → unset
        memLimitBytes: 64n * MiB,
        // memSoftLimitBytes: memory.high "max" → unset
        memRssBytes: 192512n, // anon
        memCacheBytes: 4096n, // file
        memAnonBytes: 192512n,
        memFileBytes: 4096n,
        memMappedFileBytes: 0n,
        memSwapBytes: 0n,
        memUnevictableBytes: 0n,
      });
    });

    it("cgroupfs driver: memory.max 'max' and cpu.max 'max' leave no limit but the default weight (one CPU); no swap file, no swap field", async () => {
      const root = join(FIXTURES, V2_CGROUPFS.tree);
      const reader = readerFor(root);
      const paths = await reader.resolve(V2_CGROUPFS.pid);
      assert.deepEqual(paths, { version: 2, dirs: { [V2_DIR_KEY]: join(root, "sys", "fs", "cgroup", "docker", V2_CGROUPFS.id) } });
      assert.deepEqual(setFields(await reader.read(paths)), {
        processes: 2,
        threads: 5,
        cpusUserTimeSecs: 0.70155,
        cpusSystemTimeSecs: 0.032562,
        cpusLimit: 1, // no quota; kernel-default cpu.weight 100 ↔ v1 default 1024 shares
        cpusNrPeriods: 0,
        cpusNrThrottled: 0,
        cpusThrottledTimeSecs: 0,
        memTotalBytes: 5386240n,
        memRssBytes: 2490368n,
        memCacheBytes: 2101248n,
        memAnonBytes: 2490368n,
        memFileBytes: 2101248n,
        memMappedFileBytes: 1622016n,
        memUnevictableBytes: 8192n,
      });
    });

    it("counts threads from pids.current when cgroup.threads is missing (kernels before 4.14)", async () => {
      const copy = await copyOf(V2_CGROUPFS.tree);
      await unlink(join(copy, "sys", "fs", "cgroup", "docker", V2_CGROUPFS.id, "cgroup.threads"));
      const reader = readerFor(copy);
      const stats = await reader.read(await reader.resolve(V2_CGROUPFS.pid));
      assert.equal(stats.threads, 5);
      assert.equal(stats.processes, 2);
    });

    it("without the cpu controller enabled, reports cpu times but no limit or throttling", async () => {
      const copy = await copyOf(V2_SYSTEMD.tree);
      const dir = join(copy, "sys", "fs", "cgroup", "system.slice", `docker-${V2_SYSTEMD.id}.scope`);
      await unlink(join(dir, "cpu.max"));
      await unlink(join(dir, "cpu.weight"));
      await writeFile(join(dir, "cpu.stat"), "usage_usec 13021544\nuser_usec 12803117\nsystem_usec 218427\n");
      const reader = readerFor(copy);
      const fields = setFields(await reader.read(await reader.resolve(V2_SYSTEMD.pid)));
      assert.equal(fields.cpusUserTimeSecs, 12.803117);
      for (const unset of ["cpusLimit", "cpusNrPeriods", "cpusNrThrottled", "cpusThrottledTimeSecs"]) {
        assert.ok(!(unset in fields), `${unset} is unset, got ${String(fields[unset])}`);
      }
    });

    it("derives the limit from cpu.weight when there is no quota, inverting runc's shares→weight mapping", async () => {
      const copy = await copyOf(V2_SYSTEMD.tree);
      await writeFile(join(copy, "sys", "fs", "cgroup", "system.slice", `docker-${V2_SYSTEMD.id}.scope`, "cpu.max"), "max 100000\n");
      const reader = readerFor(copy);
      const stats = await reader.read(await reader.resolve(V2_SYSTEMD.pid));
      assert.ok(Math.abs(stats.cpusLimit - 0.5) < 0.02, `weight 20 (shares 512) reads as ~0.5 CPU, got ${stats.cpusLimit}`);

      assert.equal(sharesFromWeight(100), 1024);
      for (const shares of [2, 256, 512, 2048, 4096, 262144]) {
        const back = sharesFromWeight(runcWeight(shares));
        assert.ok(Math.abs(back - shares) <= 14, `shares ${shares} → weight ${runcWeight(shares)} → ${back}`);
      }
    });
  });

  describe("resolution", () => {
    it("reads the mount table once per reader, however many resolves follow", async () => {
      const mountsFile = join(scratch, "mountinfo-once");
      await cp(join(FIXTURES, V1_REAL.tree, "proc", "self", "mountinfo"), mountsFile);
      const reader = readerFor(join(FIXTURES, V1_REAL.tree), mountsFile);
      const [first, concurrent] = await Promise.all([reader.resolve(V1_REAL.pid), reader.resolve(V1_REAL.pid)]);
      await unlink(mountsFile);
      const later = await reader.resolve(V1_REAL.pid);
      assert.deepEqual(later, first);
      assert.deepEqual(concurrent, first);
      // A new reader does read the (now missing) file: the cache, not luck, served the later resolve.
      await assert.rejects(readerFor(join(FIXTURES, V1_REAL.tree), mountsFile).resolve(V1_REAL.pid), /mountinfo-once/);
    });

    it("rejects an unknown pid with CgroupNotFound naming the pid", async () => {
      await assert.rejects(readerFor(join(FIXTURES, V1_REAL.tree)).resolve(999_999), (err: unknown) => {
        assert.ok(err instanceof CgroupNotFound, String(err));
        assert.match(err.message, /pid 999999/);
        return true;
      });
    });

    it("rejects a pid that is not a positive integer, naming the value", async () => {
      await assert.rejects(readerFor(join(FIXTURES, V1_REAL.tree)).resolve(-3), /pid -3 is not a positive integer/);
    });

    it("rejects a pid whose cgroup dir is gone with CgroupNotFound naming pid and dir", async () => {
      const copy = await copyOf(V2_CGROUPFS.tree);
      await rm(join(copy, "sys", "fs", "cgroup", "docker"), { recursive: true });
      await assert.rejects(readerFor(copy).resolve(V2_CGROUPFS.pid), (err: unknown) => {
        assert.ok(err instanceof CgroupNotFound, String(err));
        assert.match(err.message, new RegExp(`pid ${V2_CGROUPFS.pid}: cgroup dir '.*${V2_CGROUPFS.id}'`));
        return true;
      });
    });

    it("read() of a cgroup removed after resolve rejects with CgroupNotFound", async () => {
      const copy = await copyOf(V2_SYSTEMD.tree);
      const reader = readerFor(copy);
      const paths = await reader.resolve(V2_SYSTEMD.pid);
      await rm(paths.dirs[V2_DIR_KEY], { recursive: true });
      await assert.rejects(reader.read(paths), CgroupNotFound);
    });

    it("rejects a process outside the reader's cgroup namespace ('/..' paths) instead of guessing", async () => {
      const copy = await copyOf(V2_CGROUPFS.tree);
      await writeFile(join(copy, "proc", String(V2_CGROUPFS.pid), "cgroup"), `0::/../../docker/${V2_CGROUPFS.id}\n`);
      await assert.rejects(readerFor(copy).resolve(V2_CGROUPFS.pid), /outside this process's cgroup namespace/);
    });

    it("follows a mount whose root is a sub-tree (cgroupfs bind-mounted from /docker/<id>)", async () => {
      // The view from inside a container without a private cgroup namespace: each hierarchy's
      // /docker/<id> is mounted at /sys/fs/cgroup/<controller>, and /proc/<pid>/cgroup still says /docker/<id>.
      const root = join(scratch, "nested-root");
      const source = join(FIXTURES, V1_REAL.tree, "sys", "fs", "cgroup");
      const lines: string[] = [];
      let mountId = 100;
      for (const controller of ["cpu", "cpuacct", "memory", "pids"]) {
        await cp(join(source, controller, "docker", V1_REAL.id), join(root, "sys", "fs", "cgroup", controller), { recursive: true });
        mountId += 1;
        lines.push(`${mountId} 99 0:${mountId} /docker/${V1_REAL.id} /sys/fs/cgroup/${controller} ro,nosuid - cgroup cgroup rw,${controller}`);
      }
      await mkdir(join(root, "proc", "7"), { recursive: true });
      await mkdir(join(root, "proc", "self"), { recursive: true });
      await writeFile(join(root, "proc", "self", "mountinfo"), `${lines.join("\n")}\n`);
      await cp(join(FIXTURES, V1_REAL.tree, "proc", String(V1_REAL.pid), "cgroup"), join(root, "proc", "7", "cgroup"));
      const reader = readerFor(root);
      const paths = await reader.resolve(7);
      assert.equal(paths.dirs.memory, join(root, "sys", "fs", "cgroup", "memory"));
      assert.equal((await reader.read(paths)).memLimitBytes, 64n * MiB);
    });

    it("prefers the longest matching mount root when a hierarchy is mounted twice", async () => {
      const copy = await copyOf(V2_SYSTEMD.tree);
      const scope = `/system.slice/docker-${V2_SYSTEMD.id}.scope`;
      // A second view of the same hierarchy, rooted at system.slice and mounted elsewhere.
      await appendFile(join(copy, "proc", "self", "mountinfo"), `90 33 0:28 /system.slice /sys/fs/cgroup/slice-view rw - cgroup2 cgroup2 rw\n`);
      await cp(join(copy, "sys", "fs", "cgroup", "system.slice"), join(copy, "sys", "fs", "cgroup", "slice-view"), { recursive: true });
      const paths = await readerFor(copy).resolve(V2_SYSTEMD.pid);
      assert.equal(paths.dirs[V2_DIR_KEY], join(copy, "sys", "fs", "cgroup", "slice-view", scope.slice("/system.slice".length)));
    });
  });

  describe("parsers", () => {
    it("mountinfo: unescapes octal in mount points, reads v1 controllers from super options, skips optional fields", () => {
      const mounts = parseCgroupMounts(
        [
          "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime shared:10 master:2 - cgroup2 cgroup2 rw,nsdelegate",
          "41 30 0:38 / /mnt/my\\040cgroups/cpu,cpuacct rw - cgroup cgroup rw,clone_children,cpu,cpuacct,release_agent=/x",
          "42 30 0:39 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd",
          "43 26 254:0 / / rw,relatime - ext4 /dev/vda rw",
          "garbage",
        ].join("\n"),
      );
      assert.deepEqual(mounts, [
        { version: 2, root: "/", mountPoint: "/sys/fs/cgroup/unified", controllers: [] },
        { version: 1, root: "/", mountPoint: "/mnt/my cgroups/cpu,cpuacct", controllers: ["cpu", "cpuacct"] },
        { version: 1, root: "/", mountPoint: "/sys/fs/cgroup/systemd", controllers: ["name=systemd"] },
      ]);
    });
  });
});
