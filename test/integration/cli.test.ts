/**
 * The `berth` CLI as a person uses it: the compiled binary (`node dist/src/main.js <command>`)
 * against a real `berth serve` child process on the real engine and the local registry. Once
 * under a pseudo-terminal (Debian's tmux): the pull's progress bars render and finish, and an
 * `exec -it` shell echoes keys, follows a resize and gives the terminal back.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { promisify } from "node:util";
import type Dockerode from "dockerode";
import * as tar from "tar";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import { pollUntil } from "../harness/engine-control.js";
import { BerthProcess, freePort, MAIN_JS } from "../harness/process-berth.js";
import { makeTestPki, type TestPki } from "../support/certs.js";
import { ensureEngine, ensureTestImages, REGISTRY, removeImage, removeTestContainers, startThrottledRegistry, type TestImages } from "../support/engine.js";
import { readProgress } from "../support/progress.js";

const run = promisify(execFile);

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Lines of text, empty ones dropped. */
const lines = (text: string) => text.split("\n").filter((l) => l.trim() !== "");

/** Every non-empty line parsed as JSON (failing the test, naming the line, if one is not). */
function jsonLines(text: string): Array<Record<string, unknown>> {
  return lines(text).map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      throw new Error(`not a JSON line: ${l}`);
    }
  });
}

/** A single-quoted shell word. */
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

let imageCounter = 0;

/**
 * Pushes an image no engine has ever seen to the local registry: busybox plus `mib` MiB of random
 * bytes in one fresh layer, so launching it must really pull (no "Already exists"); with `topMib`,
 * a second fresh layer of that many random MiB on top (written into a created, never started,
 * container and committed). Returns its name and tag without the registry (`berth-test/cli-…:1`);
 * the engine keeps no copy.
 */
async function pushFreshImage(docker: Dockerode, mib: number, topMib = 0): Promise<string> {
  imageCounter += 1;
  const name = `berth-test/cli-${process.pid}-${Date.now().toString(36)}-${imageCounter}`;
  const repo = `${REGISTRY}/${name}`;
  const root = await mkdtemp(path.join(os.tmpdir(), "berth-cli-image-"));
  try {
    await mkdir(path.join(root, "bin"));
    await copyFile("/bin/busybox", path.join(root, "bin", "busybox"));
    for (const applet of ["sh", "echo", "sleep", "cat", "true", "ls"]) await symlink("busybox", path.join(root, "bin", applet));
    await writeFile(path.join(root, "fresh.bin"), randomBytes(mib * 1024 * 1024));
    const changes = ['CMD ["/bin/sh"]', "LABEL berth.test.image=cli"];
    const archive = tar.create({ cwd: root, portable: true }, ["bin", "fresh.bin"]) as unknown as Readable;
    const baseTag = topMib > 0 ? "base" : "1";
    const imported = await docker.importImage(archive, { repo, tag: baseTag, changes } as object);
    await readProgress(imported, `import of ${repo}:${baseTag}`);
    if (topMib > 0) {
      await writeFile(path.join(root, "top.bin"), randomBytes(topMib * 1024 * 1024));
      const top = path.join(root, "top.tar");
      await tar.create({ cwd: root, portable: true, file: top }, ["top.bin"]);
      const container = await docker.createContainer({ Image: `${repo}:base`, Cmd: ["true"], Labels: { "berth.test.image": "cli" }, HostConfig: { NetworkMode: "none" } });
      try {
        await container.putArchive(top, { path: "/" });
        await container.commit({ repo, tag: "1", changes } as object);
      } finally {
        await container.remove({ force: true });
      }
      await removeImage(docker, `${repo}:base`);
    }
    const pushed = await docker.getImage(repo).push({ tag: "1", authconfig: {} } as object);
    await readProgress(pushed, `push of ${repo}:1`);
    await removeImage(docker, `${repo}:1`);
    return `${name}:1`;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** The short ids (12 hex digits of the blob digest, as the engine's pull names them) of a pushed image's layers, bottom first. */
async function registryLayerIds(nameAndTag: string): Promise<string[]> {
  const [name, tag] = nameAndTag.split(":") as [string, string];
  const res = await fetch(`http://${REGISTRY}/v2/${name}/manifests/${tag}`, {
    headers: { accept: "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json" },
    signal: AbortSignal.timeout(10_000),
  });
  assert.equal(res.status, 200, `manifest of ${nameAndTag}`);
  const manifest = (await res.json()) as { layers: Array<{ digest: string }> };
  return manifest.layers.map((l) => l.digest.replace(/^sha256:/, "").slice(0, 12));
}

describe("the berth CLI (the real binary against berth serve)", function () {
  this.timeout(120_000);
  let docker: Dockerode;
  let images: TestImages;
  let dir: string;
  let addr: string;
  let server: BerthProcess;
  let served: string;
  const agents = new Set<string>();
  const background: BerthProcess[] = [];
  const dirs: string[] = [];
  const pulledRefs: string[] = [];
  const tmuxSockets: string[] = [];
  let counter = 0;
  const newId = (prefix: string) => `cli-${prefix}-${process.pid}-${++counter}`;

  /** Runs `berth <args>` to its end (SIGKILLed after `timeoutMs`), with stdin from `input`. */
  function cli(args: string[], opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
    const child = spawn(process.execPath, [MAIN_JS, ...args], {
      env: { ...process.env, BERTH_ADDR: addr, ...opts.env },
      stdio: [opts.input !== undefined ? "pipe" : "ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    return new Promise((resolve) =>
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr });
      }),
    );
  }

  /** `berth <args>` left running (logs -f, watch); killed in `after` if still there. */
  function cliInBackground(args: string[]): BerthProcess {
    const p = new BerthProcess(args, { ...process.env, BERTH_ADDR: addr });
    background.push(p);
    return p;
  }

  /** Asserts exit code `code` and, for a failure, exactly one line on stderr matching `line`. */
  function assertFailure(r: CliResult, code: number, line: RegExp): void {
    assert.equal(r.code, code, `exit ${code} expected; stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    const errLines = lines(r.stderr);
    assert.equal(errLines.length, 1, `one line on stderr expected, got:\n${r.stderr}`);
    assert.match(errLines[0]!, line);
  }

  async function startServe(args: string[]): Promise<BerthProcess> {
    const p = new BerthProcess(["serve", "--docker_stop_timeout", "2secs", ...args]);
    background.push(p);
    const serving = await p.serving();
    agents.add(serving.agent_id);
    return p;
  }

  /** A shell in a private tmux server (its own socket), running `command`; the pane stays after it ends. */
  async function tmux(command: string, size = { x: 120, y: 30 }): Promise<{ send: (...keys: string[]) => Promise<void>; pane: () => Promise<string>; cmd: (...args: string[]) => Promise<void> }> {
    const socket = `berth-cli-${process.pid}-${++counter}`;
    tmuxSockets.push(socket);
    const t = (...args: string[]) => run("tmux", ["-L", socket, "-f", "/dev/null", ...args]);
    // `exec cat` keeps the pane (and what it shows) after the command ended, until kill-server.
    await t("new-session", "-d", "-s", "main", "-x", String(size.x), "-y", String(size.y), `${command}; echo BERTH-EXIT=$?; exec cat`);
    return {
      send: async (...keys) => void (await t("send-keys", "-t", "main", ...keys)),
      pane: async () => (await t("capture-pane", "-p", "-t", "main")).stdout,
      cmd: async (...args) => void (await t(...args)),
    };
  }

  before(async function () {
    this.timeout(240_000);
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
    dir = await mkdtemp(path.join(os.tmpdir(), "berth-cli-"));
    dirs.push(dir);
    const socket = path.join(dir, "berth.sock");
    addr = `unix://${socket}`;
    // The operator policy lets launches fetch file:// URIs from one folder outside the work dir (for --uri).
    served = await mkdtemp(path.join(os.tmpdir(), "berth-cli-served-"));
    dirs.push(served);
    // The file is read as the task's user (nobody): the folder must let it through.
    await chmod(served, 0o755);
    const policy = path.join(dir, "policy.json");
    await writeFile(policy, JSON.stringify({ file_uri_prefixes: [served] }));
    server = await startServe(["--work_dir", dir, "--listen", addr, "--policy", policy]);
  });

  after(async function () {
    this.timeout(120_000);
    for (const socket of tmuxSockets) await run("tmux", ["-L", socket, "kill-server"]).catch(() => undefined);
    for (const p of background) p.kill("SIGKILL");
    await Promise.all(background.map((p) => p.exited));
    if (docker) {
      for (const agent of agents) await removeTestContainers(docker, { [LABEL_AGENT_ID]: agent });
      for (const ref of pulledRefs) await removeImage(docker, ref);
    }
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  const launchArgs = (id: string, ...rest: string[]) => ["launch", "--id", id, "--network", "none", ...rest];

  it("launch --wait exits with the container's code: 0, 3, and 128+N for a death by signal N", async () => {
    const ok = await cli([...launchArgs(newId("ok"), "--wait"), images.busybox, "true"]);
    assert.equal(ok.code, 0, ok.stderr);
    const three = await cli([...launchArgs(newId("three"), "--wait", "--shell"), images.busybox, "echo out; exit 3"]);
    assert.equal(three.code, 3, three.stderr);
    // Not a TTY: one plain line per state, then the termination.
    const states = lines(three.stdout).map((l) => l.split(/\s+/)[1]);
    assert.deepEqual(states.slice(0, 4), ["FETCHING", "PULLING", "MOUNTING", "RUNNING"], three.stdout);
    assert.match(three.stdout, /terminated: exit 3, TASK_FAILED/);
    // A process that dies of a signal: PID 1 ignores SIGTERM, so `berth kill` ends it with SIGKILL.
    const id = newId("sig");
    const following = cliInBackground([...launchArgs(id, "--wait"), images.busybox, "sleep", "300"]);
    await pollUntil(() => /\bRUNNING\n/.test(following.stdout), 60_000, `launch --wait shows RUNNING (stdout: ${JSON.stringify(following.stdout)})`);
    assert.equal((await cli(["kill", id])).code, 0);
    const killed = await following.exited;
    assert.equal(killed.code, 128 + 9, `${following.stdout}\n${following.stderr}`);
    assert.match(following.stdout, /terminated: signal 9 \(exit 137\), TASK_KILLED/);
  });

  it("launch (until RUNNING), ps, inspect, kill and wait, in text and JSON", async () => {
    const id = newId("ps");
    const launched = await cli([...launchArgs(id), images.busybox, "sleep", "300"]);
    assert.equal(launched.code, 0, launched.stderr);
    assert.match(lines(launched.stdout).at(-1)!, new RegExp(`^${id}\\s+RUNNING$`));

    const ps = await cli(["ps"]);
    assert.equal(ps.code, 0, ps.stderr);
    const [header, ...rows] = lines(ps.stdout);
    assert.match(header!, /^CONTAINER ID\s+IMAGE\s+STATE\s+SINCE\s+EXIT\s+ENGINE ID$/);
    const row = rows.find((r) => r.startsWith(`${id} `));
    assert.ok(row, `ps lists ${id}:\n${ps.stdout}`);
    // Aligned columns: the STATE column starts at the same place in the header and the row.
    assert.equal(row.indexOf("RUNNING"), header!.indexOf("STATE"), ps.stdout);
    assert.match(row, /RUNNING\s+(just now|\d+s ago)\s+[0-9a-f]{12}$/);
    const psJson = jsonLines((await cli(["ps", "-o", "json"])).stdout);
    assert.equal(psJson.length, 1);
    const listed = (psJson[0]!.containers as Array<{ containerId: { value: string }; state: string }>).find((c) => c.containerId.value === id);
    assert.equal(listed?.state, "STATE_RUNNING");

    const inspect = await cli(["inspect", id]);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.match(inspect.stdout, /^State:\s+RUNNING \(since (just now|\d+s ago), /m);
    assert.match(inspect.stdout, new RegExp(`^Image:\\s+${images.busybox.replace(/[.]/g, "\\.")}$`, "m"));
    assert.match(inspect.stdout, /^Cgroup memory:\s+\/sys\/fs\/cgroup\//m);
    const inspected = jsonLines((await cli(["inspect", "-o", "json", id])).stdout);
    assert.equal(inspected.length, 1);
    assert.equal((inspected[0]!.status as { state: string }).state, "STATE_RUNNING");
    assert.equal((inspected[0]!.summary as { containerId: { value: string } }).containerId.value, id);

    // A waiter started before the kill sees the same termination.
    const waiter = cli(["wait", "-o", "json", id]);
    const kill = await cli(["kill", id]);
    assert.equal(kill.code, 0, kill.stderr);
    assert.match(kill.stdout, new RegExp(`^${id}\\s+signal 9 \\(exit 137\\), TASK_KILLED`));
    const waited = await waiter;
    assert.equal(waited.code, 137, waited.stderr);
    const termination = jsonLines(waited.stdout)[0]!.termination as { signal: number };
    assert.equal(termination.signal, 9);
    const again = await cli(["wait", id]);
    assert.equal(again.code, 137);
    assert.equal(again.stdout, "137\n");
    // After the kill, ps says so with the exit code.
    const after = lines((await cli(["ps"])).stdout).find((r) => r.startsWith(`${id} `));
    assert.match(after!, /TERMINATED\s+(just now|\d+s ago)\s+137\s+/);
  });

  it("logs: both streams, --tail, --stderr, --since, -o json; -f follows and ends after the termination", async () => {
    const id = newId("logs");
    const script = "for i in 1 2 3 4; do echo out$i; echo err$i >&2; done; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo last; exit 0";
    const launched = await cli([...launchArgs(id, "--shell"), images.busybox, script]);
    assert.equal(launched.code, 0, launched.stderr);
    const follow = cliInBackground(["logs", "-f", id]);
    await pollUntil(() => follow.stdout.includes("out4\n") && follow.stderr.includes("err4\n"), 30_000, `logs -f shows out4 and err4 (stdout: ${JSON.stringify(follow.stdout)})`);

    const all = await cli(["logs", id]);
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stdout, "out1\nout2\nout3\nout4\n");
    assert.equal(all.stderr, "err1\nerr2\nerr3\nerr4\n");
    const tail = await cli(["logs", "--tail", "2", "--stdout", id]);
    assert.equal(tail.stdout, "out3\nout4\n");
    assert.equal(tail.stderr, "");
    const errOnly = await cli(["logs", "--stderr", "-n", "1", id]);
    assert.equal(errOnly.stdout, "");
    assert.equal(errOnly.stderr, "err4\n");
    const future = await cli(["logs", "--since", "2099-01-01T00:00:00Z", id]);
    assert.equal(future.code, 0, future.stderr);
    assert.equal(future.stdout + future.stderr, "");
    const json = jsonLines((await cli(["logs", "-o", "json", "--stdout", id])).stdout);
    assert.ok(json.length > 0);
    assert.equal(json.map((r) => Buffer.from(String(r.data), "base64").toString()).join(""), "out1\nout2\nout3\nout4\n");
    assert.ok(json.every((r) => r.stream === "LOG_STREAM_STDOUT"));

    // The container writes its last line and ends: logs -f prints it and exits 0 by itself.
    const exec = await cli(["exec", id, "--", "touch", "/tmp/go"]);
    assert.equal(exec.code, 0, exec.stderr);
    const exit = await follow.exited;
    assert.equal(exit.code, 0, follow.stderr);
    assert.equal(follow.stdout, "out1\nout2\nout3\nout4\nlast\n");
  });

  it("exec: stdin piped in, output and exit code back; refusals are one line with the gRPC code", async () => {
    const id = newId("exec");
    assert.equal((await cli([...launchArgs(id), images.busybox, "sleep", "300"])).code, 0);
    const r = await cli(["exec", "-i", id, "--", "sh", "-c", "cat; echo to-stderr >&2; exit 4"], { input: "piped line\n" });
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stdout, "piped line\n");
    assert.equal(r.stderr, "to-stderr\n");
    const env = await cli(["exec", "-e", "GREETING=hello", id, "sh", "-c", "echo $GREETING"]);
    assert.equal(env.stdout, "hello\n");
    const json = await cli(["exec", "-o", "json", id, "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert.equal(json.code, 3, json.stderr);
    const messages = jsonLines(json.stdout);
    const text = (key: string) => messages.filter((m) => m[key] !== undefined).map((m) => Buffer.from(String(m[key]), "base64").toString()).join("");
    assert.equal(text("stdout"), "out\n");
    assert.equal(text("stderr"), "err\n");
    assert.deepEqual(messages.at(-1), { exitCode: 3 });
    // -t without a terminal is a usage error.
    assertFailure(await cli(["exec", "-t", id, "--", "sh"]), 2, /^berth: -t needs a terminal/);
    await cli(["kill", id]);
    assertFailure(await cli(["exec", id, "--", "true"]), 1, new RegExp(`^berth: Exec failed: FAILED_PRECONDITION: .*'${id}' is TERMINATED`));
  });

  it("watch: one line per event, from before the launch to the termination, and JSON per line", async () => {
    // A running container's snapshot line tells that a watcher's stream is open.
    const marker = newId("marker");
    assert.equal((await cli([...launchArgs(marker), images.busybox, "sleep", "300"])).code, 0);
    const id = newId("watch");
    const text = cliInBackground(["watch", marker, id]);
    const json = cliInBackground(["watch", "-o", "json", marker, id]);
    await pollUntil(() => text.stdout.includes(`${marker}  (snapshot)`) && json.stdout.includes(`"${marker}"`), 30_000, "both watchers show the snapshot");
    // A container not launched yet is waited for: the watchers get its events from its first one.
    const launched = await cli([...launchArgs(id, "--wait", "--shell"), images.busybox, "exit 2"]);
    assert.equal(launched.code, 2, launched.stderr);
    await cli(["kill", marker]);
    // With ids, the stream ends once all of them have ended.
    assert.equal((await text.exited).code, 0, text.stderr);
    assert.equal((await json.exited).code, 0, json.stderr);
    const shown = lines(text.stdout).filter((l) => l.includes(`  ${id}  `));
    assert.match(shown[0]!, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z  #\\d+  ${id}  state FETCHING`), text.stdout);
    for (const state of ["PULLING", "MOUNTING", "RUNNING", "TERMINATED"]) assert.ok(shown.some((l) => l.includes(`state ${state}`)), `${state} in:\n${text.stdout}`);
    assert.match(shown.at(-1)!, /terminated exit 2, TASK_FAILED/);
    const events = jsonLines(json.stdout).filter((e) => (e.containerId as { value: string }).value === id);
    assert.equal(events.length, shown.length, `${json.stdout}\n---\n${text.stdout}`);
    assert.ok(events.every((e) => e.snapshot === undefined), "live events, no snapshot of the new container");
    const sequences = events.map((e) => BigInt(String(e.sequence)));
    assert.deepEqual([...sequences].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), sequences, "in sequence order");
    assert.equal((events.at(-1)!.termination as { exitCode: number }).exitCode, 2);
  });

  it("launch flags reach the container: --uri, -e, --user, --workdir, --mem; -v goes through the operator policy", async () => {
    await writeFile(path.join(served, "data.txt"), "fetched-content\n", { mode: 0o644 });
    const id = newId("flags");
    const script = 'cat "$MESOS_SANDBOX/data.txt"; echo "$MODE"; id -u; pwd; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max';
    const r = await cli([...launchArgs(id, "--wait", "--shell", "--uri", `file://${served}/data.txt`, "-e", "MODE=demo", "--user", "65534", "--workdir", "/tmp", "--mem", "48m"), images.busybox, script]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`${id}  fetched file://.*data\\.txt \\(16B, cache NOT_CACHED\\)`), r.stdout);
    const logs = await cli(["logs", "--stdout", id]);
    assert.equal(logs.stdout, `fetched-content\ndemo\n65534\n/tmp\n${48 * 1024 * 1024}\n`);
    // A host path no policy allows: refused by the server, one line, nothing launched.
    const refused = newId("vol");
    const vol = await cli([...launchArgs(refused, "-v", "/etc:/host-etc:ro"), images.busybox, "true"]);
    assert.equal(vol.code, 1, vol.stderr);
    assert.match(lines(vol.stderr)[0]!, /^berth: Launch failed: (PERMISSION_DENIED|INVALID_ARGUMENT): .*\/etc/);
    assertFailure(await cli(["inspect", refused]), 1, /^berth: Status failed: NOT_FOUND: /);
  });

  it("launch -o json: every line is a JSON object, from the launch to the termination", async () => {
    const id = newId("json");
    const r = await cli([...launchArgs(id, "--wait", "-o", "json"), images.busybox, "true"]);
    assert.equal(r.code, 0, r.stderr);
    const out = jsonLines(r.stdout);
    assert.equal((out[0]!.containerId as string), id);
    assert.equal((out[0]!.launch as { result: string }).result, "LAUNCH_RESULT_LAUNCHED");
    assert.ok(out.slice(1).some((e) => (e.stateChanged as { state?: string } | undefined)?.state === "STATE_RUNNING"), r.stdout);
    assert.ok(out.at(-1)!.termination, r.stdout);
  });

  it("launch --task: a Mesos TaskInfo in proto JSON; a wrong field is a usage error naming it", async () => {
    const file = path.join(dir, "task.json");
    await writeFile(
      file,
      JSON.stringify({
        name: "from-a-file",
        task_id: { value: "task-from-file" },
        agent_id: { value: "agent" },
        command: { shell: true, value: "test \"$FROM_FLAG\" = yes && exit 6" },
        container: { type: "DOCKER", docker: { image: images.busybox, network: "NONE" } },
        resources: [{ name: "cpus", type: "SCALAR", scalar: { value: 0.5 } }],
      }),
    );
    const r = await cli(["launch", "--wait", "--id", newId("task"), "-e", "FROM_FLAG=yes", "--task", file]);
    assert.equal(r.code, 6, `${r.stdout}\n${r.stderr}`);
    await writeFile(file, JSON.stringify({ task_id: { value: "x" }, name: "x", agent_id: { value: "a" }, comand: {} }));
    assertFailure(await cli(["launch", "--task", file]), 2, /^berth: --task '.*' is not a TaskInfo in proto JSON: .*comand/);
    assertFailure(await cli(["launch", "--task", file, images.busybox]), 2, /^berth: --task describes the whole container; drop IMAGE/);
  });

  it("stats: CPU % from successive samples of a busy container; the table and JSON", async () => {
    const id = newId("stats");
    // A bounded busy loop (timeout 120s) so the CPU column has something to show.
    assert.equal((await cli([...launchArgs(id, "--cpus", "1", "--mem", "64m", "--shell"), images.busybox, "timeout 120 sh -c 'while :; do :; done'"])).code, 0);
    try {
      const json = await cli(["stats", "--no-stream", "--interval", "500ms", "-o", "json", id]);
      assert.equal(json.code, 0, json.stderr);
      const [sample] = jsonLines(json.stdout);
      assert.equal(sample!.containerId, id);
      assert.ok(Number(sample!.cpuPercent) > 5, `a busy loop uses CPU: ${json.stdout}`);
      assert.equal((sample!.statistics as { memLimitBytes: string }).memLimitBytes, String(64 * 1024 * 1024));
      const table = await cli(["stats", "--no-stream", "--interval", "200ms", id]);
      assert.equal(table.code, 0, table.stderr);
      const [header, row] = lines(table.stdout);
      assert.match(header!, /^CONTAINER ID\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O\s+DISK\s+PIDS$/);
      assert.match(row!, new RegExp(`^${id}\\s+\\d+\\.\\d\\d%\\s+[\\d.]+\\w+ / 64\\.0MiB\\s+\\d+\\.\\d\\d%`));
      // On a terminal the table refreshes in place: first "--" (one sample), then a CPU % from two; Ctrl-C ends it.
      const live = await tmux(["env", `BERTH_ADDR=${addr}`, process.execPath, MAIN_JS, "stats", "--interval", "300ms", id].map(shq).join(" "));
      let pane = "";
      await pollUntil(async () => new RegExp(`^${id}\\s+\\d+\\.\\d\\d%`, "m").test((pane = await live.pane())), 30_000, `a refreshed row with a CPU %; pane:\n${pane}`);
      assert.equal(pane.match(/CONTAINER ID/g)?.length, 1, `one table, redrawn in place:\n${pane}`);
      await live.send("C-c");
      await pollUntil(async () => /BERTH-EXIT=0/.test((pane = await live.pane())), 30_000, `stats ends on Ctrl-C with exit 0; pane:\n${pane}`);
    } finally {
      await cli(["kill", id]);
    }
  });

  it("errors: one line naming the RPC and gRPC code, exit 1; usage errors exit 2", async () => {
    assertFailure(await cli(["wait", "no-such-container"]), 1, /^berth: Wait failed: NOT_FOUND: .*'no-such-container'/);
    assertFailure(await cli(["inspect", "no-such-container"]), 1, /^berth: Status failed: NOT_FOUND: /);
    assertFailure(await cli(["launch", "--network", "none", "UPPER/Case::bad"]), 1, /^berth: Launch failed: INVALID_ARGUMENT: .*image/);
    assertFailure(await cli(["ps", "--addr", `unix://${path.join(dir, "nothing-here.sock")}`]), 1, /^berth: Containers failed: UNAVAILABLE: /);
    assertFailure(await cli(["launch", "--bogus"]), 2, /^berth: unknown option '--bogus'/);
    assertFailure(await cli(["logs"]), 2, /^berth: missing required argument 'id'/);
    assertFailure(await cli(["launch", "--cpus", "lots", images.busybox]), 2, /^berth: --cpus 'lots' is not a positive number/);
    assertFailure(await cli(["ps", "-o", "yaml"]), 2, /^berth: option '-o, --output <format>' argument 'yaml' is invalid/);
    assertFailure(await cli(["logs", "--tail", "x", "a"]), 2, /^berth: --tail 'x' is not a whole number/);
    const id = newId("dup");
    assert.equal((await cli([...launchArgs(id, "--wait"), images.busybox, "true"])).code, 0);
    assertFailure(await cli([...launchArgs(id), images.busybox, "true"]), 1, new RegExp(`^berth: Launch failed: container ${id} already exists \\(ALREADY_LAUNCHED\\)`));
  });

  it("under a terminal (tmux): launch --wait of a two-layer image that must be pulled shows live bars, in total and per layer, that finish at 100%", async function () {
    this.timeout(180_000);
    const name = await pushFreshImage(docker, 4, 4);
    const layers = await registryLayerIds(name);
    assert.equal(layers.length, 2, `the test image has two layers: ${layers.join(", ")}`);
    // A throttled way to the registry makes the pull last a few seconds, so the bars are seen moving.
    const throttled = await startThrottledRegistry({ bytesPerSecond: 2 * 1024 * 1024 });
    try {
      const ref = `${throttled.host}/${name}`;
      pulledRefs.push(ref);
      const id = newId("tty");
      const command = ["env", `BERTH_ADDR=${addr}`, process.execPath, MAIN_JS, ...launchArgs(id, "--wait", "--shell"), ref, "echo hi; exit 5"].map(shq).join(" ");
      const term = await tmux(command, { x: 160, y: 30 });
      // A layer's bar part-way: its id, a bar, under 100%, bytes so far of its size, Downloading.
      const layerMoving = new RegExp(`^    (${layers.join("|")})  [█░]{30}\\s+\\d{1,2}%  [\\d.]+\\w*B/[\\d.]+MiB\\s+Downloading\\s*$`, "m");
      let partial = "";
      let pane = "";
      await pollUntil(
        async () => {
          pane = await term.pane();
          if (!partial && layerMoving.test(pane) && /\d{1,2}%\s+[\d.]+\w*B\/[\d.]+MiB\s+layers \d\/2/.test(pane)) partial = pane;
          return /BERTH-EXIT=\d+/.test(pane);
        },
        150_000,
        "launch --wait ends under tmux",
      );
      assert.ok(partial, `a layer's bar below 100% was seen while pulling; final pane:\n${pane}`);
      assert.match(partial, new RegExp(`${id}  PULLING`), partial);
      assert.match(pane, /BERTH-EXIT=5/, pane);
      // The final frame: the state line says how it ended, the image's bar is full with every byte
      // and layer, and under it each layer's bar is full with its whole size, pulled.
      assert.match(pane, new RegExp(`${id}  TERMINATED  [\\d.]+m?s  exit 5, TASK_FAILED`), pane);
      const total = new RegExp(`^  ${ref.replace(/[.]/g, "\\.")}  █{30} 100%  ([\\d.]+MiB)/\\1  layers 2/2  done$`, "m");
      assert.match(pane, total, pane);
      const paneLines = pane.split("\n");
      const totalAt = paneLines.findIndex((l) => total.test(l));
      for (const layer of layers) {
        const line = new RegExp(`^    ${layer}  █{30} 100%  ([\\d.]+MiB)/\\1\\s+Pull complete\\s*$`);
        const at = paneLines.findIndex((l) => line.test(l));
        assert.ok(at > totalAt, `layer ${layer} has a full bar under the image's line:\n${pane}`);
      }
      assert.ok(throttled.bytesSent() >= 8 * 1024 * 1024, `the image came through the registry (${throttled.bytesSent()} bytes)`);
    } finally {
      await throttled.close();
    }
  });

  it("under a terminal (tmux): exec -it runs a shell that echoes keys, follows a resize and gives the terminal back", async () => {
    const id = newId("it");
    assert.equal((await cli([...launchArgs(id), images.busybox, "sleep", "300"])).code, 0);
    const before = path.join(dir, `stty-before-${id}`);
    const after = path.join(dir, `stty-after-${id}`);
    const exec = ["env", `BERTH_ADDR=${addr}`, process.execPath, MAIN_JS, "exec", "-it", id, "--", "sh"].map(shq).join(" ");
    const term = await tmux(`stty -g > ${shq(before)}; ${exec}; rc=$?; stty -g > ${shq(after)}; (exit $rc)`, { x: 100, y: 20 });
    const waitPane = async (re: RegExp, what: string) => {
      let pane = "";
      await pollUntil(async () => re.test((pane = await term.pane())), 30_000, `${what}; pane:\n${pane}`);
      return pane;
    };
    await waitPane(/^\/ #/m, "the shell's prompt");
    await term.send("echo hi-$((6*7))", "Enter");
    // The typed line is echoed back by the remote terminal and the result comes on its own line.
    await waitPane(/echo hi-\$\(\(6\*7\)\)\n+hi-42$/m, "the echo and its output");
    await term.send("stty size", "Enter");
    await waitPane(/^20 100$/m, "the initial size");
    await term.cmd("resize-window", "-t", "main", "-x", "90", "-y", "25");
    await term.send("stty size", "Enter");
    await waitPane(/^25 90$/m, "the size after a resize (SIGWINCH forwarded)");
    await term.send("exit 7", "Enter");
    await waitPane(/BERTH-EXIT=7/, "exec ends with the shell's exit code");
    assert.equal(await readFile(after, "utf8"), await readFile(before, "utf8"), "the terminal's settings are restored");
    await cli(["kill", id]);

    // A refusal that comes after the terminal went raw gives it back too.
    const refused = await tmux(`stty -g > ${shq(before)}; ${exec}; rc=$?; stty -g > ${shq(after)}; (exit $rc)`, { x: 100, y: 20 });
    let pane = "";
    await pollUntil(async () => /BERTH-EXIT=\d+/.test((pane = await refused.pane())), 30_000, `exec -it of a terminated container ends; pane:\n${pane}`);
    assert.match(pane, /^berth: Exec failed: FAILED_PRECONDITION: .* is TERMINATED/m, pane);
    assert.match(pane, /BERTH-EXIT=1/, pane);
    assert.equal(await readFile(after, "utf8"), await readFile(before, "utf8"), "the terminal's settings are restored after a refusal");
  });

  it("prune removes an image this Berth pulled once nothing uses it; JSON too", async function () {
    this.timeout(120_000);
    const ref = `${REGISTRY}/${await pushFreshImage(docker, 1)}`;
    pulledRefs.push(ref);
    const launched = await cli([...launchArgs(newId("prune"), "--wait"), ref, "true"]);
    assert.equal(launched.code, 0, launched.stderr);
    // Not a terminal: a line per layer downloaded, then the pull as one line with its size once it is over.
    assert.match(launched.stdout, new RegExp(`  PULLING\n(?:.*  layer [0-9a-f]{12} pulled [\\d.]+\\w*B\n)+.*  pulled ${ref.replace(/[.]/g, "\\.")} [\\d.]+MiB \\(\\d+ layers?\\) in [\\d.]+m?s\n.*  MOUNTING\n`), launched.stdout);
    const pruned = await cli(["prune", "--keep", images.busybox, "-o", "json"]);
    assert.equal(pruned.code, 0, pruned.stderr);
    const removed = (jsonLines(pruned.stdout)[0]!.removedImages as string[] | undefined) ?? [];
    assert.ok(removed.includes(ref), `${ref} in ${pruned.stdout}`);
    await assert.rejects(docker.getImage(ref).inspect(), (err: { statusCode?: number }) => err.statusCode === 404);
    const again = await cli(["prune", "--keep", images.busybox]);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stdout, new RegExp(ref.replace(/[.]/g, "\\.")));
  });

  describe("TLS and bearer token, as the server's flags", () => {
    let pki: TestPki;
    let tcp: string;
    let tokens: string;

    before(async function () {
      this.timeout(60_000);
      pki = await makeTestPki();
      const work = await mkdtemp(path.join(os.tmpdir(), "berth-cli-tls-"));
      dirs.push(work);
      tokens = path.join(work, "tokens");
      await writeFile(tokens, "cli-secret-token\n", { mode: 0o600 });
      tcp = `127.0.0.1:${await freePort()}`;
      await startServe(["--work_dir", work, "--listen", tcp, "--tls_cert", pki.server.certFile, "--tls_key", pki.server.keyFile, "--tls_client_ca", pki.ca.certFile, "--auth_token_file", tokens]);
    });
    after(async () => pki?.remove());

    it("--tls_ca/--tls_cert/--tls_key and --token_file or $BERTH_TOKEN; each missing piece is one line and exit 1", async () => {
      const tls = ["--addr", tcp, "--tls_ca", pki.ca.certFile, "--tls_cert", pki.client.certFile, "--tls_key", pki.client.keyFile];
      const ok = await cli(["ps", ...tls, "--token_file", tokens]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /^CONTAINER ID/);
      const byEnv = await cli(["ps", "-o", "json", ...tls], { env: { BERTH_TOKEN: "cli-secret-token" } });
      assert.equal(byEnv.code, 0, byEnv.stderr);
      assertFailure(await cli(["ps", ...tls]), 1, /^berth: Containers failed: UNAUTHENTICATED: /);
      assertFailure(await cli(["ps", ...tls], { env: { BERTH_TOKEN: "wrong" } }), 1, /^berth: Containers failed: UNAUTHENTICATED: /);
      assertFailure(await cli(["ps", "--addr", tcp, "--tls_ca", pki.ca.certFile, "--token_file", tokens]), 1, /^berth: Containers failed: UNAVAILABLE: /);
      assertFailure(await cli(["ps", "--addr", tcp, "--token_file", tokens]), 1, /^berth: Containers failed: UNAVAILABLE: /);
      assertFailure(await cli(["ps", "--addr", tcp, "--tls_ca", pki.ca.certFile, "--tls_cert", pki.client.certFile]), 2, /^berth: --tls_cert and --tls_key go together/);
    });
  });
});
