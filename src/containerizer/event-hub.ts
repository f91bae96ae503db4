import { Observable, Subject } from "rxjs";
import type { SequenceFile } from "../checkpoint/sequence-file.js";
import type { Container, Publish } from "./container.js";
import type { ContainerEvent } from "./container-event.js";
import { InvalidRequest, OutOfRange } from "./errors.js";
import { EventJournal } from "./event-journal.js";

/** The containers a Watch may name: the hub reads them, never changes them. */
export interface WatchedContainers {
  get(containerId: string): Container | undefined;
  values(): Iterable<Container>;
}

/**
 * The agent's one event stream: numbers every container event (per agent, across restarts when
 * a sequence file is given), keeps the recent ones for resuming clients, and assembles the Watch
 * streams (snapshot or resume, then live events).
 */
export class EventHub {
  private readonly events$ = new Subject<ContainerEvent>();
  /** The in-memory numbering when no sequence file is given (unit tests). */
  private sequence = 0n;
  /** The first sequence number this process handed out. */
  private firstSequence: bigint | undefined;
  /** Recent events, for Watch clients resuming from a sequence number. */
  private readonly journal: EventJournal;

  constructor(
    retention: number,
    private readonly containers: WatchedContainers,
    private readonly sequenceFile?: SequenceFile,
  ) {
    this.journal = new EventJournal(retention);
  }

  /** The last sequence number handed out. */
  get lastSequence(): bigint {
    return this.sequenceFile?.last ?? this.sequence;
  }

  /** Numbers an event, keeps it in the journal and hands it to every live Watch. */
  readonly publish: Publish = (containerId, kind) => {
    const sequence = this.sequenceFile ? this.sequenceFile.next() : (this.sequence += 1n);
    const event: ContainerEvent = { sequence, time: new Date(), containerId, snapshot: false, kind };
    this.firstSequence ??= sequence;
    this.journal.append(event);
    this.events$.next(event);
    return event;
  };

  /** Ends every Watch stream (status OK at the edge, unless the server ended them first). */
  complete(): void {
    this.events$.complete();
  }

  /**
   * Events of the given (validated) containers (all, including later ones, when empty): first a
   * snapshot of each one's current state — or, with `fromSequence`, every retained event after
   * it — then live events. With ids, the stream completes once all of them have terminated. An
   * id not launched yet is waited for: its events come live from its first one (FETCHING), so a
   * client can watch before it launches; an id that never comes leaves the stream quiet until the
   * client's deadline. A resume from a sequence whose successors are no longer retained is
   * refused with OutOfRange.
   */
  watch(ids: string[], fromSequence?: bigint): Observable<ContainerEvent> {
    if (fromSequence !== undefined) return this.resume(ids, fromSequence);
    const watched = ids.length > 0 ? new Set(ids) : undefined;
    return this.stream(ids, () =>
      [...this.containers.values()]
        .filter((c) => !watched || watched.has(c.id))
        .flatMap((c) => c.snapshot())
        .sort((a, b) => (a.sequence < b.sequence ? -1 : a.sequence > b.sequence ? 1 : 0)),
    );
  }

  /** Watch resumed after `from`: the retained events after it, then live ones. */
  private resume(ids: string[], from: bigint): Observable<ContainerEvent> {
    const last = this.lastSequence;
    if (from > last) throw new InvalidRequest(`from_sequence ${from} is ahead of the last sequence handed out (${last})`);
    const missed = this.journal.after(from, this.firstSequence ?? last + 1n);
    if (missed === undefined) {
      throw new OutOfRange(
        `events after sequence ${from} are no longer retained (oldest retained: ${this.journal.oldest ?? "none"}; Berth keeps the last ${this.journal.capacity} events of this run); Watch without from_sequence for a fresh snapshot`,
      );
    }
    const inMissed = new Set(missed.map((e) => e.containerId));
    // A watched container that terminated before `from` has nothing more to say.
    return this.stream(ids, () => missed, (id) => !inMissed.has(id) && this.containers.get(id)?.terminated !== undefined);
  }

  /**
   * The events of `ids` (all when empty): `initial()` first, then live ones; with ids, complete
   * once each has terminated (or was already `settled`). Live events are subscribed before
   * `initial()` is taken and held back until it is delivered: a subscriber that acts on an initial
   * event (e.g. destroys) must still see what that causes, and nothing falls between.
   */
  private stream(ids: string[], initial: () => ContainerEvent[], settled: (id: string) => boolean = () => false): Observable<ContainerEvent> {
    return new Observable<ContainerEvent>((subscriber) => {
      const watched = ids.length > 0 ? new Set(ids) : undefined;
      const remaining = new Set(ids);
      const deliver = (e: ContainerEvent): void => {
        if (subscriber.closed || (watched && !watched.has(e.containerId))) return;
        subscriber.next(e);
        if (watched && e.kind.type === "termination") {
          remaining.delete(e.containerId);
          if (remaining.size === 0) subscriber.complete();
        }
      };
      let pending: ContainerEvent[] | undefined = [];
      let endedEarly = false;
      const live = this.events$.subscribe({
        next: (e) => (pending ? pending.push(e) : deliver(e)),
        complete: () => (pending ? (endedEarly = true) : subscriber.complete()),
      });
      for (const e of initial()) deliver(e);
      for (const id of ids) if (settled(id)) remaining.delete(id);
      if (watched && remaining.size === 0 && !subscriber.closed) subscriber.complete();
      while (pending.length > 0) deliver(pending.shift()!);
      pending = undefined;
      if (endedEarly) subscriber.complete();
      return live;
    });
  }
}
