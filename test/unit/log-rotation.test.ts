import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import fc from "fast-check";
import { RotatingFile, indexName, rotatedName } from "../../src/logger/rotating-file.js";
import { OutputIndex } from "../../src/logger/output-index.js";
import { followOutput } from "../../src/logger/sandbox-output.js";
import { OutputRegistry } from "../../src/logger/live-output.js";
import type { LogStreams } from "../../src/docker/engine-port.js";

async function tempSandbox(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), "berth-rotation-"));
}

/** The files of `name` oldest first, as rotation leaves them. */
async function filesOf(dir: string, name: string): Promise<Buffer[]> {
  const names = new Set(await readdir(dir));
  const out: Buffer[] = [];
  for (let k = 1; names.has(rotatedName(name, k)); k += 1) out.unshift(await readFile(path.join(dir, rotatedName(name, k))));
  if (names.has(name)) out.push(await readFile(path.join(dir, name)));
  return out;
}

/** Numbered lines `prefix-0\n` … joined. */
function numbered(prefix: string, n: number): string {
  return Array.from({ length: n }, (_, i) => `${prefix}-${i}\n`).join("");
}

describe("rotating sandbox output (unit)", () => {
  let dir: string;
  beforeEach(async () => (dir = await tempSandbox()));
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it("no byte is lost or duplicated across many rotations, no file passes the size, and cuts fall on line ends whenever a line fits", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 8, max: 120 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 90 }), fc.boolean()), { minLength: 1, maxLength: 30 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 8 }),
        async (maxSize, lineSpecs, chunkSizes) => {
          const sandbox = await tempSandbox();
          try {
            // Lines of random length (some longer than a file), the last one maybe without its newline.
            let text = lineSpecs.map(([len], i) => `${i}:${"x".repeat(len)}\n`).join("");
            if (lineSpecs.at(-1)![1]) text = text.slice(0, -1);
            const data = Buffer.from(text);
            const w = await RotatingFile.open(sandbox, "stdout", { maxSize, maxFiles: 100_000 });
            for (let at = 0, i = 0; at < data.length; i += 1) {
              const n = chunkSizes[i % chunkSizes.length]!;
              await w.write(data.subarray(at, at + n));
              at += n;
            }
            await w.close();
            const files = await filesOf(sandbox, "stdout");
            assert.equal(Buffer.concat(files).toString(), text, "every byte exactly once, in order");
            for (const [i, f] of files.entries()) {
              assert.ok(f.length <= maxSize, `file ${i} has ${f.length} bytes, more than ${maxSize}`);
              if (i === files.length - 1) continue;
              assert.ok(f.length > 0, "no empty rotated file");
              const next = files[i + 1]!;
              const nextLineLength = next.indexOf(0x0a) >= 0 ? next.indexOf(0x0a) + 1 : next.length;
              if (f[f.length - 1] === 0x0a) {
                // Rotated at a line end: the next line really did not fit.
                assert.ok(f.length + Math.min(nextLineLength, maxSize) > maxSize || nextLineLength > maxSize - f.length, `file ${i} rotated early`);
              } else {
                // Cut inside a line: only when the file is full.
                assert.equal(f.length, maxSize, `file ${i} cut mid-line before it was full`);
              }
            }
          } finally {
            await rm(sandbox, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  it("keeps at most max_files files (the live one included); the newest output survives, in order", async () => {
    const w = await RotatingFile.open(dir, "stdout", { maxSize: 100, maxFiles: 3 });
    const text = numbered("line", 200);
    for (const line of text.split(/(?<=\n)/)) await w.write(Buffer.from(line));
    await w.close();
    const names = (await readdir(dir)).filter((n) => !n.startsWith("."));
    assert.deepEqual(names.sort(), ["stdout", "stdout.1", "stdout.2"]);
    const kept = Buffer.concat(await filesOf(dir, "stdout")).toString();
    assert.ok(text.endsWith(kept), "what is kept is the end of the output");
    assert.ok(kept.startsWith("line-"), "kept output starts at a line");
    assert.equal(w.live.generation > 2, true);
  });

  it("max_files 1 keeps only the live file", async () => {
    const w = await RotatingFile.open(dir, "stdout", { maxSize: 10, maxFiles: 1 });
    await w.write(Buffer.from(numbered("a", 10)));
    await w.close();
    assert.deepEqual((await readdir(dir)).filter((n) => !n.startsWith(".")), ["stdout"]);
    assert.equal(await readFile(path.join(dir, "stdout"), "utf8"), "a-8\na-9\n");
  });

  it("appends to what the file already holds and counts it towards the size (the fetcher's lines in stderr)", async () => {
    await writeFile(path.join(dir, "stderr"), "fetched x\nfetched y\n");
    // 20 bytes there, "out-1\n" would make 26: the first write rotates before it.
    const w = await RotatingFile.open(dir, "stderr", { maxSize: 24, maxFiles: 5 });
    await w.write(Buffer.from("out-1\nout-2\n"));
    await w.close();
    const files = await filesOf(dir, "stderr");
    assert.deepEqual(
      files.map((f) => f.toString()),
      ["fetched x\nfetched y\n", "out-1\nout-2\n"],
    );
  });

  it("a writer reopened after a restart continues the same files and their sizes", async () => {
    const first = await RotatingFile.open(dir, "stdout", { maxSize: 20, maxFiles: 10 });
    await first.write(Buffer.from(numbered("r", 6)));
    await first.close();
    const second = await RotatingFile.open(dir, "stdout", { maxSize: 20, maxFiles: 10 });
    await second.write(Buffer.from(numbered("s", 6)));
    await second.close();
    const files = await filesOf(dir, "stdout");
    assert.equal(Buffer.concat(files).toString(), numbered("r", 6) + numbered("s", 6));
    for (const f of files) assert.ok(f.length <= 20);
  });

  it("a partial last line is continued, not split, by the next write", async () => {
    const w = await RotatingFile.open(dir, "stdout", { maxSize: 100, maxFiles: 3 });
    await w.write(Buffer.from("par"));
    await w.write(Buffer.from("tial\n"));
    await w.close();
    assert.equal(await readFile(path.join(dir, "stdout"), "utf8"), "partial\n");
  });

  it("never writes through a symbolic link the container planted at a rotated name", async () => {
    const outside = path.join(dir, "..", `${path.basename(dir)}-outside`);
    await writeFile(outside, "precious\n");
    try {
      const { symlink } = await import("node:fs/promises");
      await symlink(outside, path.join(dir, "stdout.1"));
      const w = await RotatingFile.open(dir, "stdout", { maxSize: 10, maxFiles: 3 });
      await w.write(Buffer.from(numbered("z", 6)));
      await w.close();
      assert.equal(await readFile(outside, "utf8"), "precious\n");
    } finally {
      await rm(outside, { force: true });
    }
  });

  it("refuses, without blocking, a FIFO the container put in place of its output file", async () => {
    const { execFileSync } = await import("node:child_process");
    execFileSync("mkfifo", [path.join(dir, "stdout")]);
    await assert.rejects(RotatingFile.open(dir, "stdout", { maxSize: 100, maxFiles: 2 }), /ENXIO|not a regular file/);
  });

  it("records when bytes were written in a bounded sidecar that rotates with its file", async () => {
    let now = 1_000_000;
    const w = await RotatingFile.open(dir, "stdout", { maxSize: 20, maxFiles: 3 }, { now: () => now });
    await w.write(Buffer.from("a-1\na-2\n"));
    now += 5;
    await w.write(Buffer.from("b-1\nb-2\n"));
    now += 5;
    await w.write(Buffer.from("c-1\nc-2\n")); // rotates: the first file ends before this
    await w.close();
    const rotated = OutputIndex.parse(await readFile(path.join(dir, indexName("stdout.1")), "utf8"), 16);
    assert.equal(rotated.startOffset(1_000_000), 0);
    assert.equal(rotated.startOffset(1_000_003), 8, "b's segment starts at 8");
    assert.equal(rotated.startOffset(1_000_006), 16, "nothing in that file after b");
    const live = OutputIndex.parse(await readFile(path.join(dir, indexName("stdout")), "utf8"), 8);
    assert.equal(live.startOffset(1_000_010), 0);
  });

  it("the index stays bounded however many writes a file takes", () => {
    const index = new OutputIndex(16);
    for (let i = 0; i < 10_000; i += 1) index.record(i * 10, 10, i);
    assert.ok(index.size <= 16);
    // Coarser, never wrong: the start found is at or before the first byte written at that time.
    for (const t of [0, 17, 5000, 9999]) assert.ok(index.startOffset(t) <= t * 10);
    assert.equal(index.startOffset(10_000), index.end);
  });

  it("a sidecar the container rewrote cannot point past the file: the rest counts as written at its mtime", () => {
    const index = OutputIndex.parse("berth-output-index 1\n0 5 5\n999999 6 6\nend 999999\n", 100);
    index.cover(100, 50);
    assert.equal(index.startOffset(6), 0, "the bad line ends the index; the rest (written by 50) is shown");
    assert.equal(index.startOffset(51), 100);
  });

  it("followOutput writes both streams through the rotation, and its end means every byte is in the files", async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const streams: LogStreams = { stdout, stderr, interrupted: Promise.resolve(undefined) };
    const registry = new OutputRegistry();
    const capture = followOutput(async () => streams, dir, { signal: new AbortController().signal, rotation: { maxSize: 64, maxFiles: 1000 }, registry });
    await capture.attached;
    const out = numbered("o", 300);
    const err = numbered("e", 300);
    for (let i = 0; i < out.length; i += 37) stdout.write(out.slice(i, i + 37));
    for (let i = 0; i < err.length; i += 53) stderr.write(err.slice(i, i + 53));
    stdout.end();
    stderr.end();
    await capture.done;
    assert.equal(Buffer.concat(await filesOf(dir, "stdout")).toString(), out);
    assert.equal(Buffer.concat(await filesOf(dir, "stderr")).toString(), err);
    assert.equal(registry.get(dir, "stdout"), undefined, "the writer left the registry when it closed");
  });
});
