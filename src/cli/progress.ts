/**
 * What `berth launch` shows while it follows a container: on a terminal, live bars (cli-progress)
 * for the state and each image pull (bytes and layers, from Watch's PullProgress); elsewhere one
 * plain line per state change; with --output json, one proto-JSON event per line.
 */
import { MultiBar, type SingleBar } from "cli-progress";
import { CacheOutcome, ContainerEventSchema, State, type ContainerEvent, type PullProgress } from "../gen/berth/v1/containerizer_pb.js";
import { describeTermination, humanBytes, protoJson, shortDuration, stateName } from "./format.js";

/** Shows the events of one launch. */
export interface LaunchView {
  event(e: ContainerEvent): void;
  /** Ends the display (bars rendered final, cursor back); idempotent. */
  close(): void;
}

type Out = { write(text: string): unknown };

/** One proto-JSON event per line. */
export class JsonView implements LaunchView {
  constructor(private readonly out: Out) {}
  event(e: ContainerEvent): void {
    this.out.write(`${JSON.stringify(protoJson(ContainerEventSchema, e))}\n`);
  }
  close(): void {}
}

/**
 * A plain line per state change (and a line per fetched URI, a line when a pull starts and ends),
 * for logs and pipes: `PULLING 127.0.0.1:5000/app:1`, `pulled … 64.0MiB in 3.2s`.
 */
export class PlainView implements LaunchView {
  private pullStarted: number | undefined;
  private lastPull: PullProgress | undefined;

  constructor(
    private readonly out: Out,
    private readonly now: () => number = Date.now,
  ) {}

  event(e: ContainerEvent): void {
    const id = e.containerId?.value ?? "";
    const k = e.kind;
    switch (k.case) {
      case "stateChanged": {
        if (this.lastPull && k.value.previous === State.PULLING) {
          const took = this.pullStarted !== undefined ? ` in ${shortDuration(this.now() - this.pullStarted)}` : "";
          this.out.write(`${id}  pulled ${this.lastPull.image} ${humanBytes(this.lastPull.bytesTotal)} (${this.lastPull.layersTotal} layers)${took}\n`);
          this.lastPull = undefined;
        }
        if (k.value.state === State.PULLING) this.pullStarted = this.now();
        this.out.write(`${id}  ${stateName(k.value.state)}${k.value.message ? `: ${k.value.message}` : ""}\n`);
        return;
      }
      case "pullProgress":
        this.lastPull = k.value;
        return;
      case "fetchResult":
        this.out.write(`${id}  fetched ${k.value.uri} (${humanBytes(k.value.bytes)}, cache ${(CacheOutcome[k.value.cache] ?? "").replace(/^CACHE_OUTCOME_/, "")})\n`);
        return;
      case "termination":
        this.out.write(`${id}  terminated: ${describeTermination(k.value)}\n`);
        return;
      default:
        return;
    }
  }

  close(): void {}
}

const BAR_WIDTH = 30;

function bar(fraction: number): string {
  const full = Math.max(0, Math.min(BAR_WIDTH, Math.round(fraction * BAR_WIDTH)));
  return "█".repeat(full) + "░".repeat(BAR_WIDTH - full);
}

interface PullPayload {
  image: string;
  current: number;
  total: number;
  layersDone: number;
  layersTotal: number;
  status: string;
  done: boolean;
}

interface StatePayload {
  id: string;
  state: string;
  since: number;
  detail: string;
}

/**
 * Live bars on a terminal: a state line (`web-1  PULLING  2.1s`, the time since the launch) and, per image pulled, a bar of
 * bytes downloaded over all layers with the layer count and the engine's latest status line.
 */
export class TtyView implements LaunchView {
  private readonly multi: MultiBar;
  private readonly stateBar: SingleBar;
  private readonly pulls = new Map<string, { bar: SingleBar; payload: PullPayload }>();
  private statePayload: StatePayload;
  private closed = false;

  constructor(
    stream: NodeJS.WritableStream,
    id: string,
    private readonly now: () => number = Date.now,
  ) {
    this.multi = new MultiBar(
      {
        stream,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        gracefulExit: false,
        fps: 10,
        // The bars' own text; cli-progress handles the redraw (cursor moves) on the terminal.
        format: (_options, params, payload: Partial<PullPayload & StatePayload>) => {
          if (payload.state !== undefined) {
            return `${payload.id}  ${payload.state}  ${shortDuration(this.now() - (payload.since ?? this.now()))}${payload.detail ? `  ${payload.detail}` : ""}`;
          }
          const p = payload as PullPayload;
          const fraction = p.done ? 1 : p.total > 0 ? p.current / p.total : 0;
          const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
          const status = p.done ? "done" : p.status;
          return `  ${p.image}  ${bar(fraction)} ${pct}  ${humanBytes(p.done ? p.total : p.current)}/${humanBytes(p.total)}  layers ${p.done ? p.layersTotal : p.layersDone}/${p.layersTotal}${status ? `  ${status}` : ""}`;
        },
      },
    );
    this.statePayload = { id, state: "LAUNCHING", since: this.now(), detail: "" };
    this.stateBar = this.multi.create(1, 0, this.statePayload);
  }

  event(e: ContainerEvent): void {
    if (this.closed) return;
    const k = e.kind;
    switch (k.case) {
      case "stateChanged":
        // A pull is over once the container left PULLING: done (100%) on to MOUNTING, failed otherwise.
        if (k.value.state !== State.PULLING) this.finishPulls(k.value.state === State.MOUNTING || k.value.state === State.RUNNING);
        this.statePayload = { ...this.statePayload, state: stateName(k.value.state), detail: k.value.message };
        this.stateBar.update(0, this.statePayload);
        return;
      case "pullProgress": {
        const p = k.value;
        const payload: PullPayload = {
          image: p.image,
          current: Number(p.bytesCurrent),
          total: Number(p.bytesTotal),
          layersDone: p.layersDone,
          layersTotal: p.layersTotal,
          status: p.status.length > 40 ? `${p.status.slice(0, 39)}…` : p.status,
          done: false,
        };
        const known = this.pulls.get(p.image);
        if (known) {
          known.payload = payload;
          known.bar.setTotal(Math.max(1, payload.total));
          known.bar.update(payload.current, payload);
        } else {
          this.pulls.set(p.image, { bar: this.multi.create(Math.max(1, payload.total), payload.current, payload), payload });
        }
        return;
      }
      case "fetchResult":
        this.statePayload = { ...this.statePayload, detail: `fetched ${k.value.uri} (${humanBytes(k.value.bytes)})` };
        this.stateBar.update(0, this.statePayload);
        return;
      case "termination":
        this.statePayload = { ...this.statePayload, state: "TERMINATED", detail: describeTermination(k.value) };
        this.stateBar.update(0, this.statePayload);
        return;
      default:
        return;
    }
  }

  private finishPulls(ok: boolean): void {
    for (const pull of this.pulls.values()) {
      if (pull.payload.done || pull.payload.status === "failed") continue;
      pull.payload = ok ? { ...pull.payload, done: true } : { ...pull.payload, status: "failed" };
      pull.bar.update(ok ? Math.max(1, pull.payload.total) : pull.payload.current, pull.payload);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.multi.stop();
  }
}
