import type { Logger } from "pino";
import { EngineRequestFailed, EngineUnreachable, type EnginePort } from "../docker/engine-port.js";
import { isFieldSet } from "@bufbuild/protobuf";
import { ResourceStatisticsSchema, type Resource, type ResourceStatistics } from "../gen/mesos/v1/mesos_pb.js";
import { CgroupNotFound } from "../stats/cgroup-stats.js";
import { quote } from "./container-id.js";
import type { Container } from "./container.js";
import { engineLimits } from "./create-spec.js";
import { FailedPrecondition, InvalidRequest } from "./errors.js";
import { checkRequestsWithinLimits, hostCapacity, summarizeResources } from "./launch-spec.js";
import { canonicalImageRef, type PulledImages } from "./pulled-images.js";
import type { RuntimeFacts } from "./runtime-facts.js";

/** What ContainerResources needs from the containerizer. */
export interface ContainerResourcesDeps {
  engine: EnginePort;
  facts: RuntimeFacts;
  images: PulledImages;
  log: Logger;
  /** Mesos' --cgroups_enable_cfs: cpus also become a CFS quota. */
  cfsQuota: boolean;
  /** Durably records the container's facts (its resources included). */
  checkpoint(c: Container): Promise<void>;
  /** The sandbox's last measured disk usage (the disk watcher's; undefined before it measured). */
  diskUsedBytes?(c: Container): bigint | undefined;
}

/** What Status adds for a running container. */
export interface RuntimeStatus {
  pid?: number;
  ipAddresses: string[];
  /** Controller (or "unified") → host dir; absent when they could not be resolved. */
  cgroupDirs?: Record<string, string>;
}

/**
 * The resource side of the containerizer: Update (limits applied live, then checkpointed), Usage
 * (straight from the cgroup), the runtime part of Status, and PruneImages.
 */
export class ContainerResources {
  /** Updates of one container are applied one after the other, so engine and checkpoint agree. */
  private readonly updates = new WeakMap<Container, Promise<unknown>>();
  /** One prune at a time: two would race to remove (and forget) the same references. */
  private pruning: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: ContainerResourcesDeps) {}

  /**
   * Sets a running container's cpu and memory limits from `resources` (validated as Launch's) and
   * records them as the resources in force. Throws FailedPrecondition unless RUNNING.
   */
  async update(c: Container, resources: Resource[]): Promise<void> {
    requireRunning(c, "Update");
    const summary = summarizeResources(resources);
    if (summary.cpus === undefined && summary.memMb === undefined) {
      const names = resources.map((r) => quote(r.name)).join(", ");
      throw new InvalidRequest(`resources [${names}] name neither cpus nor mem; Update changes only the cpu and memory limits`);
    }
    // The launch's limits stay in force: a new request may not rise above them, the cpus limit
    // stays the CFS quota and the mem limit the memory limit (the request becomes the reservation).
    checkRequestsWithinLimits(summary, c.spec.limits, "the container's limits");
    const limits = engineLimits(summary, { cfsQuota: this.deps.cfsQuota }, c.spec.limits);
    const previous = this.updates.get(c) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(async () => {
      requireRunning(c, "Update");
      try {
        // Memory and MemorySwap go in one call: raising Memory above the current MemorySwap alone
        // is refused by the engine (moby#22167).
        await this.deps.engine.updateContainer(c.engineId!, limits);
      } catch (err) {
        requireRunning(c, "Update");
        if (err instanceof EngineRequestFailed) {
          throw new EngineRequestFailed(`update of container '${c.id}' to ${JSON.stringify(limits)} failed: ${err.message}`, err.statusCode);
        }
        throw err;
      }
      // Resources the update does not name stay as they were (their limits are still in force).
      // The summary is made from the recorded messages, so it matches what a restart restores.
      const kept = c.resourceMessages.filter((r) => (r.name === "cpus" && summary.cpus === undefined) || (r.name === "mem" && summary.memMb === undefined));
      c.resourceMessages = [...resources, ...kept];
      c.resources = summarizeResources(c.resourceMessages);
      this.deps.log.info({ container_id: c.id, cpus: c.resources.cpus, mem_mb: c.resources.memMb, ...limits }, "resources updated");
      try {
        await this.deps.checkpoint(c);
      } catch (err) {
        throw new Error(`the new limits of container '${c.id}' are in force but could not be recorded: ${(err as Error).message}`, { cause: err });
      }
    });
    this.updates.set(c, run);
    await run;
  }

  /** The container's ResourceStatistics, read from its cgroup (never the engine's stats). */
  async usage(c: Container): Promise<ResourceStatistics> {
    requireRunning(c, "Usage");
    let stats: ResourceStatistics;
    try {
      stats = await this.deps.facts.read(c);
    } catch (err) {
      if (!(err instanceof CgroupNotFound || err instanceof FailedPrecondition)) throw err;
      // Most likely the process exited and its `die` event is on its way.
      requireRunning(c, "Usage");
      throw new FailedPrecondition(`container '${c.id}' has no readable cgroup: ${err.message}`);
    }
    // The cgroup knows the limits in force; the launch's limits, then its resources, are the
    // fallback for a missing controller.
    reportLimits(stats, c);
    // (proto2 optional fields: an unset one reads 0, so presence is asked, not `=== undefined`.)
    if (!isFieldSet(stats, ResourceStatisticsSchema.field.cpusLimit) && c.resources.cpus !== undefined) stats.cpusLimit = c.resources.cpus;
    if (!isFieldSet(stats, ResourceStatisticsSchema.field.memLimitBytes) && c.resources.memMb !== undefined) stats.memLimitBytes = BigInt(Math.floor(c.resources.memMb * 1024 * 1024));
    if (!(stats.timestamp > 0)) stats.timestamp = Date.now() / 1000;
    // As Mesos' disk/du isolator: the sandbox's last measured usage and the `disk` resource.
    const diskUsed = this.deps.diskUsedBytes?.(c);
    if (diskUsed !== undefined) stats.diskUsedBytes = diskUsed;
    if (c.resources.diskMb !== undefined) stats.diskLimitBytes = BigInt(Math.floor(c.resources.diskMb * 1024 * 1024));
    return stats;
  }

  /**
   * Pid, addresses and cgroup dirs of a RUNNING container (nothing otherwise). A container that
   * exited meanwhile answers without them; an unreachable engine is an error.
   */
  async runtime(c: Container): Promise<RuntimeStatus> {
    if (c.state !== "RUNNING") return { ipAddresses: [] };
    let proc;
    try {
      proc = await this.deps.facts.process(c);
    } catch (err) {
      if (err instanceof FailedPrecondition) return { ipAddresses: [] };
      throw err;
    }
    const paths = await this.deps.facts.cgroupPaths(c).catch((err: unknown) => {
      this.deps.log.debug({ err, container_id: c.id }, "status: cgroup dirs not resolved");
      return undefined;
    });
    return { pid: proc.pid, ipAddresses: proc.ipAddresses, cgroupDirs: paths ? { ...paths.dirs } : undefined };
  }

  /**
   * Removes the images Berth pulled that no live container uses and that are not `excluded`;
   * returns the references removed. One the engine says is in use is kept (and not reported).
   */
  async prune(live: () => Iterable<Container>, excluded: string[]): Promise<string[]> {
    for (const [i, ref] of excluded.entries()) {
      if (ref.trim() === "") throw new InvalidRequest(`excluded_images[${i}].docker.name is empty`);
    }
    const run = this.pruning.catch(() => undefined).then(() => this.pruneNow(live, excluded));
    this.pruning = run;
    return run;
  }

  private async pruneNow(live: () => Iterable<Container>, excluded: string[]): Promise<string[]> {
    const keep = new Set(excluded.map(canonicalImageRef));
    const removed: string[] = [];
    const gone: string[] = [];
    try {
      for (const ref of await this.deps.images.list()) {
        const canonical = canonicalImageRef(ref);
        if (keep.has(canonical)) continue;
        // Asked again for each image: a launch accepted during an earlier removal counts too.
        const users = [...live()].filter((c) => c.state !== "TERMINATED" && canonicalImageRef(c.spec.image) === canonical);
        if (users.length > 0) continue;
        let outcome: Awaited<ReturnType<EnginePort["removeImage"]>>;
        try {
          outcome = await this.deps.engine.removeImage(ref);
        } catch (err) {
          if (err instanceof EngineUnreachable) throw err;
          this.deps.log.warn({ err, image: ref }, "prune: could not remove image; kept");
          continue;
        }
        if (outcome === "removed") removed.push(ref);
        if (outcome !== "in-use") gone.push(ref);
      }
    } finally {
      await this.deps.images.forget(gone).catch((err: unknown) => this.deps.log.warn({ err, images: gone }, "prune: could not record the removals"));
      if (removed.length > 0) this.deps.log.info({ images: removed }, "pruned images");
    }
    return removed;
  }
}

/**
 * Soft and hard limits as Mesos' docker containerizer reports them: the cpus request is the soft
 * limit; with limits, the mem request is the soft limit, and an infinite limit reads as the
 * host's cpus or memory (the cgroup shows no cap). Finite hard limits come from the cgroup.
 */
function reportLimits(stats: ResourceStatistics, c: Container): void {
  const { cpus, memMb } = c.resources;
  const limits = c.spec.limits;
  if (cpus !== undefined) stats.cpusSoftLimit = cpus;
  if (limits.cpus !== undefined) {
    if (!Number.isFinite(limits.cpus)) stats.cpusLimit = hostCapacity().cpus;
    else if (!isFieldSet(stats, ResourceStatisticsSchema.field.cpusLimit)) stats.cpusLimit = limits.cpus;
  }
  if (limits.memMb !== undefined) {
    if (!Number.isFinite(limits.memMb)) stats.memLimitBytes = BigInt(hostCapacity().memoryBytes);
    else if (!isFieldSet(stats, ResourceStatisticsSchema.field.memLimitBytes)) stats.memLimitBytes = BigInt(Math.floor(limits.memMb * 1024 * 1024));
    if (memMb !== undefined) stats.memSoftLimitBytes = BigInt(Math.floor(memMb * 1024 * 1024));
  }
}

function requireRunning(c: Container, op: string): void {
  if (c.state !== "RUNNING") throw new FailedPrecondition(`container '${c.id}' is ${c.state}; ${op} needs a RUNNING container`);
}
