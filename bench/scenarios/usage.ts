import { status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import { State, type UsageResponse } from "../../src/gen/berth/v1/containerizer_pb.js";
import type { BerthClient } from "../../test/harness/berth-client.js";
import { BenchBerth, cleanupHome, newBerthHome } from "../bench-berth.js";
import { launchOrThrow } from "../bench-launch.js";
import { BerthEventTap } from "../berth-event-tap.js";
import { wallNowMs } from "../clock.js";
import { withDeadline } from "../deadline.js";
import { ENGINE_CALL_MS } from "../raw-engine.js";
import type { Figure } from "../report.js";
import type { BenchContext, Scenario } from "../scenario.js";
import { median, percentile } from "../stats.js";
import { bestEffort } from "../best-effort.js";
import { NOOP_DESCRIPTION, noopCall } from "../noop-call.js";

// A busy container: its cgroup counters move on every read.
const COMMAND = "while :; do :; done";
const RUNNING_MS = 60_000;
const USAGE_MS = 5_000;
// The engine's stats endpoint waits for two samples (~1 s) per one-shot call.
const STATS_MS = 30_000;
const TARGET_MS = 2;

/** One Usage(id) call, bounded. */
function usage(client: BerthClient, id: string): Promise<UsageResponse> {
  return withDeadline(client.usage(id), USAGE_MS, `Usage of '${id}'`);
}

/** Usage() per call on a busy container, beside the engine's one-shot stats endpoint. */
export const usageScenario: Scenario = {
  name: "usage",
  describe: "Usage() per call on a busy container (median, p99), vs the engine's stats endpoint",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const blocks = ctx.quick ? 2 : 8;
    const perBlock = ctx.quick ? 25 : 125;
    // Unmeasured calls first: a polled Usage() runs in JIT-compiled code on both ends, and the first
    // hundred calls of a fresh process measure V8's warm-up, not Berth.
    const warmup = ctx.quick ? 50 : 300;
    const home = await newBerthHome("usage");
    let berth: BenchBerth | undefined;
    let tap: BerthEventTap | undefined;
    try {
      berth = await BenchBerth.start(home);
      tap = new BerthEventTap(berth.client);
      const id = "usage-busy";
      await launchOrThrow(berth.client, id, ctx.image, COMMAND);
      await tap.waitState(id, State.RUNNING, RUNNING_MS);
      const engineId = (await withDeadline(berth.client.status(id), ENGINE_CALL_MS, `Status of '${id}'`)).engineId;
      const container = ctx.docker.getContainer(engineId);

      try {
        await usage(berth.client, id);
      } catch (err) {
        if ((err as ServiceError).code !== grpcStatus.UNIMPLEMENTED) throw err;
        return [
          { scenario: "usage", figure: "Usage() per call, p99", unit: "ms", berthText: "not available", rawText: "", target: `p99 ≤ ${TARGET_MS} ms`, note: `Usage answers UNIMPLEMENTED in this build: ${(err as ServiceError).details}` },
        ];
      }

      for (let i = 0; i < warmup; i++) {
        await usage(berth.client, id);
        await noopCall(berth.client);
      }

      const usageMs: number[] = [];
      const floorMs: number[] = [];
      const statsMs: number[] = [];
      // Blocks of Usage calls alternate with one stats call, so drift hits both; each Usage call is
      // paired with a no-op call on the same channel, so the transport's own cost is measured beside it.
      for (let block = 0; block < blocks; block++) {
        for (let i = 0; i < perBlock; i++) {
          let t0 = wallNowMs();
          await usage(berth.client, id);
          usageMs.push(wallNowMs() - t0);
          t0 = wallNowMs();
          await noopCall(berth.client);
          floorMs.push(wallNowMs() - t0);
        }
        const t0 = wallNowMs();
        await withDeadline(container.stats({ stream: false }), STATS_MS, `stats of '${engineId}'`);
        statsMs.push(wallNowMs() - t0);
      }
      const p99 = percentile(usageMs, 99);
      const floorP99 = percentile(floorMs, 99);
      const note = `${usageMs.length} serial Usage() calls over gRPC on a unix socket after ${warmup} unmeasured ones; raw = ${statsMs.length} one-shot GET /containers/{id}/stats?stream=false on the same container`;
      const floorNote =
        `${NOOP_DESCRIPTION}, interleaved with the calls above: ` +
        `what any gRPC call costs on this machine; Usage's own share is the difference of the medians, ${(median(usageMs) - median(floorMs)).toFixed(2)} ms`;
      const missNote = p99 > TARGET_MS && floorP99 > TARGET_MS ? `; a no-op call's p99 here is ${floorP99.toFixed(1)} ms, itself above the target` : "";
      return [
        { scenario: "usage", figure: `Usage() per call, median (n=${usageMs.length})`, unit: "ms", berth: median(usageMs), raw: median(statsMs), note },
        { scenario: "usage", figure: `Usage() per call, p99 (n=${usageMs.length})`, unit: "ms", berth: p99, raw: percentile(statsMs, 99), target: `p99 ≤ ${TARGET_MS} ms`, met: p99 <= TARGET_MS, ...(missNote ? { note: missNote.slice(2) } : {}) },
        { scenario: "usage", figure: `no-op gRPC call, median (n=${floorMs.length})`, unit: "ms", berth: median(floorMs), rawText: "", note: floorNote },
        { scenario: "usage", figure: `no-op gRPC call, p99 (n=${floorMs.length})`, unit: "ms", berth: floorP99, rawText: "" },
      ];
    } finally {
      tap?.close();
      await bestEffort(ctx.progress, "stopping Berth", () => berth?.stop());
      await bestEffort(ctx.progress, "removing Berth\'s containers", () => cleanupHome(ctx.docker, home));
    }
  },
};
