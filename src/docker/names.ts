/**
 * Names and labels Berth puts on engine objects, so they can be found again without any state
 * (recovery, orphan removal, the label-filtered events stream).
 */

/** Label carrying the id of the agent that owns an engine container. */
export const LABEL_AGENT_ID = "berth.agent_id";

/** Label carrying the Mesos ContainerID value of an engine container. */
export const LABEL_CONTAINER_ID = "berth.container_id";

/**
 * The engine container name for a Berth container. Both ids are validated upstream to
 * `[A-Za-z0-9_.-]`, which is also what the engine accepts in names.
 */
export function containerName(agentId: string, containerId: string): string {
  return `berth-${agentId}-${containerId}`;
}

/** The labels that mark an engine object as belonging to this agent. */
export function agentLabels(agentId: string): Record<string, string> {
  return { [LABEL_AGENT_ID]: agentId };
}
