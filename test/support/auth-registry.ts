/**
 * A second local registry that requires basic auth, started by the test that needs it: Debian's
 * `docker-registry` (distribution 2.8) on 127.0.0.1 at a free port, with an htpasswd file made by
 * `htpasswd -B` (apache2-utils). The engine trusts it over plain http because 127.0.0.0/8 is an
 * insecure registry range by default in dockerd.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type Dockerode from "dockerode";
import { removeImage } from "./cleanup.js";
import { readProgress } from "./progress.js";

const REGISTRY_BIN = "/usr/bin/docker-registry";
const HTPASSWD_BIN = "htpasswd";
const READY_TIMEOUT_MS = 30_000;
const POLL_MS = 50;

/** One user the registry knows. */
export interface RegistryUser {
  username: string;
  password: string;
}

/** A running auth registry. */
export interface AuthRegistry {
  /** `127.0.0.1:PORT`, the registry part of image references. */
  host: string;
  /** The users the htpasswd file holds. */
  users: RegistryUser[];
  /** Stops the registry process and removes its storage. */
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function runHtpasswd(args: string[], stdin: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // -i reads the password from stdin, so it never shows in a process listing.
    const child = execFile(HTPASSWD_BIN, args, (err, _stdout, stderr) => {
      if (err) {
        const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
        reject(new Error(missing ? `'${HTPASSWD_BIN}' is missing; run scripts/engine-up.sh (installs apache2-utils)` : `htpasswd ${args.slice(0, -2).join(" ")} failed: ${stderr.trim() || err.message}`));
      } else resolve();
    });
    child.stdin?.end(stdin);
  });
}

/** Writes an htpasswd file (bcrypt, as distribution requires) holding `users`. */
async function writeHtpasswd(file: string, users: RegistryUser[]): Promise<void> {
  for (const [i, u] of users.entries()) {
    await runHtpasswd([i === 0 ? "-Bic" : "-Bi", file, u.username], u.password);
  }
}

/** GET /v2/ on the registry: its status code, or undefined when it does not answer. */
async function v2Status(host: string): Promise<number | undefined> {
  try {
    const res = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return undefined;
  }
}

/** Starts one registry process on `port`; rejects with its log when it exits before answering. */
async function startOn(dir: string, port: number, htpasswd: string): Promise<{ child: ChildProcess; host: string }> {
  const host = `127.0.0.1:${port}`;
  const config = path.join(dir, `config-${port}.yml`);
  const logFile = path.join(dir, `registry-${port}.log`);
  await writeFile(
    config,
    [
      "version: 0.1",
      "log:",
      "  level: info",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${path.join(dir, "storage")}`,
      "  delete:",
      "    enabled: true",
      "http:",
      `  addr: ${host}`,
      "auth:",
      "  htpasswd:",
      "    realm: berth-test-auth-registry",
      `    path: ${htpasswd}`,
      "",
    ].join("\n"),
  );
  const fd = openSync(logFile, "a");
  const child = spawn(REGISTRY_BIN, ["serve", config], { stdio: ["ignore", fd, fd] });
  closeSync(fd);
  let exited: string | undefined;
  child.once("exit", (code, signal) => (exited = `exited (code ${code}, signal ${signal})`));
  child.once("error", (err) => (exited = `could not start: ${err.message}`));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    // Without credentials the registry answers 401: that is the sign it is up and guarding.
    const status = await v2Status(host);
    if (status === 401) return { child, host };
    if (status !== undefined) {
      child.kill("SIGKILL");
      throw new Error(`auth registry at ${host} answered ${status} to an anonymous GET /v2/; expected 401`);
    }
    if (exited !== undefined) {
      const log = await readFile(logFile, "utf8").catch(() => "");
      throw Object.assign(new Error(`docker-registry on ${host} ${exited}; log tail:\n${log.split("\n").slice(-15).join("\n")}`), { addrInUse: /address already in use/.test(log) });
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`docker-registry on ${host} did not answer within ${READY_TIMEOUT_MS} ms`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Starts a basic-auth registry on 127.0.0.1 (a free port) knowing `users`. */
export async function startAuthRegistry(users: RegistryUser[]): Promise<AuthRegistry> {
  if (users.length === 0) throw new Error("startAuthRegistry: at least one user is needed");
  const dir = await mkdtemp(path.join(os.tmpdir(), "berth-auth-registry-"));
  try {
    const htpasswd = path.join(dir, "htpasswd");
    await writeHtpasswd(htpasswd, users);
    let started: { child: ChildProcess; host: string } | undefined;
    // The port is free when picked; another process may take it before the registry binds.
    for (let attempt = 1; started === undefined; attempt++) {
      try {
        started = await startOn(dir, await freePort(), htpasswd);
      } catch (err) {
        if (attempt >= 3 || !(err as { addrInUse?: boolean }).addrInUse) throw err;
      }
    }
    const { child, host } = started;
    return {
      host,
      users,
      async close() {
        if (child.exitCode === null && child.signalCode === null) {
          const gone = new Promise((r) => child.once("exit", r));
          child.kill("SIGTERM");
          await gone;
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Copies `sourceRef` (pulled from the open local registry) into the auth registry as `name:tag`,
 * pushing with `user`'s credentials, and leaves neither reference in the engine, so a launch of
 * the returned reference has to pull it from the auth registry.
 */
export async function pushToAuthRegistry(docker: Dockerode, registry: AuthRegistry, sourceRef: string, name: string, tag: string, user: RegistryUser): Promise<string> {
  const repo = `${registry.host}/${name}`;
  const ref = `${repo}:${tag}`;
  await readProgress(await docker.pull(sourceRef), `pull of '${sourceRef}'`);
  await docker.getImage(sourceRef).tag({ repo, tag });
  const pushed = await docker.getImage(repo).push({ tag, authconfig: { username: user.username, password: user.password, serveraddress: registry.host } } as object);
  await readProgress(pushed, `push of '${ref}'`);
  await removeImage(docker, ref);
  await removeImage(docker, sourceRef);
  return ref;
}
