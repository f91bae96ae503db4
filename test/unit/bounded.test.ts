import { strict as assert } from "node:assert";
import { gate } from "../../src/containerizer/bounded.js";

/** A task that runs until released, recording its start. */
function held(log: string[], name: string): { task: () => Promise<string>; release: () => void } {
  let release!: () => void;
  const done = new Promise<void>((resolve) => (release = resolve));
  return {
    task: async () => {
      log.push(name);
      await done;
      return name;
    },
    release: () => release(),
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("gate: bounded tasks in flight", () => {
  it("runs at most `limit` tasks, the rest in arrival order", async () => {
    const g = gate(2);
    const log: string[] = [];
    const tasks = ["a", "b", "c", "d"].map((n) => held(log, n));
    const results = tasks.map((t) => g(t.task));
    await tick();
    assert.deepEqual(log, ["a", "b"]);
    tasks[1]!.release();
    await tick();
    assert.deepEqual(log, ["a", "b", "c"]);
    tasks[0]!.release();
    await tick();
    assert.deepEqual(log, ["a", "b", "c", "d"]);
    tasks[2]!.release();
    tasks[3]!.release();
    assert.deepEqual(await Promise.all(results), ["a", "b", "c", "d"]);
  });

  it("serves urgent waiters before earlier normal ones", async () => {
    const g = gate(1);
    const log: string[] = [];
    const first = held(log, "first");
    const create = held(log, "create");
    const start = held(log, "start");
    const p1 = g(first.task);
    const p2 = g(create.task);
    const p3 = g(start.task, { urgent: true });
    await tick();
    first.release();
    await tick();
    assert.deepEqual(log, ["first", "start"]);
    start.release();
    await tick();
    create.release();
    await Promise.all([p1, p2, p3]);
    assert.deepEqual(log, ["first", "start", "create"]);
  });

  it("hands a freed slot to the waiter: a caller arriving meanwhile waits its turn", async () => {
    const g = gate(1);
    const log: string[] = [];
    const a = held(log, "a");
    const b = held(log, "b");
    const c = held(log, "c");
    const pa = g(a.task);
    const pb = g(b.task);
    await tick();
    a.release();
    // Arrives in the same turn the slot is freed, before the waiter has resumed.
    await pa;
    const pc = g(c.task);
    await tick();
    assert.deepEqual(log, ["a", "b"], "b had the slot; c waits");
    b.release();
    await tick();
    c.release();
    await Promise.all([pb, pc]);
    assert.deepEqual(log, ["a", "b", "c"]);
  });

  it("an aborted wait rejects with the reason and gives up its place; a running task is unaffected", async () => {
    const g = gate(1);
    const log: string[] = [];
    const a = held(log, "a");
    const b = held(log, "b");
    const c = held(log, "c");
    const abort = new AbortController();
    const pa = g(a.task, { signal: abort.signal });
    const pb = g(b.task, { signal: abort.signal });
    const pc = g(c.task);
    await tick();
    abort.abort(new Error("destroyed while queued"));
    await assert.rejects(pb, /destroyed while queued/);
    a.release();
    assert.equal(await pa, "a", "the running task finished normally");
    await tick();
    c.release();
    assert.equal(await pc, "c");
    assert.deepEqual(log, ["a", "c"], "b never ran");
  });

  it("an already aborted signal rejects at once, even with a free slot", async () => {
    const g = gate(1);
    await assert.rejects(g(async () => "never", { signal: AbortSignal.abort(new Error("gone")) }), /gone/);
    assert.equal(await g(async () => "ok"), "ok", "the slot was not taken");
  });

  it("frees the slot when a task throws", async () => {
    const g = gate(1);
    await assert.rejects(g(async () => { throw new Error("boom"); }), /boom/);
    assert.equal(await g(async () => "next"), "next");
  });
});
