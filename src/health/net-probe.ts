import { spawn } from "node:child_process";
import { open, type FileHandle } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { statusIsHealthy, type HealthProbeSpec } from "./health-check.js";
import type { Probe, ProbeOutcome } from "./health-checker.js";

/** Runs a task when one of a bounded number of slots is free (the containerizer's gate fits). */
export type Slots = <T>(task: () => Promise<T>, options?: { signal?: AbortSignal }) => Promise<T>;

const PROBE_PROGRAM = fileURLToPath(new URL("./net-probe-main.js", import.meta.url));
/** The probe prints one short JSON line; anything longer is not the probe talking. */
const MAX_OUTPUT = 4096;
/** The probe's own deadline when the check has no timeout (its parent normally kills it first). */
const DEFAULT_DEADLINE_MS = 60_000;

/**
 * A pinned handle on a container's network namespace: `/proc/<pid>/ns/net` opened once, so every
 * probe enters the namespace the container had when it was opened, even if the pid is reused
 * after the container dies. Opened lazily (and re-tried at the next probe when it fails).
 */
export class NetnsPin {
  private handle: FileHandle | undefined;
  private opening: Promise<FileHandle> | undefined;
  private closed = false;

  constructor(
    /** The container's init pid, from the engine. */
    private readonly locate: () => Promise<number>,
    /** True when `pid` is still the container's running init (read again after opening). */
    private readonly confirm: (pid: number) => Promise<boolean>,
  ) {}

  /** The open namespace file's descriptor. */
  async fd(): Promise<number> {
    if (this.closed) throw new Error("network namespace handle closed");
    if (this.handle) return this.handle.fd;
    this.opening ??= this.open().finally(() => (this.opening = undefined));
    const handle = await this.opening;
    return handle.fd;
  }

  private async open(): Promise<FileHandle> {
    const pid = await this.locate();
    if (!(pid > 0)) throw new Error(`the container has no running process (pid ${pid})`);
    const handle = await open(`/proc/${pid}/ns/net`, "r").catch((err: NodeJS.ErrnoException) => {
      throw new Error(`cannot open the network namespace of pid ${pid}: ${err.code ?? err.message}`);
    });
    // Between the engine's answer and the open, the container may have died and its pid gone to
    // another process: only a pid the engine still names after the open is trusted.
    if (this.closed || !(await this.confirm(pid).catch(() => false))) {
      await handle.close();
      throw new Error(this.closed ? "network namespace handle closed" : `pid ${pid} is no longer the container's process`);
    }
    this.handle = handle;
    return handle;
  }

  async close(): Promise<void> {
    this.closed = true;
    const handle = this.handle ?? (await this.opening?.catch(() => undefined));
    this.handle = undefined;
    await handle?.close().catch(() => undefined);
  }
}

/**
 * An HTTP or TCP probe run inside the container's network namespace: `nsenter --net` with the
 * pinned namespace handed over as fd 3, then Node running net-probe-main.js. One short-lived
 * process per check (about 60 ms of CPU and 40 MB of memory for its life here), at most as many
 * at once as `slots` allows. Aborting kills it.
 */
export function netProbe(spec: Extract<HealthProbeSpec, { type: "HTTP" | "TCP" }>, netns: NetnsPin, slots: Slots, timeoutMs: number): Probe {
  const args = JSON.stringify({
    type: spec.type,
    host: spec.host,
    port: spec.port,
    ...(spec.type === "HTTP" ? { path: spec.path, https: spec.https } : {}),
    deadlineMs: timeoutMs > 0 ? timeoutMs + 1000 : DEFAULT_DEADLINE_MS,
  });
  return async (signal) => {
    const fd = await netns.fd();
    signal.throwIfAborted();
    const line = await slots(() => runInNetns(fd, args, signal), { signal });
    return interpret(spec, line);
  };
}

function interpret(spec: Extract<HealthProbeSpec, { type: "HTTP" | "TCP" }>, line: string): ProbeOutcome {
  let result: { connected?: boolean; status?: number; error?: string };
  try {
    result = JSON.parse(line) as typeof result;
  } catch {
    return { healthy: false, message: `the probe answered no result${line ? `: ${line.slice(0, 200)}` : ""}` };
  }
  if (result.error !== undefined) return { healthy: false, message: result.error };
  if (spec.type === "TCP") return { healthy: result.connected === true, message: `TCP connect to port ${spec.port} ${result.connected ? "succeeded" : "failed"}` };
  const status = result.status ?? 0;
  const healthy = statusIsHealthy(status, spec.statuses);
  const expected = spec.statuses.length > 0 ? spec.statuses.join(", ") : "200-399";
  return { healthy, message: `HTTP GET ${spec.path} on port ${spec.port} answered ${status}${healthy ? "" : ` (expected ${expected})`}` };
}

/** Spawns the probe in the namespace `fd` refers to; resolves with its output line. */
function runInNetns(fd: number, args: string, signal: AbortSignal): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    signal.throwIfAborted();
    const child = spawn("nsenter", ["--net=/proc/self/fd/3", "--", process.execPath, PROBE_PROGRAM, args], {
      stdio: ["ignore", "pipe", "pipe", fd],
      env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" },
    });
    let out = "";
    let err = "";
    const onAbort = (): void => void child.kill("SIGKILL");
    signal.addEventListener("abort", onAbort, { once: true });
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      if (out.length < MAX_OUTPUT) out += chunk;
    });
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      if (err.length < MAX_OUTPUT) err += chunk;
    });
    child.once("error", (e: NodeJS.ErrnoException) => {
      signal.removeEventListener("abort", onAbort);
      reject(new Error(e.code === "ENOENT" ? "cannot run 'nsenter' (util-linux) to enter the container's network namespace: not found on PATH" : `cannot run the probe: ${e.message}`));
    });
    child.once("close", (code, sig) => {
      signal.removeEventListener("abort", onAbort);
      if (signal.aborted) return reject(signal.reason);
      const line = out.split("\n")[0]!.trim();
      if (line !== "") return resolve(line);
      const why = err.trim().split("\n")[0] ?? "";
      reject(new Error(`the probe ended (${sig ? `signal ${sig}` : `status ${code}`}) without a result${why ? `: ${why.slice(0, 300)}` : ""}`));
    });
  });
}
