/**
 * The child process of read-as-user.ts: started as root, it takes on the task user's groups, gid and
 * uid (in that order: after setuid nothing can be changed back), opens the file the parent checked
 * against the policy, and streams it to stdout. Fd 3 carries one JSON line first — `{"size":N}` or
 * `{"error":"…"}` — and, should the copy fail midway, an error line after it. Exit code 0 only when
 * every byte was written.
 */
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { openCheckedFile } from './local-file.js';

interface ChildRequest {
  path: string;
  real: string;
  prefix: string;
  uid: number;
  gid: number;
  groups: number[];
}

const control = createWriteStream('', { fd: 3 });

function say(line: object): Promise<void> {
  return new Promise((resolve) => control.write(`${JSON.stringify(line)}\n`, () => resolve()));
}

async function main(): Promise<void> {
  const req = JSON.parse(process.argv[2] ?? '{}') as ChildRequest;
  try {
    process.setgroups!(req.groups);
    process.setgid!(req.gid);
    process.setuid!(req.uid);
    if (process.getuid!() !== req.uid || process.geteuid!() !== req.uid) throw new Error('could not take on the user id');
  } catch (err) {
    await say({ error: `could not become uid ${req.uid} gid ${req.gid}: ${(err as Error).message}` });
    process.exitCode = 2;
    return;
  }
  let file;
  try {
    file = await openCheckedFile(req.path, { real: req.real, prefix: req.prefix });
  } catch (err) {
    await say({ error: (err as Error).message, code: (err as NodeJS.ErrnoException).code });
    process.exitCode = 1;
    return;
  }
  await say({ size: file.size });
  try {
    await pipeline(file.body, createWriteStream('', { fd: 1 }));
  } catch (err) {
    await say({ error: `reading failed: ${(err as Error).message}` });
    process.exitCode = 1;
  } finally {
    file.close();
  }
}

main().catch(async (err: unknown) => {
  await say({ error: String(err) });
  process.exitCode = 1;
});
