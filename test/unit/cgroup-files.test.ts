// KeptCgroupFiles over regular files (a cgroupfs file behaves the same for these properties: a read
// at offset 0 on a kept descriptor sees the current text). The ENODEV of a removed cgroup is covered
// against a real container in test/integration/cgroup-stats.test.ts.
import { strict as assert } from "node:assert";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KeptCgroupFiles, defaultKeptFds, oneShotFiles } from "../../src/stats/cgroup-files.js";

/** Descriptors this process has open on files under `dir` (from /proc/self/fd). */
async function openUnder(dir: string): Promise<number> {
  const { readlink } = await import("node:fs/promises");
  let n = 0;
  for (const fd of await readdir("/proc/self/fd")) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => "");
    if (target.startsWith(`${dir}/`)) n += 1;
  }
  return n;
}

describe("KeptCgroupFiles: cgroup files read through kept descriptors", () => {
  let dir: string;
  let a: string;
  let b: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-cgfiles-"));
    await Promise.all([writeFile(join(dir, "a"), "user 1\n"), writeFile(join(dir, "b"), "42\n")]);
    a = join(dir, "a");
    b = join(dir, "b");
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps one descriptor per file and reads the current text from offset 0 each time", async () => {
    const files = new KeptCgroupFiles(16);
    try {
      assert.equal(files.read(a), "user 1\n");
      assert.equal(files.read(b), "42\n");
      assert.equal(files.read(a), "user 1\n");
      assert.equal(files.size, 2);
      assert.equal(await openUnder(dir), 2, "two descriptors open, not one per read");
      await writeFile(a, "user 222\n");
      assert.equal(files.read(a), "user 222\n", "a kept descriptor sees new text");
    } finally {
      files.close();
    }
    assert.equal(await openUnder(dir), 0, "close() closed them");
  });

  it("reads files larger than its buffer whole", async () => {
    const big = Array.from({ length: 20_000 }, (_, i) => String(100_000 + i)).join("\n") + "\n";
    await writeFile(a, big);
    const files = new KeptCgroupFiles(4);
    try {
      assert.equal(files.read(a), big);
      assert.equal(files.read(a), big);
    } finally {
      files.close();
    }
    assert.equal(oneShotFiles.read(a), big);
  });

  it("answers undefined for a missing file and keeps nothing for it", async () => {
    const files = new KeptCgroupFiles(4);
    assert.equal(files.read(join(dir, "missing")), undefined);
    assert.equal(files.size, 0);
    assert.equal(oneShotFiles.read(join(dir, "missing")), undefined);
  });

  it("closes the least recently read descriptor beyond its bound", async () => {
    const names = ["c", "d", "e"];
    for (const n of names) await writeFile(join(dir, n), `${n}\n`);
    const files = new KeptCgroupFiles(3);
    try {
      files.read(a);
      files.read(b);
      files.read(join(dir, "c"));
      files.read(a); // a is now the most recent; b the least
      files.read(join(dir, "d"));
      assert.equal(files.size, 3);
      assert.equal(await openUnder(dir), 3);
      // b was closed, so reading it opens it again and closes the next least recent (c).
      assert.equal(files.read(b), "42\n");
      assert.equal(files.size, 3);
    } finally {
      files.close();
    }
  });

  it("release() closes only the files directly in the given dirs", async () => {
    const other = await mkdtemp(join(tmpdir(), "berth-cgfiles-other-"));
    try {
      await writeFile(join(other, "x"), "x\n");
      const files = new KeptCgroupFiles(16);
      files.read(a);
      files.read(b);
      files.read(join(other, "x"));
      files.release([dir]);
      assert.equal(files.size, 1);
      assert.equal(await openUnder(dir), 0);
      assert.equal(await openUnder(other), 1);
      files.close();
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it("with a bound of 0 keeps nothing", async () => {
    const files = new KeptCgroupFiles(0);
    assert.equal(files.read(a), "user 1\n");
    assert.equal(files.size, 0);
    assert.equal(await openUnder(dir), 0);
  });

  it("keeps at most a quarter of the open-file limit, and never more than 4096", () => {
    const n = defaultKeptFds();
    assert.ok(n > 0 && n <= 4096, `default bound ${n}`);
  });
});
