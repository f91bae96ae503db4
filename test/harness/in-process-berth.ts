import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { resolveConfig, type ServeConfig } from "../../src/config.js";
import { startBerth, type RunningBerth } from "../../src/berth.js";
import { baseTestFlags } from "./test-berth.js";

/** One structured log line Berth wrote. */
export type CapturedLine = Record<string, unknown> & { msg?: string; level?: number };

/** An in-process Berth whose log lines are kept for the test to read. */
export interface CapturedBerth {
  berth: RunningBerth;
  config: ServeConfig;
  workDir: string;
  /** Every log line so far (level info and above). */
  lines: CapturedLine[];
  close(): Promise<void>;
}

/**
 * Starts Berth in-process like startTestBerth, but takes repeatable flags as arrays (several
 * `--listen`) and captures its log (info and above) instead of discarding it.
 */
export async function startCapturedBerth(flags: Record<string, string | string[]> = {}): Promise<CapturedBerth> {
  const workDir = (flags.work_dir as string | undefined) ?? (await mkdtemp(path.join(os.tmpdir(), "berth-test-")));
  const config = resolveConfig({
    ...baseTestFlags(workDir),
    log_level: "info",
    ...flags,
  });
  const lines: CapturedLine[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as CapturedLine) });
  try {
    const berth = await startBerth(config, log);
    return {
      berth,
      config,
      workDir,
      lines,
      async close() {
        await berth.stop();
        await rm(workDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(workDir, { recursive: true, force: true });
    throw err;
  }
}
