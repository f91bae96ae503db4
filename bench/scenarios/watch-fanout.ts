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
import { median, percentile } from "../stats.js";
import { bestEffort } from "../best-effort.js";

const MARKER = "fanout-marker";
const OPEN_MS = 180_000;
const DELIVER_MS = 60_000;
const SETTLE_MS = 1_000;
const CLOSE_MS = 10_000;
const TARGET_P99_MS = 200;
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

/**
 * 10,000 Watch streams on one container over separate channels from this process (received on
 * RECEIVERS threads), Berth in a child process: one event (the marker's DESTROYING) fanned out to
 * all of them, timed from its `time` to each receipt; and Berth's RSS growth per open stream.
 */
export const watchFanoutScenario: Scenario = {
  name: "watch-fanout",
  describe: "10,000 Watch streams, one event fanned out: p99 publish→receipt, server memory per stream",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const channels = ctx.quick ? 2 : 20;
    const perChannel = ctx.quick ? 100 : 500;
    const n = channels * perChannel;
    const home = await newBerthHome("fanout");
    const receivers: Receiver[] = [];
    let berth: BenchBerth | undefined;
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
      const rssBefore = b.rssKib();

      ctx.progress(`watch-fanout: opening ${n} streams on ${channels} channels, received on ${RECEIVERS} threads`);
      for (let r = 0; r < RECEIVERS; r++) {
        const share = Math.floor(channels / RECEIVERS) + (r < channels % RECEIVERS ? 1 : 0);
        if (share > 0) receivers.push(new Receiver({ address: home.address, channels: share, perChannel, containerId: MARKER }));
      }
      const t0 = Date.now();
      await withDeadline(Promise.all(receivers.map((r) => r.opened)), OPEN_MS, `all ${n} Watch streams receiving their snapshot`);
      const openMs = Date.now() - t0;
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      const rssAfter = b.rssKib();
      ctx.progress(`watch-fanout: ${n} streams open in ${openMs} ms; Berth RSS ${(rssBefore / 1024).toFixed(1)} → ${(rssAfter / 1024).toFixed(1)} MiB`);

      engineTap = await EngineEventTap.open(ctx.docker, [`${LABEL_AGENT_ID}=${home.agentId}`, `${LABEL_CONTAINER_ID}=${MARKER}`]);
      const destroyed = withDeadline(b.client.destroy(MARKER), DELIVER_MS, `Destroy of '${MARKER}'`);
      const reports = await withDeadline(Promise.all(receivers.map((r) => r.delivered)), DELIVER_MS, `the marker's DESTROYING event reaching all ${n} streams`);
      await destroyed;
      const die = await engineTap.waitFor((e) => e.action === "die", DELIVER_MS, `die of '${MARKER}'`);
      await withDeadline(Promise.all(receivers.map((r) => r.ended)), DELIVER_MS, `all ${n} Watch streams ending after the termination`);

      const wrong = reports.reduce((sum, r) => sum + r.notDestroying, 0);
      if (wrong > 0) throw new Error(`${wrong} streams' first live event was not DESTROYING`);
      const latencies = reports.flatMap((r) => r.latenciesMs);
      const p99 = percentile(latencies, 99);
      const perStreamKb = ((rssAfter - rssBefore) / n) * (1024 / 1000);
      return [
        {
          scenario: "watch-fanout",
          figure: `publish→receipt p99, ${n} streams`,
          unit: "ms",
          berth: p99,
          rawText: "n/a",
          target: `≤ ${TARGET_P99_MS} ms`,
          met: p99 <= TARGET_P99_MS,
          note: `${channels} grpc-js channels × ${perChannel} Watch streams of one container, one client process receiving on ${receivers.length} threads; the event's own \`time\` (Berth's clock, ms) to receipt (same host clock); the tail includes the client's own HTTP/2 and decoding work for ${n} copies; streams took ${openMs} ms to open`,
        },
        { scenario: "watch-fanout", figure: `publish→receipt median, ${n} streams`, unit: "ms", berth: median(latencies), rawText: "n/a" },
        {
          scenario: "watch-fanout",
          figure: "publish→first receipt (any stream)",
          unit: "ms",
          berth: Math.min(...latencies),
          rawText: "n/a",
          note: "when the first of the copies arrived: the rest of the spread up to p99 is writing (server) and decoding (client) the other copies",
        },
        {
          scenario: "watch-fanout",
          figure: "server memory per stream",
          unit: "KB",
          berth: perStreamKb,
          rawText: "n/a",
          target: `≤ ${TARGET_KB} KB`,
          met: perStreamKb <= TARGET_KB,
          note: `Berth in a child process; (VmRSS after all ${n} streams had their snapshot and ${SETTLE_MS} ms of quiet − VmRSS before opening them) / ${n}, from /proc/<pid>/status: ${(rssBefore / 1024).toFixed(1)} → ${(rssAfter / 1024).toFixed(1)} MiB; no forced GC, so garbage not yet collected counts`,
        },
        { scenario: "watch-fanout", figure: "engine /events delivery, 1 subscriber (context)", unit: "ms", raw: die.receivedMs - die.stampedMs, berthText: "", note: "the marker's die event on a raw /events subscription: timeNano → receipt" },
      ];
    } finally {
      await Promise.all(receivers.map((r) => r.close()));
      engineTap?.close();
      await bestEffort(ctx.progress, "stopping Berth", () => berth?.stop());
      await bestEffort(ctx.progress, "removing Berth\'s containers", () => cleanupHome(ctx.docker, home));
    }
  },
};
