import assert from "node:assert/strict";
import { setImmediate as tick } from "node:timers/promises";
import type { EngineEvent } from "../../src/docker/engine-port.js";
import { ImagePresence } from "../../src/docker/image-presence.js";

/** A scripted engine: image answers on demand, and an image events stream the test drives. */
class ScriptedEngine {
  asked: string[] = [];
  present = new Set<string>();
  /** Answers held until released (to race a removal against an answer in flight). */
  holdAnswers = false;
  private held: Array<() => void> = [];
  private push: ((ev: EngineEvent | Error | "end") => void) | undefined;
  subscriptions = 0;

  async imagePresent(ref: string): Promise<boolean> {
    this.asked.push(ref);
    if (this.holdAnswers) await new Promise<void>((resolve) => this.held.push(resolve));
    return this.present.has(ref);
  }

  releaseAnswers(): void {
    for (const r of this.held.splice(0)) r();
  }

  async *imageEvents(signal: AbortSignal, onSubscribed?: () => void): AsyncIterable<EngineEvent> {
    const queue: Array<EngineEvent | Error | "end"> = [];
    let wake: (() => void) | undefined;
    this.push = (ev) => {
      queue.push(ev);
      wake?.();
    };
    const onAbort = () => wake?.();
    signal.addEventListener("abort", onAbort);
    this.subscriptions += 1;
    onSubscribed?.();
    try {
      for (;;) {
        if (signal.aborted) return;
        const next = queue.shift();
        if (next === undefined) {
          await new Promise<void>((resolve) => (wake = resolve));
          continue;
        }
        if (next === "end") return;
        if (next instanceof Error) throw next;
        yield next;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.push = undefined;
    }
  }

  emit(ev: EngineEvent | Error | "end"): void {
    this.push?.(ev);
  }
}

const untag = (ref: string): EngineEvent => ({ action: "untag", id: ref, attributes: { name: ref }, timeNano: 0n });

async function subscribed(engine: ScriptedEngine, n: number): Promise<void> {
  for (let i = 0; i < 10_000 && engine.subscriptions < n; i++) await tick();
  assert.equal(engine.subscriptions, n, `subscription ${n} made`);
}

describe("ImagePresence", () => {
  let presence: ImagePresence | undefined;
  afterEach(async () => presence?.stop());

  it("asks the engine once per image while the removals stream is subscribed", async () => {
    const engine = new ScriptedEngine();
    engine.present.add("a:1");
    presence = new ImagePresence(engine, { backoff: { initialMs: 1, maxMs: 1 } });
    presence.start();
    await subscribed(engine, 1);
    assert.equal(await presence.imagePresent("a:1"), true);
    assert.equal(await presence.imagePresent("a:1"), true);
    assert.equal(await presence.imagePresent("b:1"), false);
    assert.equal(await presence.imagePresent("b:1"), false);
    assert.deepEqual(engine.asked, ["a:1", "b:1", "b:1"], "a present image is remembered, a missing one is asked every time");
  });

  it("forgets everything at a removal event", async () => {
    const engine = new ScriptedEngine();
    engine.present.add("a:1");
    presence = new ImagePresence(engine, { backoff: { initialMs: 1, maxMs: 1 } });
    presence.start();
    await subscribed(engine, 1);
    await presence.imagePresent("a:1");
    engine.present.delete("a:1");
    engine.emit(untag("a:1"));
    for (let i = 0; i < 100 && presence.size > 0; i++) await tick();
    assert.equal(await presence.imagePresent("a:1"), false);
    assert.deepEqual(engine.asked, ["a:1", "a:1"]);
  });

  it("does not keep an answer that was in flight when a removal arrived", async () => {
    const engine = new ScriptedEngine();
    engine.present.add("a:1");
    presence = new ImagePresence(engine, { backoff: { initialMs: 1, maxMs: 1 } });
    presence.start();
    await subscribed(engine, 1);
    engine.holdAnswers = true;
    const answer = presence.imagePresent("a:1");
    for (let i = 0; i < 100 && engine.asked.length === 0; i++) await tick();
    engine.emit(untag("a:1"));
    for (let i = 0; i < 20; i++) await tick();
    engine.releaseAnswers();
    assert.equal(await answer, true, "the engine's answer is returned as it was");
    engine.holdAnswers = false;
    await presence.imagePresent("a:1");
    assert.equal(engine.asked.length, 2, "but not remembered: the next launch asks again");
  });

  it("remembers nothing while the stream is down, and again once it is back", async () => {
    const engine = new ScriptedEngine();
    engine.present.add("a:1");
    presence = new ImagePresence(engine, { backoff: { initialMs: 1, maxMs: 1 } });
    // Not started: no stream, so every launch asks.
    await presence.imagePresent("a:1");
    await presence.imagePresent("a:1");
    assert.equal(engine.asked.length, 2);
    presence.start();
    await subscribed(engine, 1);
    await presence.imagePresent("a:1");
    engine.emit(new Error("engine went away"));
    // The loss forgets what was known; the stream comes back (a new subscription) after the backoff.
    await subscribed(engine, 2);
    await presence.imagePresent("a:1");
    await presence.imagePresent("a:1");
    assert.equal(engine.asked.length, 4, "one more question after the loss, then remembered again");
  });

  it("an engine without image events is asked at every launch", async () => {
    const engine = { asked: 0, async imagePresent() { this.asked += 1; return true; } };
    presence = new ImagePresence(engine, { backoff: { initialMs: 1, maxMs: 1 } });
    presence.start();
    await presence.imagePresent("a:1");
    await presence.imagePresent("a:1");
    assert.equal(engine.asked, 2);
  });
});
