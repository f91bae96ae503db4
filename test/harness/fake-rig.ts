import { rm } from "node:fs/promises";
import { pino } from "pino";
import { filter, firstValueFrom } from "rxjs";
import { Containerizer, type ContainerizerDeps, type ContainerizerOptions } from "../../src/containerizer/containerizer.js";
import { EventMonitor } from "../../src/docker/event-monitor.js";
import { ImagePuller } from "../../src/docker/image-puller.js";
import { agentLabels } from "../../src/docker/names.js";
import { CgroupStatsReader } from "../../src/stats/cgroup-stats.js";
import type { EnginePort } from "../../src/docker/engine-port.js";
import type { FakeEngine } from "./fake-engine.js";

/** The agent id of every fake rig. */
export const FAKE_AGENT = "unit-agent";

/** A Containerizer over a FakeEngine with a real EventMonitor and ImagePuller, started and connected. */
export interface FakeRig<E extends EnginePort = FakeEngine> {
  engine: E;
  monitor: EventMonitor;
  puller: ImagePuller;
  cz: Containerizer;
}

/** Builds a started, connected containerizer over `engine` (extra deps such as a checkpoint store optional). */
export async function fakeRig<E extends EnginePort = FakeEngine>(
  engine: E,
  workDir: string,
  options: Partial<ContainerizerOptions> = {},
  deps: Partial<Omit<ContainerizerDeps, "engine" | "puller" | "monitor">> = {},
  // The host's cgroup reader unless a test brings its own (the composition root's choice in berth.ts).
): Promise<FakeRig<E>> {
  // The same rig serves a real engine too (integration tests), under an agent id of their own.
  const monitor = new EventMonitor({ engine, labels: agentLabels(options.agentId ?? FAKE_AGENT), backoff: { initialMs: 2, maxMs: 10 } });
  const puller = new ImagePuller({ engine, overallTimeoutMs: 60_000, activityTimeoutMs: 60_000 });
  const cz = new Containerizer(
    {
      agentId: FAKE_AGENT,
      workDir,
      sandboxDirectory: "/mnt/mesos/sandbox",
      stopTimeoutMs: 3000,
      removeDelayMs: 0,
      launchTimeoutMs: 60_000,
      terminationRetention: 100,
      outputGraceMs: 5000,
      engineAddress: "fake://engine",
      ...options,
    },
    { engine, puller, monitor, fetch: async () => {}, log: pino({ level: "silent" }), ...deps, stats: deps.stats ?? new CgroupStatsReader() },
  );
  cz.start();
  monitor.start();
  await firstValueFrom(monitor.connected$.pipe(filter(Boolean)));
  return { engine, monitor, puller, cz };
}

/** After a test: frees held engine calls, destroys what is still live, lets the containerizer settle, removes the work dir. */
export async function closeRig(r: Pick<FakeRig<FakeEngine>, "engine" | "cz" | "monitor">, workDir: string): Promise<void> {
  r.engine.releaseAll();
  for (const c of r.cz.list()) if (c.state !== "TERMINATED") await r.cz.destroy(c.containerId).catch(() => undefined);
  await r.cz.idle();
  r.cz.shutdown();
  await r.monitor.stop();
  await rm(workDir, { recursive: true, force: true });
}
