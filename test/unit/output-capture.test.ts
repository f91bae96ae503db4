// How captureOutput copies a stream into its sandbox file (plain listeners, no async iterator):
// it reads a chunk only once the previous one is written, and a stream that fails or is destroyed
// before its end still leaves every byte it delivered in the file (the held partial line too)
// before the capture rejects.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { once } from "node:events";
import { PassThrough, Readable } from "node:stream";
import { captureOutput, openOutputFiles, type OutputFiles } from "../../src/logger/sandbox-output.js";

describe("captureOutput copies each stream into its sandbox file", () => {
  let dir: string;
  let files: OutputFiles | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "berth-capture-"));
    files = await openOutputFiles(dir, { maxSize: 1024 * 1024, maxFiles: 2 });
  });
  afterEach(async () => {
    if (files) await Promise.all([files.stdout.close(), files.stderr.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  const stdoutFile = () => readFile(path.join(dir, "stdout"), "utf8");

  it("a stream that ends: every chunk in order, both streams, then the capture resolves", async () => {
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i}\n`);
    const stdout = Readable.from(lines.map((l) => Buffer.from(l)));
    const stderr = Readable.from([Buffer.from("err 1\n"), Buffer.from("err 2\n")]);
    await captureOutput({ stdout, stderr }, files!);
    assert.equal(await stdoutFile(), lines.join(""));
    assert.equal(await readFile(path.join(dir, "stderr"), "utf8"), "err 1\nerr 2\n");
  });

  it("a writer that honours the stream's back-pressure gets every chunk through, in order (the capture pauses it while a write is pending)", async () => {
    const stdout = new PassThrough({ highWaterMark: 16 });
    const done = captureOutput({ stdout, stderr: Readable.from([]) }, files!);
    const expected: string[] = [];
    for (let i = 0; i < 300; i++) {
      const chunk = `chunk-${i}\n`;
      expected.push(chunk);
      if (!stdout.write(chunk)) await once(stdout, "drain");
    }
    stdout.end();
    await done;
    assert.equal(await stdoutFile(), expected.join(""));
  });

  it("a stream that fails: what it delivered (the held partial line too) is in the file, then the capture rejects with its error", async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const done = captureOutput({ stdout, stderr }, files!);
    stdout.write("whole\npart");
    await new Promise((resolve) => setImmediate(resolve));
    stdout.destroy(new Error("connection reset"));
    stderr.end();
    await assert.rejects(done, /connection reset/);
    assert.equal(await stdoutFile(), "whole\npart");
  });

  it("a stream destroyed without its end: what it delivered is in the file, then the capture rejects", async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const done = captureOutput({ stdout, stderr }, files!);
    stdout.write("first\n");
    await new Promise((resolve) => setImmediate(resolve));
    stdout.destroy();
    stderr.end();
    await assert.rejects(done, /closed before its end/);
    assert.equal(await stdoutFile(), "first\n");
  });

  it("a stream already destroyed when the capture starts rejects at once instead of waiting forever", async () => {
    const stdout = new PassThrough();
    stdout.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    await assert.rejects(captureOutput({ stdout, stderr: Readable.from([]) }, files!), /closed before its end/);
  });
});
