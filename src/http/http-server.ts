/**
 * `--http_listen`: /metrics (Prometheus text format) and a read-only live status page (`/`, its
 * script and stylesheet, and `/events`, a Server-Sent Events stream fed from the container event
 * stream). Plain HTTP on loopback only; HTTPS with --tls_cert/--tls_key (client certificates
 * required with --tls_client_ca, as on gRPC). With --auth_token_file every route but /healthz needs a
 * token (see HttpAuth).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { Logger } from "pino";
import { isLoopback, listenHost, type TransportSettings } from "../rpc/transport.js";
import type { TokenStore } from "../rpc/auth.js";
import type { BerthMetrics } from "../metrics/berth-metrics.js";
import { HttpAuth } from "./http-auth.js";
import { LOGIN_HTML, PAGE_CSS, PAGE_HTML, PAGE_JS } from "./page.js";
import type { StatusChange, StatusModel } from "./status-model.js";

/** Refuses a plaintext --http_listen on a non-loopback address (as --listen is refused). */
export function checkHttpListen(address: string, transport: TransportSettings): void {
  if (!transport.tls && !isLoopback(listenHost(address))) {
    throw new Error(`--http_listen '${address}' is not a loopback address and TLS is not configured: give --tls_cert and --tls_key, or listen on 127.0.0.1`);
  }
}

/** Options of the HTTP server. */
export interface StatusHttpOptions {
  listen: string;
  transport: TransportSettings;
  tokens?: TokenStore;
  metrics: BerthMetrics;
  model: StatusModel;
  log: Logger;
  /** Live page connections at once; more are answered 503 (default 32). */
  maxSseClients?: number;
  /** Bytes a page connection may fall behind by before it is dropped (default 1 MiB). */
  maxSseBufferedBytes?: number;
  /** Comment line interval keeping idle page connections open through proxies (default 15 s). */
  heartbeatMs?: number;
}

const SECURITY_HEADERS: Record<string, string> = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Cache-Control": "no-store",
  "Cross-Origin-Resource-Policy": "same-origin",
};

/** Login form bodies are tiny; anything larger is refused before it is buffered. */
const MAX_FORM_BYTES = 4096;

/** A live page connection. */
interface SseClient {
  res: ServerResponse;
}

/** The running HTTP server. */
export class StatusHttpServer {
  private readonly server: Server;
  private readonly auth: HttpAuth;
  private readonly clients = new Set<SseClient>();
  private readonly sockets = new Set<Socket>();
  private readonly unsubscribe: () => void;
  private heartbeat: NodeJS.Timeout | undefined;
  /** `host:port` actually bound (port 0 resolved). */
  bound = "";
  /** Page connections dropped for falling behind (for tests and the log). */
  dropped = 0;

  constructor(private readonly options: StatusHttpOptions) {
    this.auth = new HttpAuth(options.tokens);
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    const tls = options.transport.tls;
    this.server = tls
      ? createHttpsServer({ cert: tls.cert, key: tls.key, ca: tls.clientCa, requestCert: tls.clientCa !== undefined, rejectUnauthorized: tls.clientCa !== undefined }, handler)
      : createHttpServer(handler);
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    this.server.on("secureConnection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    // One serialization per change, written to every page connection.
    this.unsubscribe = options.model.subscribe((change) => this.broadcast(change));
  }

  /** Binds the address; the error names it and the cause. */
  async start(): Promise<void> {
    const address = this.options.listen;
    const host = listenHost(address);
    const port = Number(address.slice(address.lastIndexOf(":") + 1));
    await new Promise<void>((resolve, reject) => {
      const fail = (err: NodeJS.ErrnoException) => reject(new Error(`cannot listen on --http_listen '${address}': ${err.code ? `${err.message.replace(/^listen /, "")}` : err.message}`));
      this.server.once("error", fail);
      this.server.listen({ host, port }, () => {
        this.server.off("error", fail);
        resolve();
      });
    });
    const a = this.server.address() as AddressInfo;
    this.bound = `${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
    this.heartbeat = setInterval(() => {
      for (const c of this.clients) this.send(c, ": keep-alive\n\n");
    }, this.options.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
    const scheme = this.options.transport.tls ? "https" : "http";
    this.options.log.info({ http_listen: this.bound, auth: this.auth.required ? "bearer token" : "none" }, `metrics at ${scheme}://${this.bound}/metrics, status page at ${scheme}://${this.bound}/`);
  }

  /** Ends the page connections and closes the listener. */
  async stop(): Promise<void> {
    this.unsubscribe();
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const c of this.clients) c.res.end();
    this.clients.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }

  /** Live page connections now. */
  get sseClients(): number {
    return this.clients.size;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    const url = new URL(req.url ?? "/", "http://berth.invalid");
    const method = req.method ?? "GET";
    // DNS rebinding: a web page cannot make a browser send this server a Host it does not name.
    if (!this.options.transport.tls && !plausibleLoopbackHost(req.headers.host)) {
      return text(res, 421, "Host header must name a loopback address (this listener is loopback-only)\n");
    }
    if (url.pathname === "/login") {
      if (method !== "POST") return text(res, 405, "POST the token form to /login\n", { Allow: "POST" });
      return void this.login(req, res);
    }
    if (method !== "GET" && method !== "HEAD") return text(res, 405, `${method} is not served; this server is read-only\n`, { Allow: "GET, HEAD" });
    // The stylesheet carries nothing; the login form needs it before a token is given.
    if (url.pathname === "/status.css") return body(res, 200, "text/css; charset=utf-8", PAGE_CSS, method);
    // Browsers ask for it by themselves; there is none.
    if (url.pathname === "/favicon.ico") return body(res, 204, "image/x-icon", "", method);
    if (!this.auth.allows(req)) {
      if (url.pathname === "/") return body(res, 401, "text/html; charset=utf-8", LOGIN_HTML(false), method);
      return text(res, 401, "missing or invalid bearer token (Authorization: Bearer <token>, one of --auth_token_file's)\n", { "WWW-Authenticate": 'Bearer realm="berth"' });
    }
    switch (url.pathname) {
      case "/":
        return body(res, 200, "text/html; charset=utf-8", PAGE_HTML, method);
      case "/status.js":
        return body(res, 200, "text/javascript; charset=utf-8", PAGE_JS, method);
      case "/metrics":
        return void this.metrics(res, method);
      case "/events":
        // A stream has no HEAD: only GET opens one.
        if (method !== "GET") return text(res, 405, "GET /events opens the live stream\n", { Allow: "GET" });
        return this.events(req, res);
      default:
        return text(res, 404, `no such page: ${url.pathname.length > 100 ? "(long path)" : JSON.stringify(url.pathname)}\n`);
    }
  }

  private async metrics(res: ServerResponse, method: string): Promise<void> {
    try {
      const out = await this.options.metrics.text();
      body(res, 200, this.options.metrics.contentType, out, method);
    } catch (err) {
      this.options.log.warn({ err }, "metrics collection failed");
      text(res, 500, "metrics collection failed\n");
    }
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.auth.required) return redirect(res, "/");
    const type = req.headers["content-type"] ?? "";
    if (!type.startsWith("application/x-www-form-urlencoded")) return text(res, 415, "the login form is application/x-www-form-urlencoded\n");
    let size = 0;
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of req as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_FORM_BYTES) return text(res, 413, `the login form is at most ${MAX_FORM_BYTES} bytes\n`, { Connection: "close" });
        chunks.push(chunk);
      }
    } catch {
      return;
    }
    const token = new URLSearchParams(Buffer.concat(chunks).toString("utf8")).get("token") ?? "";
    const session = this.auth.login(token.trim());
    if (session === undefined) {
      this.options.log.warn({ peer: req.socket.remoteAddress }, "status page login refused: invalid token");
      return body(res, 401, "text/html; charset=utf-8", LOGIN_HTML(true), "POST");
    }
    redirect(res, "/", { "Set-Cookie": HttpAuth.cookie(session, this.options.transport.tls !== undefined) });
  }

  private events(req: IncomingMessage, res: ServerResponse): void {
    const max = this.options.maxSseClients ?? 32;
    if (this.clients.size >= max) {
      return text(res, 503, `${this.clients.size} live page connections are open, the most this server serves; close one and retry\n`, { "Retry-After": "5" });
    }
    res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", Connection: "keep-alive", "X-Accel-Buffering": "no" });
    const client: SseClient = { res };
    this.clients.add(client);
    const gone = () => this.clients.delete(client);
    req.once("close", gone);
    res.once("close", gone);
    // Reconnect after 2 s when the connection drops; the new connection gets a fresh snapshot.
    this.send(client, `retry: 2000\nevent: snapshot\ndata: ${JSON.stringify(this.options.model.snapshot())}\n\n`);
  }

  private broadcast(change: StatusChange): void {
    if (this.clients.size === 0) return;
    const frame = `event: ${change.type}\ndata: ${JSON.stringify(change.type === "row" ? change.row : change.engine)}\n\n`;
    for (const c of this.clients) this.send(c, frame);
  }

  /** Writes a frame; a client that has fallen too far behind is dropped (it reconnects to a snapshot). */
  private send(client: SseClient, frame: string): void {
    const res = client.res;
    if (res.destroyed) {
      this.clients.delete(client);
      return;
    }
    res.write(frame);
    if (res.writableLength > (this.options.maxSseBufferedBytes ?? 1024 * 1024)) {
      this.dropped += 1;
      this.clients.delete(client);
      this.options.log.warn({ peer: res.socket?.remoteAddress, buffered: res.writableLength }, "status page connection dropped: it fell behind the event stream");
      res.destroy();
    }
  }
}

/** True for a Host header naming a loopback address or localhost (any port), or none at all. */
function plausibleLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return true;
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:]+)(:\d+)?$/.exec(host);
  if (!m) return false;
  const name = m[1]!.replace(/^\[|\]$/g, "");
  return isLoopback(name);
}

function body(res: ServerResponse, code: number, type: string, content: string, method: string, headers: Record<string, string> = {}): void {
  const buf = Buffer.from(content, "utf8");
  res.writeHead(code, { "Content-Type": type, "Content-Length": String(buf.length), ...headers });
  res.end(method === "HEAD" ? undefined : buf);
}

function text(res: ServerResponse, code: number, message: string, headers: Record<string, string> = {}): void {
  body(res, code, "text/plain; charset=utf-8", message, "GET", headers);
}

function redirect(res: ServerResponse, to: string, headers: Record<string, string> = {}): void {
  res.writeHead(303, { Location: to, "Content-Length": "0", ...headers });
  res.end();
}
