import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { credentials, makeGenericClientConstructor, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import type Dockerode from "dockerode";
import { State, type WatchResponse } from "../../src/gen/berth/v1/containerizer_pb.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { ensureEngine, ensureTestImages, removeTestContainers, type TestImages } from "../support/engine.js";
import { BerthClient } from "../harness/berth-client.js";
import { launchRequest, newId } from "../harness/launches.js";
import { BerthProcess, failingStart, freePort, humanLines, runBerth } from "../harness/process-berth.js";

const HealthClient = makeGenericClientConstructor(healthService, "Health");

const FLAGS_WITH_DEFAULTS: Record<string, RegExp> = {
  "--listen": /default: unix:\/\/<work_dir>\/berth\.sock/,
  "--work_dir": /default: "\/var\/lib\/berth"/,
  "--agent_id": /default: generated once, kept in <work_dir>\/agent_id/,
  "--docker_socket": /default: \$DOCKER_HOST or unix:\/\/\/var\/run\/docker\.sock/,
  "--docker_stop_timeout": /default: "10secs"/,
  "--docker_remove_delay": /default: "0secs"/,
  "--sandbox_directory": /default: "\/mnt\/mesos\/sandbox"/,
  "--launch_timeout": /default: "1mins"/,
  "--pull_timeout": /default: "30mins"/,
  "--pull_activity_timeout": /default: "2mins"/,
};

/** Help text split into one entry per option, wrapped lines joined. */
function helpEntries(help: string): Map<string, string> {
  const entries = new Map<string, string>();
  let current: string | undefined;
  for (const line of help.split("\n")) {
    const start = /^\s{2}(--?[\w-]+)/.exec(line);
    if (start) {
      current = start[1]!;
      entries.set(current, line.trim());
    } else if (current && /^\s{4,}\S/.test(line)) {
      entries.set(current, `${entries.get(current)} ${line.trim()}`);
    } else {
      current = undefined;
    }
  }
  return entries;
}

describe("the berth serve process", function () {
  this.timeout(120_000);
  let docker: Dockerode;
  let images: TestImages;
  const dirs: string[] = [];
  const processes: BerthProcess[] = [];
  const agents = new Set<string>();

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "berth-proc-"));
    dirs.push(dir);
    return dir;
  }

  /** Spawns `berth serve` with test-friendly flags; every process is killed in `after`. */
  function serve(args: string[]): BerthProcess {
    const p = new BerthProcess(["serve", "--docker_stop_timeout", "2secs", ...args]);
    processes.push(p);
    return p;
  }

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
  });
  after(async () => {
    for (const p of processes) p.kill("SIGKILL");
    await Promise.all(processes.map((p) => p.exited));
    for (const agent of agents) await removeTestContainers(docker, { [LABEL_AGENT_ID]: agent });
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it("--help lists every flag with its default and exits 0", async () => {
    const result = await runBerth(["serve", "--help"]);
    assert.equal(result.code, 0, result.stderr);
    const entries = helpEntries(result.stdout);
    for (const [flag, defaultText] of Object.entries(FLAGS_WITH_DEFAULTS)) {
      const entry = entries.get(flag);
      assert.ok(entry, `--help does not list ${flag}:\n${result.stdout}`);
      assert.match(entry, defaultText, `${flag} shows its default`);
    }
  });

  describe("start-up errors exit 1 with one clear line on stderr", () => {
    it("no engine at --docker_socket", async () => {
      const line = await failingStart(["--work_dir", await tempDir(), "--docker_socket", "unix:///nonexistent.sock"]);
      assert.match(line, /cannot reach the Docker engine at unix:\/\/\/nonexistent\.sock/);
    });

    it("a --work_dir that cannot be created (under a regular file)", async () => {
      const file = path.join(await tempDir(), "plain-file");
      await writeFile(file, "");
      const line = await failingStart(["--work_dir", path.join(file, "work")]);
      assert.match(line, new RegExp(`--work_dir '${file}/work' is not a writable directory`));
    });

    it("a bad duration flag value", async () => {
      const line = await failingStart(["--work_dir", await tempDir(), "--pull_activity_timeout", "10parsecs"]);
      assert.match(line, /--pull_activity_timeout '10parsecs' is not a duration/);
    });

    it("a TCP listen address another berth already serves", async () => {
      const port = await freePort();
      const first = serve(["--work_dir", await tempDir(), "--listen", `127.0.0.1:${port}`]);
      agents.add((await first.serving()).agent_id);
      const line = await failingStart(["--work_dir", await tempDir(), "--listen", `127.0.0.1:${port}`]);
      assert.match(line, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: .*(EADDRINUSE|in use)`));
      assert.ok(first.running, "the first berth keeps serving");
    });

    it("a bad --log_level: one line, not the help text", async () => {
      const result = await runBerth(["serve", "--work_dir", await tempDir(), "--log_level", "loud"]);
      assert.equal(result.code, 1, `exit code 1 expected; stderr:\n${result.stderr}`);
      assert.equal(result.stdout, "", "nothing on stdout");
      assert.equal(result.stderr, "berth: --log_level 'loud' is not one of trace, debug, info, warn, error, fatal, silent\n");
    });

    it("an unknown flag: one line, not the help text", async () => {
      const result = await runBerth(["serve", "--work_dir", await tempDir(), "--log-level", "info"]);
      assert.equal(result.code, 1, `exit code 1 expected; stderr:\n${result.stderr}`);
      assert.equal(result.stderr, "berth: unknown option '--log-level' (Did you mean --log_level?)\n");
    });

    it("a TCP listen address another process holds: one line naming it, no grpc-js warning", async () => {
      const holder = createServer();
      await new Promise<void>((resolve, reject) => {
        holder.once("error", reject);
        holder.listen(0, "127.0.0.1", () => resolve());
      });
      try {
        const port = (holder.address() as AddressInfo).port;
        const expected = `berth: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`;
        const result = await runBerth(["serve", "--work_dir", await tempDir(), "--listen", `127.0.0.1:${port}`]);
        assert.equal(result.code, 1, `exit code 1 expected; stderr:\n${result.stderr}`);
        assert.deepEqual(humanLines(result.stderr), [expected]);
        const warnings = result.stderr.split("\n").filter((l) => /"component":"grpc-js"|"level":[4-6]0/.test(l));
        assert.deepEqual(warnings, [], "no grpc-js or warning log lines beside it");
        // At --log_level warn, that line is all there is.
        const quiet = await runBerth(["serve", "--work_dir", await tempDir(), "--listen", `127.0.0.1:${port}`, "--log_level", "warn"]);
        assert.equal(quiet.code, 1);
        assert.equal(quiet.stderr, `${expected}\n`);
      } finally {
        await new Promise<void>((resolve) => holder.close(() => resolve()));
      }
    });

    it("a unix socket another berth already serves, which stays served", async () => {
      const socket = path.join(await tempDir(), "shared.sock");
      const first = serve(["--work_dir", await tempDir(), "--listen", `unix://${socket}`]);
      agents.add((await first.serving()).agent_id);
      const line = await failingStart(["--work_dir", await tempDir(), "--listen", `unix://${socket}`]);
      assert.match(line, new RegExp(`cannot listen on unix://${socket}: another process is serving on that socket`));
      const client = new BerthClient(`unix://${socket}`);
      try {
        assert.deepEqual((await client.containers()).containers, [], "the socket file was left to its owner");
      } finally {
        client.close();
      }
    });
  });

  it("generates the agent id once, keeps it in <work_dir>/agent_id, and reuses it on the next start", async () => {
    const workDir = await tempDir();
    const first = serve(["--work_dir", workDir]);
    const { agent_id: id } = await first.serving();
    agents.add(id);
    assert.equal((await readFile(path.join(workDir, "agent_id"), "utf8")).trim(), id);
    first.kill("SIGTERM");
    assert.deepEqual(await first.exited, { code: 0, signal: null });

    const second = serve(["--work_dir", workDir]);
    assert.equal((await second.serving()).agent_id, id);
    assert.equal((await readFile(path.join(workDir, "agent_id"), "utf8")).trim(), id);
    second.kill("SIGTERM");
    assert.deepEqual(await second.exited, { code: 0, signal: null });
  });

  it("SIGTERM exits 0, ends an open Watch stream UNAVAILABLE (resume with from_sequence), and leaves a running container running", async () => {
    const workDir = await tempDir();
    const p = serve(["--work_dir", workDir]);
    const { agent_id: agentId, listen } = await p.serving();
    agents.add(agentId);
    const client = new BerthClient(listen[0]!);
    try {
      const id = newId("survivor");
      await client.launch(launchRequest(id, { image: images.busybox, shell: "sleep 300" }));
      await client.collect([id], (e) => e.kind.case === "stateChanged" && e.kind.value.state === State.RUNNING);

      // A Watch of all containers, open across the shutdown.
      const stream = client.watch();
      const ended = new Promise<string>((resolve) => {
        stream.on("data", (_r: WatchResponse) => undefined);
        // A Watch ended by a shutdown must not look like "all watched containers terminated" (OK).
        // 'status' carries the code and details however the stream ended (OK included).
        stream.on("status", (st: { code: number; details: string }) => resolve(`${st.code} ${st.details}`));
        stream.on("error", () => undefined);
      });
      const snapshotSeen = new Promise<void>((resolve) => stream.once("data", () => resolve()));
      await snapshotSeen;

      // And a health Watch: it must hear NOT_SERVING and then end, not be cut off.
      const health = new HealthClient(listen[0]!, credentials.createInsecure());
      const healthStream = (health as unknown as Record<string, Function>).Watch!.call(health, { service: "" }) as ClientReadableStream<{ status: string }>;
      const statuses: string[] = [];
      const serving = new Promise<void>((resolve) => healthStream.on("data", (r: { status: string }) => (statuses.push(r.status), r.status === "SERVING" && resolve())));
      const healthEnded = new Promise<string>((resolve, reject) => {
        healthStream.on("end", () => resolve("end"));
        healthStream.on("error", (err: ServiceError) => (err.code === 0 ? resolve("OK") : reject(new Error(`health Watch ended with ${err.code} ${err.details}`))));
      });
      await serving;

      p.kill("SIGTERM");
      try {
        const [exit, how, healthHow] = await Promise.all([p.exited, ended, healthEnded]);
        assert.deepEqual(exit, { code: 0, signal: null }, `stderr:\n${p.stderr}`);
        assert.match(how, /^14 berth is shutting down; Watch again with from_sequence \d+/, `the Watch ends UNAVAILABLE naming where to resume; it ended: ${how}`);
        assert.ok(["end", "OK"].includes(healthHow));
        assert.deepEqual(statuses, ["SERVING", "NOT_SERVING"]);
      } finally {
        health.close();
      }

      const found = await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${agentId}`, `${LABEL_CONTAINER_ID}=${id}`] } });
      assert.equal(found.length, 1, "the container is still in the engine");
      assert.equal(found[0]!.State, "running", "and still running after berth exited");
    } finally {
      client.close();
      await removeTestContainers(docker, { [LABEL_AGENT_ID]: agentId });
    }
  });
});
