import type Dockerode from "dockerode";
import { State, type ContainersResponse } from "../../src/gen/berth/v1/containerizer_pb.js";
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
import { median, percentile } from "../stats.js";
import { bestEffort } from "../best-effort.js";
import { NOOP_DESCRIPTION, noopCall } from "../noop-call.js";

const COMMAND = "sleep 3600";
const LAUNCH_CONCURRENCY = 8;
const RUNNING_MS = 120_000;
const RECOVER_MS = 60_000;
const POLL_MS = 10;
/** Berth's own recovery inspects this many containers at once; the raw figure does the same. */
const INSPECT_CONCURRENCY = 16;
const CONTAINERS_TARGET_MS = 10;
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

async function rawListInspect(docker: Dockerode, agentId: string, expected: number): Promise<number> {
  const t0 = wallNowMs();
  const list = await withDeadline(docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${agentId}`] } }), ENGINE_CALL_MS, "raw list");
  await forEachBounded(list, INSPECT_CONCURRENCY, async (info) => {
    await withDeadline(docker.getContainer(info.Id).inspect(), ENGINE_CALL_MS, `raw inspect of '${info.Id}'`);
  });
  const ms = wallNowMs() - t0;
  if (list.length < expected) throw new Error(`raw list found ${list.length} containers of agent '${agentId}', expected ${expected}`);
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
      for (let rep = 0; rep < reps; rep++) {
        rawMs.push(await rawListInspect(ctx.docker, home.agentId, count));
        liveEvents += agent!.tap.live;
        const r = await killAndRecover(agent!, home, ids);
        agent = r.agent;
        berthMs.push(r.ms);
        if (r.logged !== undefined) logged.push(r.logged);
        if (r.servingMs !== undefined) serving.push(r.servingMs);
        ctx.progress(`recover ${count}: rep ${rep + 1}/${reps}: ${r.ms.toFixed(0)} ms (raw list+inspect ${rawMs.at(-1)!.toFixed(0)} ms)`);
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
        note: `from spawning the new \`berth serve\` (node start-up included) until health Check says SERVING and Containers() lists all ${count} RUNNING, polled every ${POLL_MS} ms; per rep ${berthMs.map((x) => x.toFixed(0)).join("/")} ms; Berth's own log: recovery took ${logged.map((x) => `${x}`).join("/") || "n/a"} ms, "berth serving" at ${serving.map((x) => x.toFixed(0)).join("/") || "n/a"} ms after the spawn; raw = engine list (agent label) + inspect of each, ${INSPECT_CONCURRENCY} at a time`,
      });
    };

    if (wantRecover) {
      await launchUpTo(small);
      await recover(small);
    }
    await launchUpTo(big);

    if (wantScale) {
      const calls = ctx.quick ? 20 : 300;
      // A polled Containers() runs JIT-compiled on both ends: the first calls of a fresh client
      // measure V8's warm-up, not Berth, and are left out.
      const warmup = ctx.quick ? 5 : 50;
      const berthMs: number[] = [];
      const noopMs: number[] = [];
      const rawMs: number[] = [];
      const a = agent!;
      const listRaw = () => withDeadline(ctx.docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${home.agentId}`] } }), ENGINE_CALL_MS, "raw list");
      // Warm-up, then alternate one Berth call and one raw call.
      const first = await withDeadline(a.berth.client.containers(), ENGINE_CALL_MS, "Containers()");
      if (!allRunning(first, ids)) throw new Error(`Containers() does not list all ${ids.length} fleet containers RUNNING`);
      await listRaw();
      for (let i = 0; i < warmup; i++) await withDeadline(a.berth.client.containers(), ENGINE_CALL_MS, "Containers()");
      for (let i = 0; i < calls; i++) {
        let t0 = wallNowMs();
        await withDeadline(a.berth.client.containers(), ENGINE_CALL_MS, "Containers()");
        berthMs.push(wallNowMs() - t0);
        t0 = wallNowMs();
        await noopCall(a.berth.client);
        noopMs.push(wallNowMs() - t0);
        t0 = wallNowMs();
        await listRaw();
        rawMs.push(wallNowMs() - t0);
      }
      const p99 = percentile(berthMs, 99);
      const rssMb = a.berth.rssKib() / 1024;
      const events = liveEvents + a.tap.live;
      out.scale.push(
        { scenario: "scale", figure: `Containers() median, ${big} live (n=${calls})`, unit: "ms", berth: median(berthMs), raw: median(rawMs), note: `after ${warmup} unmeasured calls; raw = GET /containers/json?all=1&filters={"label":["${LABEL_AGENT_ID}=…"]} for the same ${big} containers, alternated with Berth's calls` },
        { scenario: "scale", figure: `Containers() p99, ${big} live (n=${calls})`, unit: "ms", berth: p99, raw: percentile(rawMs, 99), target: `p99 ≤ ${CONTAINERS_TARGET_MS} ms`, met: p99 <= CONTAINERS_TARGET_MS },
        { scenario: "scale", figure: `no-op gRPC call median / p99, ${big} live (n=${calls})`, unit: "ms", berthText: `${median(noopMs).toFixed(2)} / ${percentile(noopMs, 99).toFixed(1)} ms`, rawText: "", note: `${NOOP_DESCRIPTION}, between each Containers() call and the raw list: the floor under any call at this scale on this machine` },
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
