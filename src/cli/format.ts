/** How the CLI shows things to a person: aligned tables, relative times, byte sizes, one-line events. */
import { isFieldSet, toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { CacheOutcome, LogStream, State, type ContainerEvent, type Termination } from "../gen/berth/v1/containerizer_pb.js";
import { ContainerTerminationSchema } from "../gen/mesos/slave/containerizer_pb.js";
import { TaskState, TaskStatus_Reason, TaskStatusSchema } from "../gen/mesos/v1/mesos_pb.js";

/** A message as proto JSON (protobuf-es toJson, JSON names), for `--output json`. */
export function protoJson<D extends DescMessage>(schema: D, message: MessageShape<D>): unknown {
  return toJson(schema, message);
}

/** `RUNNING` for State.RUNNING. */
export function stateName(state: State): string {
  return (State[state] ?? String(state)).replace(/^STATE_/, "");
}

/** Columns padded to the widest cell, two spaces apart; the last column is not padded. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => [...(r[i] ?? "")].length)));
  return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell + " ".repeat(widths[i]! - [...cell].length))).join("  ").trimEnd()).join("\n") + "\n";
}

/** `3s ago`, `5m ago`, `2h ago`, `4d ago` (`just now` under a second; `in 2s` for a future time). */
export function relativeTime(then: Date, now: Date = new Date()): string {
  const ms = now.getTime() - then.getTime();
  const future = ms < 0;
  const s = Math.floor(Math.abs(ms) / 1000);
  if (s < 1) return "just now";
  const text = s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : s < 86400 ? `${Math.floor(s / 3600)}h` : `${Math.floor(s / 86400)}d`;
  return future ? `in ${text}` : `${text} ago`;
}

/** A duration in a short human form: `850ms`, `3.2s`, `4m05s`. */
export function shortDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  return `${m}m${String(Math.floor((ms % 60_000) / 1000)).padStart(2, "0")}s`;
}

/** Bytes in binary units: `512B`, `1.5KiB`, `64.0MiB`. */
export function humanBytes(n: number | bigint): string {
  let v = Number(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v}B` : `${v.toFixed(1)}${units[u]}`;
}

export function timestamp(t: Timestamp | undefined): Date | undefined {
  return t ? timestampDate(t) : undefined;
}

/** The process exit code a termination stands for: its exit code, 128+N for signal N; undefined when no process ran. */
export function terminationExitCode(t: Termination | undefined): number | undefined {
  if (!t) return undefined;
  if (t.exitCode !== undefined) return t.exitCode;
  if (t.signal !== undefined) return 128 + t.signal;
  return undefined;
}

/** `exit 3`, `signal 9 (exit 137)`, or the Mesos state and reason when no process ran. */
export function describeTermination(t: Termination | undefined): string {
  if (!t) return "";
  const ct = t.containerTermination;
  const parts: string[] = [];
  if (t.exitCode !== undefined) parts.push(`exit ${t.exitCode}`);
  else if (t.signal !== undefined) parts.push(`signal ${t.signal} (exit ${128 + t.signal})`);
  if (ct) {
    const state = TaskState[ct.state] ?? String(ct.state);
    const reason = isFieldSet(ct, ContainerTerminationSchema.field.reason) ? (TaskStatus_Reason[ct.reason] ?? String(ct.reason)) : undefined;
    parts.push(reason ? `${state} ${reason}` : state);
    if (ct.message) parts.push(ct.message);
  }
  return parts.join(", ");
}

/** One event on one line: `12:00:01.123  #42  web-1  PULLING  …`. */
export function describeEvent(e: ContainerEvent): string {
  const time = timestamp(e.time);
  const head = `${time ? time.toISOString() : "-"}  #${e.sequence}  ${e.containerId?.value ?? "?"}${e.snapshot ? "  (snapshot)" : ""}`;
  const k = e.kind;
  switch (k.case) {
    case "stateChanged":
      return `${head}  state ${stateName(k.value.state)}${k.value.previous ? ` (from ${stateName(k.value.previous)})` : ""}${k.value.message ? `: ${k.value.message}` : ""}`;
    case "pullProgress": {
      const p = k.value;
      const total = Number(p.bytesTotal);
      const pct = total > 0 ? ` ${Math.floor((Number(p.bytesCurrent) * 100) / total)}%` : "";
      return `${head}  pull ${p.image} ${humanBytes(p.bytesCurrent)}/${humanBytes(p.bytesTotal)}${pct} layers ${p.layersDone}/${p.layersTotal}${p.status ? ` ${p.status}` : ""}`;
    }
    case "fetchResult":
      return `${head}  fetched ${k.value.uri} (${humanBytes(k.value.bytes)}, cache ${(CacheOutcome[k.value.cache] ?? "").replace(/^CACHE_OUTCOME_/, "")})`;
    case "taskStatus": {
      const s = k.value;
      const reason = isFieldSet(s, TaskStatusSchema.field.reason) ? ` ${TaskStatus_Reason[s.reason] ?? s.reason}` : "";
      const healthy = isFieldSet(s, TaskStatusSchema.field.healthy) ? ` healthy=${s.healthy}` : "";
      return `${head}  task ${TaskState[s.state] ?? s.state}${reason}${healthy}${s.message ? `: ${s.message}` : ""}`;
    }
    case "termination":
      return `${head}  terminated ${describeTermination(k.value)}`;
    default:
      return `${head}  (unknown event)`;
  }
}

export function streamName(s: LogStream): string {
  return s === LogStream.STDERR ? "stderr" : s === LogStream.STDOUT ? "stdout" : "both";
}
