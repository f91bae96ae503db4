import assert from "node:assert/strict";
import { filter, firstValueFrom, take, toArray } from "rxjs";
import type { EngineEvent, EnginePort } from "../../src/docker/engine-port.js";
import { EventMonitor, type MonitorLogger } from "../../src/docker/event-monitor.js";

/** One events() call on the fake engine: the test pushes events, ends or breaks it. */
class FakeEventStream {
  private readonly items: ({ ev: EngineEvent } | { end: true } | { error: Error })[] = [];
  private wake: (() => void) | undefined;

  constructor(
    readonly labels: Record<string, string>,
    readonly since: bigint | undefined,
    readonly signal: AbortSignal,
  ) {}

  push(ev: EngineEvent): void {
    this.items.push({ ev });
    this.notify();
  }
  end(): void {
    this.items.push({ end: true });
    this.notify();
  }
  fail(error: Error): void {
    this.items.push({ error });
    this.notify();
  }
  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async *iterate(onSubscribed?: () => void): AsyncIterable<EngineEvent> {
    onSubscribed?.();
    for (;;) {
      if (this.signal.aborted) return;
      const item = this.items.shift();
      if (item === undefined) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          this.signal.addEventListener("abort", () => resolve(), { once: true });
        });
        continue;
      }
      if ("end" in item) return;
      if ("error" in item) throw item.error;
      yield item.ev;
    }
  }
}

/** An EnginePort whose only working member is events(), driven by the test. */
class FakeEngine implements EnginePort {
  readonly calls: FakeEventStream[] = [];
  /** When set, events() fails before subscribing (engine down). */
  down: Error | undefined;
  private waiters: { n: number; resolve: (s: FakeEventStream) => void }[] = [];

  events(labels: Record<string, string>, since: bigint | undefined, signal: AbortSignal, onSubscribed?: () => void): AsyncIterable<EngineEvent> {
    const stream = new FakeEventStream(labels, since, signal);
    this.calls.push(stream);
    const down = this.down;
    for (const w of this.waiters.filter((w) => this.calls.length >= w.n)) w.resolve(this.calls[w.n - 1]!);
    this.waiters = this.waiters.filter((w) => this.calls.length < w.n);
    if (down !== undefined) {
      return (async function* () {
        throw down;
      })();
    }
    return stream.iterate(onSubscribed);
  }

  /** Resolves with the n-th events() call (1-based) once it has been made. */
  call(n: number): Promise<FakeEventStream> {
    if (this.calls.length >= n) return Promise.resolve(this.calls[n - 1]!);
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  ping = unused;
  imagePresent = unused;
  pullImage = unused;
  createContainer = unused;
  startContainer = unused;
  stopContainer = unused;
  killContainer = unused;
  removeContainer = unused;
  inspectContainer = unused;
  listContainers = unused;
  followLogs = unused;
  attachOutput = unused;
  updateContainer = unused;
  removeImage = unused;
  createExec = unused;
  startExec = unused;
  inspectExec = unused;
  resizeExec = unused;
}

function unused(): never {
  throw new Error("not used by the event monitor");
}

function ev(id: string, action: string, timeNano: bigint, attributes: Record<string, string> = {}): EngineEvent {
  return { id, action, timeNano, attributes };
}

/** Records warn lines so back-off delays can be read without timing the test. */
class RecordingLogger implements MonitorLogger {
  readonly warns: Record<string, unknown>[] = [];
  info(): void {}
  warn(obj: object): void {
    this.warns.push(obj as Record<string, unknown>);
  }
}

const LABELS = { "berth.agent_id": "agent-1" };

describe("EventMonitor", () => {
  let monitor: EventMonitor | undefined;
  afterEach(async () => {
    await monitor?.stop();
    monitor = undefined;
  });

  it("subscribes once with the agent label and republishes events, connected$ true", async () => {
    const engine = new FakeEngine();
    monitor = new EventMonitor({ engine, labels: LABELS, backoff: { initialMs: 5, maxMs: 50 } });
    const got = firstValueFrom(monitor.events$.pipe(take(2), toArray()));
    const before = BigInt(Date.now()) * 1_000_000n;
    monitor.start();
    monitor.start(); // idempotent
    const stream = await engine.call(1);
    assert.deepEqual(stream.labels, LABELS);
    // The engine answers before it subscribes: the first stream asks for a replay from its opening too.
    assert.ok(stream.since !== undefined && stream.since >= before && stream.since <= BigInt(Date.now()) * 1_000_000n, `since ${stream.since}`);
    await firstValueFrom(monitor.connected$.pipe(filter(Boolean)));
    stream.push(ev("c1", "start", 10n));
    stream.push(ev("c1", "die", 20n, { exitCode: "3" }));
    const events = await got;
    assert.deepEqual(
      events.map((e) => [e.id, e.action, e.timeNano, e.attributes.exitCode]),
      [
        ["c1", "start", 10n, undefined],
        ["c1", "die", 20n, "3"],
      ],
    );
    assert.equal(engine.calls.length, 1);
  });

  it("after a lost stream reconnects with since = last seen timeNano, reports reconnected$ and drops repeats", async () => {
    const engine = new FakeEngine();
    monitor = new EventMonitor({ engine, labels: LABELS, backoff: { initialMs: 5, maxMs: 50 } });
    const seen: EngineEvent[] = [];
    monitor.events$.subscribe((e) => seen.push(e));
    const connectedHistory: boolean[] = [];
    monitor.connected$.subscribe((c) => connectedHistory.push(c));
    const reconnected = firstValueFrom(monitor.reconnected$);
    monitor.start();

    const first = await engine.call(1);
    const gotTwo = firstValueFrom(monitor.events$.pipe(take(2), toArray()));
    first.push(ev("c1", "start", 100n));
    first.push(ev("c1", "kill", 200n));
    await gotTwo;
    first.fail(new Error("socket hang up"));

    const second = await engine.call(2);
    assert.equal(second.since, 200n);
    await reconnected;
    // The engine replays from `since` inclusive: the kill at 200 comes again, then new events.
    const gotDie = firstValueFrom(monitor.events$.pipe(filter((e) => e.action === "die")));
    second.push(ev("c1", "kill", 200n));
    second.push(ev("c1", "die", 300n, { exitCode: "137" }));
    await gotDie;

    assert.deepEqual(
      seen.map((e) => `${e.action}@${e.timeNano}`),
      ["start@100", "kill@200", "die@300"],
    );
    assert.deepEqual(connectedHistory, [false, true, false, true]);
  });

  it("a stream that ends cleanly counts as lost; with nothing seen, since is the time the stream was opened", async () => {
    const engine = new FakeEngine();
    monitor = new EventMonitor({ engine, labels: LABELS, backoff: { initialMs: 5, maxMs: 50 } });
    const before = BigInt(Date.now()) * 1_000_000n;
    monitor.start();
    const first = await engine.call(1);
    await firstValueFrom(monitor.connected$.pipe(filter(Boolean)));
    first.end();
    await firstValueFrom(monitor.connected$.pipe(filter((c) => !c)));
    const second = await engine.call(2);
    const after = BigInt(Date.now()) * 1_000_000n;
    assert.ok(second.since !== undefined && second.since >= before && second.since <= after, `since ${second.since}`);
  });

  it("backs off exponentially up to maxMs while the engine is down, and starts over after reconnecting", async () => {
    const engine = new FakeEngine();
    engine.down = new Error("connect ENOENT /var/run/docker.sock");
    const logger = new RecordingLogger();
    monitor = new EventMonitor({ engine, labels: LABELS, logger, backoff: { initialMs: 2, maxMs: 10 } });
    monitor.start();
    await engine.call(6);
    engine.down = undefined;
    const reconnected = firstValueFrom(monitor.reconnected$);
    const up = await engine.call(7);
    await reconnected;
    assert.equal(monitor.connected$.value, true);
    assert.deepEqual(
      logger.warns.slice(0, 6).map((w) => w.retryInMs),
      [2, 4, 8, 10, 10, 10],
    );
    assert.match(String(logger.warns[0]!.err), /ENOENT/);
    up.fail(new Error("engine restarted"));
    await engine.call(8);
    assert.equal(logger.warns[6]!.retryInMs, 2);
  });

  it("stop() aborts the stream, stops reconnecting and completes events$, connected$ and reconnected$", async () => {
    const engine = new FakeEngine();
    monitor = new EventMonitor({ engine, labels: LABELS, backoff: { initialMs: 5, maxMs: 50 } });
    const completed = Promise.all([
      firstValueFrom(monitor.events$.pipe(toArray())),
      firstValueFrom(monitor.reconnected$.pipe(toArray())),
      firstValueFrom(monitor.connected$.pipe(toArray())),
    ]);
    monitor.start();
    const stream = await engine.call(1);
    await firstValueFrom(monitor.connected$.pipe(filter(Boolean)));
    await monitor.stop();
    assert.equal(stream.signal.aborted, true);
    const [events, reconnects, connected] = await completed;
    assert.deepEqual(events, []);
    assert.deepEqual(reconnects, []);
    assert.deepEqual(connected, [false, true, false]);
    assert.equal(engine.calls.length, 1);
    assert.throws(() => monitor!.start(), /after stop/);
  });

  it("stop() during back-off returns without waiting for the delay", async () => {
    const engine = new FakeEngine();
    engine.down = new Error("connect ECONNREFUSED");
    // An hour of back-off: a stop that waited for it could never beat the 30 s mark below.
    monitor = new EventMonitor({ engine, labels: LABELS, backoff: { initialMs: 3_600_000, maxMs: 3_600_000 } });
    monitor.start();
    await engine.call(1);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => (timer = setTimeout(() => resolve("still waiting after 30 s"), 30_000)));
    const outcome = await Promise.race([monitor.stop().then(() => "stopped"), late]);
    clearTimeout(timer);
    assert.equal(outcome, "stopped", "stop waited for the back-off delay");
    assert.equal(engine.calls.length, 1);
  }).timeout(60_000);
});
