import type { Logger } from "pino";
import type { EngineEvent, EnginePort } from "../docker/engine-port.js";
import { LABEL_CONTAINER_ID } from "../docker/names.js";
import type { Container } from "./container.js";
import type { ExitFacts } from "./termination.js";

/** How many `die` events of not-yet-bound engine ids are kept for recovery to claim. */
const UNCLAIMED_EXITS = 4096;

/**
 * Routes the engine's one events stream to the containers: binds engine ids to containers,
 * delivers exits and OOM kills, keeps exits nobody claimed yet (recovery binds after listing),
 * and removes engine containers of this agent that no container owns or awaits.
 */
export class EngineEvents {
  private readonly byEngineId = new Map<string, Container>();
  /** `die` events of engine ids not (yet) bound to a container: recovery claims them. */
  private readonly unclaimedExits = new Map<string, ExitFacts>();

  constructor(
    private readonly containers: Map<string, Container>,
    private readonly deps: { engine: EnginePort; log: Logger; recovering: () => boolean; killOrphans?: boolean },
  ) {}

  /** Handles one engine event of this agent. */
  route(e: EngineEvent): void {
    const c = this.byEngineId.get(e.id) ?? this.containers.get(e.attributes[LABEL_CONTAINER_ID] ?? "");
    // --docker_kill_orphans=false: a container id Berth never knew is another agent's, left alone.
    const mine = this.deps.killOrphans !== false || this.containers.has(e.attributes[LABEL_CONTAINER_ID] ?? "");
    if (e.action === "create" && mine && this.isStray(e.id, e.attributes[LABEL_CONTAINER_ID])) {
      // Created after its launch gave up on the create (a timeout): nothing will ever run or remove it.
      this.deps.log.info({ container_id: e.attributes[LABEL_CONTAINER_ID], engine_id: e.id }, "removing an engine container no launch is waiting for");
      void this.deps.engine.removeContainer(e.id).catch((err: unknown) => this.deps.log.warn({ err, engine_id: e.id }, "could not remove a stray engine container"));
      return;
    }
    if (!c || (c.engineId !== undefined && c.engineId !== e.id)) {
      // Not bound yet (recovery is listing the engine): keep the exit for whoever claims the id.
      if (e.action === "die") {
        this.unclaimedExits.set(e.id, { exitCode: exitCodeOf(e), oomKilled: false });
        while (this.unclaimedExits.size > UNCLAIMED_EXITS) this.unclaimedExits.delete(this.unclaimedExits.keys().next().value!);
      }
      return;
    }
    if (e.action === "oom") c.oomSeen = true;
    else if (e.action === "die") c.exited({ exitCode: exitCodeOf(e), oomKilled: c.oomSeen });
  }

  /**
   * An engine container of this agent that no container owns or awaits: its id is unknown, or its
   * container is bound to another engine container, or terminated without one (the create failed
   * on Berth's side). A container still waiting for its create's answer is not stray. Nothing is
   * stray while recovery is rebuilding the picture.
   */
  isStray(engineId: string, containerId: string | undefined): boolean {
    if (this.deps.recovering()) return false;
    const c = containerId === undefined ? undefined : this.containers.get(containerId);
    if (!c) return true;
    if (c.engineId !== undefined) return c.engineId !== engineId;
    return c.terminated !== undefined;
  }

  /** From now on, `engineId`'s events are `c`'s; an exit seen before binding is delivered now. */
  bind(c: Container, engineId: string): void {
    this.byEngineId.set(engineId, c);
    const missed = this.unclaimedExits.get(engineId);
    if (missed) {
      this.unclaimedExits.delete(engineId);
      c.exited(missed);
    }
  }

  /** The container no longer follows `engineId` (its pipeline is over). */
  unbind(engineId: string): void {
    this.byEngineId.delete(engineId);
  }

  isBound(engineId: string): boolean {
    return this.byEngineId.has(engineId);
  }
}

function exitCodeOf(e: EngineEvent): number {
  const exitCode = Number(e.attributes.exitCode ?? "NaN");
  return Number.isFinite(exitCode) ? exitCode : 255;
}
