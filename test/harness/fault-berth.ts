import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { credentials, makeGenericClientConstructor, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import type { ContainerEvent, Termination, WatchResponse } from "../../src/gen/berth/v1/containerizer_pb.js";
import { TaskState } from "../../src/gen/mesos/v1/mesos_pb.js";
import { BerthClient } from "./berth-client.js";
import { BerthProcess } from "./process-berth.js";

/** A deterministic pseudo-random source (mulberry32), so a failing schedule can be replayed by its seed. */
export interface SeededRandom {
  /** A number in [0, 1). */
  next(): number;
  /** A whole number in [0, n). */
  int(n: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T;
}

/** mulberry32: tiny, fast and good enough to spread fault points; the same seed gives the same schedule. */
export function seededRandom(seed: number): SeededRandom {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    chance: (p) => next() < p,
    pick: (items) => {
      if (items.length === 0) throw new Error("pick from an empty array");
      return items[Math.floor(next() * items.length)]!;
    },
  };
}

/** The fault schedule's seed: BERTH_FAULT_SEED when set (a whole number), else `fallback`. */
export function faultSeed(fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.BERTH_FAULT_SEED;
  if (raw === undefined || raw === "") return fallback;
  const seed = Number(raw);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`BERTH_FAULT_SEED '${raw}' is not a whole number`);
  return seed;
}

/** How many fault points to run: BERTH_FAULT_POINTS when set, else `ci` under CI and `local` otherwise. */
export function faultPoints(defaults: { ci: number; local: number }, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.BERTH_FAULT_POINTS;
  if (raw === undefined || raw === "") return env.CI ? defaults.ci : defaults.local;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`BERTH_FAULT_POINTS '${raw}' is not a positive whole number`);
  return n;
}

/** The gRPC status code of a failed call, if it is one. */
export function grpcCode(err: unknown): number | undefined {
  const code = (err as Partial<ServiceError> | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/** Rejects with `what` when `promise` has not settled after `ms`. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One agent's `berth serve`, restarted again and again with the same flags, work dir and agent id
 * (the unix socket in the work dir is the address of every life).
 */
export class FaultAgent {
  readonly address: string;
  /** Every process started, oldest first. */
  readonly lives: BerthProcess[] = [];

  constructor(
    readonly workDir: string,
    readonly agentId: string,
    private readonly flags: string[] = [],
  ) {
    this.address = `unix://${path.join(workDir, "berth.sock")}`;
  }

  /** The sandbox folder Berth picks for a container. */
  sandboxes(): string {
    return path.join(this.workDir, "sandboxes");
  }

  /** The current (last started) process. */
  get current(): BerthProcess | undefined {
    return this.lives.at(-1);
  }

  /** Spawns a new life without waiting for it to serve. */
  spawn(): BerthProcess {
    if (this.current?.running) throw new Error(`agent '${this.agentId}' already has a running berth (pid ${this.current.child.pid})`);
    const p = new BerthProcess(["serve", "--work_dir", this.workDir, "--agent_id", this.agentId, ...this.flags]);
    this.lives.push(p);
    return p;
  }

  /** Spawns a new life and waits (at most `timeoutMs`) until it serves; returns a client for it. */
  async start(timeoutMs = 30_000): Promise<BerthClient> {
    const p = this.spawn();
    try {
      await withDeadline(p.serving(), timeoutMs, `berth serve of agent '${this.agentId}' (life ${this.lives.length})`);
    } catch (err) {
      p.kill("SIGKILL");
      throw new Error(`${(err as Error).message}\n---- stderr tail ----\n${this.stderrTail()}`, { cause: err });
    }
    return new BerthClient(this.address);
  }

  /** SIGKILLs the current life (by its own pid) and waits for it to be gone. */
  async kill9(): Promise<void> {
    const p = this.current;
    if (!p) return;
    p.kill("SIGKILL");
    await p.exited;
  }

  /** SIGSTOPs the current life: a berth that reads nothing for a while (a long pause, an overloaded host). */
  pause(): void {
    this.current?.kill("SIGSTOP");
  }

  /** SIGCONTs the current life. */
  resume(): void {
    this.current?.kill("SIGCONT");
  }

  /** SIGTERM and wait: the orderly stop (containers keep running). */
  async stop(): Promise<void> {
    const p = this.current;
    if (!p) return;
    p.kill("SIGTERM");
    await withDeadline(p.exited, 30_000, `SIGTERM stop of agent '${this.agentId}'`).catch(() => this.kill9());
  }

  /** The last lines of the current life's stderr, for failure messages. */
  stderrTail(lines = 40): string {
    return (this.current?.stderr ?? "").split("\n").slice(-lines).join("\n");
  }
}

/** What a Watch of all containers saw during one life of a berth. */
export class EventWitness {
  readonly sequences: bigint[] = [];
  /** The first termination seen per container. */
  readonly terminations = new Map<string, Termination>();
  readonly events: ContainerEvent[] = [];
  private readonly stream: ClientReadableStream<WatchResponse>;
  private waiters: { match: (e: ContainerEvent) => boolean; resolve: () => void; reject: (err: Error) => void }[] = [];
  /** Why the stream ended, once it has: no later event can match a waiter then. */
  private ended: Error | undefined;

  constructor(client: BerthClient) {
    this.stream = client.watch();
    this.stream.on("data", (r: WatchResponse) => {
      const e = r.event!;
      this.events.push(e);
      this.sequences.push(e.sequence);
      if (e.kind.case === "termination" && e.containerId && !this.terminations.has(e.containerId.value)) {
        this.terminations.set(e.containerId.value, e.kind.value);
      }
      for (const w of [...this.waiters]) {
        if (w.match(e)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
    // The stream breaks when the process is killed: that is the point, not an error — but a wait
    // for an event that can no longer come fails, saying what the stream saw.
    const finish = (why: string) => {
      this.ended ??= new Error(`the Watch stream ${why} before the awaited event, after ${this.events.length} events`);
      for (const w of this.waiters.splice(0)) w.reject(this.ended);
    };
    this.stream.on("error", (err: Error) => finish(`failed (${err.message})`));
    this.stream.on("end", () => finish("ended"));
  }

  /** Resolves on the first event (seen or to come) matching `match`; rejects if the stream ends first. */
  until(match: (e: ContainerEvent) => boolean): Promise<void> {
    if (this.events.some(match)) return Promise.resolve();
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => this.waiters.push({ match, resolve, reject }));
  }

  get min(): bigint | undefined {
    return this.sequences.reduce<bigint | undefined>((m, s) => (m === undefined || s < m ? s : m), undefined);
  }

  get max(): bigint | undefined {
    return this.sequences.reduce<bigint | undefined>((m, s) => (m === undefined || s > m ? s : m), undefined);
  }

  close(): void {
    this.stream.cancel();
  }
}

/** A termination in one short line, for messages. */
export function describeTermination(t: Termination | undefined): string {
  if (!t) return "(none)";
  const ct = t.containerTermination;
  return `${TaskState[ct?.state ?? 0]} reason=${ct?.reason ?? "-"} exit=${t.exitCode ?? "-"} signal=${t.signal ?? "-"} '${ct?.message ?? ""}'`;
}

const HealthClient = makeGenericClientConstructor(healthService, "Health");

/** One grpc.health.v1.Health Check of the server ("") at `address`; "UNREACHABLE" when the call fails. */
export async function healthCheck(address: string, timeoutMs = 5000): Promise<string> {
  const client = new HealthClient(address, credentials.createInsecure());
  try {
    const fn = (client as unknown as Record<string, Function>).Check!.bind(client);
    return await new Promise<string>((resolve) =>
      fn({ service: "" }, { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, res: { status: string }) => resolve(err ? "UNREACHABLE" : res.status)),
    );
  } finally {
    client.close();
  }
}

/** A static file server on 127.0.0.1 for fetched URIs. */
export interface FileServer {
  base: string;
  close(): Promise<void>;
}

/** Serves `files` (path → content) on 127.0.0.1 at a kernel-chosen port. */
export async function startFileServer(files: Record<string, string>): Promise<FileServer> {
  const server: Server = createServer((req, res) => {
    const body = files[req.url ?? ""];
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": Buffer.byteLength(body) }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Counts of one "recovery done" log line (RecoveryReport as logged). */
export type RecoveryCounts = Record<"adopted" | "exitedMeanwhile" | "vanished" | "abandoned" | "restoredTerminated" | "orphansRemoved" | "unreadable", number>;

/** Adds up the "recovery done" lines every life of `agent` logged: which recovery paths a run took. */
export function recoveryTotals(agent: FaultAgent): RecoveryCounts {
  const totals: RecoveryCounts = { adopted: 0, exitedMeanwhile: 0, vanished: 0, abandoned: 0, restoredTerminated: 0, orphansRemoved: 0, unreadable: 0 };
  for (const life of agent.lives) {
    for (const line of life.stderr.split("\n")) {
      if (!line.includes('"recovery done"')) continue;
      const parsed = JSON.parse(line) as Partial<RecoveryCounts>;
      for (const key of Object.keys(totals) as (keyof RecoveryCounts)[]) totals[key] += Number(parsed[key] ?? 0);
    }
  }
  return totals;
}
