import type { HealthProbeSpec } from "./health-check.js";
import type { Probe } from "./health-checker.js";

/** Runs a command in the running container to its end (the exec module's execSync, bound to the engine). */
export type RunInContainer = (
  engineId: string,
  command: { argv: string[]; env: Record<string, string>; timeoutMs: number; maxOutputBytes: number },
  signal: AbortSignal,
) => Promise<{ exitCode: number; stderr: Buffer; timedOut: boolean }>;

/** What of the command's stderr a failure message quotes. */
const STDERR_KEPT = 512;
/** The exec's own timeout when the check has none (the checker's abort normally ends it). */
const NO_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * A COMMAND check: the command runs in the container through the engine's exec (as Mesos' docker
 * executor runs `docker exec`), as the container's user, with the check's environment on top of
 * the container's. Exit status 0 is healthy. An abort (the check's timeout, or the checker
 * stopping) kills the exec'd process tree.
 */
export function commandProbe(spec: Extract<HealthProbeSpec, { type: "COMMAND" }>, engineId: () => string | undefined, run: RunInContainer, timeoutMs: number): Probe {
  return async (signal) => {
    const id = engineId();
    if (id === undefined) throw new Error("the container has no engine container");
    // The exec's own timeout is a backstop a little past the checker's, which aborts first.
    const result = await run(id, { argv: spec.argv, env: spec.env, timeoutMs: timeoutMs > 0 ? timeoutMs + 1000 : NO_TIMEOUT_MS, maxOutputBytes: STDERR_KEPT }, signal);
    if (result.timedOut) return { healthy: false, message: `command '${spec.display}' timed out` };
    if (result.exitCode === 0) return { healthy: true, message: `command '${spec.display}' exited with status 0` };
    const said = result.stderr.toString("utf8").trim().split("\n")[0] ?? "";
    return { healthy: false, message: `command '${spec.display}' exited with status ${result.exitCode}${said ? `: ${said.slice(0, 200)}` : ""}` };
  };
}
