import { BehaviorSubject, ReplaySubject } from "rxjs";
import { DiskFailed } from "../checkpoint/disk-health.js";
import type { TaskStatus } from "../gen/mesos/v1/mesos_pb.js";
import { FailedPrecondition } from "./errors.js";
import type { EventKind, ContainerEvent } from "./container-event.js";
import type { Resource } from "../gen/mesos/v1/mesos_pb.js";
import type { LaunchSpec, ResourceSummary } from "./launch-spec.js";
import { canTransition, type ContainerState } from "./state.js";
import type { ExitFacts, Termination } from "./termination.js";

/** Publishes an event for a container and returns it numbered. */
export type Publish = (containerId: string, kind: EventKind) => ContainerEvent;

/** Why a launch was aborted: the signal's reason. */
export class DestroyRequested extends Error {
  override readonly name = "DestroyRequested";
}

/**
 * One container: its state machine, its exit and its termination. The launch pipeline owns
 * the transitions; everything else reads.
 */
export class Container {
  readonly state$: BehaviorSubject<ContainerState>;
  /** Completes exactly once with the termination. */
  readonly termination$ = new ReplaySubject<Termination>(1);
  /** Aborted by Destroy or a launch timeout; the reason says which. */
  readonly launchAbort = new AbortController();
  engineId?: string;
  pid?: number;
  terminated?: Termination;
  /** The events a new subscriber is shown first: last state, last task status, termination. */
  lastState?: ContainerEvent;
  lastTaskStatus?: ContainerEvent;
  /** The sequence number of this container's first event (Launch answers it, for a gapless resume). */
  readonly firstSequence: bigint;
  terminationEvent?: ContainerEvent;
  /** Set by an engine `oom` event. */
  oomSeen = false;
  readonly exit: Promise<ExitFacts | undefined>;
  /** Resolves once the engine container is gone (or its removal was scheduled past a delay). */
  readonly removed: Promise<void>;
  /** Marks the engine container as removed. */
  markRemoved!: () => void;
  private resolveExit!: (facts: ExitFacts | undefined) => void;
  private exitKnown = false;
  /** Why the last event(s) could not be published (cleared when the termination starts). */
  private unpublished: unknown;
  /**
   * Whether a destroy had been asked when the exit became known: a Destroy that arrives after the
   * process died on its own (while its output drains) must not turn its exit into TASK_KILLED
   * (MESOS-7975). Read at the moment of the exit, never later.
   */
  killedByDestroy = false;

  /** The resources in force: the launch's, then each Update's. */
  resources: ResourceSummary;
  /** The Resource messages behind `resources` (kept in the checkpoint). */
  resourceMessages: Resource[];

  /**
   * A new container starts in FETCHING; one recovered after a restart starts in the state its
   * checkpoint gave (RUNNING or DESTROYING), announced with a fresh sequence number.
   */
  constructor(
    readonly spec: LaunchSpec,
    readonly sandbox: string,
    private readonly publish: Publish,
    initial: ContainerState = "FETCHING",
    readonly launchedAt: Date = new Date(),
  ) {
    this.state$ = new BehaviorSubject<ContainerState>(initial);
    this.exit = new Promise((resolve) => (this.resolveExit = resolve));
    this.removed = new Promise((resolve) => (this.markRemoved = resolve));
    this.resources = spec.resources;
    this.resourceMessages = spec.resourceMessages;
    this.lastState = publish(spec.containerId, { type: "state", state: initial, message: initial === "FETCHING" ? undefined : "recovered after a restart" });
    this.firstSequence = this.lastState.sequence;
  }

  get id(): string {
    return this.spec.containerId;
  }

  get state(): ContainerState {
    return this.state$.value;
  }

  get destroyRequested(): boolean {
    return this.launchAbort.signal.aborted && this.launchAbort.signal.reason instanceof DestroyRequested;
  }

  /** Moves to `to`; throws FailedPrecondition for a transition the state machine forbids. */
  transition(to: ContainerState, message?: string): void {
    const from = this.state;
    if (!canTransition(from, to)) throw new FailedPrecondition(`container '${this.id}' cannot go from ${from} to ${to}`);
    this.state$.next(to);
    this.lastState = this.emit({ type: "state", state: to, previous: from, message }) ?? this.lastState;
  }

  /** Records the engine's word that the process exited (first word wins). */
  exited(facts: ExitFacts | undefined): void {
    if (this.exitKnown) return;
    this.exitKnown = true;
    this.killedByDestroy = this.destroyRequested;
    this.resolveExit(facts);
  }

  get hasExited(): boolean {
    return this.exitKnown;
  }

  /** Publishes a task status event (when the container runs a task). */
  publishTaskStatus(kind: Extract<EventKind, { type: "task_status" }>): void {
    this.lastTaskStatus = this.emit(kind) ?? this.lastTaskStatus;
  }

  /** Publishes a pull progress event. */
  publishPull(kind: Extract<EventKind, { type: "pull" }>): void {
    this.emit(kind);
  }

  /** Publishes that one URI was fetched into the sandbox (FETCHING). */
  publishFetch(kind: Extract<EventKind, { type: "fetch" }>): void {
    this.emit(kind);
  }

  /**
   * Publishes, or records why it could not (no sequence number could be reserved on a failing
   * disk): the state machine must go on to its termination either way, or Wait and Destroy hang.
   */
  private emit(kind: EventKind): ContainerEvent | undefined {
    try {
      return this.publish(this.id, kind);
    } catch (err) {
      this.unpublished ??= err;
      return undefined;
    }
  }

  /**
   * Ends the container: TERMINATED, then the task's terminal status when it runs a task, then
   * the termination last. Called once, by the pipeline.
   */
  terminate(termination: Termination, finalStatus?: TaskStatus): void {
    if (this.terminated) return;
    this.terminated = termination;
    this.unpublished = undefined;
    this.transition("TERMINATED", termination.containerTermination.message);
    if (finalStatus) this.publishTaskStatus({ type: "task_status", status: finalStatus });
    this.terminationEvent = this.emit({ type: "termination", termination });
    this.exited(undefined);
    if (this.unpublished === undefined) {
      this.termination$.next(termination);
      this.termination$.complete();
    } else {
      // Waiters get a clear error rather than a termination no journal or restart knows of.
      const cause = this.unpublished as Error;
      const what = `container '${this.id}' terminated (${termination.containerTermination.message}) but its termination could not be recorded: ${cause.message}`;
      this.termination$.error(cause instanceof DiskFailed ? new DiskFailed(what, { cause }) : new Error(what, { cause }));
    }
    this.state$.complete();
  }

  /** The snapshot a new Watch subscriber sees, oldest first. */
  snapshot(): ContainerEvent[] {
    const events = [this.lastState, this.lastTaskStatus, this.terminationEvent].filter((e): e is ContainerEvent => e !== undefined);
    events.sort((a, b) => (a.sequence < b.sequence ? -1 : a.sequence > b.sequence ? 1 : 0));
    return events.map((e) => ({ ...e, snapshot: true }));
  }
}
