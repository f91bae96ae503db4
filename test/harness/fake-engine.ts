/**
 * An in-memory Docker engine behind the EnginePort, for fast unit tests of the domain.
 *
 * Tests drive it from outside: hold a call in flight (`hold`), fail one (`failNext`), make a
 * container exit or be OOM-killed, break the events stream. Every call is logged with entry and
 * settle order numbers from one counter, so a test can assert what happened before what.
 */
import { PassThrough } from "node:stream";
import {
  EngineRequestFailed,
  EngineUnreachable,
  type ContainerInspect,
  type ContainerSummary,
  type CreateSpec,
  type EngineEvent,
  type EnginePort,
  type ExecCreateSpec,
  type ExecState,
  type ExecStreams,
  type LogStreams,
  type PullProgress,
  type ResourceUpdate,
} from "../../src/docker/engine-port.js";

/** The name of an EnginePort method. */
export type EngineMethod = keyof EnginePort;

/** One logged call: the method, its arguments, and when it entered and settled. */
export interface EngineCall {
  method: EngineMethod;
  args: unknown[];
  /** Position in the fake's single order counter when the call arrived. */
  enteredAt: number;
  /** Position when it resolved or rejected (undefined while in flight). */
  settledAt?: number;
  /** The rejection, when it rejected. */
  error?: unknown;
  /** The resolved value, when it resolved. */
  result?: unknown;
}

/**
 * A one-shot gate on the next call of a method. Calling it releases the held call; `fail`
 * makes it reject instead. Either may be done before the call arrives.
 */
export interface Hold {
  (): void;
  /** Resolves with the call once it has arrived and is held. */
  readonly entered: Promise<EngineCall>;
  /** Makes the held call reject with `err` without doing anything. */
  fail(err: Error): void;
}

/** One container as the fake engine keeps it. */
export interface FakeContainer {
  readonly id: string;
  readonly name: string;
  readonly spec: CreateSpec;
  readonly labels: Record<string, string>;
  status: "created" | "running" | "exited";
  exitCode: number;
  oomKilled: boolean;
  pid: number;
  startedAt?: string;
  finishedAt?: string;
  /** When true, SIGTERM (and stop's first signal) does nothing; only SIGKILL ends it. */
  ignoresSigterm: boolean;
  /** When true, the output streams stay open after the process dies (the test ends them): output still draining. */
  keepsOutputOpen?: boolean;
  /** The container's output; write to it, it is ended when the container dies. */
  readonly stdout: PassThrough;
  readonly stderr: PassThrough;
  /** What `updateContainer` last set. */
  resources?: ResourceUpdate;
  /** Addresses inspect reports while the container runs (none by default, as with network none). */
  ipAddresses?: string[];
}

/** Construction options of a FakeEngine. */
export interface FakeEngineOptions {
  /** Images present from the start. */
  images?: string[];
  /** Milliseconds a `stopContainer` grace second lasts here (default 0: SIGKILL at the next tick). */
  msPerGraceSecond?: number;
  /** How many past events are kept for `since=` replay (the engine keeps 256). */
  historyLimit?: number;
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGTERM: 15 };

type Decision = { ok: true } | { ok: false; err: Error };

interface Gate {
  decide(d: Decision): void;
  decision: Promise<Decision>;
  arrived(call: EngineCall): void;
}

type StreamItem = { ev: EngineEvent } | { error: Error };

interface Subscriber {
  labels: Record<string, string>;
  items: StreamItem[];
  wake?: () => void;
}

/** An EnginePort kept in memory and steered by the test. */
export class FakeEngine implements EnginePort {
  /** Every call, in arrival order. */
  readonly log: EngineCall[] = [];
  readonly images = new Set<string>();
  readonly containers = new Map<string, FakeContainer>();
  /** Progress lines every pull reports: the first two before its gate, the rest after. */
  pullLines: PullProgress[] = [
    { status: "Pulling from library/fake", layer: "latest" },
    { status: "Pulling fs layer", layer: "aaaa" },
    { status: "Downloading", layer: "aaaa", current: 512, total: 1024 },
    { status: "Downloading", layer: "aaaa", current: 1024, total: 1024 },
    { status: "Pull complete", layer: "aaaa" },
    { status: "Status: Downloaded newer image" },
  ];

  private readonly gates = new Map<EngineMethod, Gate[]>();
  /** Gates whose call has arrived and is held (releaseAll lets them through too). */
  private readonly heldNow = new Set<Gate>();
  private readonly callWaiters: { method: EngineMethod; n: number; resolve: (c: EngineCall) => void }[] = [];
  private readonly subscribers = new Set<Subscriber>();
  private readonly subscribeWaiters: (() => void)[] = [];
  private readonly history: EngineEvent[] = [];
  private readonly historyLimit: number;
  private readonly msPerGraceSecond: number;
  private order = 0;
  private lastNano = 0n;
  private nextId = 1;
  private nextPid = 1000;
  private reachable = true;

  constructor(opts: FakeEngineOptions = {}) {
    for (const ref of opts.images ?? []) this.images.add(ref);
    this.msPerGraceSecond = opts.msPerGraceSecond ?? 0;
    this.historyLimit = opts.historyLimit ?? 256;
  }

  // ---- steering ---------------------------------------------------------------------------

  /** Holds the next call of `method` until the returned function is called (or `fail`ed). */
  hold(method: EngineMethod): Hold {
    let decide!: (d: Decision) => void;
    const decision = new Promise<Decision>((resolve) => (decide = resolve));
    let arrived!: (c: EngineCall) => void;
    const entered = new Promise<EngineCall>((resolve) => (arrived = resolve));
    const gate: Gate = { decide, decision, arrived };
    const queue = this.gates.get(method) ?? [];
    queue.push(gate);
    this.gates.set(method, queue);
    return Object.assign(() => decide({ ok: true }), { entered, fail: (err: Error) => decide({ ok: false, err }) });
  }

  /** Makes the next call of `method` reject with `err`. */
  failNext(method: EngineMethod, err: Error): void {
    this.hold(method).fail(err);
  }

  /** Lets every held or armed gate through, calls already held included (for cleanup). */
  releaseAll(): void {
    for (const queue of this.gates.values()) for (const g of queue) g.decide({ ok: true });
    this.gates.clear();
    for (const g of this.heldNow) g.decide({ ok: true });
    this.heldNow.clear();
  }

  /** The logged calls of one method. */
  calls(method: EngineMethod): EngineCall[] {
    return this.log.filter((c) => c.method === method);
  }

  /** The method names of the log, in order (handy for order assertions). */
  methods(): EngineMethod[] {
    return this.log.map((c) => c.method);
  }

  /** Resolves with the n-th call (1-based) of `method` once it has arrived. */
  nextCall(method: EngineMethod, n = this.calls(method).length + 1): Promise<EngineCall> {
    const have = this.calls(method);
    if (have.length >= n) return Promise.resolve(have[n - 1]!);
    return new Promise((resolve) => this.callWaiters.push({ method, n, resolve }));
  }

  /** Adds a local image. */
  addImage(ref: string): void {
    this.images.add(ref);
  }

  /** The container with this engine id; throws when there is none. */
  container(engineId: string): FakeContainer {
    const c = this.containers.get(engineId);
    if (!c) throw new Error(`fake engine has no container '${engineId}'`);
    return c;
  }

  /** The running container's process exits with `code`: die event, output streams ended. */
  exit(engineId: string, code: number): void {
    const c = this.container(engineId);
    if (c.status !== "running") throw new Error(`container '${engineId}' is ${c.status}, not running`);
    this.die(c, code);
  }

  /** The kernel OOM-kills the container: `oom`, then die with 137, and inspect says oomKilled. */
  oom(engineId: string): void {
    const c = this.container(engineId);
    if (c.status !== "running") throw new Error(`container '${engineId}' is ${c.status}, not running`);
    c.oomKilled = true;
    this.emit("oom", c);
    this.die(c, 137);
  }

  /** Ends every open events stream with an error; later events go to history only until a resubscribe. */
  dropEventStream(): void {
    for (const s of this.subscribers) this.push(s, { error: new EngineUnreachable("fake engine: events stream dropped") });
    this.subscribers.clear();
  }

  /** Forgets past events, as the engine does once its 256-event ring has moved on. */
  forgetHistory(): void {
    this.history.length = 0;
  }

  /** Takes the engine down (every call rejects with EngineUnreachable, streams drop) or back up. */
  setReachable(up: boolean): void {
    this.reachable = up;
    if (!up) this.dropEventStream();
  }

  /** Number of open events streams. */
  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Resolves once at least one events stream is subscribed. */
  subscribed(): Promise<void> {
    if (this.subscribers.size > 0) return Promise.resolve();
    return new Promise((resolve) => this.subscribeWaiters.push(resolve));
  }

  // ---- EnginePort -------------------------------------------------------------------------

  async ping(): Promise<void> {
    await this.call("ping", []);
  }

  async imagePresent(ref: string): Promise<boolean> {
    return this.call("imagePresent", [ref], () => this.images.has(ref));
  }

  async pullImage(ref: string, onProgress: (p: PullProgress) => void, signal: AbortSignal): Promise<void> {
    // The gate sits in the middle of the transfer, so a held pull has already reported progress.
    const record = this.record("pullImage", [ref, onProgress, signal]);
    try {
      this.checkReachable();
      signal.throwIfAborted();
      const lines = this.pullLines;
      for (const line of lines.slice(0, 2)) onProgress({ ...line });
      await this.passGate("pullImage", record, signal);
      for (const line of lines.slice(2)) {
        signal.throwIfAborted();
        onProgress({ ...line });
      }
      signal.throwIfAborted();
      this.images.add(ref);
      this.settle(record);
    } catch (err) {
      this.settle(record, err);
      throw err;
    }
  }

  /**
   * The next create answers `err` to its caller at once (as a request that timed out), while the
   * engine goes on: the container is created when the returned function is called.
   */
  createTimesOut(err: Error): () => string {
    this.lateCreateErrors.push(err);
    return () => {
      const spec = this.lateCreates.shift();
      if (!spec) throw new Error("fake engine: no create has timed out yet");
      return this.createNow(spec);
    };
  }

  private readonly lateCreateErrors: Error[] = [];
  private readonly lateCreates: CreateSpec[] = [];

  async createContainer(spec: CreateSpec): Promise<string> {
    const late = this.lateCreateErrors.shift();
    if (late) {
      return this.call("createContainer", [spec], () => {
        this.lateCreates.push(spec);
        throw late;
      });
    }
    return this.call("createContainer", [spec], () => this.createNow(spec));
  }

  private createNow(spec: CreateSpec): string {
    {
      if (!this.images.has(spec.Image)) throw new EngineRequestFailed(`No such image: ${spec.Image}`, 404);
      for (const other of this.containers.values()) {
        if (other.name === spec.name) throw new EngineRequestFailed(`Conflict. The container name "/${spec.name}" is already in use by container "${other.id}"`, 409);
      }
      const id = (this.nextId++).toString(16).padStart(64, "f");
      const c: FakeContainer = {
        id,
        name: spec.name,
        spec,
        labels: { ...spec.Labels },
        status: "created",
        exitCode: 0,
        oomKilled: false,
        pid: 0,
        ignoresSigterm: false,
        stdout: new PassThrough(),
        stderr: new PassThrough(),
      };
      this.containers.set(id, c);
      this.emit("create", c);
      return id;
    }
  }

  async startContainer(id: string): Promise<void> {
    await this.call("startContainer", [id], () => {
      const c = this.mustHave(id);
      if (c.status === "running") return; // 304: already started
      if (c.status === "exited") throw new EngineRequestFailed(`container ${id} has exited; the fake does not restart`, 409);
      c.status = "running";
      c.pid = this.nextPid++;
      c.startedAt = new Date().toISOString();
      this.emit("start", c);
    });
  }

  async stopContainer(id: string, graceSeconds: number): Promise<void> {
    await this.call("stopContainer", [id, graceSeconds], async () => {
      const c = this.mustHave(id);
      if (c.status !== "running") return;
      this.emit("kill", c, { signal: "15" });
      if (!c.ignoresSigterm) return this.die(c, 143);
      const ms = graceSeconds * this.msPerGraceSecond;
      await new Promise<void>((resolve) => (ms > 0 ? setTimeout(resolve, ms) : setImmediate(resolve)));
      if (c.status !== "running") return;
      this.emit("kill", c, { signal: "9" });
      this.die(c, 137);
    });
  }

  async killContainer(id: string, signal = "SIGKILL"): Promise<void> {
    await this.call("killContainer", [id, signal], () => {
      const c = this.mustHave(id);
      if (c.status !== "running") return;
      const n = SIGNALS[signal] ?? Number(signal);
      if (!Number.isInteger(n) || n <= 0) throw new EngineRequestFailed(`Invalid signal: ${signal}`, 400);
      this.emit("kill", c, { signal: String(n) });
      if (n === 15 && c.ignoresSigterm) return;
      this.die(c, 128 + n);
    });
  }

  async removeContainer(id: string): Promise<void> {
    await this.call("removeContainer", [id], () => {
      // The engine takes a name wherever it takes an id.
      const c = this.containers.get(id) ?? [...this.containers.values()].find((x) => x.name === id);
      if (!c) return; // already gone is fine
      if (c.status === "running") {
        this.emit("kill", c, { signal: "9" });
        this.die(c, 137);
      }
      this.containers.delete(c.id);
      this.emit("destroy", c);
    });
  }

  async updateContainer(id: string, resources: ResourceUpdate): Promise<void> {
    await this.call("updateContainer", [id, resources], () => {
      const c = this.mustHave(id);
      c.resources = { ...c.resources, ...resources };
    });
  }

  async removeImage(ref: string): Promise<"removed" | "in-use" | "missing"> {
    return this.call("removeImage", [ref], () => {
      if (!this.images.has(ref)) return "missing";
      if ([...this.containers.values()].some((c) => c.spec.Image === ref)) return "in-use";
      this.images.delete(ref);
      return "removed";
    });
  }

  // Exec: implemented by the exec work of issue 10 (placeholders keep the port complete meanwhile).
  async createExec(_containerId: string, _spec: ExecCreateSpec): Promise<string> {
    throw new Error("the fake engine does not exec yet");
  }

  async startExec(_execId: string, _options: { tty: boolean; stdin: boolean }, _signal: AbortSignal): Promise<ExecStreams> {
    throw new Error("the fake engine does not exec yet");
  }

  async inspectExec(_execId: string): Promise<ExecState> {
    throw new Error("the fake engine does not exec yet");
  }

  async resizeExec(_execId: string, _size: { rows: number; columns: number }): Promise<void> {
    throw new Error("the fake engine does not exec yet");
  }

  async inspectContainer(id: string, options: { raw?: boolean } = {}): Promise<ContainerInspect | undefined> {
    return this.call("inspectContainer", [id], () => {
      const c = this.containers.get(id);
      if (!c) return undefined;
      const running = c.status === "running";
      // A small engine-shaped JSON (the fields Mesos' tests read of `docker inspect`).
      const raw = options.raw
        ? JSON.stringify({
            Id: c.id,
            Name: `/${c.name}`,
            Config: { Image: c.spec.Image, Labels: { ...c.labels } },
            State: { Status: c.status, Running: running, Pid: running ? c.pid : 0, ExitCode: c.exitCode, OOMKilled: c.oomKilled },
            NetworkSettings: { IPAddress: running ? (c.ipAddresses?.[0] ?? "") : "", Networks: {} },
          })
        : undefined;
      return {
        ...(raw !== undefined ? { raw } : {}),
        id: c.id,
        name: `/${c.name}`,
        image: c.spec.Image,
        labels: { ...c.labels },
        running: c.status === "running",
        status: c.status,
        pid: c.status === "running" ? c.pid : 0,
        exitCode: c.exitCode,
        oomKilled: c.oomKilled,
        startedAt: c.startedAt,
        finishedAt: c.finishedAt,
        ...(c.status === "running" && c.ipAddresses ? { ipAddresses: [...c.ipAddresses] } : {}),
      };
    });
  }

  async listContainers(labels: Record<string, string>): Promise<ContainerSummary[]> {
    return this.call("listContainers", [labels], () =>
      [...this.containers.values()].filter((c) => matches(c.labels, labels)).map((c) => ({ id: c.id, labels: { ...c.labels }, state: c.status })),
    );
  }

  events(labels: Record<string, string>, sinceNano: bigint | undefined, signal: AbortSignal, onSubscribed?: () => void): AsyncIterable<EngineEvent> {
    const record = this.record("events", [labels, sinceNano, signal, onSubscribed]);
    const self = this;
    return (async function* () {
      const sub: Subscriber = { labels, items: [] };
      const onAbort = (): void => sub.wake?.();
      try {
        self.checkReachable();
        signal.throwIfAborted();
        // Register and take the replay in one synchronous step, so nothing falls in between.
        if (sinceNano !== undefined) {
          for (const ev of self.history) if (ev.timeNano >= sinceNano && matches(ev.attributes, labels)) sub.items.push({ ev });
        }
        self.subscribers.add(sub);
        for (const w of self.subscribeWaiters.splice(0)) w();
        signal.addEventListener("abort", onAbort, { once: true });
        onSubscribed?.();
        for (;;) {
          if (signal.aborted) return;
          const item = sub.items.shift();
          if (item === undefined) {
            await new Promise<void>((resolve) => (sub.wake = resolve));
            sub.wake = undefined;
            continue;
          }
          if ("error" in item) throw item.error;
          yield item.ev;
        }
      } catch (err) {
        self.settle(record, err);
        throw err;
      } finally {
        signal.removeEventListener("abort", onAbort);
        self.subscribers.delete(sub);
        if (record.settledAt === undefined) self.settle(record);
      }
    })();
  }

  async followLogs(id: string, signal: AbortSignal, sinceSeconds?: number): Promise<LogStreams> {
    return this.call(
      "followLogs",
      [id, signal, sinceSeconds],
      () => {
        const c = this.mustHave(id);
        const drop = (): void => {
          c.stdout.destroy(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
          c.stderr.destroy(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
        };
        if (signal.aborted) drop();
        else signal.addEventListener("abort", drop, { once: true });
        return { stdout: c.stdout, stderr: c.stderr };
      },
      signal,
    );
  }

  /**
   * The container's output as the engine's attach gives it: what the test writes to the
   * container's streams (ended by `die`), taken before or after the start. Aborting detaches: the
   * attach's streams end (as the adapter's do) and the container's streams are left to a later
   * reader. `failNext("attachOutput", ...)` refuses it.
   */
  async attachOutput(id: string, signal: AbortSignal, tty: boolean): Promise<LogStreams> {
    return this.call(
      "attachOutput",
      [id, signal, tty],
      () => {
        const c = this.mustHave(id);
        const stdout = new PassThrough();
        const stderr = new PassThrough();
        c.stdout.pipe(stdout);
        c.stderr.pipe(stderr);
        const detach = (): void => {
          c.stdout.unpipe(stdout);
          c.stderr.unpipe(stderr);
          stdout.end();
          stderr.end();
        };
        if (signal.aborted) detach();
        else signal.addEventListener("abort", detach, { once: true });
        return { stdout, stderr };
      },
      signal,
    );
  }

  // ---- internals --------------------------------------------------------------------------

  private record(method: EngineMethod, args: unknown[]): EngineCall {
    const call: EngineCall = { method, args, enteredAt: ++this.order };
    this.log.push(call);
    const n = this.calls(method).length;
    for (let i = this.callWaiters.length - 1; i >= 0; i--) {
      const w = this.callWaiters[i]!;
      if (w.method === method && w.n <= n) {
        this.callWaiters.splice(i, 1);
        w.resolve(this.calls(method)[w.n - 1]!);
      }
    }
    return call;
  }

  private settle(call: EngineCall, err?: unknown): void {
    call.settledAt = ++this.order;
    if (err !== undefined) call.error = err;
  }

  /** Logs the call, passes its gate, runs the body; the log notes when it settled. */
  private async call<T>(method: EngineMethod, args: unknown[], body: () => T | Promise<T> = () => undefined as T, signal?: AbortSignal): Promise<T> {
    const record = this.record(method, args);
    try {
      this.checkReachable();
      await this.passGate(method, record, signal);
      const value = await body();
      record.result = value;
      this.settle(record);
      return value;
    } catch (err) {
      this.settle(record, err);
      throw err;
    }
  }

  private async passGate(method: EngineMethod, call: EngineCall, signal?: AbortSignal): Promise<void> {
    const gate = this.gates.get(method)?.shift();
    if (!gate) return;
    this.heldNow.add(gate);
    gate.arrived(call);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<Decision>((resolve) => {
      if (!signal) return;
      onAbort = () => resolve({ ok: false, err: signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)) });
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
    const d = await Promise.race([gate.decision, aborted]);
    this.heldNow.delete(gate);
    if (signal && onAbort) signal.removeEventListener("abort", onAbort);
    if (!d.ok) throw signal?.aborted ? signal.reason : d.err;
  }

  private checkReachable(): void {
    if (!this.reachable) throw new EngineUnreachable("fake engine is down (connect ECONNREFUSED /var/run/docker.sock)");
  }

  private mustHave(id: string): FakeContainer {
    const c = this.containers.get(id);
    if (!c) throw new EngineRequestFailed(`No such container: ${id}`, 404);
    return c;
  }

  private die(c: FakeContainer, code: number): void {
    c.status = "exited";
    c.exitCode = code;
    c.finishedAt = new Date().toISOString();
    if (!c.keepsOutputOpen) {
      c.stdout.end();
      c.stderr.end();
    }
    this.emit("die", c, { exitCode: String(code) });
  }

  private emit(action: string, c: FakeContainer, extra: Record<string, string> = {}): void {
    const now = BigInt(Date.now()) * 1_000_000n;
    this.lastNano = now > this.lastNano ? now : this.lastNano + 1n;
    const ev: EngineEvent = { action, id: c.id, attributes: { ...c.labels, name: c.name, image: c.spec.Image, ...extra }, timeNano: this.lastNano };
    this.history.push(ev);
    if (this.history.length > this.historyLimit) this.history.shift();
    for (const s of this.subscribers) if (matches(ev.attributes, s.labels)) this.push(s, { ev });
  }

  private push(s: Subscriber, item: StreamItem): void {
    s.items.push(item);
    s.wake?.();
  }
}

function matches(have: Record<string, string>, want: Record<string, string>): boolean {
  return Object.entries(want).every(([k, v]) => have[k] === v);
}
