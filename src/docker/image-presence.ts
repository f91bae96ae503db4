/**
 * Which images the engine has, known without asking it at every launch.
 *
 * A launch asks whether its image is present before it creates (a missing one is pulled first).
 * Asked of the engine, that is one round trip on every launch's critical path. The answer only
 * changes when an image is removed, and the engine announces every removal on its `/events`
 * stream (`delete`, `untag`), so a "present" answer is kept while that stream is subscribed and
 * forgotten — all of them — at any removal, and whenever the stream is lost or comes back. A
 * removal made while the stream is down is therefore never missed; an answer in flight when a
 * removal arrives is not kept (a generation counter). What remains is the engine's own race: an
 * image removed in the instant between the answer and the create, as with an inspect, fails that
 * create with the engine's "No such image".
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { EnginePort } from "./engine-port.js";
import type { MonitorLogger } from "./event-monitor.js";

/** Construction options of an ImagePresence. */
export interface ImagePresenceOptions {
  /** Reconnect delays of the image events stream: initialMs, doubled per failed attempt, capped at maxMs. */
  backoff: { initialMs: number; maxMs: number };
  /** At most this many references are remembered (all forgotten when full). */
  maxEntries?: number;
  logger?: MonitorLogger;
}

const DEFAULT_MAX_ENTRIES = 4096;

export class ImagePresence {
  private readonly known = new Set<string>();
  /** Bumped at every forget: an engine answer asked before it is not kept. */
  private generation = 0;
  /** True while the image events stream is subscribed: only then is an answer kept. */
  private live = false;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly maxEntries: number;

  constructor(
    private readonly engine: Pick<EnginePort, "imagePresent" | "imageEvents">,
    private readonly options: ImagePresenceOptions,
  ) {
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  }

  /** Subscribes to the engine's image removals (and keeps re-subscribing) until stop(). */
  start(): void {
    if (this.loop || !this.engine.imageEvents || this.abort.signal.aborted) return;
    this.loop = this.follow();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  /** True when the engine has `ref`: from memory when known, from the engine otherwise. */
  async imagePresent(ref: string): Promise<boolean> {
    if (this.live && this.known.has(ref)) return true;
    const asked = this.generation;
    const present = await this.engine.imagePresent(ref);
    if (present && this.live && asked === this.generation) {
      if (this.known.size >= this.maxEntries) this.known.clear();
      this.known.add(ref);
    }
    return present;
  }

  /** How many references are known present (for tests). */
  get size(): number {
    return this.known.size;
  }

  private forget(): void {
    this.generation += 1;
    this.known.clear();
  }

  private async follow(): Promise<void> {
    const signal = this.abort.signal;
    const { initialMs, maxMs } = this.options.backoff;
    let delayMs = initialMs;
    while (!signal.aborted) {
      try {
        const subscribed = (): void => {
          this.forget();
          this.live = true;
          delayMs = initialMs;
        };
        for await (const ev of this.engine.imageEvents!(signal, subscribed)) {
          void ev;
          this.forget();
        }
      } catch (err) {
        if (!signal.aborted) this.options.logger?.warn({ err }, "image events stream lost; image presence is asked of the engine until it is back");
      }
      this.live = false;
      this.forget();
      if (signal.aborted) return;
      try {
        await sleep(delayMs, undefined, { signal });
      } catch {
        return;
      }
      delayMs = Math.min(delayMs * 2, maxMs);
    }
  }
}
