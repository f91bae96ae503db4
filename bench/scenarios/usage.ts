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
import { median, p99Label, percentile, spread } from "../stats.js";
import { bestEffort } from "../best-effort.js";
import { NOOP_DESCRIPTION, noopCall } from "../noop-call.js";

// A busy container: its cgroup counters move on every read.
const COMMAND = "while :; do :; done";
const RUNNING_MS = 60_000;
const USAGE_MS = 5_000;
// The engine's stats endpoint with one-shot (API 1.41) answers one sample at once (without it, it
// waits ~1 s for a second sample to compute rates).
const STATS_MS = 30_000;
/** Berth's own cost allowed on top of a no-op call: median difference and p99 ratio. */
const TARGET_MEDIAN_DIFF_MS = 0.1;
const TARGET_P99_RATIO = 1.3;

/**
 * One Usage(id) call, bounded the way the no-op floor is (a gRPC deadline on the call): a timer and
 * a Promise.race of the bench's own around one side only cost that side ~15 µs of client time.
 */
function usage(client: BerthClient, id: string): Promise<UsageResponse> {
  return client.usage(id, { deadline: new Date(Date.now() + USAGE_MS) });
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
          { scenario: "usage", figure: "Usage() per call", unit: "ms", berthText: "not available", rawText: "", error: `Usage answers UNIMPLEMENTED in this build: ${(err as ServiceError).details}` },
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
      // paired with a no-op call on the same channel, in a random order, so the transport's own
      // cost is measured beside it under the same conditions.
      const timed = async (call: () => Promise<unknown>, into: number[]) => {
        const t0 = wallNowMs();
        await call();
        into.push(wallNowMs() - t0);
      };
      for (let block = 0; block < blocks; block++) {
        for (let i = 0; i < perBlock; i++) {
          if (Math.random() < 0.5) {
            await timed(() => usage(berth!.client, id), usageMs);
            await timed(() => noopCall(berth!.client), floorMs);
          } else {
            await timed(() => noopCall(berth!.client), floorMs);
            await timed(() => usage(berth!.client, id), usageMs);
          }
        }
        await timed(() => withDeadline(container.stats({ stream: false, "one-shot": true } as { stream: false }), STATS_MS, `stats of '${engineId}'`), statsMs);
      }
      const n = usageMs.length;
      const diff = median(usageMs) - median(floorMs);
      const p99Ratio = percentile(usageMs, 99) / percentile(floorMs, 99);
      const note = `${n} serial Usage() calls over gRPC on a unix socket after ${warmup} unmeasured ones (of each call); floor = ${NOOP_DESCRIPTION}, paired with each Usage() call in a random order. Spread: Usage ${spread(usageMs, 2)} ms, no-op ${spread(floorMs, 2)} ms`;
      return [
        { scenario: "usage", figure: `Usage() per call, median (n=${n})`, unit: "ms", berth: median(usageMs), raw: median(floorMs), note },
        { scenario: "usage", figure: `Usage() per call, ${p99Label(n)}`, unit: "ms", berth: percentile(usageMs, 99), raw: percentile(floorMs, 99), target: `≤ ${TARGET_P99_RATIO}× no-op p99`, met: p99Ratio <= TARGET_P99_RATIO },
        { scenario: "usage", figure: "Usage() median − no-op median", unit: "ms", berthText: `${diff.toFixed(2)} ms`, rawText: "", target: `≤ ${TARGET_MEDIAN_DIFF_MS} ms`, met: diff <= TARGET_MEDIAN_DIFF_MS },
        {
          scenario: "usage",
          figure: `engine stats, one-shot, median / ${p99Label(statsMs.length)} (context)`,
          unit: "ms",
          berthText: "",
          rawText: `${median(statsMs).toFixed(1)} / ${percentile(statsMs, 99).toFixed(1)} ms`,
          note: `GET /containers/{id}/stats?stream=false&one-shot=true (API 1.41: one sample, no second-sample wait) on the same container, once per block of ${perBlock} Usage() calls`,
        },
      ];
    } finally {
      tap?.close();
      await bestEffort(ctx.progress, "stopping Berth", () => berth?.stop());
      await bestEffort(ctx.progress, "removing Berth\'s containers", () => cleanupHome(ctx.docker, home));
    }
  },
};
