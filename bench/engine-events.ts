import type Dockerode from "dockerode";
import { wallNowMs } from "./clock.js";
import { DeadlineExceeded, withDeadline } from "./deadline.js";
import { ENGINE_CALL_MS } from "./raw-engine.js";

/** One engine event with when the engine stamped it and when it arrived here (both wall-clock ms). */
export interface TimedEngineEvent {
  action: string;
  /** The container id (Actor.ID). */
  id: string;
  attributes: Record<string, string>;
  /** The engine's `timeNano`, in ms (JSON numbers keep it to ~0.25 µs, plenty for ms figures). */
  stampedMs: number;
  receivedMs: number;
}

interface Waiter {
  match: (e: TimedEngineEvent) => boolean;
  resolve: (e: TimedEngineEvent) => void;
}

/**
 * A raw `/events` subscription of its own, beside Berth's: it reads every line as it arrives
 * (the engine drops a subscriber that stops reading) and stamps each with its receipt time.
 */
export class EngineEventTap {
  readonly events: TimedEngineEvent[] = [];
  private readonly waiters: Waiter[] = [];
  private partial = "";

  private constructor(private readonly stream: NodeJS.ReadableStream) {
    stream.setEncoding?.("utf8");
    stream.on("data", (chunk: string | Buffer) => this.onChunk(String(chunk)));
    // An error or end just stops the tap; waiters then run into their deadlines with a clear message.
    stream.on("error", () => undefined);
  }

  /** Subscribes to container events carrying all of `labelFilters` (`key=value`), of the given actions. */
  static async open(docker: Dockerode, labelFilters: string[], actions: string[] = []): Promise<EngineEventTap> {
    const filters: Record<string, string[]> = { type: ["container"], label: labelFilters };
    if (actions.length > 0) filters.event = actions;
    // getEvents resolves once the response headers are in: the subscription is live from here on.
    const stream = await withDeadline(docker.getEvents({ filters }), ENGINE_CALL_MS, `engine /events subscription (${labelFilters.join(",")})`);
    return new EngineEventTap(stream);
  }

  private onChunk(chunk: string): void {
    const receivedMs = wallNowMs();
    const lines = (this.partial + chunk).split("\n");
    this.partial = lines.pop()!;
    for (const line of lines) {
      if (line.trim() === "") continue;
      let raw: { Action?: string; status?: string; id?: string; timeNano?: number; Actor?: { ID?: string; Attributes?: Record<string, string> } };
      try {
        raw = JSON.parse(line);
      } catch {
        continue;
      }
      const event: TimedEngineEvent = {
        action: raw.Action ?? raw.status ?? "",
        id: raw.Actor?.ID ?? raw.id ?? "",
        attributes: raw.Actor?.Attributes ?? {},
        stampedMs: (raw.timeNano ?? Number.NaN) / 1e6,
        receivedMs,
      };
      this.events.push(event);
      for (const w of [...this.waiters]) {
        if (w.match(event)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(event);
        }
      }
    }
  }

  /** The first event (already seen or to come) matching; rejects after `ms`. */
  async waitFor(match: (e: TimedEngineEvent) => boolean, ms: number, what: string): Promise<TimedEngineEvent> {
    const seen = this.events.find(match);
    if (seen) return seen;
    let waiter: Waiter | undefined;
    const arrived = new Promise<TimedEngineEvent>((resolve) => {
      waiter = { match, resolve };
      this.waiters.push(waiter);
    });
    try {
      return await withDeadline(arrived, ms, `engine event ${what}`);
    } catch (err) {
      if (err instanceof DeadlineExceeded) this.waiters.splice(this.waiters.indexOf(waiter!), 1);
      throw err;
    }
  }

  /** Ends the subscription. */
  close(): void {
    (this.stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
  }
}
