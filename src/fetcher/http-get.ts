import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { NetworkRules } from './address-rules.js';
import { assertLiteralAllowed, bareHost, guardedLookup, type Resolver } from './safe-lookup.js';

/** How one http(s) GET is bounded. */
export interface HttpGetOptions {
  signal: AbortSignal;
  network: NetworkRules;
  /** From the start of each request (DNS, connect, TLS) until its response headers. */
  connectTimeoutMs: number;
  /** Longest wait for the next byte of the body. */
  idleTimeoutMs: number;
  maxRedirects: number;
  /** A declared Content-Length above this fails before the body is read. */
  maxBytes: number;
  /** Message used when Content-Length exceeds maxBytes (the caller knows which limit it is). */
  tooLarge?: (declared: number) => string;
  /** Test seam: the resolver behind the guarded lookup (default: dns.lookup). */
  resolve?: Resolver;
}

/** An open response body. `close()` is idempotent and releases the socket; iterating to the end also does. */
export interface HttpBody {
  body: AsyncIterable<Buffer>;
  close(): void;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** A URL without its user:password part, for messages. */
export function displayUrl(url: URL): string {
  if (url.username === '' && url.password === '') return url.href;
  const copy = new URL(url.href);
  copy.username = '';
  copy.password = '';
  return copy.href;
}

/**
 * GETs `url` with node:http/node:https, following redirects itself. Every hop's host is checked
 * (literals here, names in the guarded lookup at connect time), timeouts are our own timers and do
 * not depend on the caller's signal, and the signal aborts whichever request or body is in flight.
 * Resolves once a 2xx response's headers are in; the caller must iterate or close the body.
 */
export async function httpGet(url: URL, options: HttpGetOptions): Promise<HttpBody> {
  let current = url;
  for (let hop = 0; ; hop++) {
    options.signal.throwIfAborted();
    const res = await requestOnce(current, options);
    const status = res.statusCode ?? 0;
    if (REDIRECTS.has(status)) {
      const location = res.headers.location;
      res.destroy();
      if (!location) throw new Error(`HTTP ${status} from '${displayUrl(current)}' has no Location header`);
      if (hop >= options.maxRedirects) {
        throw new Error(`too many redirects: more than the limit of ${options.maxRedirects} (--fetch_max_redirects), last at '${displayUrl(current)}'`);
      }
      let next: URL;
      try {
        next = new URL(location, current);
      } catch {
        throw new Error(`HTTP ${status} from '${displayUrl(current)}' redirects to an invalid Location ${JSON.stringify(location)}`);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new Error(`redirect from '${displayUrl(current)}' to '${displayUrl(next)}' refused: only http and https targets are followed`);
      }
      current = next;
      continue;
    }
    if (status < 200 || status > 299) {
      res.destroy();
      const from = current === url ? '' : ` from '${displayUrl(current)}'`;
      throw new Error(`HTTP ${status}${res.statusMessage ? ' ' + res.statusMessage : ''}${from}`);
    }
    const declared = Number(res.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > options.maxBytes) {
      res.destroy();
      throw new Error(options.tooLarge?.(declared) ?? `Content-Length ${declared} exceeds the limit of ${options.maxBytes} bytes`);
    }
    return { body: idleTimedBody(res, options), close: () => res.destroy() };
  }
}

function requestOnce(url: URL, options: HttpGetOptions): Promise<IncomingMessage> {
  // Literal IPs never reach the lookup: refuse them before a socket exists.
  assertLiteralAllowed(url, options.network);
  return new Promise<IncomingMessage>((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request({
      protocol: url.protocol,
      hostname: bareHost(url),
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      auth: url.username || url.password ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : undefined,
      headers: { 'user-agent': 'berth-fetcher', accept: '*/*', 'accept-encoding': 'identity' },
      // No pooling: every request (and so every redirect hop) opens its own socket through the lookup.
      agent: false,
      lookup: guardedLookup(options.network, options.resolve),
    });
    const timer = setTimeout(() => {
      req.destroy(
        new Error(`no response from '${displayUrl(url)}' within ${options.connectTimeoutMs} ms (connect timeout, --fetch_connect_timeout)`),
      );
    }, options.connectTimeoutMs);
    const onAbort = () => req.destroy(options.signal.reason ?? new Error('aborted'));
    const done = () => {
      clearTimeout(timer);
      options.signal.removeEventListener('abort', onAbort);
    };
    options.signal.addEventListener('abort', onAbort, { once: true });
    req.on('response', (res) => {
      done();
      resolve(res);
    });
    // Stays attached after the response: later socket errors surface through the body instead.
    req.on('error', (err) => {
      done();
      reject(err);
    });
    req.end();
  });
}

/**
 * The response body, failing when no byte arrives for idleTimeoutMs. Only the wait for the socket is
 * timed, not the time the consumer takes to write a chunk. The socket is released on every exit.
 */
async function* idleTimedBody(res: IncomingMessage, options: HttpGetOptions): AsyncGenerator<Buffer> {
  let timer: NodeJS.Timeout | undefined;
  const onAbort = () => res.destroy(options.signal.reason ?? new Error('aborted'));
  options.signal.addEventListener('abort', onAbort, { once: true });
  try {
    options.signal.throwIfAborted();
    const chunks = res[Symbol.asyncIterator]();
    for (;;) {
      timer = setTimeout(() => {
        res.destroy(new Error(`no data received for ${options.idleTimeoutMs} ms (idle timeout, --fetch_idle_timeout)`));
      }, options.idleTimeoutMs);
      const next = await chunks.next();
      clearTimeout(timer);
      if (next.done) return;
      yield next.value as Buffer;
    }
  } finally {
    clearTimeout(timer);
    options.signal.removeEventListener('abort', onAbort);
    res.destroy();
  }
}
