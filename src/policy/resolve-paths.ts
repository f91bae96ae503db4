import { lstat, readlink } from "node:fs/promises";
import path from "node:path";

/** Real paths computed before admission: path → its real path, or null when it cannot be resolved. */
export type ResolvedPaths = ReadonlyMap<string, string | null>;

/** How many symbolic links one resolution follows before giving up (the kernel's MAXSYMLINKS). */
const MAX_LINKS = 40;

/**
 * The real path of `p` as the kernel would reach it: every symbolic link resolved, including a
 * dangling one (a `mkdir -p` or a bind through it would follow it), and the part that does not
 * exist yet appended as is. Unlike fs.realpath it answers for paths that do not exist yet (a
 * sandbox to be created) and never creates anything. null when it cannot be resolved (a loop,
 * a component that is not a directory, no permission): the caller refuses such a path.
 */
export async function realPathOf(p: string): Promise<string | null> {
  const queue = p.split("/").filter((s) => s !== "");
  let current = "/";
  let links = 0;
  let missing = false;
  while (queue.length > 0) {
    const part = queue.shift()!;
    if (part === ".") continue;
    if (part === "..") {
      current = path.dirname(current);
      continue;
    }
    const next = path.join(current, part);
    if (missing) {
      current = next;
      continue;
    }
    let stat;
    try {
      stat = await lstat(next);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") return null;
      // From here on nothing exists: the rest is taken as written.
      missing = true;
      current = next;
      continue;
    }
    if (stat.isSymbolicLink()) {
      if (++links > MAX_LINKS) return null;
      let target: string;
      try {
        target = await readlink(next);
      } catch {
        return null;
      }
      if (target.startsWith("/")) current = "/";
      queue.unshift(...target.split("/").filter((s) => s !== ""));
      continue;
    }
    if (queue.length > 0 && !stat.isDirectory()) return null;
    current = next;
  }
  return current;
}

/** Resolves each distinct path once. */
export async function resolvePaths(paths: Iterable<string>): Promise<Map<string, string | null>> {
  const distinct = [...new Set(paths)];
  const reals = await Promise.all(distinct.map((p) => realPathOf(p)));
  return new Map(distinct.map((p, i) => [p, reals[i]!]));
}
