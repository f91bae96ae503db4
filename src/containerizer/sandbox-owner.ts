import { lchown, readdir } from "node:fs/promises";
import path from "node:path";
import { groupIdOf, HOST_GROUP_FILE, readUserDatabase } from "../host-users.js";

/** Who a sandbox belongs to: the task's user as the host knows it. gid -1 keeps the group. */
export interface SandboxOwner {
  uid: number;
  gid: number;
}

/** Where the host's user and group databases are (a seam for tests). */
export interface UserDatabase {
  passwd: string;
  group: string;
}

const HOST_DB: UserDatabase = { passwd: "/etc/passwd", group: HOST_GROUP_FILE };

/**
 * The owner a sandbox gets for the task's `user` (`name`, `uid`, optionally `:group`), as Mesos
 * chowns the sandbox to the task's user: a numeric uid is taken as is (with the primary group of
 * the host's entry for it, if any); a name is looked up in the HOST's /etc/passwd. undefined when
 * no user is set or the name is unknown on the host: the sandbox then stays root's (the container
 * resolves names in its image, which the host cannot see).
 */
export async function resolveSandboxOwner(user: string | undefined, db: UserDatabase = HOST_DB): Promise<SandboxOwner | undefined> {
  if (user === undefined || user === "") return undefined;
  const [name, group] = user.split(":", 2) as [string, string | undefined];
  const passwd = await readUserDatabase(db.passwd);
  let uid: number;
  let gid = -1;
  if (/^\d+$/.test(name)) {
    uid = Number(name);
    const entry = passwd.find((e) => e[2] === name);
    if (entry && /^\d+$/.test(entry[3] ?? "")) gid = Number(entry[3]);
  } else {
    const entry = passwd.find((e) => e[0] === name);
    if (!entry || !/^\d+$/.test(entry[2] ?? "")) return undefined;
    uid = Number(entry[2]);
    if (/^\d+$/.test(entry[3] ?? "")) gid = Number(entry[3]);
  }
  if (group !== undefined) gid = (await groupIdOf(group, db.group)) ?? gid;
  if (!Number.isSafeInteger(uid) || uid > 0xfffffffe || gid > 0xfffffffe) return undefined;
  return { uid, gid };
}

/**
 * Chowns the sandbox and everything in it (what the fetcher, running as root, put there), never
 * following a link: a link planted by an archive stays a link and its target keeps its owner.
 */
export async function chownTree(root: string, owner: SandboxOwner): Promise<void> {
  await lchown(root, owner.uid, owner.gid);
  const entries = await readdir(root, { withFileTypes: true });
  for (const e of entries) {
    const p = path.join(root, e.name);
    if (e.isDirectory()) await chownTree(p, owner);
    else await lchown(p, owner.uid, owner.gid);
  }
}
