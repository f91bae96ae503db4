import { access, chmod, constants, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { combineLatest, filter, firstValueFrom, timeout } from "rxjs";
import { CheckpointStore } from "./checkpoint/checkpoint-store.js";
import { SequenceFile } from "./checkpoint/sequence-file.js";
import path from "node:path";
import type { Logger } from "pino";
import type { ServeConfig } from "./config.js";
import { claimAgentId, resolveAgentId, type AgentClaim } from "./agent-id.js";
import { Containerizer } from "./containerizer/containerizer.js";
import { DockerodeEngine } from "./docker/dockerode-engine.js";
import type { EnginePort } from "./docker/engine-port.js";
import { ImagePresence } from "./docker/image-presence.js";
import { EventMonitor } from "./docker/event-monitor.js";
import { ImagePuller } from "./docker/image-puller.js";
import { checkedDockerConfig } from "./docker/registry-auth.js";
import { agentLabels } from "./docker/names.js";
import { FetcherCache, fetchUris } from "./fetcher/fetcher.js";
import { effectivePolicy } from "./policy/startup-policy.js";
import { SeccompProfiles } from "./containerizer/seccomp.js";
import { describePolicy } from "./policy/policy.js";
import { BerthServer } from "./rpc/server.js";
import { CgroupStatsReader } from "./stats/cgroup-stats.js";
import { TokenStore } from "./rpc/auth.js";
import { resolveTransport } from "./rpc/transport.js";
import { checkHttpListen } from "./http/http-server.js";
import { Observability } from "./metrics/observability.js";
import { rpcMetricsInterceptor } from "./metrics/rpc-interceptor.js";

/** A start-up problem a person can act on; main prints it and exits 1. */
export class StartupError extends Error {}

/** A running Berth: everything `berth serve` wires together. */
export interface RunningBerth {
  agentId: string;
  addresses: string[];
  containerizer: Containerizer;
  server: BerthServer;
  /** --http_listen's bound address (port 0 resolved), and its metrics and page. */
  http?: { address: string; observability: Observability };
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

/**
 * One Berth per work dir: two would overwrite each other's checkpoints. The lock file holds the
 * owner's pid; a stale one (its process gone, e.g. after kill -9) is taken over.
 */
async function takeLock(file: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: "wx" });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new StartupError(`cannot lock '${file}': ${(err as Error).message}`);
    }
    const owner = Number((await readFile(file, "utf8").catch(() => "")).trim());
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
      throw new StartupError(`another berth (pid ${owner}) is serving work dir '${path.dirname(path.dirname(file))}'; stop it or choose another --work_dir`);
    }
    await rm(file, { force: true });
  }
  throw new StartupError(`cannot lock '${file}': it keeps reappearing`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Seams for tests: wrap the real engine (e.g. to count calls). */
export interface StartOverrides {
  wrapEngine?: (engine: EnginePort) => EnginePort;
}

/** Wires engine, events, puller, containerizer and gRPC server, and starts serving. */
export async function startBerth(config: ServeConfig, log: Logger, overrides: StartOverrides = {}): Promise<RunningBerth> {
  // Who may call is settled first: a refused TLS or token setup must not touch the engine or the work dir.
  const transport = await resolveTransport(config).catch((err: Error) => {
    throw new StartupError(err.message);
  });
  const tokens = config.authTokenFile
    ? await TokenStore.load(config.authTokenFile).catch((err: Error) => {
        throw new StartupError(err.message);
      })
    : undefined;
  if (config.httpListen !== undefined) {
    try {
      checkHttpListen(config.httpListen, transport);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
  }
  // Metrics and the status page: created only with --http_listen (nothing is recorded without it).
  const observability = config.httpListen !== undefined ? new Observability() : undefined;
  await checkWorkDir(config.workDir);
  const policy = await effectivePolicy(config.policyFile, config.fetchAllowLoopback).catch((err: Error) => {
    throw new StartupError(err.message);
  });
  log.info({ policy_file: config.policyFile ?? null, policy: describePolicy(policy) }, "operator policy");
  // The default seccomp profile must exist and parse before anything is served.
  const seccomp = new SeccompProfiles(config.seccompConfigDir, config.seccompProfileName);
  await seccomp.init().catch((err: Error) => {
    throw new StartupError(err.message);
  });
  // Registry credentials: checked now, read again at every pull (rotation needs no restart).
  const dockerConfig = config.dockerConfig === undefined ? undefined : await checkedDockerConfig(config.dockerConfig).catch((err: Error) => {
    throw new StartupError(err.message);
  });
  const meta = path.join(config.workDir, "meta");
  await mkdir(meta, { recursive: true, mode: 0o700 });
  // Checkpoints hold launch environments (often secrets) and sandboxes the tasks' files: root's
  // only, also when an older Berth (or the umask) made them wider.
  const sandboxes = path.join(config.workDir, "sandboxes");
  await mkdir(sandboxes, { recursive: true, mode: 0o700 });
  await Promise.all([chmod(meta, 0o700), chmod(sandboxes, 0o700)]);
  // Every claim is taken before anything touches the engine: recovery removes engine containers
  // with this agent's label that have no checkpoint here, so it must run only when this process
  // is the one Berth of its work dir (the lock) and of its agent id (the claim), and only once
  // its listen addresses are bound (a start that fails there must not have removed anything).
  const lock = path.join(meta, "lock");
  await takeLock(lock);
  // Undone in reverse order when the start fails after this point.
  const undo: Array<() => Promise<unknown>> = [() => rm(lock, { force: true })];
  const unwind = async () => {
    for (const step of undo.splice(0).reverse()) await step().catch(() => undefined);
  };
  const failStart = async (message: string): Promise<never> => {
    await unwind();
    throw new StartupError(message);
  };
  const resolved = await resolveAgentId(config.workDir, config.agentId, config.forceAgentId).catch((err: Error) => failStart(err.message));
  const agentId = resolved.id;
  if (resolved.replaced) log.warn({ agent_id: agentId, replaced: resolved.replaced }, "--force_agent_id replaced the kept agent id; the old id's engine containers are left alone");
  const claim: AgentClaim = await claimAgentId(agentId, { workDir: config.workDir }).catch((err: Error) => failStart(err.message));
  undo.push(() => claim.release());
  const checkpoints = new CheckpointStore(meta, { observer: observability?.checkpointObserver });
  await checkpoints.init().catch((err: Error) => failStart(err.message));
  const sequence = await SequenceFile.open(path.join(meta, "sequence"), { health: checkpoints.health }).catch((err: Error) => failStart(err.message));
  // URI.cache = true: the cache's index is rebuilt from its directory (partial downloads removed).
  const fetcherCache = await FetcherCache.open(config.fetcherCacheDir, config.fetcherCacheSize, log.child({ component: "fetcher-cache" })).catch((err: Error) =>
    failStart(`--fetcher_cache_dir: ${err.message}`),
  );
  const real = new DockerodeEngine(engineOptions(config.dockerHost, config.dockerRequestTimeoutMs));
  const engine = overrides.wrapEngine ? overrides.wrapEngine(real) : real;
  const monitor = new EventMonitor({ engine, labels: agentLabels(agentId), logger: log.child({ component: "events" }), backoff: { initialMs: 100, maxMs: 5000 } });
  // Which images the engine has, remembered between launches while the engine reports removals.
  const images = new ImagePresence(engine, { logger: log.child({ component: "images" }), backoff: { initialMs: 100, maxMs: 5000 } });
  const puller = new ImagePuller({ engine, overallTimeoutMs: config.pullTimeoutMs, activityTimeoutMs: config.pullActivityTimeoutMs, credentials: dockerConfig });
  // Usage reads the host's cgroup files; the reader keeps descriptors open, closed at stop.
  const stats = new CgroupStatsReader();
  undo.push(async () => stats.close());
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
      eventRetention: config.watchRetention,
      cgroupsEnableCfs: config.cgroupsEnableCfs,
      policy,
      engineSocket: engineOptions(config.dockerHost, 0).socketPath,
      limits: { maxContainers: config.maxContainers, maxEnvironmentEntries: config.maxEnvironmentEntries, maxUris: config.maxUris, maxVolumes: config.maxVolumes },
      defaultPidsLimit: config.defaultPidsLimit,
      fetcherCacheDir: config.fetcherCacheDir,
      execTimeoutMs: config.execTimeoutMs,
      execMaxOutputBytes: config.execMaxOutputBytes,
      seccomp,
      containerLogMaxSize: config.containerLogMaxSize,
      containerLogMaxFiles: config.containerLogMaxFiles,
      diskWatchIntervalMs: config.containerDiskWatchIntervalMs,
      enforceDiskQuota: config.enforceContainerDiskQuota,
      killOrphans: config.dockerKillOrphans,
    },
    {
      engine,
      images,
      puller,
      monitor,
      fetch: (uris, sandbox, o) =>
        fetchUris(uris, sandbox, {
          ...o,
          maxBytes: config.fetchMaxUriBytes,
          maxLaunchBytes: config.fetchMaxLaunchBytes,
          connectTimeoutMs: config.fetchConnectTimeoutMs,
          idleTimeoutMs: config.fetchIdleTimeoutMs,
          maxRedirects: config.fetchMaxRedirects,
          archiveMaxEntries: config.archiveMaxEntries,
          archiveMaxBytes: config.archiveMaxBytes,
          network: { allowLoopback: policy.fetch.allowLoopback, denyPrivate: policy.fetch.denyPrivateNetworks },
          filePrefixes: policy.fileUriPrefixes,
          cache: fetcherCache,
        }),
      log,
      checkpoints,
      sequence,
      stats,
    },
  );
  const server = new BerthServer(containerizer, {
    listen: config.listen,
    watchQueueLimit: config.watchQueueLimit,
    transport,
    tokens,
    maxRequestBytes: config.maxRequestBytes,
    maxWatchStreams: config.maxWatchStreams,
    maxWatchStreamsPerConnection: config.maxWatchStreamsPerConnection,
    log: log.child({ component: "rpc" }),
    interceptors: observability ? [rpcMetricsInterceptor(observability.metrics)] : undefined,
  });
  // Bound before recovery; Containerizer calls answer UNAVAILABLE and health NOT_SERVING until it is done.
  try {
    for (const address of config.listen) {
      if (address.startsWith("unix://")) await mkdir(path.dirname(address.slice("unix://".length)), { recursive: true });
    }
    undo.push(() => server.stop(0));
    await server.start();
    if (observability && config.httpListen !== undefined) {
      // Subscribed before the containerizer and the monitor start, so no event is missed.
      observability.attach({
        containerizer,
        monitor,
        watchStreamsOpen$: server.watchStreamsOpen$,
        diskOk$: checkpoints.health.ok$,
        agentId,
        engineAddress: config.dockerHost,
        log: log.child({ component: "http" }),
      });
      undo.push(() => observability.stop());
      await observability.listen({ listen: config.httpListen, transport, tokens, log: log.child({ component: "http" }) });
    }
  } catch (err) {
    await failStart((err as Error).message);
  }
  try {
    await engine.ping();
  } catch (err) {
    await failStart(`cannot reach the Docker engine at ${config.dockerHost}: ${(err as Error).message} (is dockerd running? see --docker_socket)`);
  }
  // Subscribe to the events before the stream opens, so nothing is missed.
  containerizer.start();
  monitor.start();
  images.start();
  undo.push(async () => {
    containerizer.shutdown();
    await Promise.all([monitor.stop(), images.stop()]);
  });
  try {
    await firstValueFrom(monitor.connected$.pipe(filter(Boolean), timeout(config.dockerRequestTimeoutMs)));
    const started = Date.now();
    const report = await containerizer.recover();
    await containerizer.loadPulledImages();
    log.info({ ms: Date.now() - started, adopted: report.adopted }, "recovered");
  } catch (err) {
    await failStart(`recovery failed: ${(err as Error).message}`);
  }
  server.markReady();
  let opened = false;
  // A failing checkpoint disk (ENOSPC, EIO) is NOT_SERVING too: nothing launched could be recorded.
  const healthSub = combineLatest([monitor.connected$, checkpoints.health.ok$]).subscribe(([up, diskOk]) => server.setServing(up && diskOk));
  healthSub.add(
    checkpoints.health.ok$.subscribe((diskOk) => {
      if (!diskOk) log.error({ err: checkpoints.health.failure }, "checkpoint disk failing");
    }),
  );
  healthSub.add(
    monitor.connected$.subscribe((up) => {
      // The first `false` only means the events stream is not open yet (the ping just answered):
      // logging "engine unreachable" then would mislead whoever reads a start-up.
      if (!opened && !up) return;
      opened = true;
      log.info({ engine: config.dockerHost, serving: up }, up ? "engine reachable" : "engine unreachable");
    }),
  );
  log.info({ agent_id: agentId, listen: server.bound, work_dir: config.workDir }, "berth serving");
  return {
    agentId,
    addresses: server.bound,
    containerizer,
    server,
    http: observability?.http ? { address: observability.http.bound, observability } : undefined,
    async stop() {
      healthSub.unsubscribe();
      await observability?.stop();
      // The server ends the Watch streams (UNAVAILABLE: resume with from_sequence) before the
      // containerizer completes its event stream, which would end them OK ("all terminated").
      const serverStopped = server.stop();
      containerizer.shutdown();
      await serverStopped;
      await Promise.all([monitor.stop(), images.stop()]);
      // Every output capture ends with its files closed (as a process exit would end them).
      await containerizer.closed();
      stats.close();
      await checkpoints.flush();
      await claim.release();
      await rm(lock, { force: true });
    },
  };
}
