import { isFieldSet } from "@bufbuild/protobuf";
import { ENV_NAME } from "../containerizer/container-id.js";
import {
  Environment_Variable_Type,
  HealthCheck_HTTPCheckInfoSchema,
  HealthCheck_Type,
  HealthCheckSchema,
  NetworkInfo_Protocol,
  type HealthCheck,
} from "../gen/mesos/v1/mesos_pb.js";

/** A health check that cannot be run as given; the message names the field and its value. */
export class HealthCheckInvalid extends Error {
  override readonly name = "HealthCheckInvalid";
}

/** When and how often to check, in milliseconds (fractions allowed), and when to give up. */
export interface HealthTiming {
  /** Before the first check, counted from the container's start. */
  delayMs: number;
  /** Between the end of one check and the start of the next. */
  intervalMs: number;
  /** Per check; 0 means no timeout (as in Mesos). */
  timeoutMs: number;
  /** Counted failures in a row that kill the task (0 kills at the first, as in Mesos). */
  consecutiveFailures: number;
  /** From the container's start: failures before the first success do not count while it lasts. */
  gracePeriodMs: number;
}

/** What one check does. */
export type HealthProbeSpec =
  | { type: "COMMAND"; argv: string[]; env: Record<string, string>; display: string }
  | { type: "HTTP"; https: boolean; host: "127.0.0.1" | "::1"; port: number; path: string; statuses: number[] }
  | { type: "TCP"; host: "127.0.0.1" | "::1"; port: number };

/** A validated TaskInfo.health_check. */
export interface HealthPlan {
  timing: HealthTiming;
  probe: HealthProbeSpec;
}

const FIELD = "task_info.health_check";

/**
 * Validates a Mesos HealthCheck and resolves it into what the checker runs. Pure. Throws
 * HealthCheckInvalid naming the field for: a type that is UNKNOWN or does not match the field
 * that is set (or a second kind of check set beside it), a negative, NaN or infinite duration,
 * a port outside 1-65535, a scheme other than http/https, a path not starting with '/', an HTTP
 * status outside 100-599, and COMMAND fields Berth does not run (uris, user, secrets).
 */
export function resolveHealthCheck(check: HealthCheck): HealthPlan {
  const timing: HealthTiming = {
    delayMs: seconds(check.delaySeconds, "delay_seconds"),
    intervalMs: seconds(check.intervalSeconds, "interval_seconds"),
    timeoutMs: seconds(check.timeoutSeconds, "timeout_seconds"),
    consecutiveFailures: check.consecutiveFailures,
    gracePeriodMs: seconds(check.gracePeriodSeconds, "grace_period_seconds"),
  };
  const set = (["command", "http", "tcp"] as const).filter((f) => check[f] !== undefined);
  const typeName = HealthCheck_Type[check.type] ?? String(check.type);
  const expected = { [HealthCheck_Type.COMMAND]: "command", [HealthCheck_Type.HTTP]: "http", [HealthCheck_Type.TCP]: "tcp" }[check.type as number] as
    | "command"
    | "http"
    | "tcp"
    | undefined;
  if (expected === undefined) {
    const hint = set.length > 0 ? ` (${set.map((f) => `${FIELD}.${f}`).join(", ")} is set)` : "";
    throw new HealthCheckInvalid(`${FIELD}.type ${isFieldSet(check, HealthCheckSchema.field.type) ? typeName : "(unset)"} is not a check type Berth runs${hint}; set type to COMMAND, HTTP or TCP with the matching field`);
  }
  if (!set.includes(expected)) throw new HealthCheckInvalid(`${FIELD}.type is ${typeName} but ${FIELD}.${expected} is not set`);
  const extra = set.filter((f) => f !== expected);
  if (extra.length > 0) throw new HealthCheckInvalid(`${FIELD}.type is ${typeName} but ${extra.map((f) => `${FIELD}.${f}`).join(" and ")} is set too; set only ${FIELD}.${expected}`);
  return { timing, probe: probeSpec(check) };
}

function probeSpec(check: HealthCheck): HealthProbeSpec {
  if (check.type === HealthCheck_Type.COMMAND) {
    const cmd = check.command!;
    const f = `${FIELD}.command`;
    if (cmd.uris.length > 0) throw new HealthCheckInvalid(`${f}.uris has ${cmd.uris.length} entries; a health check command runs inside the running container and fetches nothing`);
    if (cmd.user !== "") throw new HealthCheckInvalid(`${f}.user '${cmd.user}' is set; a health check command runs as the task's user`);
    if (cmd.value.includes("\0")) throw new HealthCheckInvalid(`${f}.value contains a NUL character`);
    for (const [i, a] of cmd.arguments.entries()) if (a.includes("\0")) throw new HealthCheckInvalid(`${f}.arguments[${i}] contains a NUL character`);
    let argv: string[];
    if (cmd.shell) {
      if (cmd.value.trim() === "") throw new HealthCheckInvalid(`${f}.value is empty but ${f}.shell is true: a shell command needs a value`);
      if (cmd.arguments.length > 0) throw new HealthCheckInvalid(`${f}.arguments has ${cmd.arguments.length} entries but ${f}.shell is true: arguments are only used with shell=false`);
      argv = ["/bin/sh", "-c", cmd.value];
    } else {
      if (cmd.value === "") throw new HealthCheckInvalid(`${f}.value is empty: with shell=false, value is the program to run`);
      // As Mesos' docker runtime execs it: the program (value), then the arguments.
      argv = [cmd.value, ...cmd.arguments];
    }
    const env: Record<string, string> = {};
    for (const [i, v] of (cmd.environment?.variables ?? []).entries()) {
      const vf = `${f}.environment.variables[${i}]`;
      if (!ENV_NAME.test(v.name)) throw new HealthCheckInvalid(`${vf}.name '${v.name}' is empty or contains '=' or NUL`);
      if (v.type === Environment_Variable_Type.SECRET) throw new HealthCheckInvalid(`${vf} ('${v.name}') is a SECRET; Berth does not resolve secrets, pass the value as VALUE`);
      if (v.value.includes("\0")) throw new HealthCheckInvalid(`${vf}.value of '${v.name}' contains a NUL character`);
      env[v.name] = v.value;
    }
    return { type: "COMMAND", argv, env, display: cmd.shell ? cmd.value : argv.join(" ") };
  }
  if (check.type === HealthCheck_Type.HTTP) {
    const http = check.http!;
    const f = `${FIELD}.http`;
    const port = checkPort(http.port, `${f}.port`);
    const scheme = isFieldSet(http, HealthCheck_HTTPCheckInfoSchema.field.scheme) ? http.scheme : "http";
    if (scheme !== "http" && scheme !== "https") throw new HealthCheckInvalid(`${f}.scheme '${scheme}' is not supported; use 'http' or 'https'`);
    const path = http.path === "" ? "/" : http.path;
    if (!path.startsWith("/")) throw new HealthCheckInvalid(`${f}.path '${http.path}' must start with '/'`);
    // The path goes into the request line as is: whitespace or control characters would split it.
    if (/[\s\0-\x1f\x7f]/.test(path)) throw new HealthCheckInvalid(`${f}.path '${http.path}' contains whitespace or a control character; percent-encode it`);
    for (const [i, s] of http.statuses.entries()) {
      if (s < 100 || s > 599) throw new HealthCheckInvalid(`${f}.statuses[${i}] ${s} is not an HTTP status (100-599)`);
    }
    return { type: "HTTP", https: scheme === "https", host: loopback(http.protocol, `${f}.protocol`), port, path, statuses: [...http.statuses] };
  }
  const tcp = check.tcp!;
  return { type: "TCP", host: loopback(tcp.protocol, `${FIELD}.tcp.protocol`), port: checkPort(tcp.port, `${FIELD}.tcp.port`) };
}

/** Seconds → milliseconds, refusing what a timer cannot mean. */
function seconds(value: number, field: string): number {
  if (!Number.isFinite(value) || value < 0) throw new HealthCheckInvalid(`${FIELD}.${field} ${value} must be a finite number of seconds ≥ 0`);
  return value * 1000;
}

function checkPort(port: number, field: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new HealthCheckInvalid(`${field} ${port} is not a port (1-65535)`);
  return port;
}

/** The container's own loopback address for the protocol (Mesos probes 127.0.0.1 inside the task's network namespace). */
function loopback(protocol: NetworkInfo_Protocol, field: string): "127.0.0.1" | "::1" {
  if (protocol === NetworkInfo_Protocol.IPv4) return "127.0.0.1";
  if (protocol === NetworkInfo_Protocol.IPv6) return "::1";
  throw new HealthCheckInvalid(`${field} ${protocol} is neither IPv4 nor IPv6`);
}

/** Whether a response status counts as healthy: one of `statuses` when given, else 200-399 as Mesos. */
export function statusIsHealthy(status: number, statuses: readonly number[]): boolean {
  return statuses.length > 0 ? statuses.includes(status) : status >= 200 && status < 400;
}
