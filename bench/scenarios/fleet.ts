import { writeFile } from "node:fs/promises";
import path from "node:path";
import type Dockerode from "dockerode";
import { toBinary } from "@bufbuild/protobuf";
import type { Client } from "@grpc/grpc-js";
import { ContainersResponseSchema, State, type ContainersResponse } from "../../src/gen/berth/v1/containerizer_pb.js";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import { BenchBerth, cleanupHome, newBerthHome, type BerthHome } from "../bench-berth.js";
import { launchOrThrow } from "../bench-launch.js";
import { BerthEventTap } from "../berth-event-tap.js";
import { wallNowMs } from "../clock.js";
import { forEachBounded } from "../../src/containerizer/bounded.js";
import { pollUntil, withDeadline } from "../deadline.js";
import { EngineEventTap } from "../engine-events.js";
import { FAST_RECONNECT, containerizerClient, healthClient, healthStatus, listContainers } from "../grpc-clients.js";
import { ENGINE_CALL_MS } from "../raw-engine.js";
import type { Figure } from "../report.js";
import type { BenchContext } from "../scenario.js";
import { median, p99Label, percentile, shuffled, spread } from "../stats.js";
import { BareServer } from "../bare-server.js";
import { makeTempDir, removeTempDir } from "../temp-dirs.js";
import { bestEffort } from "../best-effort.js";
import { NOOP_DESCRIPTION, noopCall } from "../noop-call.js";

const COMMAND = "sleep 3600";
const LAUNCH_CONCURRENCY = 8;
const RUNNING_MS = 120_000;
const RECOVER_MS = 60_000;
const POLL_MS = 10;
/** Containers() p99 within this ratio of a bare grpc-js server answering the same bytes. */
const CONTAINERS_TARGET_RATIO = 1.2;
const RSS_TARGET_MB = 150;
const RECOVER_TARGET_S = 3;

/** The figures of the shared fleet, split by scenario. */
export interface FleetFigures {
  scale: Figure[];
  recover: Figure[];
}

const SHARED_KEY = "fleet";

/**
 * One fleet of live `sleep` containers launched through one Berth, shared by the scale and
 * recover scenarios so that the ~1 minute of starting 500 containers is paid once per run.
 */
export function fleetFigures(ctx: BenchContext): Promise<FleetFigures> {
  let p = ctx.shared.get(SHARED_KEY) as Promise<FleetFigures> | undefined;
  if (p) ctx.progress("fleet: figures already taken with the fleet shared by scale and recover");
  else {
    p = runFleet(ctx);
    ctx.shared.set(SHARED_KEY, p);
  }
  return p;
}

/** The Berth of the fleet and its all-containers Watch; replaced on every restart. */
interface Agent {
  berth: BenchBerth;
  tap: BerthEventTap;
}

function allRunning(res: ContainersResponse, ids: readonly string[]): boolean {
  const running = new Set(res.containers.filter((c) => c.state === State.RUNNING).map((c) => c.containerId?.value));
  return ids.every((id) => running.has(id));
}

/**
 * The recovery floor: one engine list of the agent's containers. Berth's recovery lists once and
 * inspects only the rows that are not running, so with every container running the list is the
 * engine work it cannot avoid.
 */
async function rawList(docker: Dockerode, agentId: string, expected: number): Promise<number> {
  const t0 = wallNowMs();
  const list = await withDeadline(docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${agentId}`] } }), ENGINE_CALL_MS, "raw list");
  const ms = wallNowMs() - t0;
  if (list.length < expected) throw new Error(`raw list found ${list.length} containers of agent '${agentId}', expected ${expected}`);
  if (list.some((c) => c.State !== "running")) throw new Error(`raw list shows containers of agent '${agentId}' not running: ${list.filter((c) => c.State !== "running").map((c) => c.State).join(", ")}`);
  return ms;
}

/** kill -9, restart, and time until health is SERVING and Containers() lists every id RUNNING. */
async function killAndRecover(agent: Agent, home: BerthHome, ids: readonly string[]): Promise<{ agent: Agent; ms: number; logged?: number; servingMs?: number }> {
  agent.tap.close();
  await agent.berth.kill9();
  const t0 = wallNowMs();
  const berth = BenchBerth.spawn(home);
  // Fresh channels with a short reconnect backoff: the socket is refused until Berth listens.
  const options = { ...FAST_RECONNECT, "grpc.use_local_subchannel_pool": 1 };
  const health = healthClient(home.address, options);
  const cz = containerizerClient(home.address, options);
  try {
    await pollUntil(async () => (await healthStatus(health)) === "SERVING" && allRunning(await listContainers(cz), ids), RECOVER_MS, POLL_MS, `recovery of ${ids.length} containers`);
  } finally {
    health.close();
    cz.close();
  }
  const ms = wallNowMs() - t0;
  const line = await withDeadline(berth.process.waitForLog((l) => l.msg === "recovered"), 10_000, "the 'recovered' log line").catch(() => undefined);
  // pino stamps each line with its epoch ms: when the new process said "berth serving", from the spawn.
  const serving = await withDeadline(berth.process.serving(), 10_000, "the 'berth serving' log line").catch(() => undefined);
  return {
    agent: { berth, tap: new BerthEventTap(berth.client) },
    ms,
    logged: typeof line?.ms === "number" ? line.ms : undefined,
    servingMs: typeof serving?.time === "number" ? serving.time - t0 : undefined,
  };
}

async function runFleet(ctx: BenchContext): Promise<FleetFigures> {
  const wantScale = ctx.selected.has("scale");
  const wantRecover = ctx.selected.has("recover");
  const small = ctx.quick ? 5 : 100;
  const big = ctx.quick ? 20 : 500;
  const reps = ctx.quick ? 1 : 3;
  const home = await newBerthHome("fleet");
  const out: FleetFigures = { scale: [], recover: [] };
  const ids: string[] = [];
  let agent: Agent | undefined;
  let engineTap: EngineEventTap | undefined;
  let liveEvents = 0;
  try {
    const berth = await BenchBerth.start(home);
    agent = { berth, tap: new BerthEventTap(berth.client) };
    engineTap = await EngineEventTap.open(ctx.docker, [`${LABEL_AGENT_ID}=${home.agentId}`]);

    const launchUpTo = async (count: number) => {
      const fresh = Array.from({ length: count - ids.length }, (_, i) => `fleet-${ids.length + i}`);
      const a = agent!;
      let done = 0;
      await forEachBounded(fresh, LAUNCH_CONCURRENCY, async (id) => {
        await launchOrThrow(a.berth.client, id, ctx.image, COMMAND);
        await a.tap.waitState(id, State.RUNNING, RUNNING_MS);
        a.tap.forget(id);
        ids.push(id);
        done += 1;
        if (done % 50 === 0) ctx.progress(`fleet: ${ids.length}/${count} RUNNING`);
      });
    };
    const recover = async (count: number) => {
      const berthMs: number[] = [];
      const rawMs: number[] = [];
      const logged: number[] = [];
      const serving: number[] = [];
      const listMs: number[] = [];
      const spawnMs: number[] = [];
      for (let rep = 0; rep < reps; rep++) {
        // The floor: what any node gRPC server pays to come up (spawn → listening, bench/bare-server.ts)
        // plus the one engine list recovery cannot avoid.
        const bareDir = await makeTempDir("bare");
        try {
          const t0 = wallNowMs();
          const bare = await BareServer.start(path.join(bareDir, "bare.sock"));
          spawnMs.push(wallNowMs() - t0);
          await bare.stop();
        } finally {
          await removeTempDir(bareDir);
        }
        listMs.push(await rawList(ctx.docker, home.agentId, count));
        rawMs.push(spawnMs.at(-1)! + listMs.at(-1)!);
        liveEvents += agent!.tap.live;
        const r = await killAndRecover(agent!, home, ids);
        agent = r.agent;
        berthMs.push(r.ms);
        if (r.logged !== undefined) logged.push(r.logged);
        if (r.servingMs !== undefined) serving.push(r.servingMs);
        ctx.progress(`recover ${count}: rep ${rep + 1}/${reps}: ${r.ms.toFixed(0)} ms (floor ${rawMs.at(-1)!.toFixed(0)} ms)`);
      }
      const b = median(berthMs) / 1000;
      out.recover.push({
        scenario: "recover",
        figure: `kill -9 → SERVING + ${count} RUNNING (median of ${reps})`,
        unit: "s",
        berth: b,
        raw: median(rawMs) / 1000,
        target: `≤ ${RECOVER_TARGET_S} s`,
        met: b <= RECOVER_TARGET_S,
        note: `from spawning the new \`berth serve\` (node start-up included) until health Check says SERVING and Containers() lists all ${count} RUNNING, polled every ${POLL_MS} ms; per rep ${berthMs.map((x) => x.toFixed(0)).join("/")} ms; Berth's own log: recovery took ${logged.map((x) => `${x}`).join("/") || "n/a"} ms, "berth serving" at ${serving.map((x) => x.toFixed(0)).join("/") || "n/a"} ms after the spawn; floor = a bare grpc-js server's spawn → listening (node start-up, ${spawnMs.map((x) => x.toFixed(0)).join("/")} ms) + one engine list of the agent's containers (Berth's recovery lists once and inspects only rows not running; all are running here: ${listMs.map((x) => x.toFixed(0)).join("/")} ms)`,
      });
    };

    if (wantRecover) {
      await launchUpTo(small);
      await recover(small);
    }
    await launchUpTo(big);

    if (wantScale) {
      const calls = ctx.quick ? 20 : 300;
      const warmup = ctx.quick ? 5 : 50;
      const berthMs: number[] = [];
      const bareMs: number[] = [];
      const noopMs: number[] = [];
      const rawMs: number[] = [];
      const a = agent!;
      const listRaw = () => withDeadline(ctx.docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${home.agentId}`] } }), ENGINE_CALL_MS, "raw list");
      const first = await withDeadline(a.berth.client.containers(), ENGINE_CALL_MS, "Containers()");
      if (!allRunning(first, ids)) throw new Error(`Containers() does not list all ${ids.length} fleet containers RUNNING`);
      // The floor: a bare grpc-js server (child process) answering Berth's own response, encoded once.
      const bareDir = await makeTempDir("bare");
      let bare: BareServer | undefined;
      let bareClient: Client | undefined;
      try {
        const bytesFile = path.join(bareDir, "containers.bin");
        await writeFile(bytesFile, toBinary(ContainersResponseSchema, first));
        bare = await BareServer.start(path.join(bareDir, "bare.sock"), bytesFile);
        bareClient = containerizerClient(bare.address);
        const bc = bareClient;
        const listBare = () => listContainers(bc, ENGINE_CALL_MS);
        if ((await listBare()).containers.length !== first.containers.length) throw new Error("the bare server's Containers() does not answer Berth's response");
        await listRaw();
        // A polled Containers() runs JIT-compiled on both ends: the first calls of a fresh client
        // measure V8's warm-up, not Berth, and are left out (the same number of each call).
        for (let i = 0; i < warmup; i++) {
          await withDeadline(a.berth.client.containers(), ENGINE_CALL_MS, "Containers()");
          await listBare();
          await noopCall(a.berth.client);
        }
        const timed = async (call: () => Promise<unknown>, into: number[]) => {
          const t0 = wallNowMs();
          await call();
          into.push(wallNowMs() - t0);
        };
        for (let i = 0; i < calls; i++) {
          const round = shuffled([
            () => timed(() => withDeadline(a.berth.client.containers(), ENGINE_CALL_MS, "Containers()"), berthMs),
            () => timed(listBare, bareMs),
            () => timed(() => noopCall(a.berth.client), noopMs),
          ]);
          for (const call of round) await call();
          await timed(listRaw, rawMs);
        }
      } finally {
        bareClient?.close();
        await bestEffort(ctx.progress, "stopping the bare server", () => bare?.stop());
        await bestEffort(ctx.progress, "removing the bare server's dir", () => removeTempDir(bareDir));
      }
      const p99 = percentile(berthMs, 99);
      const bareP99 = percentile(bareMs, 99);
      const rssMb = a.berth.rssKib() / 1024;
      const events = liveEvents + a.tap.live;
      out.scale.push(
        { scenario: "scale", figure: `Containers() median, ${big} live (n=${calls})`, unit: "ms", berth: median(berthMs), raw: median(bareMs), note: `after ${warmup} unmeasured calls; floor = a bare grpc-js server in a child process (bench/bare-server.ts) answering the same ${first.containers.length}-entry response, encoded once, to a client of the same kind; each round runs Berth's call, the floor's and a no-op in a random order, then the engine's list. Spread: berth ${spread(berthMs, 2)} ms, bare ${spread(bareMs, 2)} ms` },
        { scenario: "scale", figure: `Containers() ${p99Label(calls)}, ${big} live`, unit: "ms", berth: p99, raw: bareP99, target: `≤ ${CONTAINERS_TARGET_RATIO}× bare server p99`, met: p99 <= CONTAINERS_TARGET_RATIO * bareP99 },
        { scenario: "scale", figure: `engine list median / ${p99Label(calls)}, ${big} live (context)`, unit: "ms", berthText: "", rawText: `${median(rawMs).toFixed(1)} / ${percentile(rawMs, 99).toFixed(1)} ms`, note: `GET /containers/json?all=1&filters={"label":["${LABEL_AGENT_ID}=…"]} for the same ${big} containers` },
        { scenario: "scale", figure: `no-op gRPC call median / ${p99Label(calls)}, ${big} live`, unit: "ms", berthText: `${median(noopMs).toFixed(2)} / ${percentile(noopMs, 99).toFixed(1)} ms`, rawText: "", note: `${NOOP_DESCRIPTION}: the floor under any call at this scale on this machine` },
        { scenario: "scale", figure: `agent RSS, ${big} live`, unit: "MB", berth: rssMb, rawText: "n/a", target: `≤ ${RSS_TARGET_MB} MB`, met: rssMb <= RSS_TARGET_MB, note: `VmRSS of the \`berth serve\` process (MiB)${wantRecover ? `, after ${reps} restart(s) during the recover scenario: it re-adopted the first ${small}` : ""}` },
        { scenario: "scale", figure: "events handled", unit: "count", berth: events, raw: engineTap.events.length, note: "berth = live events on one all-containers Watch; raw engine = container events of this agent's containers on a raw /events subscription (create, start, …)" },
      );
    }

    if (wantRecover) await recover(big);
    return out;
  } finally {
    engineTap?.close();
    agent?.tap.close();
    await bestEffort(ctx.progress, "stopping Berth", () => agent?.berth.stop());
    ctx.progress(`fleet: removing ${ids.length} containers`);
    await bestEffort(ctx.progress, "removing Berth\'s containers", () => cleanupHome(ctx.docker, home));
  }
}
