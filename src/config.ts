import path from "node:path";
import { Command, Option } from "commander";
import bytes from "bytes";
import { parseDuration } from "./duration.js";

/** Every setting of `berth serve`, resolved from flags, environment and defaults. */
export interface ServeConfig {
  listen: string[];
  workDir: string;
  agentId?: string;
  /** --force_agent_id: replace a different agent id kept in <work_dir>/agent_id with --agent_id. */
  forceAgentId: boolean;
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

  // Who may call (issue 8).
  /** Group that may use the unix socket (mode 0660); without it the socket is 0600. */
  socketGroup?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** CA whose signed client certificates are required (mutual TLS). */
  tlsClientCa?: string;
  /** One bearer token per line; reloaded on SIGHUP. */
  authTokenFile?: string;
  /** --http_listen: /metrics and the status page (HOST:PORT; loopback unless TLS is configured). */
  httpListen?: string;

  // What callers may ask for.
  /** The operator policy (JSON or YAML); undefined = the safe defaults. */
  policyFile?: string;
  /** Opens http(s) fetches to loopback addresses (local artifact servers, tests). */
  fetchAllowLoopback: boolean;
  /** pids limit of a container whose launch names none (0 = none). */
  defaultPidsLimit: number;

  // Fetcher bounds.
  fetchMaxUriBytes: number;
  fetchMaxLaunchBytes: number;
  fetchConnectTimeoutMs: number;
  fetchIdleTimeoutMs: number;
  fetchMaxRedirects: number;
  archiveMaxEntries: number;
  archiveMaxBytes: number;

  // Limits against exhaustion: past one, RESOURCE_EXHAUSTED naming it.
  maxContainers: number;
  maxWatchStreams: number;
  maxWatchStreamsPerConnection: number;
  maxRequestBytes: number;
  maxEnvironmentEntries: number;
  maxUris: number;
  maxVolumes: number;

  // Mesos parity (issue 10).
  /** --docker_config: a Docker config.json path, or its JSON inline; re-read at each pull. */
  dockerConfig?: string;
  /** --docker_kill_orphans: remove labelled engine containers Berth has no record of (Mesos' default true). */
  dockerKillOrphans: boolean;
  /** Rotation of the sandbox's stdout/stderr: size of one file, and files kept (the live one included). */
  containerLogMaxSize: number;
  containerLogMaxFiles: number;
  /** Default timeout of ExecSync, and the output each stream of it may return. */
  execTimeoutMs: number;
  execMaxOutputBytes: number;
  /** Directory of seccomp profiles (<name>.json), and the profile a launch naming none gets. */
  seccompConfigDir?: string;
  seccompProfileName?: string;
  /** Kill a container whose sandbox outgrows its `disk` resource (Mesos' disk/du isolator). */
  enforceContainerDiskQuota: boolean;
  containerDiskWatchIntervalMs: number;
  /** The fetcher cache (URI.cache = true). */
  fetcherCacheDir: string;
  fetcherCacheSize: number;
}

/** The default engine address: DOCKER_HOST when set, else the local socket. */
export function defaultDockerHost(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_HOST && env.DOCKER_HOST !== "" ? env.DOCKER_HOST : "unix:///var/run/docker.sock";
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** Builds the `berth` command line; `onServe` receives the resolved configuration. */
export function buildCli(onServe: (config: ServeConfig) => Promise<void>): Command {
  const program = new Command("berth")
    .description("Berth: a Mesos-style Docker containerizer served over gRPC")
    // A bad flag is one line ("berth: …", exit 1), as every value Berth checks itself; --help lists them.
    .configureOutput({ outputError: (text, write) => write(`berth: ${text.replace(/^error: /, "").trim().replace(/\s*\n\s*/g, " ")}\n`) });
  program
    .command("serve")
    .description("serve the berth.v1.Containerizer gRPC API (plus health and reflection)")
    .addOption(new Option("--listen <address>", "where to serve: unix:///path or 127.0.0.1:PORT (repeatable; default: unix://<work_dir>/berth.sock)").argParser(collect))
    .addOption(new Option("--work_dir <dir>", "directory for sandboxes, the agent id and the socket").env("BERTH_WORK_DIR").default("/var/lib/berth"))
    .addOption(new Option("--agent_id <id>", "this agent's id, on every engine object's labels (default: generated once, kept in <work_dir>/agent_id)"))
    .addOption(new Option("--force_agent_id [bool]", "let --agent_id replace a different agent id kept in <work_dir>/agent_id (the old id's containers are left alone)").default("false"))
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
    .addOption(new Option("--socket_group <name>", "group allowed to use the unix socket (mode 0660); without it the socket is 0600"))
    .addOption(new Option("--tls_cert <file>", "PEM certificate chain for TCP listeners (TLS); required for a non-loopback --listen"))
    .addOption(new Option("--tls_key <file>", "PEM private key of --tls_cert"))
    .addOption(new Option("--tls_client_ca <file>", "PEM CA: clients must present a certificate it signed (mutual TLS)"))
    .addOption(new Option("--http_listen <host:port>", "serve /metrics (Prometheus) and a live status page at / on this address (off by default; loopback only unless --tls_cert/--tls_key make it HTTPS; --auth_token_file applies)"))
    .addOption(new Option("--auth_token_file <file>", "bearer tokens, one per line (reloaded on SIGHUP); calls without one are UNAUTHENTICATED (Health stays open)"))
    .addOption(new Option("--policy <file>", "operator policy (JSON or YAML) deciding what a Launch may ask for; default: the safe defaults"))
    .addOption(new Option("--fetch_allow_loopback [bool]", "allow http(s) fetches from loopback addresses (local artifact servers)").default("false"))
    .addOption(new Option("--default_pids_limit <count>", "pids limit of a container whose launch sets none (0 = no limit)").default("4096"))
    .addOption(new Option("--fetch_max_uri_bytes <size>", "bytes one URI may download").default("2GiB"))
    .addOption(new Option("--fetch_max_launch_bytes <size>", "bytes all URIs of one launch may download together").default("4GiB"))
    .addOption(new Option("--fetch_connect_timeout <duration>", "connect (and response header) timeout of one fetch").default("30secs"))
    .addOption(new Option("--fetch_idle_timeout <duration>", "abort a fetch that receives no byte for this long").default("1mins"))
    .addOption(new Option("--fetch_max_redirects <count>", "redirects one fetch may follow").default("5"))
    .addOption(new Option("--archive_max_entries <count>", "entries one fetched archive may hold").default("100000"))
    .addOption(new Option("--archive_max_bytes <size>", "bytes one fetched archive may extract to").default("4GiB"))
    .addOption(new Option("--max_containers <count>", "live (not terminated) containers").default("1000"))
    .addOption(new Option("--max_watch_streams <count>", "Watch streams open at once, in total").default("1024"))
    .addOption(new Option("--max_watch_streams_per_connection <count>", "Watch streams open at once on one client connection").default("64"))
    .addOption(new Option("--max_request_bytes <size>", "size of one request message").default("1MiB"))
    .addOption(new Option("--max_environment_entries <count>", "environment variables of one launch").default("1024"))
    .addOption(new Option("--max_uris <count>", "URIs of one launch").default("64"))
    .addOption(new Option("--max_volumes <count>", "volumes of one launch").default("64"))
    .addOption(new Option("--docker_config <path|json>", "Docker config.json with registry credentials (auths), as a path or inline JSON; re-read at each pull"))
    .addOption(new Option("--docker_kill_orphans [bool]", "remove engine containers labelled with this agent id that Berth has no record of (false leaves them alone)").default("true"))
    .addOption(new Option("--container_log_max_size <size>", "size at which the sandbox's stdout/stderr rotate").default("10MB"))
    .addOption(new Option("--container_log_max_files <count>", "stdout/stderr files kept per stream, the live one included").default("5"))
    .addOption(new Option("--exec_timeout <duration>", "ExecSync's timeout when the request sets none").default("1mins"))
    .addOption(new Option("--exec_max_output_bytes <size>", "stdout (and stderr) ExecSync returns; more is dropped and flagged truncated").default("1MiB"))
    .addOption(new Option("--seccomp_config_dir <dir>", "directory of seccomp profiles (<name>.json) that linux_info.seccomp.profile_name may name"))
    .addOption(new Option("--seccomp_profile_name <name>", "seccomp profile of a launch naming none (default: the engine's default profile)"))
    .addOption(new Option("--enforce_container_disk_quota [bool]", "kill a container whose sandbox outgrows its disk resource (REASON_CONTAINER_LIMITATION_DISK)").default("false"))
    .addOption(new Option("--container_disk_watch_interval <duration>", "how often each sandbox's disk usage is measured").default("15secs"))
    .addOption(new Option("--fetcher_cache_dir <dir>", "where URIs with cache=true are kept (default: <work_dir>/fetcher-cache)"))
    .addOption(new Option("--fetcher_cache_size <size>", "bytes the fetcher cache may hold (least recently used evicted first)").default("2GB"))
    .addOption(new Option("--log_level <level>", `pino log level: ${LOG_LEVELS.join(", ")}`).default("info"))
    .action(async (opts: Record<string, string | string[] | undefined>) => {
      await onServe(resolveConfig(opts));
    });
  return program;
}

function count(value: string, flag: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} '${value}' is not a whole number ≥ ${min}`);
  return n;
}

/** A byte size: plain bytes or with a unit (`512KiB`, `10MB`, `2GiB`; both forms are powers of 1024). */
export function size(value: string, flag: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : bytes.parse(value.replace(/iB$/i, "B"));
  if (n === null || !Number.isSafeInteger(n) || n < 1) throw new Error(`${flag} '${value}' is not a size (e.g. 1048576, 512KiB, 10MB, 2GiB)`);
  return n;
}

const optional = (value: string | string[] | undefined): string | undefined => (value === undefined || value === "" ? undefined : String(value));

/** A Mesos-style boolean flag: bare (`--flag`) or `--flag=true|false|1|0`. */
function bool(value: string | string[] | boolean, flag: string): boolean {
  if (value === true) return true;
  const v = String(value).toLowerCase();
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new Error(`${flag} '${String(value)}' is not true or false`);
}

function httpListen(value: string | undefined): string | undefined {
  if (value !== undefined && !/^(\d{1,3}(\.\d{1,3}){3}|localhost|\[[0-9a-f:]+\]):\d{1,5}$/i.test(value)) throw new Error(`--http_listen '${value}' is not HOST:PORT (e.g. 127.0.0.1:9090)`);
  return value;
}

function logLevel(value: string): string {
  if (!LOG_LEVELS.includes(value)) throw new Error(`--log_level '${value}' is not one of ${LOG_LEVELS.join(", ")}`);
  return value;
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
    forceAgentId: bool(opts.force_agent_id ?? "false", "--force_agent_id"),
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
    logLevel: logLevel(String(opts.log_level)),
    socketGroup: optional(opts.socket_group),
    tlsCert: optional(opts.tls_cert),
    tlsKey: optional(opts.tls_key),
    tlsClientCa: optional(opts.tls_client_ca),
    authTokenFile: optional(opts.auth_token_file),
    httpListen: httpListen(optional(opts.http_listen)),
    policyFile: optional(opts.policy),
    fetchAllowLoopback: bool(opts.fetch_allow_loopback ?? "false", "--fetch_allow_loopback"),
    defaultPidsLimit: count(String(opts.default_pids_limit ?? "4096"), "--default_pids_limit", 0),
    fetchMaxUriBytes: size(String(opts.fetch_max_uri_bytes ?? "2GiB"), "--fetch_max_uri_bytes"),
    fetchMaxLaunchBytes: size(String(opts.fetch_max_launch_bytes ?? "4GiB"), "--fetch_max_launch_bytes"),
    fetchConnectTimeoutMs: parseDuration(String(opts.fetch_connect_timeout ?? "30secs"), "--fetch_connect_timeout"),
    fetchIdleTimeoutMs: parseDuration(String(opts.fetch_idle_timeout ?? "1mins"), "--fetch_idle_timeout"),
    fetchMaxRedirects: count(String(opts.fetch_max_redirects ?? "5"), "--fetch_max_redirects", 0),
    archiveMaxEntries: count(String(opts.archive_max_entries ?? "100000"), "--archive_max_entries"),
    archiveMaxBytes: size(String(opts.archive_max_bytes ?? "4GiB"), "--archive_max_bytes"),
    maxContainers: count(String(opts.max_containers ?? "1000"), "--max_containers"),
    maxWatchStreams: count(String(opts.max_watch_streams ?? "1024"), "--max_watch_streams"),
    maxWatchStreamsPerConnection: count(String(opts.max_watch_streams_per_connection ?? "64"), "--max_watch_streams_per_connection"),
    maxRequestBytes: size(String(opts.max_request_bytes ?? "1MiB"), "--max_request_bytes"),
    maxEnvironmentEntries: count(String(opts.max_environment_entries ?? "1024"), "--max_environment_entries"),
    maxUris: count(String(opts.max_uris ?? "64"), "--max_uris"),
    maxVolumes: count(String(opts.max_volumes ?? "64"), "--max_volumes"),
    dockerConfig: optional(opts.docker_config),
    dockerKillOrphans: bool(opts.docker_kill_orphans ?? "true", "--docker_kill_orphans"),
    containerLogMaxSize: size(String(opts.container_log_max_size ?? "10MB"), "--container_log_max_size"),
    containerLogMaxFiles: count(String(opts.container_log_max_files ?? "5"), "--container_log_max_files"),
    execTimeoutMs: parseDuration(String(opts.exec_timeout ?? "1mins"), "--exec_timeout"),
    execMaxOutputBytes: size(String(opts.exec_max_output_bytes ?? "1MiB"), "--exec_max_output_bytes"),
    seccompConfigDir: optional(opts.seccomp_config_dir),
    seccompProfileName: optional(opts.seccomp_profile_name),
    enforceContainerDiskQuota: bool(opts.enforce_container_disk_quota ?? "false", "--enforce_container_disk_quota"),
    containerDiskWatchIntervalMs: parseDuration(String(opts.container_disk_watch_interval ?? "15secs"), "--container_disk_watch_interval"),
    fetcherCacheDir: path.resolve(optional(opts.fetcher_cache_dir) ?? path.join(workDir, "fetcher-cache")),
    fetcherCacheSize: size(String(opts.fetcher_cache_size ?? "2GB"), "--fetcher_cache_size"),
  };
}
