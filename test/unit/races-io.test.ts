// Races and I/O failures of issue 9 (items 3, 4, 5, 6, 11), forced with fakes: an engine that keeps
// failing, a writable that holds its writes, a disk whose writes fail, a cgroup file too long to read
// in one go.
import assert from "node:assert/strict";
import { ReplaySubject } from "rxjs";
import { RuntimeFacts, type StatsSource } from "../../src/containerizer/runtime-facts.js";
import type { Container } from "../../src/containerizer/container.js";
import type { EnginePort } from "../../src/docker/engine-port.js";
import { EngineUnreachable } from "../../src/docker/engine-port.js";
import type { Termination } from "../../src/containerizer/termination.js";

/** Observers currently subscribed to a subject (rxjs 7 keeps them in `observers`). */
function observerCount<T>(subject: ReplaySubject<T>): number {
  return (subject as unknown as { observers: unknown[] }).observers.length;
}

describe("runtime facts during an engine outage (issue 9 item 4)", () => {
  it("repeated Usage/Status lookups that fail do not pile up termination subscriptions", async () => {
    const termination$ = new ReplaySubject<Termination>(1);
    const c = { id: "outage", engineId: "engine-outage", state: "RUNNING", termination$ } as unknown as Container;
    let inspects = 0;
    const engine = {
      inspectContainer: async () => {
        inspects += 1;
        throw new EngineUnreachable("engine socket refused (test)");
      },
    } as unknown as EnginePort;
    const stats: StatsSource = {
      resolve: async () => ({ version: 1, dirs: {} }),
      read: async () => {
        throw new Error("not reached");
      },
      release: () => undefined,
    };
    const facts = new RuntimeFacts(engine, stats);
    for (let i = 0; i < 50; i += 1) {
      await assert.rejects(facts.process(c), EngineUnreachable);
      await assert.rejects(facts.read(c), EngineUnreachable);
    }
    assert.equal(inspects, 100, "each failed lookup is retried on the next call");
    assert.ok(observerCount(termination$) <= 1, `${observerCount(termination$)} termination subscriptions after 100 failed lookups`);
  });
});
