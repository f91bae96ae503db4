import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { readUserDatabase, HOST_GROUP_FILE } from '../host-users.js';
import { checkLocalPath, type LocalBody } from './local-file.js';

/** The credentials a local read runs with: the task's user as the host knows it. */
export interface ReadAsUser {
  /** For messages: the task's user as the launch named it. */
  name: string;
  uid: number;
  gid: number;
  /** Supplementary groups (the primary gid included). */
  groups: number[];
}

/** The task's user as the fetcher gets it: unknown on the host when `uid` is undefined. */
export interface FetchUser {
  /** As the launch named it (`name`, `uid`, optionally `:group`). */
  name: string;
  uid?: number;
  /** -1 or undefined: the host does not say. */
  gid?: number;
}

/** The overflow uid/gid ("nobody"/"nogroup"): what an unknown user reads as. */
export const NOBODY = 65534;

const CHILD = fileURLToPath(new URL('./read-as-user-child.js', import.meta.url));
const STDERR_KEEP = 4096;

/**
 * Who a local read runs as. A user unknown on the host reads as nobody (world-readable files only),
 * never as root: Mesos' fetcher runs as the task's user and fails for one it cannot find. The
 * supplementary groups are the host's (/etc/group members naming the user) plus the primary group.
 */
export async function readAsUserOf(user: FetchUser, groupFile = HOST_GROUP_FILE): Promise<ReadAsUser> {
  if (user.uid === undefined) return { name: user.name, uid: NOBODY, gid: NOBODY, groups: [NOBODY] };
  const gid = user.gid === undefined || user.gid < 0 ? NOBODY : user.gid;
  const [login, group] = user.name.split(':', 2) as [string, string | undefined];
  const groups = new Set<number>([gid]);
  // An explicit ':group' is the one group asked for, as `docker run --user u:g` gives.
  if (group === undefined && !/^\d+$/.test(login)) {
    for (const entry of await readUserDatabase(groupFile)) {
      const members = (entry[3] ?? '').split(',');
      if (members.includes(login) && /^\d+$/.test(entry[2] ?? '')) groups.add(Number(entry[2]));
    }
  }
  return { name: user.name, uid: user.uid, gid, groups: [...groups] };
}

/**
 * Opens a local file for reading with the task user's permissions, never root's. The policy check
 * (prefixes, symlinks) is Berth's and runs here; the open itself runs in a child process that has
 * dropped to the user's uid, gid and groups (Node cannot change credentials per call), which streams
 * the bytes back over a pipe. A file the user may not read fails with the kernel's EACCES, as it would
 * for the task. The child is killed when the body is closed early; a read that fails midway fails
 * the body.
 */
export async function openLocalFileAs(p: string, prefixes: readonly string[], user: ReadAsUser): Promise<LocalBody & { readerExited: Promise<unknown> }> {
  const checked = await checkLocalPath(p, prefixes);
  const request = { path: p, real: checked.real, prefix: checked.prefix, uid: user.uid, gid: user.gid, groups: user.groups };
  const child = spawn(process.execPath, [CHILD, JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env: {} });
  // Piped at once: when a child exits, Node resumes (and so discards) any of its output streams that
  // nobody reads yet, and a small file is often all written before the caller starts reading.
  const stdout = child.stdout!.pipe(new PassThrough({ highWaterMark: 64 * 1024 }));
  const who = `as user '${user.name}' (uid ${user.uid}, gid ${user.gid})`;
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < STDERR_KEEP) stderr += d;
  });
  const lines: Array<{ size?: number; error?: string }> = [];
  let waiting: (() => void) | undefined;
  let buffered = '';
  const control = child.stdio[3] as NodeJS.ReadableStream;
  control.setEncoding('utf8');
  control.on('data', (d: string) => {
    buffered += d;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      try {
        lines.push(JSON.parse(buffered.slice(0, nl)) as { size?: number; error?: string });
      } catch {
        lines.push({ error: `unreadable answer ${JSON.stringify(buffered.slice(0, nl))}` });
      }
      buffered = buffered.slice(nl + 1);
    }
    waiting?.();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (err) => {
      lines.push({ error: `could not start the reader: ${err.message}` });
      resolve({ code: null, signal: null });
    });
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const failure = async (): Promise<Error> => {
    const { code, signal } = await exited;
    const said = lines.find((l) => l.error !== undefined)?.error;
    const why = said ?? (stderr.trim() || `the reader ended with ${signal ?? `exit code ${code}`}`);
    return new Error(`reading '${p}' ${who} failed: ${why}`);
  };
  // The first line (or the child's end) decides whether the file is open.
  await Promise.race([new Promise<void>((resolve) => (waiting = resolve)), exited]);
  waiting = undefined;
  const first = lines[0];
  if (first?.size === undefined) {
    kill();
    stdout.destroy();
    throw await failure();
  }
  async function* body(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of stdout) yield chunk as Buffer;
      const { code } = await exited;
      if (code !== 0) throw await failure();
    } finally {
      kill();
    }
  }
  return {
    body: body(),
    size: first.size,
    readerExited: exited,
    close: () => {
      kill();
      child.stdout!.destroy();
      stdout.destroy();
    },
  };
}
