import { randomBytes } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { validateId } from "./containerizer/container-id.js";

/**
 * The agent id: the flag when given (and then kept), else the one kept in <work_dir>/agent_id,
 * else a new one written there. Every engine object carries it, so it must survive restarts.
 */
export async function resolveAgentId(workDir: string, flag: string | undefined): Promise<string> {
  const file = path.join(workDir, "agent_id");
  if (flag !== undefined) {
    validateId(flag, "--agent_id");
    return flag;
  }
  try {
    const kept = (await readFile(file, "utf8")).trim();
    return validateId(kept, `agent id in ${file}`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const id = `a${randomBytes(6).toString("hex")}`;
  const tmp = `${file}.tmp`;
  await writeFile(tmp, `${id}\n`, { flush: true });
  await rename(tmp, file);
  return id;
}
