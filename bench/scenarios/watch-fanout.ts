import { status as grpcStatus, type Client, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { LaunchResult, State, type WatchResponse } from "../../src/gen/berth/v1/containerizer_pb.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { BenchBerth, cleanupHome, newBerthHome } from "../bench-berth.js";
import { benchLaunch } from "../bench-launch.js";
import { BerthEventTap } from "../berth-event-tap.js";
import { timestampMs, wallNowMs } from "../clock.js";
import { pollUntil, withDeadline } from "../deadline.js";
import { EngineEventTap } from "../engine-events.js";
import { containerizerClient, openWatch } from "../grpc-clients.js";
import { ENGINE_CALL_MS } from "../raw-engine.js";
import type { Figure } from "../report.js";
import type { BenchContext, Scenario } from "../scenario.js";
import { median, percentile } from "../stats.js";
import { bestEffort } from "../best-effort.js";

const MARKER = "fanout-marker";
const OPEN_MS = 180_000;
const DELIVER_MS = 60_000;
const SETTLE_MS = 1_000;
const TARGET_P99_MS = 200;
const TARGET_KB = 20;

/** What one Watch stream saw. */
interface StreamRecord {
  stream: ClientReadableStream<WatchResponse>;
  opened: boolean;
  /** publish → receipt of the first live event, ms. */
  latencyMs?: number;
  liveState?: State;
  ended: boolean;
  error?: string;
}

/**
 * 10,000 Watch streams on one container over separate channels from this process, Berth in a
 * child process: one event (the marker's DESTROYING) fanned out to all of them, timed from its
 * `time` to each receipt; and Berth's RSS growth per open stream.
 */
export const watchFanoutScenario: Scenario = {
  name: "watch-fanout",
  describe: "10,000 Watch streams, one event fanned out: p99 publish→receipt, server memory per stream",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const channels = ctx.quick ? 2 : 20;
    const perChannel = ctx.quick ? 100 : 500;
    const n = channels * perChannel;
    const home = await newBerthHome("fanout");
    const clients: Client[] = [];
    const records: StreamRecord[] = [];
    let berth: BenchBerth | undefined;
    let engineTap: EngineEventTap | undefined;
    try {
      berth = await BenchBerth.start(home);
      const b = berth;
      const tap = new BerthEventTap(b.client);
      const res = await withDeadline(b.client.launch(benchLaunch(MARKER, ctx.image, "sleep 3600")), ENGINE_CALL_MS, `Launch of '${MARKER}'`);
      if (res.result !== LaunchResult.LAUNCHED) throw new Error(`Launch of '${MARKER}' answered ${LaunchResult[res.result]}`);
      await tap.waitState(MARKER, State.RUNNING, 60_000);
      // Only the measured streams stay open.
      tap.close();
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      const rssBefore = b.rssKib();

      ctx.progress(`watch-fanout: opening ${n} streams on ${channels} channels`);
      // A local subchannel pool per client: otherwise grpc-js shares one connection among equal targets.
      for (let c = 0; c < channels; c++) clients.push(containerizerClient(home.address, { "grpc.use_local_subchannel_pool": 1 }));
      for (const client of clients) {
        for (let s = 0; s < perChannel; s++) {
          const stream = openWatch(client, { containerIds: [{ value: MARKER }] });
          const record: StreamRecord = { stream, opened: false, ended: false };
          stream.on("data", (r: WatchResponse) => {
            const event = r.event!;
            if (event.snapshot) {
              record.opened = true;
              return;
            }
            if (record.latencyMs !== undefined) return;
            record.latencyMs = wallNowMs() - timestampMs(event.time);
            record.liveState = event.kind.case === "stateChanged" ? event.kind.value.state : undefined;
          });
          stream.on("end", () => (record.ended = true));
          stream.on("error", (err: ServiceError) => {
            record.ended = true;
            if (err.code !== grpcStatus.CANCELLED) record.error = `${grpcStatus[err.code]} ${err.details}`;
          });
          records.push(record);
        }
      }
      const t0 = Date.now();
      await pollUntil(async () => {
        const failed = records.find((r) => r.error !== undefined);
        if (failed) throw new Error(`a Watch stream failed while opening: ${failed.error}`);
        return records.every((r) => r.opened);
      }, OPEN_MS, 50, `all ${n} Watch streams receiving their snapshot`);
      const openMs = Date.now() - t0;
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      const rssAfter = b.rssKib();
      ctx.progress(`watch-fanout: ${n} streams open in ${openMs} ms; Berth RSS ${(rssBefore / 1024).toFixed(1)} → ${(rssAfter / 1024).toFixed(1)} MiB`);

      engineTap = await EngineEventTap.open(ctx.docker, [`${LABEL_AGENT_ID}=${home.agentId}`, `${LABEL_CONTAINER_ID}=${MARKER}`]);
      const destroyed = withDeadline(b.client.destroy(MARKER), DELIVER_MS, `Destroy of '${MARKER}'`);
      await pollUntil(async () => records.every((r) => r.latencyMs !== undefined || r.error !== undefined), DELIVER_MS, 20, `the marker's DESTROYING event reaching all ${n} streams`);
      await destroyed;
      const die = await engineTap.waitFor((e) => e.action === "die", DELIVER_MS, `die of '${MARKER}'`);
      await pollUntil(async () => records.every((r) => r.ended), DELIVER_MS, 50, `all ${n} Watch streams ending after the termination`);

      const failed = records.filter((r) => r.error !== undefined);
      if (failed.length > 0) throw new Error(`${failed.length} of ${n} Watch streams failed; first: ${failed[0]!.error}`);
      const wrong = records.find((r) => r.liveState !== State.DESTROYING);
      if (wrong) throw new Error(`a stream's first live event was ${wrong.liveState === undefined ? "not a state change" : State[wrong.liveState]}, not DESTROYING`);
      const latencies = records.map((r) => r.latencyMs!);
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
          note: `${channels} grpc-js channels × ${perChannel} Watch streams of one container, one client process; the event's own \`time\` (Berth's clock, ms) to receipt (same host clock); the receipt side decodes all ${n} copies on one event loop, so the tail includes the client's own work; streams took ${openMs} ms to open`,
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
      for (const r of records) if (!r.ended) r.stream.cancel();
      for (const c of clients) c.close();
      engineTap?.close();
      await bestEffort(ctx.progress, "stopping Berth", () => berth?.stop());
      await bestEffort(ctx.progress, "removing Berth\'s containers", () => cleanupHome(ctx.docker, home));
    }
  },
};
