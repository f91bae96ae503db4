/** ExecSync and Exec as the containerizer offers them: checks of the request, the policy and the container's state around the exec itself. */
import type { EnginePort } from "../docker/engine-port.js";
import type { ContainerState } from "../containerizer/state.js";
import { FailedPrecondition, InvalidRequest } from "../containerizer/errors.js";
import type { Policy } from "../policy/policy.js";
import { checkExecUser } from "./exec-policy.js";
import { execCreateSpec, EXEC_SYNC_FIELDS, type ExecCommand } from "./exec-spec.js";
import { execSync, type ExecSyncResult } from "./exec-sync.js";
import { EXEC_START_FIELDS, ExecSession, type ExecStartInput } from "./exec-session.js";

/** The container an exec goes into, as the containerizer knows it. */
export interface ExecTarget {
  readonly id: string;
  readonly state: ContainerState;
  readonly engineId?: string;
}

/** An ExecSync request; timeout and output limit default to the flags. */
export interface ExecSyncInput extends ExecCommand {
  stdin?: Buffer;
  /** Unset: --exec_timeout. */
  timeoutMs?: number;
}

/** Settings from the flags. */
export interface ContainerExecOptions {
  /** --exec_timeout: ExecSync's timeout when the request sets none. */
  defaultTimeoutMs: number;
  /** --exec_max_output_bytes: what ExecSync keeps of stdout (and of stderr). */
  maxOutputBytes: number;
}

/** Runs execs into the containers the containerizer hands it. */
export class ContainerExec {
  constructor(
    private readonly engine: EnginePort,
    private readonly policy: Policy,
    private readonly options: ContainerExecOptions,
  ) {}

  /**
   * Runs a command to its end (ExecSync). In order: the request's shape (InvalidRequest), the
   * policy (PermissionDenied), the container's state (FailedPrecondition unless RUNNING).
   */
  async sync(target: ExecTarget, input: ExecSyncInput, signal: AbortSignal): Promise<ExecSyncResult> {
    execCreateSpec(input, { tty: false, stdin: false }, EXEC_SYNC_FIELDS);
    if (input.timeoutMs !== undefined && !(input.timeoutMs > 0)) throw new InvalidRequest(`timeout ${input.timeoutMs} ms is not positive`);
    checkExecUser(input.user, this.policy, EXEC_SYNC_FIELDS.user);
    const engineId = running(target);
    return execSync(this.engine, engineId, { ...input, timeoutMs: input.timeoutMs ?? this.options.defaultTimeoutMs, maxOutputBytes: this.options.maxOutputBytes }, signal);
  }

  /** Starts an interactive exec (Exec), after the same checks as sync(). */
  async interactive(target: ExecTarget, input: ExecStartInput, signal: AbortSignal): Promise<ExecSession> {
    execCreateSpec(input, { tty: input.tty, stdin: input.stdin }, EXEC_START_FIELDS);
    checkExecUser(input.user, this.policy, EXEC_START_FIELDS.user);
    const engineId = running(target);
    return ExecSession.start(this.engine, engineId, input, signal);
  }
}

function running(target: ExecTarget): string {
  if (target.state !== "RUNNING" || target.engineId === undefined) {
    throw new FailedPrecondition(`container '${target.id}' is ${target.state}; exec needs a RUNNING container`);
  }
  return target.engineId;
}
