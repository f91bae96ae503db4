import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import type Dockerode from "dockerode";
import * as tar from "tar";
import { removeImage } from "./cleanup.js";
import { devDir } from "./dev-dir.js";
import { engineUpOnce } from "./engine-up.js";
import { readProgress } from "./progress.js";
import { REGISTRY, registryHasManifest } from "./registry.js";

/** Registry references of the images the tests pull; neither is left in the engine by ensureTestImages. */
export interface TestImages {
  /** busybox-static rootfs, CMD ["/bin/sh"], ~1 MiB compressed. */
  busybox: string;
  /** The busybox rootfs plus /big/random.bin (64 MiB of incompressible bytes), for slow, abortable pulls. */
  big: string;
}

const BUSYBOX_SOURCE = "/bin/busybox";
const TAG = "1";
const BIG_FILE_BYTES = 64 * 1024 * 1024;
const RANDOM_CHUNK_BYTES = 1024 * 1024;
// Bumped when the image content changes, so a cached tar of an older layout is never reused.
const LAYOUT_VERSION = "v1";

// Applets linked as /bin/<name> → busybox; only those this busybox actually provides are linked.
const APPLETS = [
  "sh", "ash", "sleep", "usleep", "echo", "printf", "cat", "ls", "tail", "head", "dd", "true", "false",
  "kill", "killall", "pidof", "env", "id", "whoami", "groups", "touch", "wc", "tr", "yes", "seq", "test", "[",
  "[[", "expr", "mkdir", "rmdir", "rm", "cp", "mv", "ln", "chmod", "chown", "ps", "pwd", "date", "grep",
  "sed", "awk", "sort", "uniq", "cut", "stat", "du", "df", "find", "xargs", "hostname", "uname", "md5sum",
  "sha256sum", "timeout", "nproc", "free", "basename", "dirname", "readlink", "realpath", "tee", "sync",
  "mktemp", "mkfifo", "truncate", "fallocate", "uptime", "top", "vi", "less", "more", "hexdump", "od", "xxd",
  "gzip", "gunzip", "zcat", "tar", "wget", "nc", "ip", "ifconfig", "nslookup", "ping", "setsid", "nohup",
  "time", "which", "mount", "umount", "dmesg", "tac", "rev", "diff", "cmp", "base64", "shuf", "shred",
  "split", "unlink", "link", "nice", "renice", "ionice", "taskset", "getopt", "watch", "logger",
];

const PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP = "root:x:0:\nnogroup:x:65534:\n";

let ready: Promise<TestImages> | undefined;

async function busyboxApplets(): Promise<Set<string>> {
  const { stdout } = await promisify(execFile)(BUSYBOX_SOURCE, ["--list"]);
  return new Set(stdout.split("\n").map((line) => line.trim()).filter((line) => line !== ""));
}

/** Lays out the busybox rootfs in `root` (an empty directory). */
async function stageBusyboxRootfs(root: string): Promise<void> {
  if (!existsSync(BUSYBOX_SOURCE)) {
    throw new Error(`'${BUSYBOX_SOURCE}' is missing; run scripts/engine-up.sh (installs busybox-static)`);
  }
  for (const dir of ["bin", "etc", "root", "tmp", "home"]) await mkdir(join(root, dir));
  // /tmp is world-writable with the sticky bit, so tests running as nobody can use it.
  await chmod(join(root, "tmp"), 0o1777);
  await chmod(join(root, "root"), 0o700);
  await copyFile(BUSYBOX_SOURCE, join(root, "bin", "busybox"));
  await chmod(join(root, "bin", "busybox"), 0o755);
  const available = await busyboxApplets();
  for (const applet of APPLETS) {
    if (available.has(applet)) await symlink("busybox", join(root, "bin", applet));
  }
  await writeFile(join(root, "etc", "passwd"), PASSWD, { mode: 0o644 });
  await writeFile(join(root, "etc", "group"), GROUP, { mode: 0o644 });
}

/** Writes `bytes` random bytes to `path` in 1 MiB chunks, never holding the file in memory. */
async function writeRandomFile(path: string, bytes: number): Promise<void> {
  function* chunks(): Generator<Buffer> {
    for (let left = bytes; left > 0; left -= RANDOM_CHUNK_BYTES) {
      yield randomBytes(Math.min(RANDOM_CHUNK_BYTES, left));
    }
  }
  await pipeline(Readable.from(chunks()), createWriteStream(path, { mode: 0o644 }));
}

/** Tars the contents of `root` into `file`, atomically (a reader never sees a partial tar). */
async function tarRootfs(root: string, entries: string[], file: string): Promise<void> {
  const partial = `${file}.partial-${process.pid}`;
  // Not `portable`: that would strip group/other write bits (breaking /tmp's 1777) and ownership.
  await tar.create({ file: partial, cwd: root }, entries);
  await rename(partial, file);
}

/** Returns cached rootfs tars for both images, building what is missing. */
async function buildRootfsTars(): Promise<{ busybox: string; big: string }> {
  const cache = join(devDir(), "images");
  await mkdir(cache, { recursive: true });
  const tars = {
    busybox: join(cache, `busybox-rootfs-${LAYOUT_VERSION}.tar`),
    big: join(cache, `big-rootfs-${LAYOUT_VERSION}.tar`),
  };
  if (existsSync(tars.busybox) && existsSync(tars.big)) return tars;

  const stage = await mkdtemp(join(cache, "stage-"));
  try {
    await stageBusyboxRootfs(stage);
    const base = ["bin", "etc", "root", "tmp", "home"];
    if (!existsSync(tars.busybox)) await tarRootfs(stage, base, tars.busybox);
    if (!existsSync(tars.big)) {
      await mkdir(join(stage, "big"));
      await writeRandomFile(join(stage, "big", "random.bin"), BIG_FILE_BYTES);
      await tarRootfs(stage, [...base, "big"], tars.big);
    }
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  return tars;
}

/** Imports `tarFile` as `repo:tag`, pushes it to the local registry and confirms the registry serves it. */
async function importAndPush(docker: Dockerode, tarFile: string, name: string): Promise<void> {
  const repo = `${REGISTRY}/${name}`;
  const ref = `${repo}:${TAG}`;
  const imported = await docker.importImage(tarFile, {
    repo,
    tag: TAG,
    // The engine applies these Dockerfile instructions to the imported image's config.
    changes: ['CMD ["/bin/sh"]', "LABEL berth.test.image=" + name],
  });
  await readProgress(imported, `import of '${tarFile}' as '${ref}'`);
  const pushed = await docker.getImage(repo).push({ tag: TAG, authconfig: {} } as object);
  await readProgress(pushed, `push of '${ref}'`);
  if (!(await registryHasManifest(name, TAG))) {
    throw new Error(`push of '${ref}' reported success but registry ${REGISTRY} has no manifest for it`);
  }
}

/** Whether the local registry answers its `/v2/` endpoint within 3 s. */
export async function registryAnswers(): Promise<boolean> {
  try {
    const res = await fetch(`http://${REGISTRY}/v2/`, { signal: AbortSignal.timeout(3000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function prepare(docker: Dockerode): Promise<TestImages> {
  if (!(await registryAnswers())) await engineUpOnce();
  const images = {
    busybox: { name: "berth-test/busybox", ref: `${REGISTRY}/berth-test/busybox:${TAG}` },
    big: { name: "berth-test/big", ref: `${REGISTRY}/berth-test/big:${TAG}` },
  };
  const missing: Array<keyof typeof images> = [];
  for (const key of ["busybox", "big"] as const) {
    if (!(await registryHasManifest(images[key].name, TAG))) missing.push(key);
  }
  if (missing.length > 0) {
    const tars = await buildRootfsTars();
    for (const key of missing) await importAndPush(docker, tars[key], images[key].name);
    // Tests must exercise real pulls, so the engine keeps no copy of what was just imported.
    for (const key of missing) await removeImage(docker, images[key].ref);
  }
  return { busybox: images.busybox.ref, big: images.big.ref };
}

/**
 * Makes sure the local registry serves the test images, building them from busybox-static without
 * the docker CLI or the internet when missing (once per process; fast when already pushed).
 * Images it imports are removed from the engine afterwards; tests that need one pull it.
 */
export function ensureTestImages(docker: Dockerode): Promise<TestImages> {
  ready ??= prepare(docker).catch((err: unknown) => {
    ready = undefined;
    throw err;
  });
  return ready;
}
