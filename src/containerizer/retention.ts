import { rm } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import type { CheckpointStore } from "../checkpoint/checkpoint-store.js";
import type { Container } from "./container.js";

/**
 * How long terminated containers are remembered (for Wait, Watch, Destroy and ALREADY_LAUNCHED):
 * the last `limit` of them. Forgetting one removes its record, then its sandbox when Berth chose
 * it (as Mesos' sandbox GC would); a relaunch of the id waits for that (see `evicting`).
 */
export class Retention {
  /** Retained terminated containers, oldest first (the objects: an id may be launched again). */
  private readonly order: Container[] = [];
  /** Ids being forgotten (record removal, then sandbox removal): a relaunch waits for it. */
  private readonly evictions = new Map<string, Promise<void>>();

  constructor(
    private readonly limit: number,
    private readonly containers: Map<string, Container>,
    private readonly deps: { checkpoints?: CheckpointStore; log: Logger; sandboxesDir: string },
  ) {}

  /** Keeps at most `limit` terminated containers, dropping the oldest. */
  retain(c: Container): void {
    // A container already forgotten (its launch was never recorded) takes no place: its id may
    // belong to a later container by now, which must not be evicted in its stead.
    if (this.containers.get(c.id) !== c || this.order.includes(c)) return;
    this.order.push(c);
    while (this.order.length > this.limit) {
      const old = this.order.shift()!;
      if (this.containers.get(old.id) !== old || !old.terminated) continue;
      this.containers.delete(old.id);
      // Forget the record first: a crash in between leaves an orphan sandbox, which recovery
      // removes, never a record whose sandbox is gone. A relaunch of the id waits for both
      // (see Containerizer.launch), so its new record and sandbox are never the ones removed.
      const previous = this.evictions.get(old.id) ?? Promise.resolve();
      const eviction = previous
        .then(() => this.deps.checkpoints?.remove(old.id))
        .then(() => this.removeOwnSandbox(old.sandbox))
        .catch((err: unknown) => this.deps.log.warn({ err, container_id: old.id }, "could not forget container"))
        .finally(() => {
          if (this.evictions.get(old.id) === eviction) this.evictions.delete(old.id);
        });
      this.evictions.set(old.id, eviction);
    }
  }

  /** Forgets a container at once, without its record or sandbox (for a launch never recorded). */
  forget(c: Container): void {
    if (this.containers.get(c.id) === c) this.containers.delete(c.id);
    const at = this.order.indexOf(c);
    if (at >= 0) this.order.splice(at, 1);
  }

  /** The forgetting of an earlier container of this id, while it is under way. */
  evicting(containerId: string): Promise<void> | undefined {
    return this.evictions.get(containerId);
  }

  /** Every forgetting under way (for idle()). */
  get pending(): Promise<void>[] {
    return [...this.evictions.values()];
  }

  /**
   * A sandbox Berth chose lives as long as Berth remembers its container (live, or terminated
   * within --termination_retention); then it goes.
   */
  private async removeOwnSandbox(sandbox: string): Promise<void> {
    if (path.dirname(sandbox) !== this.deps.sandboxesDir) return;
    await rm(sandbox, { recursive: true, force: true });
  }
}
