import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { resolveConfig, type ServeConfig } from "../../src/config.js";
import { startBerth, type RunningBerth, type StartOverrides } from "../../src/berth.js";
import { BerthClient } from "./berth-client.js";

/** A Berth served in-process on a unix socket in a temp work dir, with a real gRPC client. */
export interface TestBerth {
  berth: RunningBerth;
  client: BerthClient;
  config: ServeConfig;
  workDir: string;
  close(): Promise<void>;
}

/** The flags every in-process test Berth starts from: the real engine, test-friendly timeouts. */
export function baseTestFlags(workDir: string): Record<string, string> {
  return {
    work_dir: workDir,
    docker_socket: process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock",
    docker_stop_timeout: "2secs",
    docker_remove_delay: "0secs",
    docker_request_timeout: "30secs",
    sandbox_directory: "/mnt/mesos/sandbox",
    launch_timeout: "1mins",
    pull_timeout: "10mins",
    pull_activity_timeout: "1mins",
    termination_retention: "1000",
    watch_queue_limit: "1024",
    log_level: process.env.BERTH_TEST_LOG ?? "silent",
  };
}

/** Starts Berth against the real engine with test-friendly timeouts; flags as on the command line. */
export async function startTestBerth(flags: Record<string, string> = {}, overrides: StartOverrides = {}): Promise<TestBerth> {
  const workDir = flags.work_dir ?? (await mkdtemp(path.join(os.tmpdir(), "berth-test-")));
  const config = resolveConfig({
    ...baseTestFlags(workDir),
    // The suites serve their artifacts from http servers on 127.0.0.1, which the safe default
    // refuses: this one door is opened here for every suite. Everything else stays at the safe
    // defaults; a suite that needs more passes `policy` (a file) or the flag itself.
    fetch_allow_loopback: "true",
    ...flags,
  });
  const log = pino({ level: config.logLevel === "silent" ? "silent" : config.logLevel });
  const berth = await startBerth(config, log, overrides);
  const client = new BerthClient(berth.addresses[0]!);
  return {
    berth,
    client,
    config,
    workDir,
    async close() {
      client.close();
      await berth.stop();
      await rm(workDir, { recursive: true, force: true });
    },
  };
}
