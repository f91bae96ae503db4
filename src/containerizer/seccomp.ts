import { open } from "node:fs/promises";
import { constants } from "node:fs";
import path from "node:path";
import type { ContainerInfo } from "../gen/mesos/v1/mesos_pb.js";
import { quote } from "./container-id.js";
import { InvalidRequest } from "./errors.js";

/** A profile larger than this is not a seccomp profile (Docker's default is about 20 KB). */
export const MAX_SECCOMP_PROFILE_BYTES = 1024 * 1024;

const PROFILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** A profile name Berth may look up in --seccomp_config_dir, or why not. */
export function profileNameProblem(name: string): string | undefined {
  if (name.includes("/") || name.includes("..")) return "contains '/' or '..'; name a profile file in --seccomp_config_dir without '.json'";
  if (!PROFILE_NAME.test(name)) return "is not a profile name (letters, digits, '_', '.', '-')";
  return undefined;
}

/** The seccomp choice of a launch, read from linux_info.seccomp (Mesos' SeccompInfo). */
export type SeccompChoice = { kind: "default" } | { kind: "unconfined" } | { kind: "profile"; name: string };

/** Reads linux_info.seccomp; throws InvalidRequest for a shape Mesos refuses too. */
export function seccompChoice(info: ContainerInfo): SeccompChoice {
  const s = info.linuxInfo?.seccomp;
  if (!s) return { kind: "default" };
  const field = "container_info.linux_info.seccomp";
  if (s.unconfined && s.profileName !== "") throw new InvalidRequest(`${field} sets both profile_name ${quote(s.profileName)} and unconfined; choose one`);
  if (s.unconfined) return { kind: "unconfined" };
  if (s.profileName === "") return { kind: "default" };
  const problem = profileNameProblem(s.profileName);
  if (problem) throw new InvalidRequest(`${field}.profile_name ${quote(s.profileName)} ${problem}`);
  return { kind: "profile", name: s.profileName };
}

/**
 * Seccomp profiles by name from --seccomp_config_dir (`<dir>/<name>.json`), with
 * --seccomp_profile_name as the profile of a launch naming none (Mesos' linux/seccomp isolator).
 * The Engine API takes a profile's content, not its path, so each is read and checked here: the
 * default once at start-up, a named one at each launch that names it (an edited file takes effect
 * for the next launch). What was read is kept for the create that follows; the map holds at most
 * one entry per profile file of the operator's directory.
 */
export class SeccompProfiles {
  private readonly texts = new Map<string, string>();

  constructor(
    readonly dir: string | undefined,
    readonly defaultName: string | undefined,
  ) {}

  /** Checks the flags and reads the default profile; throws an Error naming the flag and file. */
  async init(): Promise<void> {
    if (this.defaultName === undefined) return;
    if (this.dir === undefined) throw new Error(`--seccomp_profile_name '${this.defaultName}' needs --seccomp_config_dir (the directory its <name>.json is read from)`);
    const problem = profileNameProblem(this.defaultName);
    if (problem) throw new Error(`--seccomp_profile_name '${this.defaultName}' ${problem}`);
    try {
      await this.load(this.defaultName);
    } catch (err) {
      throw new Error(`--seccomp_profile_name: ${(err as Error).message}`);
    }
  }

  /** The profile a launch names, read (and checked) now so the create can use it; undefined when it names none. */
  async prepare(info: ContainerInfo): Promise<void> {
    const choice = seccompChoice(info);
    if (choice.kind !== "profile") return;
    try {
      await this.load(choice.name);
    } catch (err) {
      throw new InvalidRequest(`container_info.linux_info.seccomp.profile_name ${quote(choice.name)}: ${(err as Error).message}`);
    }
  }

  /** True when `prepare` has something to read for this launch. */
  needsPrepare(info: ContainerInfo): boolean {
    const s = info.linuxInfo?.seccomp;
    return s !== undefined && s.profileName !== "" && !s.unconfined;
  }

  /**
   * The SecurityOpt entry for the launch: its named profile (read by `prepare`), unconfined, or
   * the default profile; undefined leaves the engine's own default profile.
   */
  securityOpt(info: ContainerInfo): string | undefined {
    const choice = seccompChoice(info);
    if (choice.kind === "unconfined") return "seccomp=unconfined";
    const name = choice.kind === "profile" ? choice.name : this.defaultName;
    if (name === undefined) return undefined;
    const text = this.texts.get(name);
    if (text === undefined) throw new InvalidRequest(`container_info.linux_info.seccomp.profile_name ${quote(name)} was not read before the create (a launch reads it at admission)`);
    return `seccomp=${text}`;
  }

  private async load(name: string): Promise<void> {
    if (this.dir === undefined) throw new Error("no profile directory is configured (--seccomp_config_dir)");
    const file = path.join(this.dir, `${name}.json`);
    let raw: string;
    try {
      // O_NOFOLLOW: the operator's directory holds files, not links to elsewhere on the host.
      const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        const { size } = await handle.stat();
        if (size > MAX_SECCOMP_PROFILE_BYTES) throw new Error(`'${file}' is ${size} bytes; a seccomp profile is at most ${MAX_SECCOMP_PROFILE_BYTES}`);
        raw = await handle.readFile("utf8");
      } finally {
        await handle.close();
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") throw new Error(`no profile '${file}'`);
      if (code === "ELOOP") throw new Error(`'${file}' is a symbolic link; profiles must be plain files`);
      throw new Error(`'${file}' cannot be read: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (err) {
      throw new Error(`'${file}' is not valid JSON: ${(err as Error).message}`);
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed) || typeof (parsed as { defaultAction?: unknown }).defaultAction !== "string") {
      throw new Error(`'${file}' is not a seccomp profile (a JSON object with a "defaultAction")`);
    }
    this.texts.set(name, JSON.stringify(parsed));
  }
}
