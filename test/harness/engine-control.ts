import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { request } from "node:http";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/** The engine's socket; scripts/engine-up.sh always serves it here. */
export const ENGINE_SOCKET = "/var/run/docker.sock";
/** Where dockerd writes its pid (its default --pidfile). */
export const DOCKERD_PID_FILE = "/var/run/docker.pid";
/** The dev bring-up script; restarting the engine through it keeps its exact flags. */
export const ENGINE_UP_SCRIPT = fileURLToPath(new URL("../../../scripts/engine-up.sh", import.meta.url));

const POLL_MS = 100;

/** True when the engine answers GET /_ping with 200 within `timeoutMs`. */
export function enginePing(timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: ENGINE_SOCKET, path: "/_ping", timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy(new Error("ping timed out")));
    req.on("error", () => resolve(false));
    req.end();
  });
}

/** The pid of the running dockerd (from its pid file, checked against /proc), or undefined. */
export async function dockerdPid(): Promise<number | undefined> {
  const text = await readFile(DOCKERD_PID_FILE, "utf8").catch(() => "");
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const comm = await readFile(`/proc/${pid}/comm`, "utf8").catch(() => "");
  return comm.trim() === "dockerd" ? pid : undefined;
}

/** Pids of processes whose command line starts with `name` (e.g. "docker-registry"). */
export async function pidsOf(name: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    const argv0 = cmdline.split("\0")[0] ?? "";
    if (argv0 === name || argv0.endsWith(`/${name}`)) pids.push(Number(entry));
  }
  return pids.sort((a, b) => a - b);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Polls `check` every 100 ms until it holds; throws `what` after `timeoutMs`. */
export async function pollUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * Stops dockerd with SIGTERM (as an init system would) and waits until /_ping fails and the
 * process is gone. Without live-restore, dockerd stops every container on the way down.
 */
export async function stopEngine(timeoutMs = 90_000): Promise<void> {
  const pid = await dockerdPid();
  if (pid === undefined) throw new Error(`no running dockerd found through ${DOCKERD_PID_FILE}`);
  process.kill(pid, "SIGTERM");
  await pollUntil(async () => !(await enginePing(500)), timeoutMs, `dockerd (pid ${pid}) stops answering /_ping`);
  await pollUntil(() => !alive(pid), timeoutMs, `dockerd (pid ${pid}) exits`);
}

/** Starts the engine exactly as the dev and CI bring-up does (scripts/engine-up.sh), then waits for /_ping. */
export async function startEngine(timeoutMs = 120_000): Promise<void> {
  try {
    await promisify(execFile)("bash", [ENGINE_UP_SCRIPT], { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 });
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${ENGINE_UP_SCRIPT} failed: ${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`, { cause: err });
  }
  await pollUntil(() => enginePing(2000), timeoutMs, "the engine answers /_ping after engine-up.sh");
}

/** Starts the engine if it does not answer; for after hooks that must leave it up. */
export async function ensureEngineRunning(timeoutMs = 120_000): Promise<void> {
  if (await enginePing(2000)) return;
  // A dockerd still shutting down owns the pid file; engine-up.sh would wait for it to answer.
  // A dockerd that is still starting or stopping owns the pid file: let it finish either way.
  const pid = await dockerdPid();
  if (pid !== undefined) {
    await pollUntil(async () => !alive(pid) || (await enginePing(500)), timeoutMs, `dockerd (pid ${pid}) answers or exits`);
    if (await enginePing(2000)) return;
  }
  await startEngine(timeoutMs);
}
