import { createHash, randomBytes } from "node:crypto";
import { createConnection, createServer, type Server } from "node:net";
import { readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { validateId } from "./containerizer/container-id.js";

/** A refusal to take an agent id (kept one differs, or another live Berth holds it); the message is the one line to print. */
export class AgentIdRefused extends Error {}

/** What resolveAgentId settled on, and whether it replaced a different kept id (--force_agent_id). */
export interface ResolvedAgentId {
  id: string;
  /** The kept id that --force_agent_id replaced; its engine containers are no longer this agent's. */
  replaced?: string;
}

async function readKept(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, "utf8")).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

async function keep(file: string, id: string): Promise<void> {
  const tmp = `${file}.tmp`;
  await writeFile(tmp, `${id}\n`, { flush: true });
  await rename(tmp, file);
}

/**
 * The agent id, kept in <work_dir>/agent_id: every engine object carries it, so it must survive
 * restarts, also when it came from --agent_id (a restart without the flag would otherwise make a
 * new id, and every earlier container would become another agent's, never adopted nor removed).
 * A --agent_id that differs from the kept one is refused unless `force`; without the flag the
 * kept id is used, or a new one is generated and kept.
 */
export async function resolveAgentId(workDir: string, flag: string | undefined, force = false): Promise<ResolvedAgentId> {
  const file = path.join(workDir, "agent_id");
  const kept = await readKept(file);
  if (flag !== undefined) {
    validateId(flag, "--agent_id");
    if (kept === flag) return { id: flag };
    if (kept !== undefined && !force) {
      throw new AgentIdRefused(
        `--agent_id '${flag}' differs from the agent id '${kept}' kept in ${file}: the containers of '${kept}' would be neither adopted nor removed; start without --agent_id, or pass --force_agent_id to replace it`,
      );
    }
    await keep(file, flag);
    return kept === undefined ? { id: flag } : { id: flag, replaced: kept };
  }
  if (kept !== undefined) return { id: validateId(kept, `agent id in ${file}`) };
  const id = `a${randomBytes(6).toString("hex")}`;
  await keep(file, id);
  return { id };
}

/** A held claim on an agent id; release() gives it up (process exit does too). */
export interface AgentClaim {
  release(): Promise<void>;
}

/** The abstract unix socket name that stands for "a live Berth serves this agent id". */
export function claimSocketName(agentId: string): string {
  const name = `\0berth-agent-id/${agentId}`;
  // The kernel cuts socket names at 107 bytes: two long ids with a common start would collide.
  if (Buffer.byteLength(name) <= 107) return name;
  return `\0berth-agent-id/sha256:${createHash("sha256").update(agentId).digest("hex")}`;
}

/** Asks the holder of a claim who it is (its pid and work dir); undefined when it does not say. */
async function askHolder(name: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    let text = "";
    const socket = createConnection(name);
    const done = (value: string | undefined) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(2000, () => done(undefined));
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (text += chunk));
    socket.on("end", () => done(text.trim() || undefined));
    socket.on("error", () => done(undefined));
  });
}

/**
 * Claims `agentId` for this process on this host, so that two Berths with one agent id (on two
 * work dirs) never both run: each would take the other's live containers for orphans and remove
 * them. The claim is an abstract unix socket named after the agent id: binding it is atomic, and
 * the kernel releases it when the process dies however it dies (kill -9 included), so there is no
 * stale lock to judge and no pid to be reused. Its reach is the host's network namespace; Berths on
 * other hosts sharing one engine over TCP are not seen (see the README).
 */
export async function claimAgentId(agentId: string, holder: { workDir: string }): Promise<AgentClaim> {
  const name = claimSocketName(agentId);
  const server: Server = createServer((socket) => socket.end(`pid ${process.pid}, work dir '${holder.workDir}'\n`));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(name, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw new AgentIdRefused(`cannot claim agent id '${agentId}': ${(err as Error).message}`);
    const who = await askHolder(name);
    throw new AgentIdRefused(
      `agent id '${agentId}' is already served by another berth${who ? ` (${who})` : ""}; two berths with one agent id would remove each other's containers: stop it, or choose another --agent_id`,
    );
  }
  // The claim must never keep the process alive on its own.
  server.unref();
  return {
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
