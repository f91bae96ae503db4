/** What an exec asks for, checked and turned into the engine's exec create body. */
import type { ExecCreateSpec } from "../docker/engine-port.js";
import { ENV_NAME, quote, USER_SPEC } from "../containerizer/container-id.js";
import { InvalidRequest } from "../containerizer/errors.js";

/** The process an exec runs, as the domain takes it. */
export interface ExecCommand {
  /** argv; the first entry is the program (looked up in the container's PATH). */
  argv: string[];
  /** Extra environment, on top of the container's. */
  env?: Record<string, string>;
  /** `name`, `uid`, `name:group` or `uid:gid`; unset: the container's user. */
  user?: string;
  /** Absolute path inside the container; unset: the container's working directory. */
  workingDir?: string;
}

/** The request's field names, for messages (ExecSync's `command`, Exec's `start.command`, a health check's own). */
export interface ExecFieldNames {
  argv: string;
  env: string;
  user: string;
  workingDir: string;
}

/** Field names of ExecSyncRequest. */
export const EXEC_SYNC_FIELDS: ExecFieldNames = { argv: "command", env: "environment", user: "user", workingDir: "working_dir" };


/** Checks the command (InvalidRequest naming the field and value) and builds the engine's exec body. */
export function execCreateSpec(cmd: ExecCommand, options: { tty: boolean; stdin: boolean }, fields: ExecFieldNames = EXEC_SYNC_FIELDS): ExecCreateSpec {
  if (cmd.argv.length === 0) throw new InvalidRequest(`${fields.argv} is empty; name the program to run (and its arguments)`);
  if (cmd.argv[0] === "") throw new InvalidRequest(`${fields.argv}[0] is empty; it names the program to run`);
  cmd.argv.forEach((a, i) => {
    if (a.includes("\0")) throw new InvalidRequest(`${fields.argv}[${i}] ${quote(a)} contains a NUL character`);
  });
  const env: string[] = [];
  for (const [name, value] of Object.entries(cmd.env ?? {})) {
    if (!ENV_NAME.test(name)) throw new InvalidRequest(`${fields.env} name ${quote(name)} is empty or contains '=' or NUL`);
    if (value.includes("\0")) throw new InvalidRequest(`${fields.env} value of ${quote(name)} contains a NUL character`);
    env.push(`${name}=${value}`);
  }
  const spec: ExecCreateSpec = { Cmd: [...cmd.argv], Tty: options.tty, AttachStdin: options.stdin };
  if (env.length > 0) spec.Env = env;
  if (cmd.user !== undefined && cmd.user !== "") {
    if (!USER_SPEC.test(cmd.user)) throw new InvalidRequest(`${fields.user} ${quote(cmd.user)} is not a user name or uid (optionally ':group' or ':gid')`);
    spec.User = cmd.user;
  }
  if (cmd.workingDir !== undefined && cmd.workingDir !== "") {
    if (!cmd.workingDir.startsWith("/")) throw new InvalidRequest(`${fields.workingDir} ${quote(cmd.workingDir)} is not an absolute path`);
    if (/[\0-\x1f]/.test(cmd.workingDir)) throw new InvalidRequest(`${fields.workingDir} ${quote(cmd.workingDir)} contains a control character`);
    spec.WorkingDir = cmd.workingDir;
  }
  return spec;
}
