import path from "node:path";
import { Command, Option } from "commander";
import { parseDuration } from "./duration.js";

/** Every setting of `berth serve`, resolved from flags, environment and defaults. */
export interface ServeConfig {
  listen: string[];
  workDir: string;
  agentId?: string;
  dockerHost: string;
  dockerStopTimeoutMs: number;
  dockerRemoveDelayMs: number;
  dockerRequestTimeoutMs: number;
  sandboxDirectory: string;
  launchTimeoutMs: number;
  pullTimeoutMs: number;
  pullActivityTimeoutMs: number;
  terminationRetention: number;
  watchQueueLimit: number;
  watchRetention: number;
  /** Mesos' --cgroups_enable_cfs: cpus are also enforced as a CFS quota, not only weighed as shares. */
  cgroupsEnableCfs: boolean;
  logLevel: string;
}

/** The default engine address: DOCKER_HOST when set, else the local socket. */
export function defaultDockerHost(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_HOST && env.DOCKER_HOST !== "" ? env.DOCKER_HOST : "unix:///var/run/docker.sock";
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** Builds the `berth` command line; `onServe` receives the resolved configuration. */
export function buildCli(onServe: (config: ServeConfig) => Promise<void>): Command {
  const program = new Command("berth").description("Berth: a Mesos-style Docker containerizer served over gRPC").showHelpAfterError();
  program
    .command("serve")
    .description("serve the berth.v1.Containerizer gRPC API (plus health and reflection)")
    .addOption(new Option("--listen <address>", "where to serve: unix:///path or 127.0.0.1:PORT (repeatable; default: unix://<work_dir>/berth.sock)").argParser(collect))
    .addOption(new Option("--work_dir <dir>", "directory for sandboxes, the agent id and the socket").env("BERTH_WORK_DIR").default("/var/lib/berth"))
    .addOption(new Option("--agent_id <id>", "this agent's id, on every engine object's labels (default: generated once, kept in <work_dir>/agent_id)"))
    .addOption(new Option("--docker_socket <address>", "Docker engine: unix:///path or tcp://host:port").default(defaultDockerHost(), "$DOCKER_HOST or unix:///var/run/docker.sock"))
    .addOption(new Option("--docker_stop_timeout <duration>", "grace between SIGTERM and SIGKILL when a task has no kill_policy").default("10secs"))
    .addOption(new Option("--docker_remove_delay <duration>", "how long an exited container stays in the engine before removal (0 removes at once)").default("0secs"))
    .addOption(new Option("--docker_request_timeout <duration>", "deadline of each short engine call (inspect, create, start, ...)").default("30secs"))
    .addOption(new Option("--sandbox_directory <path>", "where the sandbox is mounted inside the container").default("/mnt/mesos/sandbox"))
    .addOption(new Option("--launch_timeout <duration>", "budget of FETCHING + MOUNTING + start (the pull is not counted)").default("1mins"))
    .addOption(new Option("--pull_timeout <duration>", "overall cap of one image pull").default("30mins"))
    .addOption(new Option("--pull_activity_timeout <duration>", "abort a pull that makes no progress for this long").default("2mins"))
    .addOption(new Option("--termination_retention <count>", "terminated containers remembered for Wait/Watch/Destroy").default("1000"))
    .addOption(new Option("--watch_queue_limit <count>", "events a Watch client may fall behind by before its stream ends with RESOURCE_EXHAUSTED").default("1024"))
    .addOption(new Option("--watch_retention <count>", "recent events kept for Watch clients resuming from a sequence number").default("10000"))
    .addOption(new Option("--cgroups_enable_cfs [bool]", "also cap cpus with a CFS quota (period 100ms, quota cpus × period), at launch and on Update").default("false"))
    .addOption(new Option("--log_level <level>", "pino log level").choices(["trace", "debug", "info", "warn", "error", "fatal"]).default("info"))
    .action(async (opts: Record<string, string | string[] | undefined>) => {
      await onServe(resolveConfig(opts));
    });
  return program;
}

function count(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} '${value}' is not a positive whole number`);
  return n;
}

/** A Mesos-style boolean flag: bare (`--flag`) or `--flag=true|false|1|0`. */
function bool(value: string | string[] | boolean, flag: string): boolean {
  if (value === true) return true;
  const v = String(value).toLowerCase();
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new Error(`${flag} '${String(value)}' is not true or false`);
}

/** Turns parsed flags into a ServeConfig, failing with the flag's name on a bad value. */
export function resolveConfig(opts: Record<string, string | string[] | undefined>): ServeConfig {
  const workDir = path.resolve(String(opts.work_dir));
  const listen = (opts.listen as string[] | undefined) ?? [`unix://${path.join(workDir, "berth.sock")}`];
  for (const address of listen) {
    if (!/^unix:\/\/\/.+/.test(address) && !/^(\d{1,3}(\.\d{1,3}){3}|localhost|\[[0-9a-f:]+\]):\d{1,5}$/i.test(address)) {
      throw new Error(`--listen '${address}' is neither unix:///absolute/path nor HOST:PORT`);
    }
  }
  return {
    listen,
    workDir,
    agentId: opts.agent_id as string | undefined,
    dockerHost: String(opts.docker_socket),
    dockerStopTimeoutMs: parseDuration(String(opts.docker_stop_timeout), "--docker_stop_timeout"),
    dockerRemoveDelayMs: parseDuration(String(opts.docker_remove_delay), "--docker_remove_delay"),
    dockerRequestTimeoutMs: parseDuration(String(opts.docker_request_timeout), "--docker_request_timeout"),
    sandboxDirectory: String(opts.sandbox_directory),
    launchTimeoutMs: parseDuration(String(opts.launch_timeout), "--launch_timeout"),
    pullTimeoutMs: parseDuration(String(opts.pull_timeout), "--pull_timeout"),
    pullActivityTimeoutMs: parseDuration(String(opts.pull_activity_timeout), "--pull_activity_timeout"),
    terminationRetention: count(String(opts.termination_retention), "--termination_retention"),
    watchQueueLimit: count(String(opts.watch_queue_limit), "--watch_queue_limit"),
    watchRetention: count(String(opts.watch_retention ?? "10000"), "--watch_retention"),
    cgroupsEnableCfs: bool(opts.cgroups_enable_cfs ?? "false", "--cgroups_enable_cfs"),
    logLevel: String(opts.log_level),
  };
}
