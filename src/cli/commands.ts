/**
 * The client subcommands of `berth`: launch, ps, inspect, wait, kill, logs, exec, watch, stats,
 * prune. Each talks to a Berth server over gRPC (--addr, TLS and token flags as the server's),
 * prints aligned tables with relative times for a person or proto JSON with --output json, and
 * fails with one line `berth: <Rpc> failed: <CODE>: <details>` (exit 1; 2 for usage errors).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ClientReadableStream, ServiceError } from "@grpc/grpc-js";
import { Command, Option } from "commander";
import {
  ContainerEventSchema,
  ContainersRequestSchema,
  ContainersResponseSchema,
  ContainerSummarySchema,
  DestroyRequestSchema,
  DestroyResponseSchema,
  LaunchRequestSchema,
  LaunchResponseSchema,
  LaunchResult,
  LogsRequestSchema,
  LogsResponseSchema,
  LogStream,
  PruneImagesRequestSchema,
  PruneImagesResponseSchema,
  State,
  StatusRequestSchema,
  StatusResponseSchema,
  TerminationSchema,
  UsageRequestSchema,
  WaitRequestSchema,
  WaitResponseSchema,
  WatchRequestSchema,
  type ContainersResponse,
  type DestroyResponse,
  type LaunchResponse,
  type LogsResponse,
  type PruneImagesResponse,
  type StatusResponse,
  type UsageResponse,
  type WaitResponse,
  type WatchResponse,
} from "../gen/berth/v1/containerizer_pb.js";
import { Image_Type, ResourceStatisticsSchema, type ResourceStatistics } from "../gen/mesos/v1/mesos_pb.js";
import { CommandFailed, Connection, defaultAddress, rpcFailure, UsageError, type ConnectionOptions } from "./connection.js";
import { runExec } from "./exec.js";
import { describeEvent, describeTermination, protoJson, relativeTime, stateName, table, terminationExitCode } from "./format.js";
import { buildLaunchRequest, parseEnv, type LaunchFlags } from "./launch-request.js";
import { JsonView, PlainView, TtyView, type LaunchView } from "./progress.js";
import { statsRow, statsTable, type StatsRow } from "./stats.js";
import { watchSnapshot } from "./watch-snapshot.js";

/** The exit code of `wait`/`launch --wait` when the container ended without a process exit (e.g. its pull failed): docker run's 125. */
export const NO_PROCESS_EXIT = 125;

type CommonFlags = ConnectionOptions & { output: "text" | "json" };

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

function out(text: string): void {
  process.stdout.write(text);
}

function jsonLine(value: unknown): void {
  out(`${JSON.stringify(value)}\n`);
}

/** Waits until what was written to stdout and stderr has been handed to the OS. */
function flushed(): Promise<void> {
  return Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((resolve) => s.write("", () => resolve())))).then(() => undefined);
}

/** The connection flags and --output, on every client command. */
function clientCommand(parent: Command, name: string, description: string): Command {
  return parent
    .command(name)
    .description(description)
    .addOption(new Option("--addr <address>", "Berth server: unix:///path/to/berth.sock or HOST:PORT").env("BERTH_ADDR").default(defaultAddress(), "unix://$BERTH_WORK_DIR/berth.sock, else unix:///var/lib/berth/berth.sock"))
    .addOption(new Option("--tls_ca <file>", "PEM CA that signed the server's certificate (TLS on; needed for a TCP --addr served with --tls_cert)"))
    .addOption(new Option("--tls_cert <file>", "PEM client certificate (mutual TLS, for a server with --tls_client_ca)"))
    .addOption(new Option("--tls_key <file>", "PEM private key of --tls_cert"))
    .addOption(new Option("--tls_server_name <name>", "name to check the server's certificate against (default: the host of --addr)"))
    .addOption(new Option("--token_file <file>", "file whose first line is the bearer token (else $BERTH_TOKEN)"))
    .addOption(new Option("-o, --output <format>", "text for people, json for scripts (proto JSON; one object per line for streams)").choices(["text", "json"]).default("text"))
    .exitOverride((err) => {
      // Usage errors (unknown flag, missing argument, bad choice) exit 2; --help exits 0.
      process.exit(err.exitCode === 0 ? 0 : 2);
    });
}

/**
 * Runs a command's body: its resolved number is the exit code; a UsageError exits 2, any other
 * failure 1, each as one line on stderr. The connection is closed on every path.
 */
function action<A extends unknown[]>(body: (conn: () => Connection, ...args: A) => Promise<number | void>) {
  return async (...args: A): Promise<void> => {
    let conn: Connection | undefined;
    const cmd = args[args.length - 1] as Command;
    const connect = () => (conn ??= new Connection(cmd.opts<CommonFlags>()));
    let code: number;
    try {
      code = (await body(connect, ...args)) ?? 0;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(`berth: ${message.replace(/\s*\n\s*/g, " ")}\n`);
      code = err instanceof UsageError ? 2 : err instanceof CommandFailed ? err.exitCode : 1;
    } finally {
      conn?.close();
    }
    await flushed();
    process.exit(code);
  };
}

function isJson(cmd: Command): boolean {
  return cmd.opts<CommonFlags>().output === "json";
}

/** Writes to stdout or stderr; returns the stream when it is behind (its write returned false). */
function emit(to: NodeJS.WriteStream, data: string | Uint8Array): NodeJS.WriteStream | undefined {
  return to.write(data) ? undefined : to;
}

/**
 * Reads a server stream to its end, writing each message with `each`; a local stream that is
 * behind (a slow pipe) pauses the gRPC stream until it drains.
 */
function drain<T>(rpc: string, stream: ClientReadableStream<T>, each: (m: T) => NodeJS.WriteStream | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.on("data", (m: T) => {
      const behind = each(m);
      if (behind) {
        stream.pause();
        behind.once("drain", () => stream.resume());
      }
    });
    stream.on("end", resolve);
    stream.on("error", (err: ServiceError) => reject(rpcFailure(rpc, err)));
  });
}

/** `--since`: a duration back from now (`10s`, `5m`, `2h`, `1d`) or a date (`2026-11-29T10:00:00Z`). */
export function parseSince(value: string, now: Date = new Date()): Date {
  const rel = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim());
  if (rel) {
    const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as "ms"]!;
    return new Date(now.getTime() - Number(rel[1]) * factor);
  }
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new UsageError(`--since '${value}' is neither a duration back from now (10s, 5m, 2h) nor a date (2026-11-29T10:00:00Z)`);
  return new Date(t);
}

/** The command after `--` (passThroughOptions hands the separator over as an argument). */
function withoutSeparator(args: string[]): string[] {
  return args[0] === "--" ? args.slice(1) : args;
}

function wholeNumber(value: string, flag: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} '${value}' is not a whole number`);
  return Number(value);
}

/** Follows a launched container's events until `until` says so; resolves with the exit code. */
function follow(conn: Connection, id: string, launched: LaunchResponse, view: LaunchView, wait: boolean): Promise<number> {
  const stream: ClientReadableStream<WatchResponse> = conn.serverStream("Watch", WatchRequestSchema, {
    containerIds: [{ value: id }],
    // Every event of this container from its first one on: nothing between Launch and Watch is missed.
    fromSequence: launched.firstSequence > 0n ? launched.firstSequence - 1n : undefined,
  });
  return new Promise<number>((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      process.off("SIGINT", onInterrupt);
      process.off("SIGTERM", onInterrupt);
      stream.cancel();
      view.close();
      fn();
    };
    const onInterrupt = () =>
      settle(() => reject(new CommandFailed(`stopped following ${id}; it keeps running (berth kill ${id} stops it)`, 130)));
    process.on("SIGINT", onInterrupt);
    process.on("SIGTERM", onInterrupt);
    stream.on("data", (r: WatchResponse) => {
      const e = r.event;
      if (!e || settled) return;
      view.event(e);
      const k = e.kind;
      if (!wait && k.case === "stateChanged" && k.value.state === State.RUNNING) return settle(() => resolve(0));
      if (k.case === "termination") {
        const code = terminationExitCode(k.value);
        if (wait && code !== undefined) return settle(() => resolve(code));
        const why = describeTermination(k.value);
        return settle(() => reject(new CommandFailed(`container ${id} ${wait ? "ended without a process exit" : "terminated before it ran"}: ${why}`, wait ? NO_PROCESS_EXIT : 1)));
      }
    });
    stream.on("end", () => settle(() => reject(new CommandFailed(`Watch ended before container ${id} ${wait ? "terminated" : "was running"} (the server is shutting down?)`))));
    stream.on("error", (err: ServiceError) => settle(() => reject(rpcFailure("Watch", err))));
  });
}

function registerLaunch(program: Command): void {
  clientCommand(program, "launch", "launch a container (like docker run) and follow it until it runs, or with --wait until it ends")
    .argument("[image]", "Docker image to run")
    .argument("[command...]", "command and arguments (handed to the image's entrypoint; --shell runs them with /bin/sh -c)")
    .option("--id <id>", "container id (default: berth-<12 hex digits>)")
    .option("--task <file>", "launch what a JSON file describes (proto JSON): a Mesos TaskInfo, a ContainerConfig or a whole LaunchRequest; - reads stdin")
    .option("--cpus <n>", "cpus resource (CPU shares; a CFS quota too with serve --cgroups_enable_cfs)")
    .option("--mem <size>", "mem resource: MB, or with a unit (512m, 1g)")
    .option("--disk <size>", "disk resource: MB, or with a unit")
    .option("-e, --env <KEY=VALUE>", "environment variable (repeatable; a bare KEY copies this shell's value)", collect)
    .option("-v, --volume <host:container[:ro|rw]>", "bind a host path (repeatable; the server's policy decides which paths)", collect)
    .option("--network <mode>", "none, host, bridge or user:NAME (default: the server's, Mesos' HOST)")
    .option("--uri <uri>", "fetch this URI into the sandbox first (repeatable)", collect)
    .option("--user <user>", "run as this user (name or uid, optionally :group)")
    .option("--workdir <dir>", "working directory inside the container")
    .option("--shell", "run COMMAND with /bin/sh -c (Mesos shell=true)")
    .option("--pull", "pull the image even when the engine has it (force_pull_image)")
    .option("-d, --detach", "return once the launch is accepted (print the id)")
    .option("-w, --wait", "follow the container to its end and exit with its exit code (128+N for signal N)")
    .passThroughOptions()
    .action(
      action(async (connect, image: string | undefined, command: string[], flags: LaunchFlags & { detach?: boolean; wait?: boolean }, cmd: Command) => {
        if (flags.detach && flags.wait) throw new UsageError("--detach and --wait exclude each other");
        const req = buildLaunchRequest({ ...flags, image, command: withoutSeparator(command) });
        const id = req.containerId!.value;
        const conn = connect();
        const res = await conn.unary<typeof LaunchRequestSchema, LaunchResponse>("Launch", LaunchRequestSchema, req);
        if (res.result === LaunchResult.ALREADY_LAUNCHED) throw new CommandFailed(`Launch failed: container ${id} already exists (ALREADY_LAUNCHED); pick another --id`);
        if (res.result !== LaunchResult.LAUNCHED) throw new CommandFailed(`Launch failed: ${LaunchResult[res.result] ?? res.result}: this server does not run such a container`);
        const json = isJson(cmd);
        if (json) jsonLine({ containerId: id, launch: protoJson(LaunchResponseSchema, res) });
        if (flags.detach) {
          if (!json) out(`${id}\n`);
          return 0;
        }
        const view: LaunchView = json ? new JsonView(process.stdout) : process.stdout.isTTY ? new TtyView(process.stdout, id) : new PlainView(process.stdout);
        return follow(conn, id, res, view, flags.wait === true);
      }),
    );
}

function registerPs(program: Command): void {
  clientCommand(program, "ps", "list the containers Berth knows (live and recently terminated)")
    .option("-q, --quiet", "only the ids")
    .action(
      action(async (connect, flags: { quiet?: boolean }, cmd: Command) => {
        const conn = connect();
        const res = await conn.unary<typeof ContainersRequestSchema, ContainersResponse>("Containers", ContainersRequestSchema, {});
        if (isJson(cmd)) return jsonLine(protoJson(ContainersResponseSchema, res));
        const ids = res.containers.map((c) => c.containerId?.value ?? "");
        if (flags.quiet) return out(ids.map((i) => `${i}\n`).join(""));
        const snap = await watchSnapshot(conn, ids);
        const now = new Date();
        out(
          table(
            ["CONTAINER ID", "IMAGE", "STATE", "SINCE", "EXIT", "ENGINE ID"],
            res.containers.map((c) => {
              const s = snap.get(c.containerId?.value ?? "");
              const code = terminationExitCode(s?.termination);
              const exit = s?.termination ? (code !== undefined ? String(code) : "-") : "";
              return [c.containerId?.value ?? "", c.image, stateName(c.state), s?.since ? relativeTime(s.since, now) : "-", exit, c.engineId.slice(0, 12)];
            }),
          ),
        );
      }),
    );
}

function registerInspect(program: Command): void {
  clientCommand(program, "inspect", "show a container's status (Mesos ContainerStatus, Berth state, cgroups, termination)")
    .argument("<id>", "container id")
    .action(
      action(async (connect, id: string, _flags: unknown, cmd: Command) => {
        const conn = connect();
        const status = await conn.unary<typeof StatusRequestSchema, StatusResponse>("Status", StatusRequestSchema, { containerId: { value: id } });
        const [list, snap] = await Promise.all([
          conn.unary<typeof ContainersRequestSchema, ContainersResponse>("Containers", ContainersRequestSchema, {}),
          watchSnapshot(conn, [id]),
        ]);
        const summary = list.containers.find((c) => c.containerId?.value === id);
        const s = snap.get(id);
        if (isJson(cmd)) {
          return jsonLine({
            status: protoJson(StatusResponseSchema, status),
            ...(summary ? { summary: protoJson(ContainerSummarySchema, summary) } : {}),
            ...(s?.since ? { since: s.since.toISOString() } : {}),
            ...(s?.termination ? { termination: protoJson(TerminationSchema, s.termination) } : {}),
          });
        }
        const cs = status.containerStatus;
        const rows: [string, string][] = [
          ["ID", id],
          ["State", `${stateName(status.state)}${s?.since ? ` (since ${relativeTime(s.since)}, ${s.since.toISOString()})` : ""}`],
          ["Image", status.image],
          ["Engine ID", status.engineId || "-"],
          ["Sandbox", status.sandboxDirectory],
        ];
        if (cs?.executorPid) rows.push(["PID", String(cs.executorPid)]);
        for (const n of cs?.networkInfos ?? []) for (const a of n.ipAddresses) if (a.ipAddress) rows.push(["IP address", a.ipAddress]);
        for (const [controller, dir] of Object.entries(status.cgroupDirs).sort()) rows.push([`Cgroup ${controller}`, dir]);
        if (s?.termination) rows.push(["Terminated", `${describeTermination(s.termination)}`]);
        const width = Math.max(...rows.map(([k]) => k.length)) + 1;
        out(rows.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${v}\n`).join(""));
      }),
    );
}

function registerWait(program: Command): void {
  clientCommand(program, "wait", "block until a container ends; print and exit with its exit code (128+N for signal N)")
    .argument("<id>", "container id")
    .action(
      action(async (connect, id: string, _flags: unknown, cmd: Command) => {
        const res = await connect().unary<typeof WaitRequestSchema, WaitResponse>("Wait", WaitRequestSchema, { containerId: { value: id } });
        const code = terminationExitCode(res.termination);
        if (isJson(cmd)) jsonLine(protoJson(WaitResponseSchema, res));
        else if (code !== undefined) out(`${code}\n`);
        if (code === undefined) throw new CommandFailed(`container ${id} ended without a process exit: ${describeTermination(res.termination)}`, NO_PROCESS_EXIT);
        return code;
      }),
    );
}

function registerKill(program: Command): void {
  clientCommand(program, "kill", "destroy containers (SIGTERM, then SIGKILL after the grace period); idempotent")
    .argument("<ids...>", "container ids")
    .action(
      action(async (connect, ids: string[], _flags: unknown, cmd: Command) => {
        const conn = connect();
        let failures = 0;
        for (const id of ids) {
          try {
            const res = await conn.unary<typeof DestroyRequestSchema, DestroyResponse>("Destroy", DestroyRequestSchema, { containerId: { value: id } });
            if (isJson(cmd)) jsonLine({ containerId: id, ...(protoJson(DestroyResponseSchema, res) as object) });
            else out(`${id}  ${describeTermination(res.termination)}\n`);
          } catch (err) {
            failures++;
            process.stderr.write(`berth: ${(err as Error).message} (${id})\n`);
          }
        }
        return failures > 0 ? 1 : 0;
      }),
    );
}

function registerLogs(program: Command): void {
  clientCommand(program, "logs", "print a container's output (stdout to stdout, stderr to stderr)")
    .argument("<id>", "container id")
    .option("-f, --follow", "keep printing new output; ends once the container has ended")
    .option("-n, --tail <lines>", "only the last N lines of each stream")
    .option("--since <time>", "only output written since then: 10s, 5m, 2h back, or a date")
    .option("--stdout", "only stdout")
    .option("--stderr", "only stderr")
    .action(
      action(async (connect, id: string, flags: { follow?: boolean; tail?: string; since?: string; stdout?: boolean; stderr?: boolean }, cmd: Command) => {
        if (flags.stdout && flags.stderr) throw new UsageError("--stdout and --stderr exclude each other (give neither for both)");
        const tail = flags.tail !== undefined ? wholeNumber(flags.tail, "--tail") : undefined;
        const since = flags.since !== undefined ? timestampFromDate(parseSince(flags.since)) : undefined;
        const stream = connect().serverStream<typeof LogsRequestSchema, LogsResponse>("Logs", LogsRequestSchema, {
          containerId: { value: id },
          stream: flags.stdout ? LogStream.STDOUT : flags.stderr ? LogStream.STDERR : LogStream.UNSPECIFIED,
          tail,
          follow: flags.follow === true,
          since,
        });
        const json = isJson(cmd);
        await drain("Logs", stream, (r) => {
          if (json) return emit(process.stdout, `${JSON.stringify(protoJson(LogsResponseSchema, r))}\n`);
          return emit(r.stream === LogStream.STDERR ? process.stderr : process.stdout, r.data);
        });
      }),
    );
}

function registerExec(program: Command): void {
  clientCommand(program, "exec", "run a command in a running container (Exec RPC)")
    .argument("<id>", "container id")
    .argument("[command...]", "command and arguments (after --)")
    .option("-i, --interactive", "attach stdin")
    .option("-t, --tty", "allocate a terminal (the local one goes raw; its size follows)")
    .option("-e, --env <KEY=VALUE>", "environment variable (repeatable)", collect)
    .option("-u, --user <user>", "user (name, uid or uid:gid)")
    .option("-w, --workdir <dir>", "working directory inside the container")
    .passThroughOptions()
    .action(
      action(async (connect, id: string, command: string[], flags: { interactive?: boolean; tty?: boolean; env?: string[]; user?: string; workdir?: string }, cmd: Command) => {
        return runExec(connect(), id, withoutSeparator(command), { ...flags, env: parseEnv(flags.env ?? []), json: isJson(cmd) });
      }),
    );
}

function registerWatch(program: Command): void {
  clientCommand(program, "watch", "print container events, one line each (all containers when no id is given)")
    .argument("[ids...]", "container ids (the stream ends once all of them have ended)")
    .option("--from <sequence>", "resume after this event sequence number instead of a snapshot")
    .action(
      action(async (connect, ids: string[], flags: { from?: string }, cmd: Command) => {
        const from = flags.from !== undefined ? BigInt(wholeNumber(flags.from, "--from")) : undefined;
        const stream = connect().serverStream<typeof WatchRequestSchema, WatchResponse>("Watch", WatchRequestSchema, {
          containerIds: ids.map((value) => ({ value })),
          fromSequence: from,
        });
        const json = isJson(cmd);
        await drain("Watch", stream, (r) => {
          if (!r.event) return undefined;
          return emit(process.stdout, json ? `${JSON.stringify(protoJson(ContainerEventSchema, r.event))}\n` : `${describeEvent(r.event)}\n`);
        });
      }),
    );
}

function registerStats(program: Command): void {
  clientCommand(program, "stats", "a refreshing table of containers' resource use (Usage RPC); CPU % between samples")
    .argument("<ids...>", "container ids")
    .option("--no-stream", "print one sample (two measurements --interval apart) and exit")
    .option("--interval <duration>", "time between samples: 500ms, 1s, 2s", "1s")
    .action(
      action(async (connect, ids: string[], flags: { stream: boolean; interval: string }, cmd: Command) => {
        const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(flags.interval.trim());
        const intervalMs = m ? Number(m[1]) * (m[2] === "s" ? 1000 : 1) : NaN;
        if (!(intervalMs >= 100)) throw new UsageError(`--interval '${flags.interval}' is not a duration of at least 100ms (e.g. 500ms, 2s)`);
        const conn = connect();
        const json = isJson(cmd);
        const tty = process.stdout.isTTY && !json;
        const prev = new Map<string, ResourceStatistics>();
        const sample = async (emit: boolean): Promise<StatsRow[]> =>
          Promise.all(
            ids.map(async (id) => {
              try {
                const res = await conn.unary<typeof UsageRequestSchema, UsageResponse>("Usage", UsageRequestSchema, { containerId: { value: id } });
                const cur = res.statistics ?? create(ResourceStatisticsSchema, {});
                const row = statsRow(id, prev.get(id), cur);
                prev.set(id, cur);
                if (emit && json) jsonLine({ containerId: id, ...(row.cpuPercent !== undefined ? { cpuPercent: Number(row.cpuPercent.toFixed(2)) } : {}), statistics: protoJson(ResourceStatisticsSchema, cur) });
                return row;
              } catch (err) {
                if (!flags.stream) throw err;
                return { id, error: (err as Error).message.replace(/^Usage failed: /, "") };
              }
            }),
          );
        let stopped = false;
        const stop = () => (stopped = true);
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
        const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
        if (!flags.stream) {
          // CPU % needs two measurements: the first one is kept quiet.
          await sample(false);
          await sleep(intervalMs);
          const rows = await sample(true);
          if (!json) out(statsTable(rows));
          return 0;
        }
        while (!stopped) {
          const rows = await sample(true);
          if (!json) out(`${tty ? "\x1b[H\x1b[2J" : ""}${statsTable(rows)}${tty ? "" : "\n"}`);
          if (rows.every((r) => r.error !== undefined && /^(NOT_FOUND|FAILED_PRECONDITION)/.test(r.error))) {
            throw new CommandFailed(`Usage failed for every container: ${rows.map((r) => `${r.id}: ${r.error}`).join("; ")}`);
          }
          await sleep(intervalMs);
        }
        return 0;
      }),
    );
}

function registerPrune(program: Command): void {
  clientCommand(program, "prune", "remove images Berth pulled that no live container uses")
    .option("--keep <image>", "keep this image although unused (repeatable)", collect)
    .action(
      action(async (connect, flags: { keep?: string[] }, cmd: Command) => {
        const res = await connect().unary<typeof PruneImagesRequestSchema, PruneImagesResponse>("PruneImages", PruneImagesRequestSchema, {
          excludedImages: (flags.keep ?? []).map((name) => ({ type: Image_Type.DOCKER, docker: { name } })),
        });
        if (isJson(cmd)) return jsonLine(protoJson(PruneImagesResponseSchema, res));
        out(res.removedImages.length === 0 ? "nothing to remove\n" : res.removedImages.map((i) => `removed ${i}\n`).join(""));
      }),
    );
}

/** Adds the client commands to the `berth` program (next to `serve`, which stays as it is). */
export function registerClientCommands(program: Command): Command {
  // Options after a client command's first argument belong to the container's command (exec, launch).
  program.enablePositionalOptions();
  registerLaunch(program);
  registerPs(program);
  registerInspect(program);
  registerWait(program);
  registerKill(program);
  registerLogs(program);
  registerExec(program);
  registerWatch(program);
  registerStats(program);
  registerPrune(program);
  return program;
}
