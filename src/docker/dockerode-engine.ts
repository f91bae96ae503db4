/**
 * The dockerode adapter: implements the engine port against a real Docker engine.
 *
 * Two kinds of calls are kept apart on purpose. Short calls (ping, inspect, create, start, stop,
 * kill, remove, list) each get their own deadline, because `docker inspect` has been seen to hang
 * forever and one hung call must not wedge a launch. Long-lived streams (pull, events, logs) get
 * no deadline at all, only the caller's AbortSignal; a timeout there would silently cap big pulls.
 * The modem's own global `timeout` is therefore never set (it would apply to streams too).
 */
import Docker from "dockerode";
import { PassThrough, Writable, type Duplex, type Readable } from "node:stream";
import {
  attachEndCheck,
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
  type RegistryAuth,
  type ResourceUpdate,
} from "./engine-port.js";
import { NdjsonSplitter, parseJsonLine } from "./ndjson.js";
import { copyRawOutput, demuxOutput } from "./log-demux.js";

/** How to reach the engine and how long a short call may take. */
export interface DockerodeEngineOptions {
  /** Unix socket path; used when `host` is not given. Defaults to /var/run/docker.sock. */
  socketPath?: string;
  /** DOCKER_HOST-style address: `unix:///var/run/docker.sock` or `tcp://127.0.0.1:2375`. */
  host?: string;
  /** Deadline of every short call (stop gets the grace period on top). */
  requestTimeoutMs: number;
}

/** Events buffered between the socket and a slow consumer before the stream is declared lost. */
const MAX_QUEUED_EVENTS = 10_000;

/** The engine prints this for a container that never started or never finished. */
const ZERO_TIME = "0001-01-01T00:00:00Z";

// @types/dockerode does not declare `abortSignal` on every options type, although dockerode 5
// forwards it for these calls; these local shapes widen exactly what is passed.
type WithSignal<T> = T & { abortSignal?: AbortSignal };

/** The parts of docker-modem used here (its published types lag behind the library). */
interface ModemLike {
  dial(
    options: {
      path: string;
      method: string;
      options?: Record<string, unknown>;
      abortSignal?: AbortSignal;
      statusCodes: Record<number, boolean | string>;
      isStream?: boolean;
    },
    callback: (err: unknown, data: unknown) => void,
  ): void;
  demuxStream(source: Readable, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): void;
}

/** What dockerode errors carry for an HTTP answer. */
interface DockerodeHttpError {
  statusCode?: number;
  json?: unknown;
  message?: string;
  code?: string;
}

/** The Engine API JSON of `GET /containers/{id}/json`, the fields read here. */
interface RawInspect {
  Id: string;
  Name?: string;
  Config?: { Image?: string; Labels?: Record<string, string> | null; Tty?: boolean };
  State?: {
    Running?: boolean;
    Status?: string;
    Pid?: number;
    ExitCode?: number;
    OOMKilled?: boolean;
    StartedAt?: string;
    FinishedAt?: string;
  };
  NetworkSettings?: {
    IPAddress?: string;
    GlobalIPv6Address?: string;
    Networks?: Record<string, { IPAddress?: string; GlobalIPv6Address?: string } | null> | null;
  };
}

/** Implements EnginePort with dockerode (see the file comment for the timeout policy). */
export class DockerodeEngine implements EnginePort {
  private readonly docker: Docker;
  private readonly modem: ModemLike;
  /** Where the engine is, for error messages. */
  readonly endpoint: string;
  private readonly requestTimeoutMs: number;

  constructor(opts: DockerodeEngineOptions) {
    if (!(opts.requestTimeoutMs > 0)) {
      throw new Error(`requestTimeoutMs must be a positive number, got ${String(opts.requestTimeoutMs)}`);
    }
    this.requestTimeoutMs = opts.requestTimeoutMs;
    // Every connection field is set explicitly (undefined included) so that docker-modem's
    // defaults from DOCKER_HOST / DOCKER_CLIENT_TIMEOUT in the environment cannot override the
    // configured address or put a global idle timeout on the streams.
    const base = {
      host: undefined,
      port: undefined,
      socketPath: undefined,
      timeout: undefined,
      protocol: undefined,
      ca: undefined,
      cert: undefined,
      key: undefined,
    };
    const address = parseAddress(opts);
    this.endpoint = address.endpoint;
    this.docker = new Docker({ ...base, ...address.docker } as Docker.DockerOptions);
    this.modem = this.docker.modem as unknown as ModemLike;
  }

  async ping(): Promise<void> {
    await this.short("ping", this.requestTimeoutMs, (abortSignal) =>
      // dockerode 5 takes options on ping; its types only know the no-argument form.
      (this.docker as unknown as { ping(o: WithSignal<object>): Promise<unknown> }).ping({ abortSignal }),
    );
  }

  async imagePresent(ref: string): Promise<boolean> {
    try {
      // Image.inspect in dockerode does not forward abortSignal, so this one goes through the
      // modem directly (same path and status codes).
      await this.short(`inspect image '${ref}'`, this.requestTimeoutMs, (abortSignal) =>
        this.dial({
          path: `/images/${ref}/json`,
          method: "GET",
          abortSignal,
          statusCodes: { 200: true, 404: "no such image", 500: "server error" },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof EngineRequestFailed && err.statusCode === 404) return false;
      throw err;
    }
  }

  async pullImage(ref: string, onProgress: (p: PullProgress) => void, signal: AbortSignal, auth?: RegistryAuth): Promise<void> {
    const op = `pull of '${ref}'`;
    if (signal.aborted) throw signal.reason;
    let stream: Readable;
    try {
      // dockerode sends `authconfig` as the X-Registry-Auth header (never in the URL); a fresh
      // object each time, since docker-modem deletes the field from the options it is given.
      const options = auth === undefined ? { abortSignal: signal } : { abortSignal: signal, authconfig: { ...auth } };
      stream = (await this.docker.pull(ref, options as WithSignal<object>)) as Readable;
    } catch (err) {
      // An abort before the response surfaces as ABORT_ERR; the caller wants its own reason.
      if (signal.aborted) throw signal.reason;
      throw this.mapError(op, err);
    }
    // http.request destroys the request on abort, but the already-delivered response stream is
    // destroyed here too so that iteration below stops at once.
    const onAbort = (): void => {
      stream.destroy();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const splitter = new NdjsonSplitter();
    const handle = (line: string): void => {
      const obj = parseJsonLine(line);
      if (obj === undefined) return;
      // followProgress reports success when the stream ends with an error line, so every line
      // is checked for an error here.
      const error = engineLineError(obj);
      if (error !== undefined) {
        throw new EngineRequestFailed(`${op} failed: ${error}`, 500);
      }
      onProgress(toPullProgress(obj));
    };
    try {
      for await (const chunk of stream) {
        for (const line of splitter.push(chunk as Buffer)) handle(line);
      }
      for (const line of splitter.end()) handle(line);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (err instanceof EngineRequestFailed) throw err;
      throw this.mapError(op, err);
    } finally {
      signal.removeEventListener("abort", onAbort);
      stream.destroy();
    }
    if (signal.aborted) throw signal.reason;
  }

  async createContainer(spec: CreateSpec): Promise<string> {
    const { name, ...body } = spec;
    // `_query`/`_body` keep the name in the query string and the spec in the body only
    // (dockerode would otherwise put the whole spec into the URL as well).
    const created = await this.short(`create container '${name}'`, this.requestTimeoutMs, (abortSignal) =>
      this.docker.createContainer({ _query: { name }, _body: body, abortSignal } as unknown as Docker.ContainerCreateOptions),
    );
    return created.id;
  }

  async startContainer(id: string): Promise<void> {
    try {
      await this.short(`start container '${id}'`, this.requestTimeoutMs, (abortSignal) =>
        this.docker.getContainer(id).start({ abortSignal }),
      );
    } catch (err) {
      if (isStatus(err, 304)) return; // already started
      throw err;
    }
  }

  async stopContainer(id: string, graceSeconds: number): Promise<void> {
    const t = Math.max(0, Math.ceil(graceSeconds));
    try {
      // The engine answers only after the container stopped, i.e. after up to `t` seconds.
      await this.short(`stop container '${id}'`, t * 1000 + this.requestTimeoutMs, (abortSignal) =>
        this.docker.getContainer(id).stop({ t, abortSignal } as WithSignal<object>),
      );
    } catch (err) {
      if (isStatus(err, 304) || isStatus(err, 404)) return; // already stopped, or gone
      throw err;
    }
  }

  async killContainer(id: string, signal = "SIGKILL"): Promise<void> {
    try {
      await this.short(`kill container '${id}' with ${signal}`, this.requestTimeoutMs, (abortSignal) =>
        this.docker.getContainer(id).kill({ signal, abortSignal } as WithSignal<object>),
      );
    } catch (err) {
      if (isStatus(err, 304) || isStatus(err, 404)) return;
      // 409 is also used for other conflicts (e.g. a paused container); only "not running" is done.
      if (isStatus(err, 409) && /not running/i.test((err as Error).message)) return;
      throw err;
    }
  }

  async removeContainer(id: string): Promise<void> {
    try {
      await this.short(`remove container '${id}'`, this.requestTimeoutMs, (abortSignal) =>
        this.docker.getContainer(id).remove({ force: true, v: true, abortSignal } as WithSignal<object>),
      );
    } catch (err) {
      if (isStatus(err, 404)) return;
      // A concurrent remove of the same container is already doing the job.
      if (isStatus(err, 409) && /already in progress/i.test((err as Error).message)) return;
      throw err;
    }
  }

  async updateContainer(id: string, resources: ResourceUpdate): Promise<void> {
    await this.short(`update container '${id}'`, this.requestTimeoutMs, (abortSignal) =>
      this.docker.getContainer(id).update({ ...resources, abortSignal } as WithSignal<object>),
    );
  }

  async removeImage(ref: string): Promise<"removed" | "in-use" | "missing"> {
    try {
      await this.short(`remove image '${ref}'`, this.requestTimeoutMs, (abortSignal) =>
        this.docker.getImage(ref).remove({ abortSignal } as WithSignal<object>),
      );
      return "removed";
    } catch (err) {
      if (isStatus(err, 404)) return "missing";
      if (isStatus(err, 409)) return "in-use";
      throw err;
    }
  }

  /**
   * Creates an exec. A container that is not running (or is paused) answers 409, kept as such so
   * the domain can say FAILED_PRECONDITION; a missing container answers 404.
   */
  async createExec(containerId: string, spec: ExecCreateSpec): Promise<string> {
    const body = {
      ...spec,
      AttachStdin: spec.AttachStdin === true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: spec.Tty === true,
    };
    const created = await this.short(`create exec in container '${containerId}'`, this.requestTimeoutMs, (abortSignal) =>
      this.docker.getContainer(containerId).exec({ ...body, abortSignal } as WithSignal<Docker.ExecCreateOptions>),
    );
    return created.id;
  }

  /**
   * Starts an exec on a hijacked connection (the engine upgrades `POST /exec/{id}/start` to a raw
   * stream). Without a TTY the output is multiplexed and split here with the same back-pressure
   * aware demuxer as the logs (docker-modem's demuxStream writes without waiting for a slow
   * reader). `stdin.end()` half-closes the connection, which the engine turns into EOF on the
   * process's stdin. The signal (and the consumer destroying stdout) closes the connection; it
   * never kills the process.
   */
  async startExec(execId: string, options: { tty: boolean; stdin: boolean }, signal: AbortSignal): Promise<ExecStreams> {
    const op = `start exec '${execId}'`;
    if (signal.aborted) throw signal.reason;
    const exec = this.docker.getExec(execId);
    // The upgrade itself is short; the stream it yields lives as long as the process.
    let socket: Duplex;
    try {
      socket = (await this.short(op, this.requestTimeoutMs, (abortSignal) => {
        const both = AbortSignal.any([abortSignal, signal]);
        return exec.start({ hijack: true, stdin: options.stdin, _body: { Detach: false, Tty: options.tty }, abortSignal: both } as WithSignal<Docker.ExecStartOptions>);
      })) as unknown as Duplex;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw err;
    }
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      signal.removeEventListener("abort", onAbort);
      stdout.end();
      stderr.end();
      socket.destroy();
    };
    const onAbort = (): void => {
      finish();
    };
    if (options.tty) copyRawOutput(socket, stdout);
    else demuxOutput(socket, stdout, stderr);
    socket.on("end", finish);
    socket.on("close", finish);
    socket.on("error", finish);
    // A consumer that gives up on the output gives up on the connection.
    stdout.on("close", () => {
      if (!stdout.writableFinished) finish();
    });
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    let stdin: Writable | undefined;
    if (options.stdin) {
      stdin = new Writable({
        write(chunk: Buffer, _enc, cb) {
          if (done || socket.destroyed || socket.writableEnded) return cb();
          socket.write(chunk, (err) => cb(done ? undefined : err));
        },
        final(cb) {
          if (!done && !socket.destroyed && !socket.writableEnded) socket.end();
          cb();
        },
      });
    }
    return { stdout, stderr, stdin };
  }

  async inspectExec(execId: string): Promise<ExecState> {
    const raw = (await this.short(`inspect exec '${execId}'`, this.requestTimeoutMs, (abortSignal) =>
      this.docker.getExec(execId).inspect({ abortSignal } as WithSignal<object>),
    )) as unknown as { Running?: boolean; Pid?: number; ExitCode?: number | null };
    const state: ExecState = { running: raw.Running === true, pid: raw.Pid ?? 0 };
    if (raw.Running !== true && typeof raw.ExitCode === "number") state.exitCode = raw.ExitCode;
    return state;
  }

  async resizeExec(execId: string, size: { rows: number; columns: number }): Promise<void> {
    await this.short(`resize exec '${execId}'`, this.requestTimeoutMs, (abortSignal) =>
      this.docker.getExec(execId).resize({ h: size.rows, w: size.columns, abortSignal } as WithSignal<{ h: number; w: number }>),
    );
  }

  async inspectContainer(id: string, options: { raw?: boolean } = {}): Promise<ContainerInspect | undefined> {
    const raw = await this.rawInspect(id);
    if (raw === undefined) return undefined;
    const inspect = toInspect(raw);
    if (options.raw) inspect.raw = JSON.stringify(raw);
    return inspect;
  }

  async listContainers(labels: Record<string, string>): Promise<ContainerSummary[]> {
    const rows = await this.short("list containers", this.requestTimeoutMs, (abortSignal) =>
      this.docker.listContainers({ all: true, filters: { label: labelFilters(labels) }, abortSignal } as WithSignal<object>),
    );
    return rows.map((r) => ({ id: r.Id, labels: r.Labels ?? {}, state: r.State }));
  }

  events(
    labels: Record<string, string>,
    sinceNano: bigint | undefined,
    signal: AbortSignal,
    onSubscribed?: () => void,
  ): AsyncIterable<EngineEvent> {
    return this.eventStream({ type: ["container"], label: labelFilters(labels) }, sinceNano, signal, onSubscribed);
  }

  imageEvents(signal: AbortSignal, onSubscribed?: () => void): AsyncIterable<EngineEvent> {
    return this.eventStream({ type: ["image"], event: ["delete", "untag"] }, undefined, signal, onSubscribed);
  }

  private async *eventStream(
    filters: Record<string, string[]>,
    sinceNano: bigint | undefined,
    signal: AbortSignal,
    onSubscribed?: () => void,
  ): AsyncIterable<EngineEvent> {
    if (signal.aborted) return;
    // Own controller so that a consumer leaving the loop early also drops the connection.
    const ac = new AbortController();
    const onAbort = (): void => ac.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    const query: WithSignal<Record<string, unknown>> = { filters, abortSignal: ac.signal };
    if (sinceNano !== undefined) query.since = nanosToSince(sinceNano);

    let stream: Readable;
    try {
      stream = (await this.docker.getEvents(query as Docker.GetEventsOptions)) as unknown as Readable;
    } catch (err) {
      signal.removeEventListener("abort", onAbort);
      if (signal.aborted) return;
      throw this.mapError("events", err);
    }
    onSubscribed?.();

    // The engine drops a subscriber that does not read for ~100 ms, so the socket is drained in
    // flowing mode into a queue regardless of how fast the consumer iterates.
    const queue: EngineEvent[] = [];
    let head = 0;
    let closed = false;
    let failure: unknown;
    let wake: (() => void) | undefined;
    const notify = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const splitter = new NdjsonSplitter();
    stream.on("data", (chunk: Buffer) => {
      for (const line of splitter.push(chunk)) {
        const ev = toEngineEvent(line);
        if (ev !== undefined) queue.push(ev);
      }
      if (queue.length - head > MAX_QUEUED_EVENTS) {
        failure = new Error(`events consumer fell ${MAX_QUEUED_EVENTS} events behind; dropping the stream`);
        stream.destroy();
      }
      notify();
    });
    stream.on("end", () => {
      for (const line of splitter.end()) {
        const ev = toEngineEvent(line);
        if (ev !== undefined) queue.push(ev);
      }
    });
    stream.on("error", (err) => {
      failure ??= err;
    });
    stream.on("close", () => {
      closed = true;
      notify();
    });
    ac.signal.addEventListener("abort", notify, { once: true });

    try {
      for (;;) {
        if (signal.aborted) return;
        if (head < queue.length) {
          const ev = queue[head++]!;
          if (head > 1024 && head * 2 > queue.length) {
            queue.splice(0, head);
            head = 0;
          }
          yield ev;
          continue;
        }
        if (closed) {
          if (failure !== undefined && !signal.aborted) throw this.mapError("events", failure);
          return;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      ac.abort();
      stream.destroy();
    }
  }

  /**
   * Follows the container's output from its start. Whether the output is multiplexed is read
   * once from the container's `Config.Tty` (a TTY container has one raw stream, which goes to
   * stdout; stderr then ends right away with it).
   */
  async followLogs(id: string, signal: AbortSignal, sinceSeconds?: number, knownTty?: boolean): Promise<LogStreams> {
    if (signal.aborted) throw signal.reason;
    let tty = knownTty;
    if (tty === undefined) {
      const raw = await this.rawInspect(id);
      if (raw === undefined) throw new EngineRequestFailed(`follow logs of container '${id}': no such container`, 404);
      tty = raw.Config?.Tty === true;
    }
    let source: Readable;
    try {
      source = (await this.docker
        .getContainer(id)
        .logs({
          follow: true,
          stdout: true,
          stderr: true,
          // The engine takes a fractional Unix time here; dockerode passes it through as a string.
          ...(sinceSeconds !== undefined ? { since: sinceSeconds.toFixed(9) } : {}),
          abortSignal: signal,
        } as unknown as WithSignal<{ follow: true }>)) as unknown as Readable;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw this.mapError(`follow logs of container '${id}'`, err);
    }
    return outputStreams(source, tty, signal, () => new Error(`log stream of container '${id}' closed before its end`));
  }

  /**
   * Attaches to a container's output (`POST /containers/{id}/attach?stream=1&stdout=1&stderr=1`,
   * upgraded to a raw connection). The engine subscribes the connection to the container's output
   * before it answers, so an attach answered before the start misses no byte; the streams end when
   * the container's output is over. The connection carries no end marker of its own (the engine
   * just closes it, at an exit as at an engine shutdown), so its end is checked with an inspect:
   * a container still running (or an engine that does not answer) means the stream broke. When
   * the caller already knows the container exited (`exited` settled: the `die` event came first,
   * as it usually does), that inspect is skipped; one in flight when the exit becomes known is not
   * waited for.
   */
  async attachOutput(id: string, signal: AbortSignal, tty: boolean, exited?: Promise<unknown>): Promise<LogStreams> {
    const op = `attach to the output of container '${id}'`;
    if (signal.aborted) throw signal.reason;
    // The upgrade is short; the stream it yields lives as long as the container's output.
    let socket: Duplex;
    try {
      socket = (await this.short(op, this.requestTimeoutMs, (abortSignal) =>
        this.docker.getContainer(id).attach({ stream: true, stdout: true, stderr: true, hijack: true, abortSignal: AbortSignal.any([abortSignal, signal]) } as WithSignal<Docker.ContainerAttachOptions>),
      )) as unknown as Duplex;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw err;
    }
    const checkEnd = attachEndCheck(exited, () =>
      this.inspectContainer(id).then(
        (state) => (state?.running === true ? new Error(`attach stream of container '${id}' ended while the container still runs`) : undefined),
        (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
      ),
    );
    // Nothing is ever written to the container: its stdin is not attached.
    return outputStreams(socket, tty, signal, undefined, checkEnd);
  }

  private async rawInspect(id: string): Promise<RawInspect | undefined> {
    try {
      return (await this.short(`inspect container '${id}'`, this.requestTimeoutMs, (abortSignal) =>
        this.docker.getContainer(id).inspect({ abortSignal }),
      )) as unknown as RawInspect;
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  /** A promise around modem.dial, for the few calls dockerode does not make abortable. */
  private dial(options: Parameters<ModemLike["dial"]>[0]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.modem.dial(options, (err, data) => (err ? reject(err) : resolve(data)));
    });
  }

  /**
   * Runs one short call with its own deadline. The timer both aborts the HTTP request and
   * rejects, so a call that ignores its signal still cannot hang the caller.
   */
  private async short<T>(op: string, timeoutMs: number, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new EngineUnreachable(
          `engine at ${this.endpoint} did not answer ${op} within ${timeoutMs} ms`,
        );
        ac.abort(err);
        reject(err);
      }, timeoutMs);
    });
    try {
      return await Promise.race([call(ac.signal), deadline]);
    } catch (err) {
      if (ac.signal.aborted && ac.signal.reason instanceof EngineUnreachable) throw ac.signal.reason;
      throw this.mapError(op, err);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Engine HTTP answers become EngineRequestFailed; everything else means no engine. */
  private mapError(op: string, err: unknown): Error {
    if (err instanceof EngineRequestFailed || err instanceof EngineUnreachable) return err;
    const e = (err ?? {}) as DockerodeHttpError;
    if (typeof e.statusCode === "number") {
      return new EngineRequestFailed(`engine answered ${e.statusCode} to ${op}: ${engineMessage(e)}`, e.statusCode);
    }
    const cause = [e.code, e.message ?? String(err)].filter((s) => s !== undefined && s !== "").join(" ");
    return new EngineUnreachable(`engine at ${this.endpoint} unreachable during ${op}: ${cause}`, { cause: err });
  }
}

/** Turns the configured address into dockerode options and a printable endpoint. */
function parseAddress(opts: DockerodeEngineOptions): { docker: Docker.DockerOptions; endpoint: string } {
  if (opts.host !== undefined && opts.host !== "") {
    const host = opts.host;
    if (host.startsWith("unix://")) {
      const socketPath = host.slice("unix://".length);
      if (socketPath === "") throw new Error(`host '${host}' names no socket path`);
      return { docker: { socketPath }, endpoint: host };
    }
    let url: URL;
    try {
      url = new URL(host.includes("://") ? host : `tcp://${host}`);
    } catch {
      throw new Error(`host '${host}' is not like unix:///var/run/docker.sock or tcp://127.0.0.1:2375`);
    }
    if (url.protocol !== "tcp:" && url.protocol !== "http:") {
      throw new Error(`host '${host}' uses scheme '${url.protocol}', expected unix: or tcp:`);
    }
    if (url.hostname === "" || url.port === "") {
      throw new Error(`host '${host}' needs a host name and a port, e.g. tcp://127.0.0.1:2375`);
    }
    return {
      docker: { host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port), protocol: "http" },
      endpoint: host,
    };
  }
  const socketPath = opts.socketPath ?? "/var/run/docker.sock";
  return { docker: { socketPath }, endpoint: `unix://${socketPath}` };
}

function isStatus(err: unknown, status: number): boolean {
  return err instanceof EngineRequestFailed && err.statusCode === status;
}

/** The engine's own message (`json.message`), else dockerode's text. */
function engineMessage(e: DockerodeHttpError): string {
  const json = e.json;
  if (json !== null && typeof json === "object" && !Buffer.isBuffer(json)) {
    const m = (json as { message?: unknown }).message;
    if (typeof m === "string" && m !== "") return m;
  }
  if (typeof json === "string" && json.trim() !== "") return json.trim();
  // For streamed calls dockerode has no json; its message wraps the engine's text in a prefix.
  return (e.message ?? "unknown error").replace(/^\(HTTP code \d+\) [^-]*- /, "").trim();
}

/** `k=v` label filters as the Engine API expects them. */
function labelFilters(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`);
}

/** The engine's `since` accepts `seconds.nanoseconds`; a bigint keeps full precision. */
export function nanosToSince(nanos: bigint): string {
  const sec = nanos / 1_000_000_000n;
  const frac = nanos % 1_000_000_000n;
  return `${sec}.${frac.toString().padStart(9, "0")}`;
}

function engineLineError(obj: Record<string, unknown>): string | undefined {
  const detail = obj.errorDetail as { message?: unknown } | undefined;
  if (typeof obj.error === "string" && obj.error !== "") return obj.error;
  if (detail !== undefined && detail !== null) {
    return typeof detail.message === "string" && detail.message !== "" ? detail.message : JSON.stringify(detail);
  }
  return undefined;
}

function toPullProgress(obj: Record<string, unknown>): PullProgress {
  const p: PullProgress = { status: typeof obj.status === "string" ? obj.status : "" };
  if (typeof obj.id === "string") p.layer = obj.id;
  const detail = obj.progressDetail as { current?: unknown; total?: unknown } | undefined;
  if (detail !== undefined && detail !== null) {
    if (typeof detail.current === "number") p.current = detail.current;
    if (typeof detail.total === "number") p.total = detail.total;
  }
  return p;
}

/** One `/events` line as an EngineEvent; undefined for lines that are not container events. */
function toEngineEvent(line: string): EngineEvent | undefined {
  const obj = parseJsonLine(line);
  if (obj === undefined) return undefined;
  const actor = (obj.Actor ?? {}) as { ID?: unknown; Attributes?: Record<string, string> | null };
  const id = typeof actor.ID === "string" ? actor.ID : typeof obj.id === "string" ? obj.id : undefined;
  const action = typeof obj.Action === "string" ? obj.Action : typeof obj.status === "string" ? obj.status : undefined;
  if (id === undefined || action === undefined) return undefined;
  // timeNano exceeds 2^53: JSON.parse rounds it, so the digits are taken from the raw text.
  const m = /"timeNano"\s*:\s*(\d+)/.exec(line);
  let timeNano: bigint;
  if (m !== null) timeNano = BigInt(m[1]!);
  else if (typeof obj.time === "number") timeNano = BigInt(Math.trunc(obj.time)) * 1_000_000_000n;
  else timeNano = 0n;
  return { action, id, attributes: { ...(actor.Attributes ?? {}) }, timeNano };
}

function toInspect(raw: RawInspect): ContainerInspect {
  const s = raw.State ?? {};
  const out: ContainerInspect = {
    id: raw.Id,
    name: (raw.Name ?? "").replace(/^\//, ""),
    image: raw.Config?.Image ?? "",
    labels: raw.Config?.Labels ?? {},
    running: s.Running === true,
    status: s.Status ?? "",
    pid: s.Pid ?? 0,
    exitCode: s.ExitCode ?? 0,
    oomKilled: s.OOMKilled === true,
  };
  if (s.StartedAt !== undefined && s.StartedAt !== ZERO_TIME) out.startedAt = s.StartedAt;
  if (s.FinishedAt !== undefined && s.FinishedAt !== ZERO_TIME) out.finishedAt = s.FinishedAt;
  const ips = ipAddressesOf(raw.NetworkSettings);
  if (ips.length > 0) out.ipAddresses = ips;
  return out;
}

/** Every address of every network the container is on, without duplicates or empties. */
function ipAddressesOf(net: RawInspect["NetworkSettings"]): string[] {
  if (!net) return [];
  const all = [net.IPAddress, net.GlobalIPv6Address];
  for (const n of Object.values(net.Networks ?? {})) all.push(n?.IPAddress, n?.GlobalIPv6Address);
  return [...new Set(all.filter((ip): ip is string => typeof ip === "string" && ip !== ""))];
}

/**
 * Splits an engine output stream (multiplexed, or raw with a TTY) into stdout and stderr with
 * back-pressure. `interrupted` says whether it broke before its end: `broken()` makes the error
 * for a stream that closed or failed without its end; `checkEnd()`, when given, judges an end
 * that carries no end marker of its own.
 */
function outputStreams(source: Readable, tty: boolean, signal: AbortSignal, broken?: () => Error, checkEnd?: () => Promise<Error | undefined>): LogStreams {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let done = false;
  let ended = false;
  let reportInterruption!: (err: Error | undefined | Promise<Error | undefined>) => void;
  const interrupted = new Promise<Error | undefined>((resolve) => (reportInterruption = resolve));
  const finish = (err?: Error): void => {
    if (done) return;
    done = true;
    signal.removeEventListener("abort", onAbort);
    if (signal.aborted) reportInterruption(undefined);
    else if (ended) reportInterruption(checkEnd?.() ?? undefined);
    else if (checkEnd && err === undefined) reportInterruption(checkEnd());
    else reportInterruption(err ?? broken?.() ?? new Error("output stream closed before its end"));
    stdout.end();
    stderr.end();
    // A raw (upgraded) connection is half-open on Berth's side: close it with the stream.
    if (checkEnd) source.destroy();
  };
  const onAbort = (): void => {
    source.destroy();
    finish();
  };
  // Both honour the capture's back-pressure (the source pauses while a sandbox file is behind).
  if (tty) copyRawOutput(source, stdout);
  else demuxOutput(source, stdout, stderr);
  // The handlers write synchronously on each chunk, so by 'end' everything has been written.
  source.on("end", () => {
    ended = true;
    finish();
  });
  source.on("close", () => finish());
  source.on("error", (err: Error) => finish(err));
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return { stdout, stderr, interrupted };
}
