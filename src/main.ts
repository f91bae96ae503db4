#!/usr/bin/env node
import { buildCli } from "./config.js";
import { startBerth, StartupError } from "./berth.js";
import { createLogger } from "./log.js";

const program = buildCli(async (config) => {
  const log = createLogger(config.logLevel);
  let berth;
  try {
    berth = await startBerth(config, log);
  } catch (err) {
    if (err instanceof StartupError) {
      process.stderr.write(`berth: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  let stopping = false;
  const shutdown = (signal: string) => {
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
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
});

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`berth: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
