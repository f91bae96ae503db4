import type Dockerode from "dockerode";
import { forEachBounded } from "../src/containerizer/bounded.js";
import { withDeadline } from "./deadline.js";
import { wallNowMs } from "./clock.js";
import { makeTempDir, removeTempDir } from "./temp-dirs.js";

/** Label on every container the benchmarks make, raw or through Berth, so a sweep finds them all. */
export const BENCH_LABEL = "berth.bench";

/** Deadline of one short engine call (create, start, remove, inspect). */
export const ENGINE_CALL_MS = 30_000;

/** Where Berth mounts the sandbox inside a container (its default --sandbox_directory). */
const CONTAINER_SANDBOX = "/mnt/mesos/sandbox";

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number } | null)?.statusCode;
}

/**
 * The raw engine side of every comparison: dockerode straight against the same engine, with the
 * create options Berth sends for the same launch (image, `/bin/sh -c` command, network none, a
 * bind-mounted sandbox, the same environment names), so a ratio measures Berth and nothing else.
 */
export class RawEngine {
  private counter = 0;

  /**
   * @param sandbox a host directory bind-mounted as every raw container's sandbox (Berth mounts one too)
   * @param run a tag on this run's raw containers
   */
  constructor(
    readonly docker: Dockerode,
    readonly image: string,
    readonly sandbox: string,
    readonly run: string,
  ) {}

  /** The create options for a container running `shell`, as Berth would build them. */
  spec(name: string, shell: string): Dockerode.ContainerCreateOptions {
    return {
      name,
      Image: this.image,
      Labels: { [BENCH_LABEL]: "1", [`${BENCH_LABEL}.run`]: this.run },
      Env: [`MESOS_SANDBOX=${CONTAINER_SANDBOX}`, `MESOS_CONTAINER_NAME=${name}`],
      Entrypoint: ["/bin/sh", "-c"],
      Cmd: [shell],
      HostConfig: {
        NetworkMode: "none",
        Mounts: [{ Type: "bind", Source: this.sandbox, Target: CONTAINER_SANDBOX, ReadOnly: false }],
        // Berth sets its --default_pids_limit on every container; the baseline does the same work.
        PidsLimit: 4096,
      },
    };
  }

  /** A fresh container name for this run. */
  nextName(): string {
    this.counter += 1;
    return `bench-raw-${this.run}-${this.counter}`;
  }

  /**
   * Creates and starts a container running `shell`; returns it with the create+start time in ms.
   * `callMs` bounds each call (a burst of 50 at once can hold one call in the engine past 30 s).
   */
  async createStart(shell: string, name = this.nextName(), callMs = ENGINE_CALL_MS): Promise<{ container: Dockerode.Container; ms: number }> {
    const t0 = wallNowMs();
    const container = await withDeadline(this.docker.createContainer(this.spec(name, shell)), callMs, `raw create of '${name}'`);
    await withDeadline(container.start(), callMs, `raw start of '${name}'`);
    return { container, ms: wallNowMs() - t0 };
  }

  /** Force-removes one container; already gone is fine. */
  async remove(id: string): Promise<void> {
    await removeQuietly(this.docker, id);
  }

  /** Removes every raw container of this run. */
  async removeAll(): Promise<number> {
    return removeByLabels(this.docker, [`${BENCH_LABEL}.run=${this.run}`]);
  }
}

/** Force-removes one container (with volumes); 404 (gone) and 409 (removal in progress) are fine. */
export async function removeQuietly(docker: Dockerode, id: string): Promise<void> {
  try {
    await withDeadline(docker.getContainer(id).remove({ force: true, v: true }), ENGINE_CALL_MS, `remove of container '${id}'`);
  } catch (err) {
    if (statusOf(err) === 404 || statusOf(err) === 409) return;
    throw err;
  }
}

/** Force-removes every container carrying all of `labelFilters` (`key=value`); returns how many. */
export async function removeByLabels(docker: Dockerode, labelFilters: string[], concurrency = 8): Promise<number> {
  if (labelFilters.length === 0) throw new Error("removeByLabels: labelFilters is empty; refusing to remove every container");
  const found = await withDeadline(docker.listContainers({ all: true, filters: { label: labelFilters } }), ENGINE_CALL_MS, `list of containers labelled ${labelFilters.join(",")}`);
  await forEachBounded(found, concurrency, (info) => removeQuietly(docker, info.Id));
  return found.length;
}

/** Agent ids of every Berth the benchmarks start begin with this (see newBerthHome). */
export const BENCH_AGENT_PREFIX = "bench-";

/**
 * Removes every container any benchmark run made: raw ones by the bench label, Berth's by an
 * agent id starting with the bench prefix (the engine filters labels by exact value only, so
 * the agent label's values are matched here). Returns how many went.
 */
export async function sweepBenchContainers(docker: Dockerode, agentLabel: string): Promise<number> {
  const raw = await removeByLabels(docker, [`${BENCH_LABEL}=1`]);
  const berths = await withDeadline(docker.listContainers({ all: true, filters: { label: [agentLabel] } }), ENGINE_CALL_MS, `list of containers labelled ${agentLabel}`);
  const ours = berths.filter((c) => c.Labels?.[agentLabel]?.startsWith(BENCH_AGENT_PREFIX));
  await forEachBounded(ours, 8, (info) => removeQuietly(docker, info.Id));
  return raw + ours.length;
}

/** How many containers of any benchmark run are in the engine (raw ones and bench Berths'). */
export async function countBenchContainers(docker: Dockerode, agentLabel: string): Promise<number> {
  const raw = await withDeadline(docker.listContainers({ all: true, filters: { label: [`${BENCH_LABEL}=1`] } }), ENGINE_CALL_MS, "list of raw bench containers");
  const berths = await withDeadline(docker.listContainers({ all: true, filters: { label: [agentLabel] } }), ENGINE_CALL_MS, `list of containers labelled ${agentLabel}`);
  return raw.length + berths.filter((c) => c.Labels?.[agentLabel]?.startsWith(BENCH_AGENT_PREFIX)).length;
}

/** Makes sure `ref` is in the engine (pulled once), so no scenario measures a pull. */
export async function ensureImagePresent(docker: Dockerode, ref: string): Promise<void> {
  try {
    await withDeadline(docker.getImage(ref).inspect(), ENGINE_CALL_MS, `inspect of image '${ref}'`);
    return;
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
  }
  const stream = await withDeadline(docker.pull(ref), ENGINE_CALL_MS, `pull of '${ref}'`);
  await withDeadline(
    new Promise<void>((resolve, reject) =>
      docker.modem.followProgress(stream, (err: Error | null, output: Array<{ error?: string }>) => {
        const failed = err ?? output.find((line) => line.error !== undefined);
        if (failed) reject(new Error(`pull of '${ref}' failed: ${failed instanceof Error ? failed.message : failed.error}`));
        else resolve();
      }),
    ),
    5 * 60_000,
    `pull of '${ref}'`,
  );
}

/** A RawEngine with a fresh sandbox dir; `dispose` removes its containers and the dir. */
export async function openRawEngine(docker: Dockerode, image: string, run: string): Promise<{ raw: RawEngine; dispose(): Promise<void> }> {
  const sandbox = await makeTempDir("raw");
  const raw = new RawEngine(docker, image, sandbox, run);
  return {
    raw,
    async dispose() {
      try {
        await raw.removeAll();
      } finally {
        await removeTempDir(sandbox);
      }
    },
  };
}
