/** A container's place in the pipeline; the order is the order of the happy path. */
export type ContainerState = "FETCHING" | "PULLING" | "MOUNTING" | "RUNNING" | "DESTROYING" | "TERMINATED";

/** Launch stages, in order; a launch timeout or failure names one of them. */
export const LAUNCH_STAGES: readonly ContainerState[] = ["FETCHING", "PULLING", "MOUNTING"];

const ALLOWED: Record<ContainerState, readonly ContainerState[]> = {
  FETCHING: ["PULLING", "DESTROYING", "TERMINATED"],
  PULLING: ["MOUNTING", "DESTROYING", "TERMINATED"],
  MOUNTING: ["RUNNING", "DESTROYING", "TERMINATED"],
  RUNNING: ["DESTROYING", "TERMINATED"],
  DESTROYING: ["TERMINATED"],
  TERMINATED: [],
};

/** True when `to` may follow `from` (no RUNNING after DESTROYING, nothing after TERMINATED). */
export function canTransition(from: ContainerState, to: ContainerState): boolean {
  return ALLOWED[from].includes(to);
}
