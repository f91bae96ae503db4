import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

/** The compiled entry point, next to this file in dist/ (tests run after a build). */
export const MAIN_JS = fileURLToPath(new URL("../../src/main.js", import.meta.url));

/**
 * The node flags of the entry's `#!/usr/bin/env -S node …` line: Berth is spawned with them, as the
 * installed `berth` command runs (its V8 heap settings are part of what is tested and measured).
 */
export const NODE_FLAGS: string[] = (() => {
  const first = readFileSync(MAIN_JS, "utf8").split("\n", 1)[0]!;
  const m = /^#!\S*env(?: -S)? node((?: --\S+)*)\s*$/.exec(first);
  return m ? m[1]!.trim().split(/\s+/).filter((f) => f !== "") : [];
})();

/** How a process ended. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One pino line Berth wrote to stderr. */
export type LogLine = Record<string, unknown> & { msg?: string };

/** A spawned `node dist/src/main.js …`, with its output captured. */
export class BerthProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<ProcessExit>;
  private out = "";
  private err = "";
  private readonly logWaiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  private readonly logs: LogLine[] = [];
  private exit: ProcessExit | undefined;

  constructor(args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.child = spawn(process.execPath, [...NODE_FLAGS, MAIN_JS, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (this.out += chunk));
    let partial = "";
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      this.err += chunk;
      partial += chunk;
      const lines = partial.split("\n");
      partial = lines.pop()!;
      for (const line of lines) this.onLine(line);
    });
    this.exited = new Promise((resolve) => {
      this.child.once("close", (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  private onLine(line: string): void {
    const parsed = parseLogLine(line);
    if (!parsed) return;
    this.logs.push(parsed);
    for (const w of [...this.logWaiters]) {
      if (w.match(parsed)) {
        this.logWaiters.splice(this.logWaiters.indexOf(w), 1);
        w.resolve(parsed);
      }
    }
  }

  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Resolves with the first log line (seen or to come) matching; rejects, with stderr, if the process exits first. */
  waitForLog(match: (l: LogLine) => boolean): Promise<LogLine> {
    const seen = this.logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      this.logWaiters.push({ match, resolve });
      void this.exited.then((e) => reject(new Error(`berth exited (code ${e.code}, signal ${e.signal}) before the awaited log line; stderr:\n${this.err}`)));
    });
  }

  /** Waits for "berth serving" and returns its line (agent_id, listen, work_dir). */
  serving(): Promise<LogLine & { agent_id: string; listen: string[] }> {
    return this.waitForLog((l) => l.msg === "berth serving") as Promise<LogLine & { agent_id: string; listen: string[] }>;
  }

  /** Sends `signal` if the process still runs (by this child's pid only). */
  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.running) this.child.kill(signal);
  }
}

function parseLogLine(line: string): LogLine | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return value && typeof value === "object" && !Array.isArray(value) ? (value as LogLine) : undefined;
  } catch {
    return undefined;
  }
}

/** The stderr lines that are not structured log lines: what a person reads. */
export function humanLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.trim() !== "" && !parseLogLine(line));
}

/** Runs berth to completion (bounded by `timeoutMs`, then SIGKILLed) and returns its exit and output. */
export async function runBerth(args: string[], timeoutMs = 30_000): Promise<ProcessExit & { stdout: string; stderr: string }> {
  const p = new BerthProcess(args);
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  try {
    const exit = await p.exited;
    return { ...exit, stdout: p.stdout, stderr: p.stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `berth serve` expecting a start-up failure: exit 1 and one `berth: …` line for a person, which it returns. */
export async function failingStart(args: string[]): Promise<string> {
  const result = await runBerth(["serve", ...args]);
  assert.equal(result.code, 1, `exit code 1 expected; stderr:\n${result.stderr}`);
  const lines = humanLines(result.stderr);
  assert.equal(lines.length, 1, `exactly one line for a person on stderr; got:\n${lines.join("\n")}`);
  assert.match(lines[0]!, /^berth: /);
  return lines[0]!;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it for a listen on :0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === "string") throw new Error(`listen on 127.0.0.1:0 gave no port (address ${String(address)})`);
  return address.port;
}
