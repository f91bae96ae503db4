import type { ContainerEvent } from "./container-event.js";

/**
 * The last `capacity` events of the agent, for Watch clients resuming from a sequence number.
 * Bounded: past it a resume is refused explicitly (never a silent gap).
 */
export class EventJournal {
  private readonly ring: (ContainerEvent | undefined)[];
  private start = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    this.ring = new Array<ContainerEvent | undefined>(capacity);
  }

  /** Keeps an event, dropping the oldest when full. */
  append(event: ContainerEvent): void {
    if (this.capacity === 0) return;
    if (this.size < this.capacity) {
      this.ring[(this.start + this.size) % this.capacity] = event;
      this.size += 1;
    } else {
      this.ring[this.start] = event;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  /** The oldest sequence still kept, or undefined when empty. */
  get oldest(): bigint | undefined {
    return this.size === 0 ? undefined : this.ring[this.start]!.sequence;
  }

  /**
   * Every kept event with a sequence above `after`, oldest first; undefined when some event
   * above `after` is no longer kept (or was never seen by this process).
   */
  after(after: bigint, firstSequenceOfProcess: bigint): ContainerEvent[] | undefined {
    const oldest = this.oldest;
    // Nothing happened since `after`: nothing is missing.
    const lowestNeeded = after + 1n;
    if (oldest === undefined) return lowestNeeded >= firstSequenceOfProcess ? [] : undefined;
    if (lowestNeeded < oldest) return undefined;
    const out: ContainerEvent[] = [];
    for (let i = 0; i < this.size; i++) {
      const e = this.ring[(this.start + i) % this.capacity]!;
      if (e.sequence > after) out.push(e);
    }
    return out;
  }
}
