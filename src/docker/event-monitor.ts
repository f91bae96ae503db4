/**
 * One engine `/events` stream for all of Berth's containers, kept alive across engine restarts.
 *
 * The engine stream is only a hint: it drops slow readers and keeps just its last 256 events, so
 * after every loss the monitor reconnects with `since=` (to replay what it can) and announces the
 * reconnect on `reconnected$`, on which the domain reconciles by inspecting its containers.
 */
import { BehaviorSubject, Subject, type Observable } from "rxjs";
import type { EngineEvent, EnginePort } from "./engine-port.js";

/** The subset of a pino logger the monitor writes to. */
export interface MonitorLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** Construction options of an EventMonitor. */
export interface EventMonitorOptions {
  engine: EnginePort;
  /** Only containers carrying all these labels are watched (e.g. `berth.agent_id=<id>`). */
  labels: Record<string, string>;
  logger?: MonitorLogger;
  /** Reconnect delays: initialMs, doubled per failed attempt, capped at maxMs. */
  backoff: { initialMs: number; maxMs: number };
  /** How many recent (id, action, timeNano) keys are remembered for de-duplication. */
  dedupeWindow?: number;
}

const DEFAULT_DEDUPE_WINDOW = 4096;

/** Keeps one label-filtered engine events stream open and republishes it, de-duplicated. */
export class EventMonitor {
  /**
   * Every container event, hot and shared by all subscribers. Delivery is synchronous, so
   * subscribers must hand slow work off; the socket itself is drained by the adapter regardless.
   */
  readonly events$: Observable<EngineEvent>;
  /** True while the engine stream is subscribed. */
  readonly connected$ = new BehaviorSubject<boolean>(false);
  /** Fires after the stream came back following a loss: time to reconcile by inspection. */
  readonly reconnected$ = new Subject<void>();

  private readonly subject = new Subject<EngineEvent>();
  private readonly engine: EnginePort;
  private readonly labels: Record<string, string>;
  private readonly logger: MonitorLogger | undefined;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly dedupeWindow: number;
  private readonly seen = new Set<string>();
  private lastSeenNano: bigint | undefined;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(opts: EventMonitorOptions) {
    const { initialMs, maxMs } = opts.backoff;
    if (!(initialMs > 0) || !(maxMs >= initialMs)) {
      throw new Error(`backoff {initialMs: ${initialMs}, maxMs: ${maxMs}} needs 0 < initialMs <= maxMs`);
    }
    this.engine = opts.engine;
    this.labels = { ...opts.labels };
    this.logger = opts.logger;
    this.backoff = { initialMs, maxMs };
    this.dedupeWindow = opts.dedupeWindow ?? DEFAULT_DEDUPE_WINDOW;
    this.events$ = this.subject.asObservable();
  }

  /**
   * Opens the stream (idempotent). Subscribe to events$ first, then list, to miss nothing: every
   * stream, the first included, asks the engine to replay from when it was opened.
   */
  start(): void {
    if (this.stopped) throw new Error("EventMonitor.start() after stop(): create a new monitor");
    this.loop ??= this.run(this.abort.signal);
  }

  /** Closes the stream, stops reconnecting and completes every subject. */
  async stop(): Promise<void> {
    if (this.stopped) return this.loop;
    this.stopped = true;
    this.abort.abort(new Error("event monitor stopped"));
    await this.loop;
    if (this.connected$.value) this.connected$.next(false);
    this.subject.complete();
    this.reconnected$.complete();
    this.connected$.complete();
  }

  private async run(signal: AbortSignal): Promise<void> {
    let attempt = 0;
    let lost = false;
    // Replay point when nothing was seen before a loss: the opening of the stream that broke.
    let fallbackSince: bigint | undefined;
    while (!signal.aborted) {
      const openedAt = nowNanos();
      let subscribed = false;
      const onSubscribed = (): void => {
        if (subscribed || signal.aborted) return;
        subscribed = true;
        attempt = 0;
        this.connected$.next(true);
        if (lost) {
          lost = false;
          this.logger?.info({ labels: this.labels }, "engine events stream reconnected");
          this.reconnected$.next();
        }
      };
      // The first stream replays from its own opening too: the engine answers a subscription
      // (flushes its headers) before it subscribes, so without `since` an event in between —
      // a recovered container's `die` just after recovery listed it — would be lost for good.
      const since = lost ? (this.lastSeenNano ?? fallbackSince) : openedAt;
      let cause: unknown = "stream ended";
      try {
        for await (const ev of this.engine.events(this.labels, since, signal, onSubscribed)) {
          if (signal.aborted) break;
          onSubscribed(); // an engine port without the callback is connected once events flow
          this.publish(ev);
        }
      } catch (err) {
        cause = err;
      }
      if (signal.aborted) break;

      if (this.connected$.value) this.connected$.next(false);
      if (!lost) {
        lost = true;
        fallbackSince = openedAt;
      }
      const delayMs = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.min(attempt, 30));
      attempt++;
      this.logger?.warn(
        { labels: this.labels, err: describe(cause), retryInMs: delayMs, attempt },
        "engine events stream lost; reconnecting",
      );
      await sleep(delayMs, signal);
    }
  }

  /** Drops repeats (since= is inclusive, and a replay may overlap what was seen) and publishes. */
  private publish(ev: EngineEvent): void {
    const key = `${ev.id}|${ev.action}|${ev.timeNano}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.seen.size > this.dedupeWindow) {
      const oldest = this.seen.values().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    if (this.lastSeenNano === undefined || ev.timeNano > this.lastSeenNano) this.lastSeenNano = ev.timeNano;
    this.subject.next(ev);
  }
}

function nowNanos(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Resolves after `ms`, or at once when the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
