import { readFileSync } from "node:fs";
import path from "node:path";
import type Dockerode from "dockerode";
import { LABEL_AGENT_ID } from "../src/docker/names.js";
import { BerthClient } from "../test/harness/berth-client.js";
import { BerthProcess } from "../test/harness/process-berth.js";
import { withDeadline } from "./deadline.js";
import { BENCH_AGENT_PREFIX, removeByLabels } from "./raw-engine.js";
import { makeTempDir, removeTempDir } from "./temp-dirs.js";

/** How long a Berth child may take to say "berth serving". */
const START_MS = 60_000;
/** How long a SIGTERMed Berth may take to exit before it is SIGKILLed. */
const STOP_MS = 20_000;

/** Where a benchmark Berth lives: its work dir (kept across restarts) and agent id. */
export interface BerthHome {
  workDir: string;
  agentId: string;
  /** `unix:///…/berth.sock` in the work dir. */
  address: string;
}

/** Makes a fresh work dir under the OS temp dir with a unique agent id. */
export async function newBerthHome(tag: string): Promise<BerthHome> {
  const workDir = await makeTempDir(tag);
  const agentId = `${BENCH_AGENT_PREFIX}${tag}-${process.pid}-${Date.now().toString(36)}`;
  return { workDir, agentId, address: `unix://${path.join(workDir, "berth.sock")}` };
}

/** The resident set size of a process, in KiB, from /proc/<pid>/status (VmRSS). */
export function rssKib(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(m[1]);
}

/**
 * A real `berth serve` in a child process, as an operator runs it: its own event loop and heap
 * (so its RSS is its own and the benchmark's client work does not share its CPU time), a unix
 * socket in its work dir, and a 1 s stop timeout so cleanup never waits out the 10 s default
 * (no figure measures a stop).
 */
export class BenchBerth {
  /** Every Berth child still running, so an interrupted run can end them (by pid). */
  static readonly live = new Set<BenchBerth>();
  readonly client: BerthClient;

  private constructor(
    readonly home: BerthHome,
    readonly process: BerthProcess,
  ) {
    this.client = new BerthClient(home.address);
    BenchBerth.live.add(this);
    void process.exited.then(() => BenchBerth.live.delete(this));
  }

  /** The `serve` arguments for a home. */
  static args(home: BerthHome, logLevel = "info"): string[] {
    return [
      "serve",
      "--listen", home.address,
      "--work_dir", home.workDir,
      "--agent_id", home.agentId,
      "--docker_stop_timeout", "1secs",
      // watch-fanout opens 10,000 streams, 500 per channel: above the safe defaults (1024 / 64).
      "--max_watch_streams", "20000",
      "--max_watch_streams_per_connection", "1000",
      "--log_level", logLevel,
    ];
  }

  /** Spawns Berth without waiting for it (recovery times itself from here). */
  static spawn(home: BerthHome): BenchBerth {
    return new BenchBerth(home, new BerthProcess(BenchBerth.args(home)));
  }

  /** Spawns Berth and waits for its "berth serving" line. */
  static async start(home: BerthHome): Promise<BenchBerth> {
    const b = BenchBerth.spawn(home);
    try {
      await withDeadline(b.process.serving(), START_MS, `berth serve in '${home.workDir}'`);
    } catch (err) {
      b.process.kill("SIGKILL");
      b.client.close();
      throw new Error(`${(err as Error).message}\nstderr tail:\n${b.process.stderr.slice(-2000)}`);
    }
    return b;
  }

  get pid(): number {
    return this.process.child.pid!;
  }

  /** The Berth process's RSS in KiB. */
  rssKib(): number {
    return rssKib(this.pid);
  }

  /** kill -9 (containers keep running; the work dir stays as the crash left it). */
  async kill9(): Promise<void> {
    this.client.close();
    this.process.kill("SIGKILL");
    await withDeadline(this.process.exited, STOP_MS, `exit of berth pid ${this.pid} after SIGKILL`);
  }

  /** SIGTERM (containers keep running), SIGKILL if it does not exit in time. */
  async stop(): Promise<void> {
    this.client.close();
    if (!this.process.running) return;
    this.process.kill("SIGTERM");
    try {
      await withDeadline(this.process.exited, STOP_MS, `exit of berth pid ${this.pid} after SIGTERM`);
    } catch {
      this.process.kill("SIGKILL");
      await withDeadline(this.process.exited, STOP_MS, `exit of berth pid ${this.pid} after SIGKILL`);
    }
  }
}

/** Removes every engine container of a home's agent and its work dir; returns how many containers went. */
export async function cleanupHome(docker: Dockerode, home: BerthHome): Promise<number> {
  try {
    return await removeByLabels(docker, [`${LABEL_AGENT_ID}=${home.agentId}`]);
  } finally {
    await removeTempDir(home.workDir);
  }
}
