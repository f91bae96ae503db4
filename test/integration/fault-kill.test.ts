import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import type Dockerode from "dockerode";
import { LaunchResult, State, type Termination } from "../../src/gen/berth/v1/containerizer_pb.js";
import { TaskState, TaskStatus_Reason } from "../../src/gen/mesos/v1/mesos_pb.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { ensureEngine, ensureTestImages, removeImage, removeTestContainers, type TestImages } from "../support/engine.js";
import type { BerthClient } from "../harness/berth-client.js";
import { pollUntil } from "../harness/engine-control.js";
import {
  describeTermination,
  EventWitness,
  FaultAgent,
  faultPoints,
  faultSeed,
  grpcCode,
  recoveryTotals,
  seededRandom,
  startFileServer,
  withDeadline,
  type FileServer,
  type SeededRandom,
} from "../harness/fault-berth.js";
import { launchRequest } from "../harness/launches.js";

/** The schedule everyone runs unless BERTH_FAULT_SEED says otherwise. */
const DEFAULT_SEED = 20_240_611;
const PAYLOAD = "fault-payload-7f3a";
const CALL_DEADLINE_MS = 30_000;

type Kind = "exit0" | "exit3" | "sleep" | "fetch";
const KINDS: readonly Kind[] = ["exit0", "exit3", "sleep", "sleep", "fetch"];
const SHELL: Record<Kind, string> = {
  exit0: "exit 0",
  exit3: "exit 3",
  sleep: "sleep 60",
  fetch: `test "$(cat "$MESOS_SANDBOX/payload.txt")" = "${PAYLOAD}" && exit 0 || exit 4`,
};
/** The exit code each kind may report when it reports one (a kill reports a signal instead). */
const EXIT_CODE: Record<Kind, number> = { exit0: 0, exit3: 3, sleep: 0, fetch: 0 };

/** Pulls `ref` unless the engine has it. */
async function ensureImage(docker: Dockerode, ref: string): Promise<void> {
  try {
    await docker.getImage(ref).inspect();
  } catch {
    const stream = await docker.pull(ref);
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("berth serve killed with SIGKILL at seeded random moments", function () {
  const seed = faultSeed(DEFAULT_SEED);
  const points = faultPoints({ ci: 50, local: 20 });
  this.timeout(points * 10_000 + 180_000);

  let docker: Dockerode;
  let images: TestImages;
  let files: FileServer;
  let workDir: string;
  let agent: FaultAgent;
  const agentId = `fault-kill-${process.pid}-${Date.now().toString(36)}`;

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
    files = await startFileServer({ "/payload.txt": PAYLOAD });
    workDir = await mkdtemp(path.join(os.tmpdir(), "berth-fault-kill-"));
    agent = new FaultAgent(workDir, agentId, ["--docker_stop_timeout", "1secs", "--launch_timeout", "20secs", "--docker_remove_delay", "0secs", "--fetch_allow_loopback"]);
  });

  after(async () => {
    await agent?.kill9();
    if (docker) await removeTestContainers(docker, { [LABEL_AGENT_ID]: agentId });
    await files?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("leaks no engine container, loses no termination and never reuses a sequence number", async () => {
    console.log(`      fault-kill: seed ${seed}, ${points} kill points (override with BERTH_FAULT_SEED, BERTH_FAULT_POINTS)`);
    const rng: SeededRandom = seededRandom(seed);
    /** Ids whose Launch answered LAUNCHED or ALREADY_LAUNCHED, with what they run. */
    const launched = new Map<string, Kind>();
    /** The first termination any call or Watch reported per container. */
    const firstTermination = new Map<string, Termination>();
    const violations: string[] = [];
    const finalTermination = new Map<string, Termination>();
    let maxSequence: bigint | undefined;
    let nextId = 0;
    const stats = { lives: 0, killedStarting: 0, anchored: 0, launches: 0, destroys: 0, relaunches: 0 };

    const noteTermination = (id: string, t: Termination | undefined) => {
      if (t && !firstTermination.has(id)) firstTermination.set(id, t);
    };

    /** Issues one seeded operation; `alive()` says whether the kill was sent yet. */
    const operation = (client: BerthClient, point: number, alive: () => boolean): Promise<void> => {
      const roll = rng.next();
      const known = [...launched.keys()];
      const fail = (what: string, err: unknown) => {
        const code = grpcCode(err);
        // Calls cut by the kill fail with UNAVAILABLE/CANCELLED/INTERNAL; only Berth itself answers NOT_FOUND.
        if (alive() || code === status.NOT_FOUND || code === status.INVALID_ARGUMENT || code === status.FAILED_PRECONDITION) {
          violations.push(`point ${point}: ${what} failed (code ${code}): ${(err as Error).message}`);
        }
      };
      const options = () => ({ deadline: Date.now() + CALL_DEADLINE_MS });
      if (roll < 0.65 || known.length === 0) {
        const kind = rng.pick(KINDS);
        const id = `fk-${nextId++}-${kind}`;
        stats.launches += 1;
        const command = kind === "fetch" ? { shell: true, value: SHELL.fetch, uris: [{ value: `${files.base}/payload.txt` }] } : { shell: true, value: SHELL[kind] };
        return client.launch(launchRequest(id, { image: images.busybox, command, taskId: id }), options()).then(
          (r) => {
            if (r.result === LaunchResult.LAUNCHED || r.result === LaunchResult.ALREADY_LAUNCHED) launched.set(id, kind);
            else violations.push(`point ${point}: Launch '${id}' answered ${LaunchResult[r.result]}`);
          },
          (err) => fail(`Launch '${id}'`, err),
        );
      }
      const id = rng.pick(known);
      if (roll < 0.9) {
        stats.destroys += 1;
        return client.destroy(id, options()).then(
          (r) => noteTermination(id, r.termination),
          (err) => fail(`Destroy '${id}'`, err),
        );
      }
      // A Launch of an id Berth answered before: it must still know it, whatever restarts happened.
      stats.relaunches += 1;
      const kind = launched.get(id)!;
      return client.launch(launchRequest(id, { image: images.busybox, shell: SHELL[kind], taskId: id }), options()).then(
        (r) => {
          if (r.result !== LaunchResult.ALREADY_LAUNCHED) violations.push(`point ${point}: re-Launch of known '${id}' answered ${LaunchResult[r.result]}`);
        },
        (err) => fail(`re-Launch '${id}'`, err),
      );
    };

    /** Checks one life's Watch against every earlier life, then remembers what it saw. */
    const absorb = (witness: EventWitness, life: string) => {
      const min = witness.min;
      if (min !== undefined && maxSequence !== undefined && min <= maxSequence) {
        violations.push(`${life}: Watch sequence ${min} is not above ${maxSequence}, the highest seen before`);
      }
      const max = witness.max;
      if (max !== undefined && (maxSequence === undefined || max > maxSequence)) maxSequence = max;
      for (const [id, t] of witness.terminations) noteTermination(id, t);
    };

    for (let point = 0; point < points; point++) {
      if (rng.chance(0.1)) {
        // Killed while starting up (possibly in the middle of recovery).
        agent.spawn();
        await sleep(rng.int(1200));
        await agent.kill9();
        stats.killedStarting += 1;
        continue;
      }
      // Mostly with the image present (kills then land in create, start, run and exit); sometimes
      // without it, so that kills land in the middle of a pull too.
      if (rng.chance(0.85)) await ensureImage(docker, images.busybox);
      else await removeImage(docker, images.busybox).catch(() => undefined);
      const anchored = rng.chance(0.35);
      const client = await agent.start();
      stats.lives += 1;
      const witness = new EventWitness(client);
      let alive = true;
      const calls: Promise<void>[] = [];
      const count = 1 + rng.int(3);
      const before = nextId;
      for (let i = 0; i < count; i++) calls.push(operation(client, point, () => alive));
      if (anchored && nextId > before) {
        // On a loaded machine a fixed delay alone may never reach RUNNING: anchor some kill points
        // on a container of this life running (or ending) first.
        const ours = (id: string | undefined) => id !== undefined && Number(id.split("-")[1]) >= before;
        const settled = witness.until(
          (e) => ours(e.containerId?.value) && ((e.kind.case === "stateChanged" && e.kind.value.state === State.RUNNING) || e.kind.case === "termination"),
        );
        await withDeadline(settled, 10_000, "a launch of this life running").catch(() => undefined);
        stats.anchored += 1;
      }
      await sleep(rng.int(301));
      alive = false;
      await agent.kill9();
      await withDeadline(Promise.allSettled(calls), CALL_DEADLINE_MS + 5000, `point ${point}: calls cut by the kill`);
      witness.close();
      client.close();
      absorb(witness, `point ${point}`);
    }

    // The last life: everything must be accounted for.
    const client = await agent.start();
    const witness = new EventWitness(client);
    try {
      const known = new Map((await client.containers()).containers.map((s) => [s.containerId!.value, s]));
      for (const [id, s] of known) {
        if (s.state === State.FETCHING || s.state === State.PULLING || s.state === State.MOUNTING) {
          violations.push(`final: '${id}' is still ${State[s.state]} after recovery with no launch in flight`);
        }
      }
      for (const id of launched.keys()) if (!known.has(id)) violations.push(`final: launched '${id}' is not in Containers()`);

      // Every engine container of this agent is one Berth tracks as live, or is on its way out.
      const untracked = new Set<string>();
      for (const row of await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${agentId}`] } })) {
        const s = known.get(row.Labels[LABEL_CONTAINER_ID] ?? "");
        if (!s || s.engineId !== row.Id || s.state === State.TERMINATED) untracked.add(row.Id);
      }
      if (untracked.size > 0) {
        await pollUntil(
          async () => {
            const ids = new Set((await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${agentId}`] } })).map((r) => r.Id));
            return [...untracked].every((id) => !ids.has(id));
          },
          15_000,
          `engine containers not tracked by Berth (${[...untracked].join(", ")}) are gone`,
        ).catch((err: Error) => violations.push(`final: ${err.message}`));
      }

      // No sandbox without a container Berth knows.
      for (const name of await readdir(agent.sandboxes()).catch(() => [] as string[])) {
        if (!known.has(name)) violations.push(`final: sandbox '${name}' belongs to no container Berth knows`);
      }

      // Every launched container ends with a termination, the one first reported if any was.
      const ids = [...launched.keys()];
      const destroys = ids.map((id) =>
        client.destroy(id, { deadline: Date.now() + 60_000 }).then(
          (r) => r.termination,
          (err) => {
            violations.push(`final: Destroy '${id}' failed (code ${grpcCode(err)}): ${(err as Error).message}`);
            return undefined;
          },
        ),
      );
      await Promise.all(destroys);
      for (const id of ids) {
        let t: Termination | undefined;
        try {
          t = (await client.wait(id, { deadline: Date.now() + 30_000 })).termination;
        } catch (err) {
          violations.push(`final: Wait '${id}' failed (code ${grpcCode(err)}): ${(err as Error).message}`);
          continue;
        }
        const ct = t?.containerTermination;
        if (!t || !ct) {
          violations.push(`final: Wait '${id}' answered without a termination`);
          continue;
        }
        finalTermination.set(id, t);
        const kind = launched.get(id)!;
        if (t.exitCode !== undefined && t.exitCode !== EXIT_CODE[kind]) {
          violations.push(`final: '${id}' (${kind}) reports exit code ${t.exitCode}, not ${EXIT_CODE[kind]}: ${describeTermination(t)}`);
        }
        // A launch fails here only by being caught in a restart (or, on a crawling host, by its deadline).
        if (ct.reason === TaskStatus_Reason.CONTAINER_LAUNCH_FAILED && !/Berth restarted during (FETCHING|PULLING|MOUNTING)|timed out/.test(ct.message)) {
          violations.push(`final: '${id}' failed to launch for a reason no restart explains: ${describeTermination(t)}`);
        }
        // Nothing but Berth removes this agent's containers here, so no fate may be unknown.
        if (ct.state === TaskState.TASK_LOST) violations.push(`final: '${id}' is TASK_LOST: ${describeTermination(t)}`);
        const first = firstTermination.get(id);
        if (first && (first.containerTermination?.state !== ct.state || first.exitCode !== t.exitCode || first.signal !== t.signal)) {
          violations.push(`final: '${id}' was first reported ${describeTermination(first)}, now ${describeTermination(t)}`);
        }
      }

      await pollUntil(
        async () => (await docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${agentId}`] } })).length === 0,
        15_000,
        "no engine container of the agent is left after every container terminated",
      ).catch((err: Error) => violations.push(`final: ${err.message}`));
    } finally {
      witness.close();
      client.close();
    }
    absorb(witness, "final life");

    console.log(
      `      fault-kill: ${stats.lives} lives served (${stats.anchored} killed after a container ran), ${stats.killedStarting} killed while starting, ${stats.launches} launches ` +
        `(${launched.size} answered), ${stats.destroys} destroys, ${stats.relaunches} re-launches, ${firstTermination.size} terminations reported before the final Waits`,
    );
    const outcomes = new Map<string, number>();
    for (const t of finalTermination.values()) {
      const key = describeTermination(t).replace(/'.*'$/, "").trim();
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    console.log(`      fault-kill: recovery paths taken ${JSON.stringify(recoveryTotals(agent))}`);
    console.log(`      fault-kill: outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
    assert.deepEqual(violations, [], `seed ${seed}: ${violations.length} violation(s); replay with BERTH_FAULT_SEED=${seed} BERTH_FAULT_POINTS=${points}`);
  });
});
