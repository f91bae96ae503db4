// Who a sandbox belongs to: the task's user as the HOST knows it, as Mesos chows the sandbox.
import { strict as assert } from "node:assert";
import { lstat, mkdir, mkdtemp, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { chownTree, resolveSandboxOwner, type UserDatabase } from "../../src/containerizer/sandbox-owner.js";

describe("sandbox owner", () => {
  let dir: string;
  let db: UserDatabase;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "berth-owner-"));
    db = { passwd: path.join(dir, "passwd"), group: path.join(dir, "group") };
    await writeFile(db.passwd, "root:x:0:0:root:/root:/bin/sh\n# comment\nalice:x:1500:1600::/home/alice:/bin/sh\nbad:x:notanumber:1::/:/bin/sh\n");
    await writeFile(db.group, "root:x:0:\nstaff:x:50:\n");
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a numeric uid is taken as is, with its host entry's group when there is one", async () => {
    assert.deepEqual(await resolveSandboxOwner("1234", db), { uid: 1234, gid: -1 });
    assert.deepEqual(await resolveSandboxOwner("1500", db), { uid: 1500, gid: 1600 });
    assert.deepEqual(await resolveSandboxOwner("1234:99", db), { uid: 1234, gid: 99 });
    assert.deepEqual(await resolveSandboxOwner("1234:staff", db), { uid: 1234, gid: 50 });
  });

  it("a name is looked up in the host's passwd; an unknown one leaves the sandbox root's", async () => {
    assert.deepEqual(await resolveSandboxOwner("alice", db), { uid: 1500, gid: 1600 });
    assert.deepEqual(await resolveSandboxOwner("alice:staff", db), { uid: 1500, gid: 50 });
    assert.equal(await resolveSandboxOwner("nobody-here", db), undefined);
    assert.equal(await resolveSandboxOwner("bad", db), undefined);
    assert.equal(await resolveSandboxOwner(undefined, db), undefined);
    assert.equal(await resolveSandboxOwner("99999999999", db), undefined);
  });

  it("chownTree hands over everything without following links", async () => {
    const root = path.join(dir, "sandbox");
    await mkdir(path.join(root, "a/b"), { recursive: true });
    await writeFile(path.join(root, "a/b/f"), "x");
    const outside = path.join(dir, "outside");
    await writeFile(outside, "keep");
    await symlink(outside, path.join(root, "a/link"));
    await chownTree(root, { uid: 4321, gid: 4322 });
    for (const p of ["", "a", "a/b", "a/b/f"]) assert.equal((await stat(path.join(root, p))).uid, 4321);
    assert.equal((await lstat(path.join(root, "a/link"))).uid, 4321, "the link itself is handed over");
    assert.equal((await stat(outside)).uid, 0, "its target is not");
  });
});
