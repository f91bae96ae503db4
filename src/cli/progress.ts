/**
 * What `berth launch` shows while it follows a container: on a terminal, live bars (cli-progress)
 * for the state, each image pull (bytes and layers in total) and each of its layers (from Watch's
 * PullProgress); elsewhere one plain line per state change and per layer pulled; with
 * --output json, one proto-JSON event per line.
 */
import { MultiBar, type SingleBar } from "cli-progress";
import { CacheOutcome, ContainerEventSchema, State, type ContainerEvent, type LayerProgress, type PullProgress } from "../gen/berth/v1/containerizer_pb.js";
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

/** Layer statuses that mean the layer is in place. */
const LAYER_IN_PLACE = new Set(["Pull complete", "Already exists"]);
const layerDone = (l: LayerProgress): boolean => LAYER_IN_PLACE.has(l.status);

/**
 * A plain line per state change (and a line per fetched URI, a line per layer downloaded, a line
 * when a pull ends), for logs and pipes: `PULLING`, `layer 4f4fb700ef54 pulled 32.0MiB`,
 * `pulled … 64.0MiB (2 layers) in 3.2s`. Layers already present get no line of their own (the
 * pull's line counts them), so a pull of a cached image stays one line.
 */
export class PlainView implements LaunchView {
  private pullStarted: number | undefined;
  private lastPull: PullProgress | undefined;
  /** Layers already reported as pulled, per image. */
  private readonly layersReported = new Map<string, Set<string>>();

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
          const present = this.lastPull.layers.filter((l) => l.status === "Already exists").length;
          const layers = `${this.lastPull.layersTotal} layers${present > 0 ? `, ${present} already present` : ""}`;
          this.out.write(`${id}  pulled ${this.lastPull.image} ${humanBytes(this.lastPull.bytesTotal)} (${layers})${took}\n`);
          this.lastPull = undefined;
        }
        if (k.value.state === State.PULLING) this.pullStarted = this.now();
        this.out.write(`${id}  ${stateName(k.value.state)}${k.value.message ? `: ${k.value.message}` : ""}\n`);
        return;
      }
      case "pullProgress": {
        this.lastPull = k.value;
        let reported = this.layersReported.get(k.value.image);
        if (reported === undefined) this.layersReported.set(k.value.image, (reported = new Set()));
        for (const l of k.value.layers) {
          if (l.status !== "Pull complete" || reported.has(l.id)) continue;
          reported.add(l.id);
          this.out.write(`${id}  layer ${l.id} pulled ${humanBytes(l.bytesTotal)}\n`);
        }
        return;
      }
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
/** Most layer bars drawn, whatever the terminal's height (the server lists at most 64 layers). */
const MAX_LAYER_BARS = 32;

function bar(fraction: number): string {
  const full = Math.max(0, Math.min(BAR_WIDTH, Math.round(fraction * BAR_WIDTH)));
  return "█".repeat(full) + "░".repeat(BAR_WIDTH - full);
}

function percent(fraction: number): string {
  return `${Math.floor(Math.max(0, Math.min(1, fraction)) * 100)}%`.padStart(4);
}

function clip(status: string): string {
  return status.length > 40 ? `${status.slice(0, 39)}…` : status;
}

interface PullPayload {
  kind: "pull";
  image: string;
  current: number;
  total: number;
  layersDone: number;
  layersTotal: number;
  /** Layers without a bar of their own (beyond the server's list or the terminal's height). */
  layersHidden: number;
  status: string;
  done: boolean;
}

interface LayerPayload {
  kind: "layer";
  id: string;
  current: number;
  /** 0 while unknown (and for a layer already present). */
  total: number;
  status: string;
  /** In place: "Pull complete", "Already exists", or the pull ended well. */
  done: boolean;
}

interface StatePayload {
  kind: "state";
  id: string;
  state: string;
  since: number;
  detail: string;
}

interface PullBars {
  bar: SingleBar;
  payload: PullPayload;
  layers: Map<string, { bar: SingleBar; payload: LayerPayload }>;
}

/**
 * Live bars on a terminal: a state line (`web-1  PULLING  2.1s`, the time since the launch); per
 * image pulled, a bar of bytes downloaded over all layers with the layer count and the engine's
 * latest status line; under it a bar per layer (its bytes and status; a layer already present is
 * full). Every bar ends full when the pull is over. Layer bars are bounded by the terminal's height
 * (and MAX_LAYER_BARS); the layers beyond are counted on the image's line.
 */
export class TtyView implements LaunchView {
  private readonly multi: MultiBar;
  private readonly stateBar: SingleBar;
  private readonly pulls = new Map<string, PullBars>();
  private readonly maxLayerBars: number;
  private layerBars = 0;
  private statePayload: StatePayload;
  private closed = false;

  constructor(
    stream: NodeJS.WritableStream,
    id: string,
    private readonly now: () => number = Date.now,
  ) {
    const rows = (stream as { rows?: number }).rows;
    // The state line, an image line, a spare line for the cursor: the rest may hold layer bars.
    this.maxLayerBars = Math.max(0, Math.min(MAX_LAYER_BARS, (rows !== undefined && rows > 0 ? rows : 24) - 3));
    this.multi = new MultiBar(
      {
        stream,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        gracefulExit: false,
        fps: 10,
        // The bars' own text; cli-progress handles the redraw (cursor moves) on the terminal.
        format: (_options, _params, payload: PullPayload | LayerPayload | StatePayload) => {
          switch (payload.kind) {
            case "state":
              return `${payload.id}  ${payload.state}  ${shortDuration(this.now() - payload.since)}${payload.detail ? `  ${payload.detail}` : ""}`;
            case "layer": {
              const l = payload;
              const fraction = l.done ? 1 : l.total > 0 ? l.current / l.total : 0;
              const bytes = l.total > 0 ? `${humanBytes(l.done ? l.total : l.current)}/${humanBytes(l.total)}` : l.current > 0 ? humanBytes(l.current) : "";
              return `    ${l.id}  ${bar(fraction)} ${percent(fraction)}  ${bytes.padEnd(17)}  ${l.status}`;
            }
            case "pull": {
              const p = payload;
              const fraction = p.done ? 1 : p.total > 0 ? p.current / p.total : 0;
              const status = p.done ? "done" : p.status;
              const hidden = p.layersHidden > 0 ? ` (${p.layersHidden} not shown)` : "";
              return `  ${p.image}  ${bar(fraction)} ${percent(fraction)}  ${humanBytes(p.done ? p.total : p.current)}/${humanBytes(p.total)}  layers ${p.done ? p.layersTotal : p.layersDone}/${p.layersTotal}${hidden}${status ? `  ${status}` : ""}`;
            }
          }
        },
      },
    );
    this.statePayload = { kind: "state", id, state: "LAUNCHING", since: this.now(), detail: "" };
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
      case "pullProgress":
        this.pullProgress(k.value);
        return;
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

  private pullProgress(p: PullProgress): void {
    let pull = this.pulls.get(p.image);
    const payload: PullPayload = {
      kind: "pull",
      image: p.image,
      current: Number(p.bytesCurrent),
      total: Number(p.bytesTotal),
      layersDone: p.layersDone,
      layersTotal: p.layersTotal,
      layersHidden: 0,
      status: clip(p.status),
      done: false,
    };
    if (pull === undefined) {
      pull = { bar: this.multi.create(Math.max(1, payload.total), payload.current, payload), payload, layers: new Map() };
      this.pulls.set(p.image, pull);
    }
    for (const l of p.layers) {
      const lp: LayerPayload = { kind: "layer", id: l.id, current: Number(l.bytesCurrent), total: Number(l.bytesTotal), status: clip(l.status), done: layerDone(l) };
      const known = pull.layers.get(l.id);
      if (known) {
        known.payload = lp;
        known.bar.setTotal(Math.max(1, lp.total));
        known.bar.update(lp.done ? Math.max(1, lp.total) : lp.current, lp);
      } else if (this.layerBars < this.maxLayerBars) {
        this.layerBars++;
        pull.layers.set(l.id, { bar: this.multi.create(Math.max(1, lp.total), lp.done ? Math.max(1, lp.total) : lp.current, lp), payload: lp });
      }
    }
    payload.layersHidden = Math.max(0, p.layersTotal - pull.layers.size);
    pull.payload = payload;
    pull.bar.setTotal(Math.max(1, payload.total));
    pull.bar.update(payload.current, payload);
  }

  private finishPulls(ok: boolean): void {
    for (const pull of this.pulls.values()) {
      if (pull.payload.done || pull.payload.status === "failed") continue;
      pull.payload = ok ? { ...pull.payload, done: true } : { ...pull.payload, status: "failed" };
      pull.bar.update(ok ? Math.max(1, pull.payload.total) : pull.payload.current, pull.payload);
      for (const layer of pull.layers.values()) {
        if (layer.payload.done) continue;
        layer.payload = ok ? { ...layer.payload, done: true, status: "done" } : { ...layer.payload, status: "failed" };
        layer.bar.update(ok ? Math.max(1, layer.payload.total) : layer.payload.current, layer.payload);
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.multi.stop();
  }
}
