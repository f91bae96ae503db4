/**
 * What --http_listen costs (issue 11: "recording a metric must not show up in npm run bench
 * figures — measure it"). Three measurements, each with the metrics on beside the same thing off,
 * interleaved so drift hits both sides alike (the table's "raw" column is the metrics-off side):
 *
 * 1. the event path: events published through a real EventHub to a Watch-like subscriber, without
 *    and with the metrics + status page subscriber (BerthMetrics.observe + StatusModel.observe), per
 *    event and per launch (a launch's ~12 events);
 * 2. the RPC path: a no-op unary call (Health/Check) on a grpc-js server without and with the
 *    metrics interceptor;
 * 3. end to end: Launch → RUNNING on two real `berth serve` processes, one with --http_listen (a
 *    status page connected over SSE the whole time), one without.
 */
import { request, type IncomingMessage } from "node:http";
import { credentials, makeGenericClientConstructor, Server, ServerCredentials, type Client } from "@grpc/grpc-js";
import { HealthImplementation, service as healthService } from "grpc-health-check";
import { create } from "@bufbuild/protobuf";
import { State } from "../../src/gen/berth/v1/containerizer_pb.js";
import { ContainerTerminationSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import { TaskState } from "../../src/gen/mesos/v1/mesos_pb.js";
import type { EventKind } from "../../src/containerizer/container-event.js";
import { EventHub } from "../../src/containerizer/event-hub.js";
import { BerthMetrics } from "../../src/metrics/berth-metrics.js";
import { rpcMetricsInterceptor } from "../../src/metrics/rpc-interceptor.js";
import { StatusModel } from "../../src/http/status-model.js";
import { BerthClient } from "../../test/harness/berth-client.js";
import { BerthProcess } from "../../test/harness/process-berth.js";
import { BenchBerth, cleanupHome, newBerthHome, type BerthHome } from "../bench-berth.js";
import { launchOrThrow } from "../bench-launch.js";
import { BerthEventTap } from "../berth-event-tap.js";
import { wallNowMs } from "../clock.js";
import { withDeadline } from "../deadline.js";
import { unary } from "../grpc-clients.js";
import type { Figure } from "../report.js";
import type { BenchContext, Scenario } from "../scenario.js";
import { median, spread } from "../stats.js";
import { bestEffort } from "../best-effort.js";
import { removeTempDir } from "../temp-dirs.js";

const SCENARIO = "metrics-overhead";
/** Per launch, the metrics may add at most 1% of the launch target's 5 ms of Berth's own cost. */
const TARGET_PER_LAUNCH_US = 50;
const TARGET_RATIO = 1.03;
const START_MS = 60_000;
const RUNNING_MS = 60_000;
const EXIT_MS = 30_000;
const COMMAND = "sleep 0.2";

/** One launch's events, as the pipeline publishes them: states, a fetch, pull progress, the end. */
function launchEvents(): EventKind[] {
  const progress = (bytesCurrent: number, layersDone: number): EventKind => ({
    type: "pull",
    progress: { ref: "127.0.0.1:5000/berth-test/busybox:1", layersTotal: 1, layersDone, bytesCurrent, bytesTotal: 1_000_000, status: "Downloading", layers: [{ id: "0123456789ab", bytesCurrent, bytesTotal: 1_000_000, status: "Downloading", done: false }] },
  });
  const ct = create(ContainerTerminationSchema, { state: TaskState.TASK_FINISHED, message: "Container exited with status 0", status: 0 });
  return [
    { type: "state", state: "FETCHING" },
    { type: "fetch", result: { uriIndex: 0, uri: "http://127.0.0.1:8080/payload.tgz", cache: "HIT", bytes: 1024 } },
    { type: "state", state: "PULLING", previous: "FETCHING" },
    progress(250_000, 0),
    progress(500_000, 0),
    progress(750_000, 0),
    progress(1_000_000, 1),
    { type: "state", state: "MOUNTING", previous: "PULLING" },
    { type: "state", state: "RUNNING", previous: "MOUNTING" },
    { type: "state", state: "TERMINATED", previous: "RUNNING" },
    { type: "termination", termination: { containerTermination: ct, exitCode: 0, time: new Date() } },
  ];
}

/** ns per event through a hub with a Watch-like subscriber, plus the metrics subscriber when `withMetrics`. */
function eventPathRound(withMetrics: boolean, launches: number, round: number): number {
  const hub = new EventHub(10_000, { get: () => undefined, values: () => [] });
  let sink = 0;
  const subs = [hub.watch([]).subscribe((e) => (sink += Number(e.sequence & 1n)))];
  if (withMetrics) {
    const metrics = new BerthMetrics({ defaultMetrics: false });
    const model = new StatusModel({ list: () => [] }, "bench", "unix:///var/run/docker.sock");
    subs.push(
      hub.watch([]).subscribe((e) => {
        metrics.observe(e);
        model.observe(e);
      }),
    );
  }
  const kinds = launchEvents();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < launches; i++) {
    const id = `c-${round}-${i}`;
    for (const k of kinds) hub.publish(id, k);
  }
  const ns = Number(process.hrtime.bigint() - t0);
  for (const s of subs) s.unsubscribe();
  if (sink < 0) throw new Error("unreachable");
  return ns / (launches * kinds.length);
}

const HealthClient = makeGenericClientConstructor(healthService, "Health");

async function healthServer(withMetrics: boolean): Promise<{ server: Server; client: Client }> {
  const server = new Server({ interceptors: withMetrics ? [rpcMetricsInterceptor(new BerthMetrics({ defaultMetrics: false }))] : [], "grpc.enable_channelz": 0 });
  new HealthImplementation({ "": "SERVING" }).addToServer(server);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const client = new HealthClient(`127.0.0.1:${port}`, credentials.createInsecure()) as Client;
  return { server, client };
}

/** Each call's µs of a batch of serial Health/Check calls, appended to `into`. */
async function rpcBatch(client: Client, calls: number, into: number[] = []): Promise<number[]> {
  for (let i = 0; i < calls; i++) {
    const t0 = process.hrtime.bigint();
    await unary(client, "Check", { service: "" }, 5000);
    into.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return into;
}

/** A live status page's stream, read and discarded. */
function openPage(address: string): Promise<IncomingMessage> {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), address.slice(address.lastIndexOf(":") + 1)];
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: "/events" }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`GET /events answered ${res.statusCode}`));
      res.resume();
      resolve(res);
    });
    req.on("error", reject);
    req.end();
  });
}

interface Side {
  home: BerthHome;
  process: BerthProcess;
  client: BerthClient;
  tap: BerthEventTap;
}

async function startSide(withHttp: boolean): Promise<Side> {
  const home = await newBerthHome(withHttp ? "metrics-on" : "metrics-off");
  const args = [...BenchBerth.args(home), ...(withHttp ? ["--http_listen", "127.0.0.1:0"] : [])];
  const p = new BerthProcess(args);
  try {
    await withDeadline(p.serving(), START_MS, `berth serve (${withHttp ? "with" : "without"} --http_listen)`);
  } catch (err) {
    p.kill("SIGKILL");
    throw err;
  }
  const client = new BerthClient(home.address);
  return { home, process: p, client, tap: new BerthEventTap(client) };
}

async function stopSide(ctx: BenchContext, side: Side | undefined): Promise<void> {
  if (!side) return;
  side.tap.close();
  side.client.close();
  side.process.kill("SIGTERM");
  await bestEffort(ctx.progress, "stopping Berth", () => withDeadline(side.process.exited, 20_000, "berth exit"));
  side.process.kill("SIGKILL");
  await bestEffort(ctx.progress, "removing Berth's containers", () => cleanupHome(ctx.docker, side.home));
  await bestEffort(ctx.progress, "removing the work dir", () => removeTempDir(side.home.workDir));
}

async function oneLaunch(ctx: BenchContext, side: Side, id: string): Promise<number> {
  const t0 = wallNowMs();
  await launchOrThrow(side.client, id, ctx.image, COMMAND);
  const running = await side.tap.waitState(id, State.RUNNING, RUNNING_MS);
  const ms = running.receivedMs - t0;
  await withDeadline(side.client.wait(id), EXIT_MS, `Wait of '${id}'`);
  await withDeadline(side.client.destroy(id), EXIT_MS, `Destroy of '${id}'`);
  side.tap.forget(id);
  return ms;
}

export const metricsOverheadScenario: Scenario = {
  name: SCENARIO,
  describe: "what --http_listen (metrics + status page) costs: the event path, an RPC, and Launch → RUNNING, each with the metrics on vs off",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const figures: Figure[] = [];

    // 1. The event path.
    const launches = ctx.quick ? 200 : 2000;
    const rounds = ctx.quick ? 5 : 21;
    const off: number[] = [];
    const on: number[] = [];
    eventPathRound(false, launches, -1);
    eventPathRound(true, launches, -2);
    for (let r = 0; r < rounds; r++) {
      if (r % 2 === 0) {
        off.push(eventPathRound(false, launches, r));
        on.push(eventPathRound(true, launches, r));
      } else {
        on.push(eventPathRound(true, launches, r));
        off.push(eventPathRound(false, launches, r));
      }
    }
    const perEvent = launchEvents().length;
    const addedUs = ((median(on) - median(off)) * perEvent) / 1000;
    figures.push(
      {
        scenario: SCENARIO,
        figure: `event path, ns per event (${rounds} rounds of ${launches} launches)`,
        unit: "count",
        berth: median(on),
        raw: median(off),
        note: `event path: a real EventHub publishing ${perEvent} events per launch (states, a fetch, 4 pull progress, termination) to a Watch-like subscriber; "berth" adds the --http_listen subscriber (BerthMetrics.observe + StatusModel.observe), "raw" is without it. Spread ns/event: on ${spread(on)}; off ${spread(off)}`,
      },
      {
        scenario: SCENARIO,
        figure: "event path, added per launch",
        unit: "ms",
        berthText: `${addedUs.toFixed(1)} µs`,
        rawText: "",
        target: `≤ ${TARGET_PER_LAUNCH_US} µs (1% of the launch target's 5 ms)`,
        met: addedUs <= TARGET_PER_LAUNCH_US,
      },
    );

    // 2. The RPC path.
    const withI = await healthServer(true);
    const without = await healthServer(false);
    try {
      const calls = ctx.quick ? 100 : 250;
      const batches = ctx.quick ? 6 : 40;
      await rpcBatch(withI.client, 100);
      await rpcBatch(without.client, 100);
      const rOn: number[] = [];
      const rOff: number[] = [];
      for (let b = 0; b < batches; b++) {
        if (b % 2 === 0) {
          await rpcBatch(without.client, calls, rOff);
          await rpcBatch(withI.client, calls, rOn);
        } else {
          await rpcBatch(withI.client, calls, rOn);
          await rpcBatch(without.client, calls, rOff);
        }
      }
      figures.push({
        scenario: SCENARIO,
        figure: `no-op RPC median, µs (${batches} alternating batches of ${calls} calls)`,
        unit: "count",
        berth: median(rOn),
        raw: median(rOff),
        target: `≤ ${TARGET_RATIO}× without the interceptor`,
        met: median(rOn) <= TARGET_RATIO * median(rOff),
        note: `no-op RPC: serial grpc.health.v1.Health/Check on an in-process grpc-js server over loopback TCP, with the metrics interceptor ("berth") and without ("raw"). Spread µs: on ${spread(rOn)}; off ${spread(rOff)}`,
      });
    } finally {
      for (const s of [withI, without]) {
        s.client.close();
        s.server.forceShutdown();
      }
    }

    // 3. End to end: Launch → RUNNING with and without --http_listen.
    let onSide: Side | undefined;
    let offSide: Side | undefined;
    let page: IncomingMessage | undefined;
    try {
      onSide = await startSide(true);
      offSide = await startSide(false);
      const line = await withDeadline(onSide.process.waitForLog((l) => typeof l.http_listen === "string"), START_MS, "the --http_listen line");
      page = await openPage(String(line.http_listen));
      const n = ctx.quick ? 4 : 30;
      await oneLaunch(ctx, onSide, "warm-on");
      await oneLaunch(ctx, offSide, "warm-off");
      const lOn: number[] = [];
      const lOff: number[] = [];
      for (let i = 0; i < n; i++) {
        if (i % 2 === 0) {
          lOff.push(await oneLaunch(ctx, offSide, `l-${i}`));
          lOn.push(await oneLaunch(ctx, onSide, `l-${i}`));
        } else {
          lOn.push(await oneLaunch(ctx, onSide, `l-${i}`));
          lOff.push(await oneLaunch(ctx, offSide, `l-${i}`));
        }
        if ((i + 1) % 10 === 0) ctx.progress(`${SCENARIO}: ${i + 1}/${n} launch pairs`);
      }
      figures.push({
        scenario: SCENARIO,
        figure: `Launch→RUNNING median, --http_listen on vs off (n=${n})`,
        unit: "ms",
        berth: median(lOn),
        raw: median(lOff),
        target: `≤ ${TARGET_RATIO}× off`,
        met: median(lOn) <= TARGET_RATIO * median(lOff),
        note: `end to end: two berth serve processes, one with --http_listen 127.0.0.1:0 and a status page connected over SSE throughout ("berth"), one without ("raw"); serial launches of '${COMMAND}', alternating which goes first. Spread ms: on ${spread(lOn)}; off ${spread(lOff)}`,
      });
    } finally {
      page?.destroy();
      await stopSide(ctx, onSide);
      await stopSide(ctx, offSide);
    }
    return figures;
  },
};
