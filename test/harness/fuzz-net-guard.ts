/**
 * Loaded into the fuzzed `berth serve` process with `node --import` (see fuzz.test.ts): every TCP
 * connect the process starts goes through net.Socket.prototype.connect, where this guard lets
 * unix sockets and loopback literals through and stops everything else before a packet leaves
 * (a link-local, private or public literal, or any host name but "localhost", so not even a DNS
 * query is sent). Each stopped attempt is appended as one JSON line to $BERTH_FUZZ_NET_LOG, and the
 * socket fails as a refused connection would; the fuzz suite then judges the attempts. Nothing of
 * Berth is changed: its own checks run before a connect ever reaches this point.
 */
import { appendFileSync } from "node:fs";
import net from "node:net";

const LOG = process.env.BERTH_FUZZ_NET_LOG;

/** One connect attempt the guard stopped. */
export interface BlockedConnect {
  host: string;
  port: string;
  /** "ip" for an address literal, "name" for a host name (stopped before any lookup). */
  form: "ip" | "name";
}

/** Whether an IP literal (v4, v6, bracketed, or IPv4-mapped) is a loopback address. */
export function isLoopbackLiteral(host: string): boolean {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const version = net.isIP(bare);
  if (version === 0) return false;
  const lower = bare.toLowerCase();
  if (version === 4) return lower.startsWith("127.");
  if (lower === "::1" || /^(0{0,4}:){7}0{0,3}1$/.test(lower)) return true;
  const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(lower);
  if (mapped) return mapped[1]!.startsWith("127.");
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  return hex !== null && parseInt(hex[1]!, 16) >> 8 === 127;
}

type ConnectArgs = unknown[];

/** The destination of a Socket#connect call: a unix path, or host and port. */
function destination(args: ConnectArgs): { path?: string; host?: string; port?: string } {
  let first = args[0];
  // net.connect hands the normalized [options, cb] array as the first argument.
  if (Array.isArray(first)) first = first[0];
  if (first !== null && typeof first === "object") {
    const o = first as { path?: unknown; host?: unknown; port?: unknown };
    if (typeof o.path === "string") return { path: o.path };
    return { host: typeof o.host === "string" ? o.host : "localhost", port: String(o.port) };
  }
  if (typeof first === "string" && !/^\d+$/.test(first)) return { path: first };
  return { host: typeof args[1] === "string" ? args[1] : "localhost", port: String(first) };
}

const original = net.Socket.prototype.connect;

net.Socket.prototype.connect = function guardedConnect(this: net.Socket, ...args: ConnectArgs) {
  const dest = destination(args);
  if (dest.path !== undefined || dest.host === undefined || dest.host === "localhost" || isLoopbackLiteral(dest.host)) {
    return (original as (...a: ConnectArgs) => net.Socket).apply(this, args);
  }
  const blocked: BlockedConnect = { host: dest.host, port: dest.port ?? "", form: net.isIP(dest.host.replace(/^\[|\]$/g, "")) === 0 ? "name" : "ip" };
  if (LOG) appendFileSync(LOG, `${JSON.stringify(blocked)}\n`);
  const err = Object.assign(new Error(`connect ECONNREFUSED ${dest.host}:${dest.port} (stopped by the fuzz suite's network guard)`), {
    code: "ECONNREFUSED",
    errno: -111,
    syscall: "connect",
  });
  process.nextTick(() => this.destroy(err));
  return this;
} as typeof net.Socket.prototype.connect;
