import { access, constants, mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import type { ServeConfig } from "./config.js";
import { resolveAgentId } from "./agent-id.js";
import { Containerizer } from "./containerizer/containerizer.js";
import { DockerodeEngine } from "./docker/dockerode-engine.js";
import type { EnginePort } from "./docker/engine-port.js";
import { EventMonitor } from "./docker/event-monitor.js";
import { ImagePuller } from "./docker/image-puller.js";
import { agentLabels } from "./docker/names.js";
import { fetchUris } from "./fetcher/fetcher.js";
import { BerthServer } from "./rpc/server.js";

/** A start-up problem a person can act on; main prints it and exits 1. */
export class StartupError extends Error {}

/** A running Berth: everything `berth serve` wires together. */
export interface RunningBerth {
  agentId: string;
  addresses: string[];
  containerizer: Containerizer;
  server: BerthServer;
  /** Stops serving (ending Watch streams) and the engine stream; containers keep running. */
  stop(): Promise<void>;
}

async function checkWorkDir(workDir: string): Promise<void> {
  try {
    await mkdir(workDir, { recursive: true });
    await access(workDir, constants.W_OK);
    const probe = path.join(workDir, `.write-probe-${process.pid}`);
    await writeFile(probe, "");
    await rm(probe);
  } catch (err) {
    throw new StartupError(`--work_dir '${workDir}' is not a writable directory: ${(err as Error).message}`);
  }
}

function engineOptions(address: string, requestTimeoutMs: number) {
  if (address.startsWith("unix://")) return { socketPath: address.slice("unix://".length), requestTimeoutMs };
  if (address.startsWith("/")) return { socketPath: address, requestTimeoutMs };
  return { host: address, requestTimeoutMs };
}

/** Seams for tests: wrap the real engine (e.g. to count calls). */
export interface StartOverrides {
  wrapEngine?: (engine: EnginePort) => EnginePort;
}

/** Wires engine, events, puller, containerizer and gRPC server, and starts serving. */
export async function startBerth(config: ServeConfig, log: Logger, overrides: StartOverrides = {}): Promise<RunningBerth> {
  await checkWorkDir(config.workDir);
  const agentId = await resolveAgentId(config.workDir, config.agentId).catch((err: Error) => {
    throw new StartupError(err.message);
  });
  const real = new DockerodeEngine(engineOptions(config.dockerHost, config.dockerRequestTimeoutMs));
  const engine = overrides.wrapEngine ? overrides.wrapEngine(real) : real;
  try {
    await engine.ping();
  } catch (err) {
    throw new StartupError(`cannot reach the Docker engine at ${config.dockerHost}: ${(err as Error).message} (is dockerd running? see --docker_socket)`);
  }
  const monitor = new EventMonitor({ engine, labels: agentLabels(agentId), logger: log.child({ component: "events" }), backoff: { initialMs: 100, maxMs: 5000 } });
  const puller = new ImagePuller({ engine, overallTimeoutMs: config.pullTimeoutMs, activityTimeoutMs: config.pullActivityTimeoutMs });
  const containerizer = new Containerizer(
    {
      agentId,
      workDir: config.workDir,
      sandboxDirectory: config.sandboxDirectory,
      stopTimeoutMs: config.dockerStopTimeoutMs,
      removeDelayMs: config.dockerRemoveDelayMs,
      launchTimeoutMs: config.launchTimeoutMs,
      terminationRetention: config.terminationRetention,
      outputGraceMs: 5000,
      engineAddress: config.dockerHost,
    },
    { engine, puller, monitor, fetch: fetchUris, log },
  );
  // Subscribe to the events before the stream opens, so nothing is missed.
  containerizer.start();
  monitor.start();
  const server = new BerthServer(containerizer, { listen: config.listen, watchQueueLimit: config.watchQueueLimit });
  let opened = false;
  const healthSub = monitor.connected$.subscribe((up) => {
    server.setServing(up);
    // The first `false` only means the events stream is not open yet (the ping just answered):
    // logging "engine unreachable" then would mislead whoever reads a start-up.
    if (!opened && !up) return;
    opened = true;
    log.info({ engine: config.dockerHost, serving: up }, up ? "engine reachable" : "engine unreachable");
  });
  try {
    for (const address of config.listen) {
      if (address.startsWith("unix://")) await mkdir(path.dirname(address.slice("unix://".length)), { recursive: true });
    }
    await server.start();
  } catch (err) {
    healthSub.unsubscribe();
    containerizer.shutdown();
    await monitor.stop();
    await server.stop(0);
    throw new StartupError((err as Error).message);
  }
  log.info({ agent_id: agentId, listen: server.bound, work_dir: config.workDir }, "berth serving");
  return {
    agentId,
    addresses: server.bound,
    containerizer,
    server,
    async stop() {
      healthSub.unsubscribe();
      containerizer.shutdown();
      await server.stop();
      await monitor.stop();
    },
  };
}
