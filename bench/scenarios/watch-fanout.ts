import path from "node:path";
import { Worker } from "node:worker_threads";
import { State } from "../../src/gen/berth/v1/containerizer_pb.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { BenchBerth, cleanupHome, newBerthHome } from "../bench-berth.js";
import { launchOrThrow } from "../bench-launch.js";
import { BerthEventTap } from "../berth-event-tap.js";
import { withDeadline } from "../deadline.js";
import { EngineEventTap } from "../engine-events.js";
import type { FanoutWorkerCommand, FanoutWorkerData, FanoutWorkerMessage } from "../fanout-worker.js";
import type { Figure } from "../report.js";
import type { BenchContext, Scenario } from "../scenario.js";
import { median, p99Label, percentile, spread } from "../stats.js";
import { bestEffort } from "../best-effort.js";
import { BareServer } from "../bare-server.js";
import { BerthClient } from "../../test/harness/berth-client.js";
import { makeTempDir, removeTempDir } from "../temp-dirs.js";

const MARKER = "fanout-marker";
const OPEN_MS = 180_000;
const DELIVER_MS = 60_000;
const SETTLE_MS = 1_000;
const CLOSE_MS = 10_000;
/** The last subscriber has the event within this ratio of the bare server's last. */
const TARGET_RATIO = 1.2;
const TARGET_KB = 20;

/** Threads receiving the copies in the one client process (this machine has 2 cores). */
const RECEIVERS = 2;

/** One receiving thread (fanout-worker.ts) and what it reports, as promises. */
class Receiver {
  readonly opened: Promise<void>;
  readonly delivered: Promise<{ latenciesMs: number[]; notDestroying: number }>;
  readonly ended: Promise<void>;
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  constructor(data: FanoutWorkerData) {
    this.worker = new Worker(new URL("../fanout-worker.js", import.meta.url), { workerData: data });
    this.exited = new Promise((resolve) => this.worker.once("exit", () => resolve()));
    const failed = new Promise<never>((_, reject) => {
      this.worker.on("error", reject);
      this.worker.on("message", (m: FanoutWorkerMessage) => {
        if (m.type === "failed") reject(new Error(`a Watch stream failed: ${m.error}`));
      });
      this.worker.once("exit", (code) => reject(new Error(`a receiving thread exited early (code ${code})`)));
    });
    failed.catch(() => undefined);
    const next = <T extends FanoutWorkerMessage["type"]>(type: T) =>
      Promise.race([
        new Promise<Extract<FanoutWorkerMessage, { type: T }>>((resolve) => {
          const on = (m: FanoutWorkerMessage) => {
            if (m.type !== type) return;
            this.worker.off("message", on);
            resolve(m as Extract<FanoutWorkerMessage, { type: T }>);
          };
          this.worker.on("message", on);
        }),
        failed,
      ]);
    this.opened = next("opened").then(() => undefined);
    this.delivered = next("delivered");
    this.ended = next("ended").then(() => undefined);
    for (const p of [this.opened, this.delivered, this.ended]) p.catch(() => undefined);
  }

  /** Cancels what is still open, closes the channels and ends the thread. */
  async close(): Promise<void> {
    this.worker.postMessage({ type: "close" } satisfies FanoutWorkerCommand);
    try {
      await withDeadline(this.exited, CLOSE_MS, "a receiving thread closing");
    } catch {
      await this.worker.terminate();
    }
  }
}

/** What one fan-out (Berth's or the bare server's) measured. */
interface FanOut {
  latencies: number[];
  perStreamKb: number;
  rssBefore: number;
  rssAfter: number;
  openMs: number;
}

/**
 * Opens `channels × perChannel` Watch streams of `containerId` on `address` (received on RECEIVERS
 * threads), waits until each has its snapshot, measures the server's RSS growth, calls `trigger`
 * (a Destroy), and collects each stream's publish→receipt latency of the first live event.
 */
async function fanOut(
  ctx: BenchContext,
  who: string,
  target: { address: string; containerId: string; rssKib(): number; trigger(): Promise<unknown> },
  channels: number,
  perChannel: number,
): Promise<FanOut> {
  const n = channels * perChannel;
  const receivers: Receiver[] = [];
  try {
    const rssBefore = target.rssKib();
    ctx.progress(`watch-fanout (${who}): opening ${n} streams on ${channels} channels, received on ${RECEIVERS} threads`);
    for (let r = 0; r < RECEIVERS; r++) {
      const share = Math.floor(channels / RECEIVERS) + (r < channels % RECEIVERS ? 1 : 0);
      if (share > 0) receivers.push(new Receiver({ address: target.address, channels: share, perChannel, containerId: target.containerId }));
    }
    const t0 = Date.now();
    await withDeadline(Promise.all(receivers.map((r) => r.opened)), OPEN_MS, `all ${n} Watch streams of ${who} receiving their snapshot`);
    const openMs = Date.now() - t0;
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const rssAfter = target.rssKib();
    ctx.progress(`watch-fanout (${who}): ${n} streams open in ${openMs} ms; RSS ${(rssBefore / 1024).toFixed(1)} → ${(rssAfter / 1024).toFixed(1)} MiB`);
    const triggered = withDeadline(target.trigger(), DELIVER_MS, `Destroy of '${target.containerId}' on ${who}`);
    const reports = await withDeadline(Promise.all(receivers.map((r) => r.delivered)), DELIVER_MS, `the DESTROYING event reaching all ${n} streams of ${who}`);
    await triggered;
    await withDeadline(Promise.all(receivers.map((r) => r.ended)), DELIVER_MS, `all ${n} Watch streams of ${who} ending`);
    const wrong = reports.reduce((sum, r) => sum + r.notDestroying, 0);
    if (wrong > 0) throw new Error(`${wrong} streams' first live event from ${who} was not DESTROYING`);
    return { latencies: reports.flatMap((r) => r.latenciesMs), perStreamKb: ((rssAfter - rssBefore) / n) * (1024 / 1000), rssBefore, rssAfter, openMs };
  } finally {
    await Promise.all(receivers.map((r) => r.close()));
  }
}

/**
 * 10,000 Watch streams on one container over separate channels from this process, Berth in a child
 * process: one event (the marker's DESTROYING) fanned out to all of them, timed from its `time` to
 * each receipt; and Berth's RSS growth per open stream. Beside it the floor: a bare grpc-js server
 * (bench/bare-server.ts, also a child process) writing one pre-encoded event to as many streams.
 */
export const watchFanoutScenario: Scenario = {
  name: "watch-fanout",
  describe: "10,000 Watch streams, one event fanned out: last receipt and p99 publish→receipt, memory per stream, vs a bare grpc-js server",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const channels = ctx.quick ? 2 : 20;
    const perChannel = ctx.quick ? 100 : 500;
    const n = channels * perChannel;
    const home = await newBerthHome("fanout");
    const bareDir = await makeTempDir("bare");
    let berth: BenchBerth | undefined;
    let bare: BareServer | undefined;
    let engineTap: EngineEventTap | undefined;
    try {
      berth = await BenchBerth.start(home);
      const b = berth;
      const tap = new BerthEventTap(b.client);
      await launchOrThrow(b.client, MARKER, ctx.image, "sleep 3600");
      await tap.waitState(MARKER, State.RUNNING, 60_000);
      // Only the measured streams stay open.
      tap.close();
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      bare = await BareServer.start(path.join(bareDir, "bare.sock"));
      const bareClient = new BerthClient(bare.address);
      const bs = bare;

      engineTap = await EngineEventTap.open(ctx.docker, [`${LABEL_AGENT_ID}=${home.agentId}`, `${LABEL_CONTAINER_ID}=${MARKER}`]);
      const runBerth = () => fanOut(ctx, "berth", { address: home.address, containerId: MARKER, rssKib: () => b.rssKib(), trigger: () => b.client.destroy(MARKER) }, channels, perChannel);
      const runBare = () => fanOut(ctx, "bare grpc-js server", { address: bs.address, containerId: MARKER, rssKib: () => bs.rssKib(), trigger: () => bareClient.destroy(MARKER) }, channels, perChannel);
      // One of each (Berth's marker can be destroyed once), in a random order.
      let berthRun: FanOut;
      let bareRun: FanOut;
      const berthFirst = Math.random() < 0.5;
      if (berthFirst) {
        berthRun = await runBerth();
        bareRun = await runBare();
      } else {
        bareRun = await runBare();
        berthRun = await runBerth();
      }
      bareClient.close();
      const die = await engineTap.waitFor((e) => e.action === "die", DELIVER_MS, `die of '${MARKER}'`);

      const last = Math.max(...berthRun.latencies);
      const bareLast = Math.max(...bareRun.latencies);
      return [
        {
          scenario: "watch-fanout",
          figure: `publish→last receipt, ${n} streams`,
          unit: "ms",
          berth: last,
          raw: bareLast,
          target: `≤ ${TARGET_RATIO}× bare server`,
          met: last <= TARGET_RATIO * bareLast,
          note: `${channels} grpc-js channels × ${perChannel} Watch streams of one container, one client process receiving on ${RECEIVERS} threads; the event's own \`time\` (the server's clock, ms) to receipt (same host clock). Floor = a bare grpc-js server in a child process (bench/bare-server.ts) writing one pre-encoded event to as many streams, no logic; ${berthFirst ? "Berth" : "the floor"} ran first. Streams took ${berthRun.openMs} ms (Berth) and ${bareRun.openMs} ms (bare) to open. Spread: berth ${spread(berthRun.latencies, 0)} ms, bare ${spread(bareRun.latencies, 0)} ms`,
        },
        { scenario: "watch-fanout", figure: `publish→receipt ${p99Label(n)}`, unit: "ms", berth: percentile(berthRun.latencies, 99), raw: percentile(bareRun.latencies, 99) },
        { scenario: "watch-fanout", figure: "publish→receipt median", unit: "ms", berth: median(berthRun.latencies), raw: median(bareRun.latencies) },
        { scenario: "watch-fanout", figure: "publish→first receipt (any stream)", unit: "ms", berth: Math.min(...berthRun.latencies), raw: Math.min(...bareRun.latencies) },
        {
          scenario: "watch-fanout",
          figure: "server memory per stream",
          unit: "KB",
          berth: berthRun.perStreamKb,
          raw: bareRun.perStreamKb,
          target: `≤ ${TARGET_KB} KB`,
          met: berthRun.perStreamKb <= TARGET_KB,
          note: `(VmRSS after all ${n} streams had their snapshot and ${SETTLE_MS} ms of quiet − VmRSS before opening them) / ${n}, from /proc/<pid>/status: Berth ${(berthRun.rssBefore / 1024).toFixed(1)} → ${(berthRun.rssAfter / 1024).toFixed(1)} MiB, bare ${(bareRun.rssBefore / 1024).toFixed(1)} → ${(bareRun.rssAfter / 1024).toFixed(1)} MiB; no forced GC, so garbage not yet collected counts`,
        },
        { scenario: "watch-fanout", figure: "engine /events delivery, 1 subscriber (context)", unit: "ms", raw: die.receivedMs - die.stampedMs, berthText: "", note: "the marker's die event on a raw /events subscription: timeNano → receipt" },
      ];
    } finally {
      engineTap?.close();
      await bestEffort(ctx.progress, "stopping the bare server", () => bare?.stop());
      await bestEffort(ctx.progress, "stopping Berth", () => berth?.stop());
      await bestEffort(ctx.progress, "removing Berth's containers", () => cleanupHome(ctx.docker, home));
      await bestEffort(ctx.progress, "removing the bare server's dir", () => removeTempDir(bareDir));
    }
  },
};
