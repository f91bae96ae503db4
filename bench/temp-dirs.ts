import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

// Every temp dir still in use, so an interrupted run can remove them too.
const live = new Set<string>();

/** Makes a fresh directory under the OS temp dir named `berth-bench-<tag>-XXXXXX`. */
export async function makeTempDir(tag: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `berth-bench-${tag}-`));
  live.add(dir);
  return dir;
}

/** Removes a directory made by makeTempDir. */
export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  live.delete(dir);
}

/** Removes every directory made by makeTempDir and not yet removed. */
export async function removeAllTempDirs(): Promise<void> {
  await Promise.all([...live].map((dir) => removeTempDir(dir)));
}
