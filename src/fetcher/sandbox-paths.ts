import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, realpath, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';

/** Canonical (realpath) form of the sandbox, so later containment checks compare like with like. */
export async function resolveSandbox(sandbox: string): Promise<string> {
  const real = await realpath(sandbox);
  const st = await stat(real);
  if (!st.isDirectory()) throw new Error(`sandbox '${sandbox}' is not a directory`);
  return real;
}

/** A fresh, unguessable name for a scratch entry in the sandbox root. */
export function scratchName(kind: 'fetch' | 'extract'): string {
  return `.berth-${kind}-${randomBytes(8).toString('hex')}`;
}

/** True when `p` is `root` or lies below it (both already canonical). */
export function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (rel !== '..' && !rel.startsWith('..' + path.sep) && !path.isAbsolute(rel));
}

async function lstatOrNull(p: string) {
  try {
    return await lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Walks `dirSegments` below the sandbox without following any symlink, creating missing directories.
 * A symlink planted in the sandbox (by an earlier URI or anyone else) could otherwise redirect the
 * write outside it, so an existing symlink component is an error, not something to resolve.
 */
export async function ensureDirNoFollow(sandboxReal: string, dirSegments: string[]): Promise<string> {
  let dir = sandboxReal;
  for (const segment of dirSegments) {
    dir = path.join(dir, segment);
    const st = await lstatOrNull(dir);
    if (st === null) {
      try {
        await mkdir(dir, { mode: 0o755 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      // mkdir does not follow a final symlink, but something may have raced in: check again.
      const again = await lstat(dir);
      if (!again.isDirectory()) throw new Error(`'${path.relative(sandboxReal, dir)}' in the sandbox is not a directory`);
    } else if (st.isSymbolicLink()) {
      throw new Error(`'${path.relative(sandboxReal, dir)}' in the sandbox is a symlink; refusing to follow it`);
    } else if (!st.isDirectory()) {
      throw new Error(`'${path.relative(sandboxReal, dir)}' in the sandbox is not a directory`);
    }
  }
  return dir;
}

/**
 * Moves a finished file onto `dest`. rename(2) replaces a file or a symlink at `dest` itself and never
 * writes through it, which is exactly the no-follow behaviour we need for the last path component.
 */
export async function placeFile(from: string, dest: string, sandboxReal: string): Promise<void> {
  const st = await lstatOrNull(dest);
  if (st?.isDirectory()) {
    throw new Error(`destination '${path.relative(sandboxReal, dest)}' is an existing directory`);
  }
  await rename(from, dest);
}

/**
 * Merges the tree at `src` (a scratch directory inside the sandbox) into `dest`, like an in-place
 * extraction would, but never following a symlink that already exists in `dest`: such a symlink is
 * replaced by the incoming entry (when that is not a directory) or the merge fails.
 */
export async function mergeTree(src: string, dest: string, sandboxReal: string): Promise<void> {
  for (const entry of await readdir(src, { withFileTypes: true })) {
    const from = path.join(src, entry.name);
    const to = path.join(dest, entry.name);
    const existing = await lstatOrNull(to);
    if (existing === null) {
      await rename(from, to);
    } else if (entry.isDirectory()) {
      if (existing.isDirectory()) {
        await mergeTree(from, to, sandboxReal);
        await rmdir(from);
      } else {
        // A file or symlink in the way is replaced (unlink removes the link itself, never its target),
        // as GNU tar does; merging *through* a symlink could land outside the sandbox.
        await unlink(to);
        await rename(from, to);
      }
    } else if (existing.isDirectory()) {
      throw new Error(`archive entry '${path.relative(sandboxReal, to)}' would replace an existing directory`);
    } else {
      await rename(from, to);
    }
  }
}

/** Best-effort removal of a scratch path; cleanup must never mask the original error. */
export async function removeQuietly(p: string): Promise<void> {
  await rm(p, { recursive: true, force: true }).catch(() => undefined);
}
