/**
 * Names and labels Berth puts on engine objects, so they can be found again without any state
 * (recovery, orphan removal, the label-filtered events stream).
 */

/** Label carrying the id of the agent that owns an engine container. */
export const LABEL_AGENT_ID = "berth.agent_id";

/** Label carrying the Mesos ContainerID value of an engine container. */
export const LABEL_CONTAINER_ID = "berth.container_id";

/**
 * The engine container name for a Berth container: `berth-<length of agent id>-<agent id>-<container id>`.
 * Both ids may contain '-', so joining them with '-' alone was not injective (agent `a` +
 * container `b-c` and agent `a-b` + container `c` were both `berth-a-b-c`: a 409 between two
 * agents on one engine). The agent id's length, in decimal and ended by the first '-', says where
 * the agent id ends, so every (agent, container) pair has a name of its own. Both ids are
 * validated upstream to `[A-Za-z0-9_.-]`, which the engine accepts in names. Nothing looks a
 * container up by this name (recovery and orphan removal go by labels), so containers created
 * with the older `berth-<agent>-<container>` names are still adopted.
 */
export function containerName(agentId: string, containerId: string): string {
  return `berth-${agentId.length}-${agentId}-${containerId}`;
}

/** The labels that mark an engine object as belonging to this agent. */
export function agentLabels(agentId: string): Record<string, string> {
  return { [LABEL_AGENT_ID]: agentId };
}
