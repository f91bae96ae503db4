import { BlockList, isIP } from "node:net";

/** Which kind of address an IP is, for the fetcher's network rules. */
export type AddressKind = "loopback" | "link-local" | "private" | "unspecified" | "multicast" | "public";

/** Which addresses an http(s) fetch may connect to. */
export interface NetworkRules {
  /** Loopback (127/8, ::1) is refused unless this is set (local artifact servers, tests). */
  allowLoopback: boolean;
  /** Private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) are allowed unless this is set. */
  denyPrivate: boolean;
}

function list(entries: Array<[string, number, "ipv4" | "ipv6"]>): BlockList {
  const b = new BlockList();
  for (const [net, prefix, family] of entries) b.addSubnet(net, prefix, family);
  return b;
}

const LOOPBACK = list([["127.0.0.0", 8, "ipv4"], ["::1", 128, "ipv6"]]);
const LINK_LOCAL = list([["169.254.0.0", 16, "ipv4"], ["fe80::", 10, "ipv6"]]);
const PRIVATE = list([
  ["10.0.0.0", 8, "ipv4"],
  ["172.16.0.0", 12, "ipv4"],
  ["192.168.0.0", 16, "ipv4"],
  ["100.64.0.0", 10, "ipv4"],
  ["fc00::", 7, "ipv6"],
]);
const UNSPECIFIED = list([["0.0.0.0", 8, "ipv4"], ["::", 128, "ipv6"]]);
const MULTICAST = list([["224.0.0.0", 4, "ipv4"], ["240.0.0.0", 4, "ipv4"], ["ff00::", 8, "ipv6"]]);

/** `::ffff:a.b.c.d` (and its hex form) is the IPv4 address a.b.c.d as far as a socket is concerned. */
function unmapped(ip: string): { address: string; family: "ipv4" | "ipv6" } {
  const lower = ip.toLowerCase();
  const dotted = /^(?:0{0,4}:){0,5}:?ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(lower) ?? /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(lower);
  if (dotted) return { address: dotted[1]!, family: "ipv4" };
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hex) {
    const hi = parseInt(hex[1]!, 16);
    const lo = parseInt(hex[2]!, 16);
    return { address: `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, family: "ipv4" };
  }
  return { address: ip, family: isIP(ip) === 6 ? "ipv6" : "ipv4" };
}

/** A host as written in a URL or a listen address, without the brackets of an IPv6 literal (`[::1]` → `::1`). */
export function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** Classifies an IP literal (v4, v6, or IPv4-mapped v6). Throws on a string that is not an IP. */
export function addressKind(ip: string): AddressKind {
  const bare = unbracket(ip);
  if (isIP(bare) === 0) throw new Error(`'${ip}' is not an IP address`);
  const { address, family } = unmapped(bare);
  if (LOOPBACK.check(address, family)) return "loopback";
  if (LINK_LOCAL.check(address, family)) return "link-local";
  if (UNSPECIFIED.check(address, family)) return "unspecified";
  if (MULTICAST.check(address, family)) return "multicast";
  if (PRIVATE.check(address, family)) return "private";
  return "public";
}

/** Why a fetch may not connect to `ip` under `rules`, or null when it may. */
export function addressRefusal(ip: string, rules: NetworkRules): string | null {
  const kind = addressKind(ip);
  switch (kind) {
    case "public":
      return null;
    case "loopback":
      return rules.allowLoopback ? null : `${ip} is a loopback address (opened by --fetch_allow_loopback or the policy's fetch.allow_loopback)`;
    case "private":
      return rules.denyPrivate ? `${ip} is in a private range (refused by the policy's fetch.deny_private_networks)` : null;
    case "link-local":
      return `${ip} is a link-local address (cloud metadata services live there); never fetched`;
    case "unspecified":
      return `${ip} is an unspecified address; never fetched`;
    case "multicast":
      return `${ip} is a multicast or reserved address; never fetched`;
  }
}
