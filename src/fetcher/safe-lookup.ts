import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import { addressRefusal, unbracket, type NetworkRules } from './address-rules.js';

/** One resolved address, as dns.lookup({ all: true }) answers it. */
export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to addresses (dns.lookup by default; injectable so tests never need real DNS). */
export type Resolver = (hostname: string, family: number) => Promise<ResolvedAddress[]>;

/** The system resolver (getaddrinfo, so /etc/hosts counts, as it does for any other client on the host). */
export const systemResolver: Resolver = (hostname, family) =>
  dnsLookup(hostname, { all: true, family: family === 4 || family === 6 ? family : 0, verbatim: true });

/** An address (or a name resolving to one) the network rules refuse; raised before any packet is sent to it. */
export class AddressRefused extends Error {
  override name = 'AddressRefused';
  readonly code = 'EBERTH_ADDRESS_REFUSED';
}

/** The bare host of a URL: brackets of an IPv6 literal removed. */
export function bareHost(url: URL): string {
  return unbracket(url.hostname);
}

/**
 * Refuses a URL whose host is an IP literal the rules forbid. Literals skip DNS (net.connect never
 * calls `lookup` for them), so this is their only check. The WHATWG parser has already turned
 * `2130706433`, `0x7f.1` and friends into dotted form; IPv4-mapped IPv6 is classified as its IPv4.
 */
export function assertLiteralAllowed(url: URL, rules: NetworkRules): void {
  const host = bareHost(url);
  if (isIP(host) === 0) return;
  const why = addressRefusal(host, rules);
  if (why !== null) throw new AddressRefused(`refused to connect to ${host}: ${why}`);
}

/**
 * A `lookup` for http.request / net.connect that resolves the name and refuses the whole answer if any
 * address in it is forbidden. net connects only to addresses this function returns, so the address
 * checked is the address connected to: there is no second resolution an attacker's DNS could answer
 * differently (no rebinding window), and each redirect hop is a new connection that passes through
 * here again. Node 20 asks with `{ all: true }` (happy eyeballs) and wants an array; older call shapes
 * (`all` unset) get the first address.
 */
export function guardedLookup(rules: NetworkRules, resolve: Resolver = systemResolver): LookupFunction {
  return ((hostname: string, options: unknown, callback?: unknown) => {
    let cb = callback as (err: NodeJS.ErrnoException | null, address?: unknown, family?: number) => void;
    let opts: { all?: boolean; family?: number | string } = {};
    if (typeof options === 'function') {
      cb = options as typeof cb;
    } else if (typeof options === 'number') {
      opts = { family: options };
    } else if (options !== null && typeof options === 'object') {
      opts = options as typeof opts;
    }
    const family = opts.family === 'IPv4' ? 4 : opts.family === 'IPv6' ? 6 : Number(opts.family ?? 0) || 0;
    resolve(hostname, family).then(
      (answers) => {
        const addresses = answers
          .filter((a) => isIP(a.address) !== 0)
          .map((a) => ({ address: a.address, family: isIP(a.address) }));
        if (addresses.length === 0) {
          const err: NodeJS.ErrnoException = new Error(`host '${hostname}' did not resolve to any address`);
          err.code = 'ENOTFOUND';
          return cb(err);
        }
        for (const a of addresses) {
          const why = addressRefusal(a.address, rules);
          if (why !== null) return cb(new AddressRefused(`refused to connect to '${hostname}': it resolves to ${why}`));
        }
        if (opts.all) cb(null, addresses);
        else cb(null, addresses[0]!.address, addresses[0]!.family);
      },
      (err: NodeJS.ErrnoException) => cb(err),
    );
  }) as LookupFunction;
}
