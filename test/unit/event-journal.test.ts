import assert from "node:assert/strict";
import { EventJournal } from "../../src/containerizer/event-journal.js";
import type { ContainerEvent } from "../../src/containerizer/container-event.js";

const ev = (sequence: bigint): ContainerEvent => ({ sequence, time: new Date(), containerId: "c", snapshot: false, kind: { type: "state", state: "RUNNING" } });

describe("event journal", () => {
  it("returns every kept event after a sequence, oldest first", () => {
    const j = new EventJournal(5);
    for (let i = 1n; i <= 4n; i++) j.append(ev(i));
    assert.deepEqual(j.after(2n, 1n)?.map((e) => e.sequence), [3n, 4n]);
    assert.deepEqual(j.after(4n, 1n), []);
  });

  it("refuses a resume whose successors were dropped (bounded), never a silent gap", () => {
    const j = new EventJournal(3);
    for (let i = 1n; i <= 10n; i++) j.append(ev(i));
    assert.equal(j.oldest, 8n);
    assert.equal(j.after(6n, 1n), undefined, "7 is gone");
    assert.deepEqual(j.after(7n, 1n)?.map((e) => e.sequence), [8n, 9n, 10n]);
  });

  it("refuses a resume that needs events from before this process's first one", () => {
    const j = new EventJournal(3);
    j.append(ev(100_001n));
    assert.equal(j.after(57n, 100_001n), undefined);
    assert.deepEqual(j.after(100_000n, 100_001n)?.map((e) => e.sequence), [100_001n]);
    const empty = new EventJournal(3);
    assert.deepEqual(empty.after(100_000n, 100_001n), []);
    assert.equal(empty.after(5n, 100_001n), undefined);
  });
});
