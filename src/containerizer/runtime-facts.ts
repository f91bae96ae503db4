import type { Subscription } from "rxjs";
import type { EnginePort } from "../docker/engine-port.js";
import type { ResourceStatistics } from "../gen/mesos/v1/mesos_pb.js";
import type { CgroupPaths } from "../stats/cgroup-stats.js";
import type { Container } from "./container.js";
import { FailedPrecondition } from "./errors.js";

/** What Usage needs from the stats reader (CgroupStatsReader; a fake in unit tests). */
export interface StatsSource {
  resolve(pid: number): Promise<CgroupPaths>;
  read(paths: CgroupPaths): Promise<ResourceStatistics>;
  /** Lets go of what read() keeps for these dirs (open descriptors); called once the container's cached paths are dropped. */
  release(paths: CgroupPaths): void;
}

/** A running container's process facts, from one inspect. */
export interface ProcessFacts {
  pid: number;
  ipAddresses: string[];
}

interface Entry {
  facts: Promise<ProcessFacts>;
  paths?: Promise<CgroupPaths>;
  /** `paths` once it has resolved: a Usage() call then reads without awaiting it. */
  resolved?: CgroupPaths;
  /** Drops the entry at termination; ended with the entry, so failed lookups retried during an engine outage do not pile up subscriptions. */
  watch?: Subscription;
}

/**
 * Per-container cache of the facts that do not change while a container runs: its init pid and
 * addresses (one inspect) and its cgroup dirs (one resolve). Usage is called often (Mesos polls
 * it), so neither the engine nor /proc is asked again; concurrent first calls share one lookup.
 * An entry is dropped when the container terminates or a lookup fails.
 */
export class RuntimeFacts {
  private readonly entries = new WeakMap<Container, Entry>();

  constructor(
    private readonly engine: EnginePort,
    private readonly stats: StatsSource,
  ) {}

  /** Pid and addresses of a container the domain believes RUNNING. */
  process(c: Container): Promise<ProcessFacts> {
    return this.entry(c).facts;
  }

  /** The container's cgroup dirs. */
  cgroupPaths(c: Container): Promise<CgroupPaths> {
    const entry = this.entry(c);
    if (!entry.paths) {
      entry.paths = entry.facts.then((f) => this.stats.resolve(f.pid));
      entry.paths.then(
        (paths) => (entry.resolved = paths),
        () => this.drop(c, entry),
      );
    }
    return entry.paths;
  }

  /** Fresh statistics from the cached cgroup dirs. */
  read(c: Container): Promise<ResourceStatistics> {
    const resolved = this.entries.get(c)?.resolved;
    // Polled calls find the dirs resolved and read at once, without a turn through the microtask queue.
    return resolved !== undefined ? this.readFrom(c, resolved) : this.cgroupPaths(c).then((paths) => this.readFrom(c, paths));
  }

  private readFrom(c: Container, paths: CgroupPaths): Promise<ResourceStatistics> {
    return this.stats.read(paths).catch((err: unknown) => {
      this.invalidate(c);
      throw err;
    });
  }

  /** Forgets what is cached for `c` (its process is gone or was replaced). */
  invalidate(c: Container): void {
    const entry = this.entries.get(c);
    if (entry) this.drop(c, entry);
  }

  private entry(c: Container): Entry {
    let entry = this.entries.get(c);
    if (entry) return entry;
    const created: Entry = { facts: this.inspect(c) };
    entry = created;
    this.entries.set(c, created);
    created.facts.catch(() => this.drop(c, created));
    // A terminated container's pid may be reused by an unrelated process: never keep it. The
    // subscription ends with the entry (a failed lookup drops it, and the next call subscribes
    // afresh) or with the termination (the subject completes right after).
    const watch = c.termination$.subscribe({ next: () => this.drop(c, created), error: () => this.drop(c, created) });
    if (this.entries.get(c) === created) created.watch = watch;
    else watch.unsubscribe();
    return created;
  }

  private drop(c: Container, entry: Entry): void {
    if (this.entries.get(c) !== entry) return;
    this.entries.delete(c);
    entry.watch?.unsubscribe();
    entry.paths?.then(
      (paths) => this.stats.release(paths),
      () => undefined,
    );
  }

  private async inspect(c: Container): Promise<ProcessFacts> {
    if (c.engineId === undefined) throw new FailedPrecondition(`container '${c.id}' has no engine container yet (state ${c.state})`);
    const inspect = await this.engine.inspectContainer(c.engineId);
    if (!inspect) throw new FailedPrecondition(`container '${c.id}' is gone from the engine (engine id ${c.engineId})`);
    if (!inspect.running || !(inspect.pid > 0)) {
      throw new FailedPrecondition(`container '${c.id}' is not running in the engine (engine status '${inspect.status}', pid ${inspect.pid})`);
    }
    c.pid = inspect.pid;
    return { pid: inspect.pid, ipAddresses: inspect.ipAddresses ?? [] };
  }
}
