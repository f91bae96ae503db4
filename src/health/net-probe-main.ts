/**
 * The HTTP/TCP probe program. The health checker runs it through `nsenter --net=…` inside the
 * container's network namespace, so 127.0.0.1 / ::1 here is the container's own loopback. It makes
 * one connection to the given loopback address and port (never a name lookup, never a redirect),
 * prints one JSON line — `{"connected":true}`, `{"status":200}` or `{"error":"…"}` — and exits.
 */
import http from "node:http";
import https from "node:https";
import net from "node:net";

interface ProbeArgs {
  type: "HTTP" | "TCP";
  host: "127.0.0.1" | "::1";
  port: number;
  path?: string;
  https?: boolean;
  /** A deadline of its own, in case the parent is gone and cannot kill it. */
  deadlineMs: number;
}

const LOOPBACK = new Set(["127.0.0.1", "::1"]);

function report(result: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}${e.message && !e.message.includes(e.code) ? ` (${e.message})` : ""}` : String(e?.message ?? err);
}

function main(): void {
  let args: ProbeArgs;
  try {
    args = JSON.parse(process.argv[2] ?? "") as ProbeArgs;
  } catch {
    report({ error: "bad probe arguments" });
    return;
  }
  // The parent validated these; checked again because this program's reach must never depend on it.
  if (!LOOPBACK.has(args.host) || !Number.isInteger(args.port) || args.port < 1 || args.port > 65535) {
    report({ error: `refusing to probe ${args.host}:${args.port}: only the loopback address` });
    return;
  }
  setTimeout(() => report({ error: "probe deadline passed" }), args.deadlineMs).unref();
  const where = `${args.host.includes(":") ? `[${args.host}]` : args.host}:${args.port}`;
  if (args.type === "TCP") {
    const socket = net.connect({ host: args.host, port: args.port });
    socket.once("connect", () => {
      socket.destroy();
      report({ connected: true });
    });
    socket.once("error", (err) => report({ error: `connect to ${where} failed: ${describe(err)}` }));
    return;
  }
  const client = args.https ? https : http;
  const request = client.request(
    {
      host: args.host,
      port: args.port,
      path: args.path ?? "/",
      method: "GET",
      agent: false,
      headers: { Host: where, "User-Agent": "berth-health-check", Connection: "close" },
      // As Mesos' `curl -k`: an https check asks "does it answer", not "is its certificate valid".
      rejectUnauthorized: false,
    },
    (response) => {
      report({ status: response.statusCode });
      response.destroy();
    },
  );
  request.once("error", (err) => report({ error: `GET ${args.https ? "https" : "http"}://${where}${args.path ?? "/"} failed: ${describe(err)}` }));
  request.end();
}

main();
