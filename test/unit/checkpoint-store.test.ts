import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { ContainerCheckpointSchema } from "../../src/gen/berth/checkpoint/v1/checkpoint_pb.js";
import { CheckpointStore } from "../../src/checkpoint/checkpoint-store.js";
import { SequenceFile } from "../../src/checkpoint/sequence-file.js";

describe("checkpoint store", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "berth-cp-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps the last of many quick writes of one container, in order", async () => {
    const store = new CheckpointStore(dir);
    await store.init();
    const states = ["FETCHING", "PULLING", "MOUNTING", "RUNNING", "DESTROYING", "TERMINATED"];
    await Promise.all(states.map((state) => store.save(create(ContainerCheckpointSchema, { containerId: "c1", state, sandbox: "/s" }))));
    const loaded = await new CheckpointStore(dir).load();
    assert.deepEqual(loaded.containers.map((c) => [c.containerId, c.state]), [["c1", "TERMINATED"]]);
    assert.deepEqual(loaded.corrupt, []);
  });

  it("moves an undecodable record aside and reports it; drops temp files of interrupted writes", async () => {
    const store = new CheckpointStore(dir);
    await store.init();
    await store.save(create(ContainerCheckpointSchema, { containerId: "good", state: "RUNNING" }));
    await writeFile(path.join(dir, "containers", "bad.pb"), Buffer.from([0xff, 0xff, 0xff]));
    await writeFile(path.join(dir, "containers", ".good.pb.1234.tmp"), "partial");
    const loaded = await store.load();
    assert.deepEqual(loaded.containers.map((c) => c.containerId), ["good"]);
    assert.equal(loaded.corrupt.length, 1);
    assert.match(loaded.corrupt[0]!, /bad\.pb/);
    assert.deepEqual((await readdir(path.join(dir, "containers"))).sort(), ["bad.pb.corrupt", "good.pb"]);
  });

  it("a record written under another container's name is refused", async () => {
    const store = new CheckpointStore(dir);
    await store.init();
    await store.save(create(ContainerCheckpointSchema, { containerId: "a", state: "RUNNING" }));
    await writeFile(path.join(dir, "containers", "b.pb"), await import("node:fs/promises").then((fs) => fs.readFile(path.join(dir, "containers", "a.pb"))));
    const loaded = await store.load();
    assert.deepEqual(loaded.containers.map((c) => c.containerId), ["a"]);
    assert.match(loaded.corrupt[0]!, /names container 'a'/);
  });

  it("remove forgets a container", async () => {
    const store = new CheckpointStore(dir);
    await store.init();
    await store.save(create(ContainerCheckpointSchema, { containerId: "x" }));
    await store.remove("x");
    assert.deepEqual((await store.load()).containers, []);
  });
});

describe("sequence file", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "berth-seq-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("never goes back across restarts, even without a clean shutdown", async () => {
    const file = path.join(dir, "sequence");
    const first = await SequenceFile.open(file);
    let last = 0n;
    for (let i = 0; i < 10; i++) last = first.next();
    assert.equal(last, 10n);
    // A crash: nothing is flushed on the way out.
    const second = await SequenceFile.open(file);
    assert.ok(second.next() > last);
    const third = await SequenceFile.open(file);
    assert.ok(third.next() > second.last);
  });

  it("reserves the next block ahead of need, so numbering runs on across blocks with no write on the caller's path", async () => {
    const file = path.join(dir, "sequence");
    const sequence = await SequenceFile.open(file, { block: 10n });
    let last = 0n;
    for (let block = 0; block < 5; block++) {
      // Half a block at a time: each half starts the next reservation, which lands before the next half.
      for (let i = 0; i < 5; i++) last = sequence.next();
      await sequence.settled();
    }
    assert.equal(last, 25n);
    const after = await SequenceFile.open(file, { block: 10n });
    assert.ok(after.next() > last);
  });

  it("refuses a damaged file with its name", async () => {
    const file = path.join(dir, "sequence");
    await writeFile(file, "garbage");
    await assert.rejects(SequenceFile.open(file), /sequence file '.*' holds 'garbage'/);
  });
});
