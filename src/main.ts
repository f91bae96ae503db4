#!/usr/bin/env -S node --max-semi-space-size=8
import { setLogger } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { buildCli } from "./config.js";
import type { RunningBerth } from "./berth.js";
import { createLogger } from "./log.js";
import { registerClientCommands } from "./cli/commands.js";

/**
 * grpc-js writes its own errors as bare "E …" lines on stderr (e.g. "No address added" before a
 * bind failure Berth reports itself); route them into the structured log so that a person reads
 * exactly one line about a start-up failure.
 */
function routeGrpcLogs(log: Logger): void {
  const grpcLog = log.child({ component: "grpc-js" });
  const text = (args: unknown[]) => args.map(String).join(" ");
  setLogger({
    debug: (...args: unknown[]) => grpcLog.debug(text(args)),
    info: (...args: unknown[]) => grpcLog.info(text(args)),
    // "No address added …" precedes a bind failure that Berth reports itself, in one line.
    error: (...args: unknown[]) => (/^No address added/.test(text(args)) ? grpcLog.debug(text(args)) : grpcLog.warn(text(args))),
  });
}

const program = buildCli(async (config) => {
  const log = createLogger(config.logLevel);
  routeGrpcLogs(log);
  let berth: RunningBerth | undefined;
  let requested: string | undefined;
  let stopping = false;
  const shutdown = (signal: string) => {
    // A signal during start-up is honoured once Berth is up, so its stop runs in full.
    if (!berth) {
      requested ??= signal;
      return;
    }
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down; containers keep running");
    berth.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  // Installed before start-up: Berth logs "berth serving" before startBerth returns, and a SIGTERM
  // right then would otherwise take the default action and kill the process without a stop.
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  // SIGHUP re-reads --auth_token_file (rotation without a restart); a failed reload keeps the
  // tokens in use. Never a token in the log: only how many there are.
  process.on("SIGHUP", () => {
    if (!berth || stopping) return;
    if (!config.authTokenFile) {
      log.info({ signal: "SIGHUP" }, "nothing to reload: no --auth_token_file");
      return;
    }
    berth.server.reloadTokens().then(
      (count) => log.info({ signal: "SIGHUP", file: config.authTokenFile, tokens: count }, "auth tokens reloaded"),
      (err: unknown) => log.warn({ signal: "SIGHUP", err: (err as Error).message }, "auth token reload failed; the tokens in use stay"),
    );
  });
  // The server's modules load only for serve: the client commands start without them.
  const { startBerth, StartupError } = await import("./berth.js");
  try {
    berth = await startBerth(config, log);
  } catch (err) {
    if (err instanceof StartupError) {
      process.stderr.write(`berth: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  if (requested) shutdown(requested);
});

// The client commands (launch, ps, logs, exec, …) next to serve.
registerClientCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`berth: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
