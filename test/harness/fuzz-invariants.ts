/**
 * What the fuzz suite checks after each call and after each run: the shape of every answer, and
 * what a refused launch may not leave behind (engine containers, sandboxes, checkpoints, requested
 * directories, docker volumes), plus the network guard's record of stopped connects.
 */
import { existsSync, readFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import type Dockerode from "dockerode";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import type { BlockedConnect } from "./fuzz-net-guard.js";

/** Codes that say "the server broke", not "your request was wrong". */
const BROKEN_CODES = new Set<number>([status.INTERNAL, status.UNKNOWN]);

/** Prints a value short and safe for an assertion message. */
export function show(value: unknown, max = 160): string {
  const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? `<${v.length} bytes>` : v)) ?? String(value);
  return text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text;
}

/**
 * A problem with a call's error, or undefined when it is a proper refusal: a gRPC status that is
 * not INTERNAL/UNKNOWN and carries a message. `allowed` lists codes the caller itself may cause
 * (DEADLINE_EXCEEDED and CANCELLED when the test set a deadline or cancelled).
 */
export function answerProblem(method: string, err: unknown, allowed: ReadonlySet<number> = new Set()): string | undefined {
  const e = err as Partial<ServiceError> | undefined;
  if (!e || typeof e.code !== "number") return `${method}: answered a non-gRPC error ${show(String(err))}`;
  if (allowed.has(e.code)) return undefined;
  if (BROKEN_CODES.has(e.code)) return `${method}: answered ${status[e.code]} (${show(e.details ?? "", 600)})`;
  if (e.code === status.DEADLINE_EXCEEDED || e.code === status.CANCELLED) return `${method}: answered ${status[e.code]} without a deadline or cancel from the test`;
  if (!e.details || e.details.trim() === "") return `${method}: answered ${status[e.code]} with an empty message`;
  return undefined;
}

/** Whether `id` can name a file in a directory (so a leftover check by path means something). */
export function isPathSegment(id: string): boolean {
  return id !== "" && id !== "." && id !== ".." && !id.includes("/") && !id.includes("\0");
}

/** What a refused launch asked for, checked once the run is over. */
export interface Refusal {
  id?: string;
  /** Directories unique to this request (requested sandbox or volume roots) that must not exist. */
  freshPaths: string[];
  volumeNames: string[];
  answer: string;
}

/** Files and folders a refused launch left behind in the work dir or at requested paths. */
export function refusalLeftovers(workDir: string, r: Refusal): string[] {
  const left: string[] = [];
  if (r.id !== undefined && isPathSegment(r.id)) {
    for (const p of [path.join(workDir, "sandboxes", r.id), path.join(workDir, "meta", "containers", `${r.id}.pb`)]) {
      if (existsSync(p)) left.push(p);
    }
  }
  for (const p of r.freshPaths) if (existsSync(p)) left.push(p);
  return left;
}

/** Names in a directory (none when it does not exist). */
export async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/** This agent's engine containers, by their berth.container_id label. */
export async function engineContainers(docker: Dockerode, agentId: string): Promise<Array<{ id: string; containerId: string; state: string }>> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${agentId}`] } });
  return list.map((c) => ({ id: c.Id, containerId: c.Labels[LABEL_CONTAINER_ID] ?? "", state: c.State }));
}

/** Engine volumes whose name starts with `prefix`. */
export async function volumesNamed(docker: Dockerode, prefix: string): Promise<string[]> {
  const { Volumes } = await docker.listVolumes({ filters: { name: [prefix] } });
  return (Volumes ?? []).map((v) => v.Name).filter((n) => n.startsWith(prefix));
}

/** Reads the network guard's log from `offset` (bytes); returns the new attempts and the next offset. */
export function readNetLog(file: string, offset: number): { attempts: BlockedConnect[]; next: number } {
  if (!existsSync(file)) return { attempts: [], next: offset };
  const buf = readFileSync(file);
  const text = buf.subarray(offset).toString("utf8");
  const attempts = text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as BlockedConnect);
  return { attempts, next: buf.length };
}

function v4Of(ip: string): string | undefined {
  const lower = ip.toLowerCase();
  if (net.isIP(lower) === 4) return lower;
  const dotted = /^(?:0{0,4}:){0,5}:?ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(lower);
  if (dotted) return dotted[1];
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hex) {
    const hi = parseInt(hex[1]!, 16);
    const lo = parseInt(hex[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return undefined;
}

/**
 * Why a stopped connect attempt is a Berth fault, or undefined when it is one Berth may make by
 * design. The defaults: loopback (passed by the guard) and link-local, unspecified and
 * multicast addresses are never fetched — an attempt to them means Berth's admission or
 * connect-time check let it through; private ranges are allowed unless the policy denies them
 * (so an attempt is by design; the guard still stops it); '.invalid' names never resolve (the
 * guard stops them before the lookup). Public addresses are never generated.
 */
export function connectFault(a: BlockedConnect): string | undefined {
  const host = a.host.replace(/^\[|\]$/g, "");
  if (a.form === "name") return host.toLowerCase().endsWith(".invalid") ? undefined : `Berth tried to connect to host name '${a.host}' (never generated)`;
  const v4 = v4Of(host);
  if (v4) {
    const [x, y] = v4.split(".").map(Number) as [number, number];
    if (x === 169 && y === 254) return `Berth tried to connect to the link-local address ${a.host}:${a.port} (cloud metadata lives there; must be refused before connecting)`;
    if (x === 0) return `Berth tried to connect to the unspecified address ${a.host}:${a.port} (must never be fetched)`;
    if (x >= 224) return `Berth tried to connect to the multicast/reserved address ${a.host}:${a.port} (must never be fetched)`;
    if (x === 10 || (x === 172 && y >= 16 && y < 32) || (x === 192 && y === 168) || (x === 100 && y >= 64 && y < 128)) return undefined;
    return `Berth tried to connect to the public address ${a.host}:${a.port} (never generated)`;
  }
  const lower = host.toLowerCase();
  if (/^fe[89ab]/.test(lower)) return `Berth tried to connect to the link-local address ${a.host}:${a.port} (must be refused before connecting)`;
  if (lower === "::") return `Berth tried to connect to the unspecified address ${a.host}:${a.port} (must never be fetched)`;
  if (lower.startsWith("ff")) return `Berth tried to connect to the multicast address ${a.host}:${a.port} (must never be fetched)`;
  if (/^f[cd]/.test(lower)) return undefined;
  return `Berth tried to connect to the public address ${a.host}:${a.port} (never generated)`;
}
