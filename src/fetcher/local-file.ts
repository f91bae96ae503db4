import { constants as fsc } from 'node:fs';
import { lstat, open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { isInside } from './sandbox-paths.js';

/** An open local file, ready to stream. `close()` is idempotent. */
export interface LocalBody {
  body: AsyncIterable<Buffer>;
  /** Size of the regular file when it was opened. */
  size: number;
  close(): void;
}

/** The rule named in every refusal, so an operator knows which door is closed. */
const RULE = "file URIs and local paths may only read under the allowed file prefixes (the policy's file_uri_prefixes)";

async function realOrNull(p: string): Promise<string | null> {
  try {
    return await realpath(p);
  } catch {
    return null;
  }
}

/** Where a local path really lies, and the allowed prefix (canonical) that holds it. */
export interface CheckedLocalPath {
  real: string;
  prefix: string;
}

/**
 * Opens `p` for reading when, with every symlink resolved, it lies under one of `prefixes` (each
 * realpath'd too; prefixes that do not exist allow nothing). The real path is then opened with
 * O_NOFOLLOW (a symlink swapped in at the last component after the check fails with ELOOP) and
 * O_NONBLOCK (a FIFO cannot hang the open), the open descriptor must be a regular file, and, through
 * /proc/self/fd, the file actually opened must still lie under the prefix, so a directory swapped in
 * higher up after the check is caught too.
 */
export async function openLocalFile(
  p: string,
  prefixes: readonly string[],
  /** Test seam: runs between the prefix check and the open, where a racing swap would land. */
  hooks: { afterCheck?: () => Promise<void> } = {},
): Promise<LocalBody> {
  const checked = await checkLocalPath(p, prefixes);
  await hooks.afterCheck?.();
  return openCheckedFile(p, checked);
}

/**
 * The policy half of openLocalFile: resolves `p` and finds the allowed prefix holding it, or throws
 * the refusal. Runs with Berth's own rights (the operator's policy is about paths, not users).
 */
export async function checkLocalPath(p: string, prefixes: readonly string[]): Promise<CheckedLocalPath> {
  const absolute = prefixes.filter((x) => path.isAbsolute(x));
  if (absolute.length === 0) throw new Error(`refused: ${RULE}, and none are allowed`);
  const realPrefixes = (await Promise.all(absolute.map(realOrNull))).filter((x): x is string => x !== null);
  let real: string;
  try {
    real = await realpath(p);
  } catch (err) {
    // Report a missing file only inside the prefixes: outside them, whether a path exists is nobody's business.
    const lexicallyInside = realPrefixes.some((pre) => isInside(pre, p)) || absolute.some((pre) => isInside(path.normalize(pre), p));
    if (!lexicallyInside) throw new Error(`refused: '${p}' is not under an allowed prefix; ${RULE}`);
    throw err;
  }
  const prefix = realPrefixes.find((pre) => isInside(pre, real));
  if (prefix === undefined) throw new Error(`refused: '${p}' (with symlinks resolved) is not under an allowed prefix; ${RULE}`);
  return { real, prefix };
}

/**
 * The open half of openLocalFile: opens the checked real path and confirms the file opened is still
 * under the prefix. Runs with the rights of whoever calls it (the task's user, in read-as-user's child).
 */
export async function openCheckedFile(p: string, { real, prefix }: CheckedLocalPath): Promise<LocalBody> {
  let fh: FileHandle;
  try {
    fh = await open(real, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new Error(`refused: '${p}' became a symlink after it was checked`, { cause: err });
    }
    throw err;
  }
  let size: number;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error(`'${p}' is not a regular file`);
    let opened: string | null = null;
    try {
      opened = await readlink(`/proc/self/fd/${fh.fd}`);
    } catch {
      opened = null; // no /proc: fall back to comparing the inode with the checked path
    }
    if (opened !== null) {
      if (!isInside(prefix, opened)) throw new Error(`refused: '${p}' moved outside the allowed prefix while it was opened; ${RULE}`);
    } else {
      const again = await lstat(real);
      if (again.dev !== st.dev || again.ino !== st.ino) throw new Error(`refused: '${p}' changed while it was opened`);
    }
    size = st.size;
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
  const stream = fh.createReadStream({ autoClose: true });
  return {
    body: stream as AsyncIterable<Buffer>,
    size,
    close: () => {
      stream.destroy();
    },
  };
}
