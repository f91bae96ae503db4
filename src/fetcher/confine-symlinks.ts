import { lstat, readdir, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { isInside } from './sandbox-paths.js';

/**
 * Checks every symlink an extraction produced under `root` (canonical): each must be relative and
 * resolve inside `root`. A lexical check alone is not enough (`b -> .` then `a -> b/..` is lexically
 * inside but really the parent), so links that resolve are checked by realpath, and dangling links
 * may not use '..' at all. Throws naming the first offending link.
 */
export async function assertSymlinksConfined(root: string): Promise<void> {
  const pending = [root];
  // Hard links: a regular file with more names than the tree holds has a name outside it. The tree
  // is a fresh scratch directory, so every other name of an inode inside it was made by the archive.
  const inodes = new Map<string, { first: string; nlink: number; seen: number }>();
  while (pending.length > 0) {
    const dir = pending.pop()!;
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        pending.push(p);
      } else if (entry.isSymbolicLink()) {
        await assertLinkConfined(root, p);
      } else if (entry.isFile()) {
        const st = await lstat(p);
        if (st.nlink > 1) {
          const key = `${st.dev}:${st.ino}`;
          const known = inodes.get(key);
          if (known) known.seen++;
          else inodes.set(key, { first: p, nlink: st.nlink, seen: 1 });
        }
      }
    }
  }
  for (const { first, nlink, seen } of inodes.values()) {
    if (nlink > seen) {
      throw new Error(`archive file '${path.relative(root, first)}' is hard-linked to a file outside the sandbox (${nlink} links, ${seen} inside)`);
    }
  }
}

async function assertLinkConfined(root: string, link: string): Promise<void> {
  const target = await readlink(link);
  const name = path.relative(root, link);
  const escape = (why: string): never => {
    throw new Error(`archive symlink '${name}' -> '${target}' ${why}`);
  };
  if (path.isAbsolute(target)) escape('is absolute');
  if (!isInside(root, path.resolve(path.dirname(link), target))) escape('points outside the sandbox');
  let real: string | null = null;
  try {
    real = await realpath(link);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') escape('is part of a symlink loop');
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
  }
  if (real !== null) {
    if (!isInside(root, real)) escape('resolves outside the sandbox');
  } else if (target.split('/').includes('..')) {
    escape("is dangling and uses '..'");
  }
}
