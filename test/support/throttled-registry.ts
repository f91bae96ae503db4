import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { REGISTRY } from "./registry.js";

/** A throttling reverse proxy in front of the local registry. */
export interface ThrottledRegistry {
  /** `127.0.0.1:PORT`: pull `${host}/berth-test/big:1` to go through the proxy. */
  host: string;
  /** Stops listening and destroys every open connection (client and upstream). */
  close(): Promise<void>;
  /** Response body bytes forwarded to clients so far (all requests, throttled or not). */
  bytesSent(): number;
}

// Hop-by-hop headers belong to one connection and must not be forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP = new Set([
  "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
  "te", "trailer", "transfer-encoding", "upgrade",
]);

// Throttled bodies are written in slices of this fraction of a second, so the rate is smooth.
const SLICES_PER_SECOND = 20;

const BLOB_PATH = /^\/v2\/.+\/blobs\/[^/]+$/;

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(key.toLowerCase())) out[key] = value;
  }
  return out;
}

/**
 * Starts an HTTP reverse proxy on 127.0.0.1:0 in front of the local registry that throttles the
 * bodies of blob GETs to `bytesPerSecond`; everything else passes through unthrottled.
 */
export async function startThrottledRegistry(opts: { bytesPerSecond: number }): Promise<ThrottledRegistry> {
  const rate = opts.bytesPerSecond;
  if (!Number.isFinite(rate) || rate <= 0) {
    throw new Error(`bytesPerSecond must be a positive number, got ${rate}`);
  }
  const [upstreamHost, upstreamPort] = REGISTRY.split(":");
  const sliceBytes = Math.max(1, Math.floor(rate / SLICES_PER_SECOND));
  const sockets = new Set<Socket>();
  let sent = 0;
  let closed = false;
  let host = "";

  // Waits until `res` may take more bytes; false when the client went away meanwhile.
  const drained = (res: ServerResponse): Promise<boolean> =>
    new Promise((resolve) => {
      const done = (ok: boolean) => () => {
        res.off("drain", onDrain);
        res.off("close", onClose);
        resolve(ok);
      };
      const onDrain = done(true);
      const onClose = done(false);
      res.on("drain", onDrain);
      res.on("close", onClose);
    });

  const pipeThrottled = async (body: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = Date.now();
    let forwarded = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      for (let offset = 0; offset < chunk.length; offset += sliceBytes) {
        const slice = chunk.subarray(offset, offset + sliceBytes);
        // Pace against the start time rather than per slice, so timer lateness does not add up.
        const wait = started + (forwarded * 1000) / rate - Date.now();
        if (wait > 0) await delay(wait);
        if (closed || res.destroyed) {
          body.destroy();
          return;
        }
        forwarded += slice.length;
        sent += slice.length;
        if (!res.write(slice) && !(await drained(res))) {
          body.destroy();
          return;
        }
      }
    }
    res.end();
  };

  const pipePlain = (body: IncomingMessage, res: ServerResponse): void => {
    body.on("data", (chunk: Buffer) => {
      sent += chunk.length;
    });
    body.pipe(res);
  };

  const server = createServer((req, res) => {
    const path = req.url ?? "/";
    const throttled = req.method === "GET" && BLOB_PATH.test(path.split("?")[0]);
    // Host stays the proxy's own, so URLs the registry builds from it already point here.
    const upstream = request({
      host: upstreamHost,
      port: Number(upstreamPort),
      method: req.method,
      path,
      headers: forwardable(req.headers),
    });
    upstream.on("response", (upRes) => {
      const headers = forwardable(upRes.headers);
      const location = upRes.headers.location;
      if (location !== undefined) headers.location = location.replaceAll(REGISTRY, host);
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, headers);
      if (throttled) {
        pipeThrottled(upRes, res).catch(() => res.destroy());
      } else {
        pipePlain(upRes, res);
      }
    });
    upstream.on("error", (err) => {
      if (res.headersSent) {
        res.destroy();
      } else {
        res.writeHead(502, { "content-type": "text/plain" });
        res.end(`proxy to registry ${REGISTRY} failed for ${req.method} ${path}: ${err.message}\n`);
      }
    });
    // A client that goes away (an aborted engine pull) takes its upstream transfer with it.
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    host,
    bytesSent: () => sent,
    close: async () => {
      closed = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await stopped;
    },
  };
}
