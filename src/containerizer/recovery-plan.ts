import type { ContainerCheckpoint } from "../gen/berth/checkpoint/v1/checkpoint_pb.js";
import type { ContainerSummary } from "../docker/engine-port.js";
import { LABEL_CONTAINER_ID } from "../docker/names.js";
import { checkpointState } from "./container-checkpoint.js";
import type { ContainerState } from "./state.js";

/** What recovery does with one checkpointed container. */
export type RecoveryAction =
  /** Terminated before the restart: restore the termination; remove any engine leftover. */
  | { kind: "restore-terminated"; checkpoint: ContainerCheckpoint; leftovers: ContainerSummary[] }
  /** Was RUNNING or DESTROYING and the engine still has it: adopt (it may have exited meanwhile). */
  | { kind: "adopt"; checkpoint: ContainerCheckpoint; state: "RUNNING" | "DESTROYING"; row: ContainerSummary; leftovers: ContainerSummary[] }
  /** Was RUNNING or DESTROYING and the engine no longer has it: its fate is unknowable. */
  | { kind: "vanished"; checkpoint: ContainerCheckpoint; state: "RUNNING" | "DESTROYING" }
  /** Caught mid-launch: destroy whatever the engine has of it, report a failed launch. */
  | { kind: "abandon"; checkpoint: ContainerCheckpoint; stage: ContainerState; leftovers: ContainerSummary[] }
  /** A record this version cannot read the state of. */
  | { kind: "unreadable"; checkpoint: ContainerCheckpoint; reason: string };

/** The whole recovery: per-container actions, and engine containers of this agent nobody owns. */
export interface RecoveryPlan {
  actions: RecoveryAction[];
  orphans: ContainerSummary[];
}

/**
 * Decides, from the checkpoints and one listing of this agent's engine containers, what recovery
 * does. Launches caught mid-pipeline are destroyed rather than resumed: a half-done FETCHING or
 * PULLING is cheap to redo by the agent, and a created-but-unreported container is exactly what
 * a clean failure must not leave behind (Mesos destroys them too).
 */
export function planRecovery(checkpoints: ContainerCheckpoint[], rows: ContainerSummary[], agentId: string): RecoveryPlan {
  const byContainerId = new Map<string, ContainerSummary[]>();
  for (const row of rows) {
    const id = row.labels[LABEL_CONTAINER_ID] ?? "";
    byContainerId.set(id, [...(byContainerId.get(id) ?? []), row]);
  }
  const owned = new Set<string>();
  const actions: RecoveryAction[] = [];
  for (const cp of checkpoints) {
    if (cp.agentId !== agentId) {
      actions.push({ kind: "unreadable", checkpoint: cp, reason: `it belongs to agent '${cp.agentId}', not '${agentId}'` });
      continue;
    }
    owned.add(cp.containerId);
    const mine = byContainerId.get(cp.containerId) ?? [];
    const state = checkpointState(cp);
    if (cp.termination) {
      actions.push({ kind: "restore-terminated", checkpoint: cp, leftovers: mine });
    } else if (state === "RUNNING" || state === "DESTROYING") {
      const row = mine.find((r) => r.id === cp.engineId);
      const effective = cp.destroyRequested ? "DESTROYING" : state;
      // Recorded RUNNING while the engine was asked to start it, but never started: mid-launch.
      if (row?.state === "created") actions.push({ kind: "abandon", checkpoint: cp, stage: "MOUNTING", leftovers: mine });
      else if (row) actions.push({ kind: "adopt", checkpoint: cp, state: effective, row, leftovers: mine.filter((r) => r !== row) });
      else actions.push({ kind: "vanished", checkpoint: cp, state: effective });
    } else if (state === "FETCHING" || state === "PULLING" || state === "MOUNTING") {
      // The launch records only FETCHING and then RUNNING; an engine container of it shows the
      // launch had reached MOUNTING (the create).
      actions.push({ kind: "abandon", checkpoint: cp, stage: mine.length > 0 ? "MOUNTING" : state, leftovers: mine });
    } else {
      actions.push({ kind: "unreadable", checkpoint: cp, reason: `its state '${cp.state}' is not one Berth knows` });
    }
  }
  const orphans = rows.filter((r) => !owned.has(r.labels[LABEL_CONTAINER_ID] ?? ""));
  return { actions, orphans };
}
