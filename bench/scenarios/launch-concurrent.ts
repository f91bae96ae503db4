import { State } from "../../src/gen/berth/v1/containerizer_pb.js";
import { BenchBerth, cleanupHome, newBerthHome } from "../bench-berth.js";
import { launchOrThrow } from "../bench-launch.js";
import { BerthEventTap } from "../berth-event-tap.js";
import { wallNowMs } from "../clock.js";
import { forEachBounded, gate } from "../../src/containerizer/bounded.js";
import { withDeadline } from "../deadline.js";
import { openRawEngine, type RawEngine } from "../raw-engine.js";
import type { Figure } from "../report.js";
import type { BenchContext, Scenario } from "../scenario.js";
import { median, shuffled } from "../stats.js";
import { bestEffort } from "../best-effort.js";

// Long enough that every container is still up when the last of the batch starts.
const COMMAND = "sleep 300";
const BATCH_MS = 180_000;
const DESTROY_MS = 60_000;
/** Berth's own bound on creates and starts in flight (ENGINE_LAUNCH_CONCURRENCY in containerizer.ts). */
const BERTH_ENGINE_SLOTS = 8;
const TARGET_RATIO = 1.05;

/**
 * N launches at once until all are RUNNING, beside two floors: N raw create+start at once
 * (unbounded), and N raw create+start through the same bound Berth puts on itself (8 engine calls
 * in flight, starts before queued creates). Each round runs the three in a random order.
 */
export const launchConcurrentScenario: Scenario = {
  name: "launch-concurrent",
  describe: "50 launches at once until all RUNNING (wall time), vs 50 raw create+start at once, unbounded and bounded like Berth",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const n = ctx.quick ? 5 : 50;
    const rounds = ctx.quick ? 1 : 3;
    const run = `${ctx.run}-concurrent`;
    const home = await newBerthHome("concurrent");
    const { raw, dispose } = await openRawEngine(ctx.docker, ctx.image, run);
    let berth: BenchBerth | undefined;
    let tap: BerthEventTap | undefined;
    try {
      berth = await BenchBerth.start(home);
      tap = new BerthEventTap(berth.client);
      const b = berth;
      const t = tap;
      const berthWall: number[] = [];
      const rawWall: number[] = [];
      const boundedWall: number[] = [];

      const berthBatch = async (round: number): Promise<number> => {
        const ids = Array.from({ length: n }, (_, i) => `conc-${round}-${i}`);
        const t0 = wallNowMs();
        await Promise.all(
          ids.map(async (id) => {
            await launchOrThrow(b.client, id, ctx.image, COMMAND);
          }),
        );
        const running = await Promise.all(ids.map((id) => t.waitState(id, State.RUNNING, BATCH_MS)));
        const wall = Math.max(...running.map((r) => r.receivedMs)) - t0;
        // Teardown is not measured; destroys run a few at a time to keep the engine calm for the next batch.
        await forEachBounded(ids, 10, async (id) => {
          await withDeadline(b.client.destroy(id), DESTROY_MS, `Destroy of '${id}'`);
          t.forget(id);
        });
        return wall;
      };
      const rawBatch = async (engine: RawEngine): Promise<number> => {
        const t0 = wallNowMs();
        const started = await Promise.all(Array.from({ length: n }, () => engine.createStart(COMMAND, engine.nextName(), BATCH_MS)));
        const wall = wallNowMs() - t0;
        await forEachBounded(started, 10, ({ container }) => engine.remove(container.id));
        return wall;
      };
      // Berth's scheduling policy on the raw engine: at most 8 creates/starts in flight, a start
      // served before any queued create (src/containerizer/launch-pipeline.ts).
      const boundedBatch = async (engine: RawEngine): Promise<number> => {
        const slots = gate(BERTH_ENGINE_SLOTS);
        const t0 = wallNowMs();
        const started = await Promise.all(
          Array.from({ length: n }, async () => {
            const name = engine.nextName();
            const container = await slots(() => withDeadline(engine.docker.createContainer(engine.spec(name, COMMAND)), BATCH_MS, `raw create of '${name}'`));
            await slots(() => withDeadline(container.start(), BATCH_MS, `raw start of '${name}'`), { urgent: true });
            return container;
          }),
        );
        const wall = wallNowMs() - t0;
        await forEachBounded(started, 10, (container) => engine.remove(container.id));
        return wall;
      };

      const contestants = [
        { name: "berth", into: berthWall, run: (round: number) => berthBatch(round) },
        { name: "raw", into: rawWall, run: () => rawBatch(raw) },
        { name: "raw bounded", into: boundedWall, run: () => boundedBatch(raw) },
      ];
      for (let round = 0; round < rounds; round++) {
        const order = shuffled(contestants);
        for (const c of order) c.into.push(await c.run(round));
        ctx.progress(`launch-concurrent: round ${round + 1}/${rounds} (${order.map((c) => c.name).join(", ")}): berth ${berthWall.at(-1)!.toFixed(0)} ms, raw ${rawWall.at(-1)!.toFixed(0)} ms, raw bounded ${boundedWall.at(-1)!.toFixed(0)} ms`);
      }
      const bWall = median(berthWall);
      const rWall = median(rawWall);
      const boundWall = median(boundedWall);
      const perRound = (xs: number[]) => xs.map((x) => x.toFixed(0)).join("/");
      return [
        {
          scenario: "launch-concurrent",
          figure: `${n} at once → all RUNNING, wall (median of ${rounds}) vs raw unbounded`,
          unit: "ms",
          berth: bWall,
          raw: rWall,
          target: `≤ ${TARGET_RATIO}× raw`,
          met: bWall <= TARGET_RATIO * rWall,
          note: `raw = ${n} create+start at once (same options as Berth's); each round runs Berth and both raw floors in a random order; per round berth ${perRound(berthWall)} ms, raw ${perRound(rawWall)} ms, raw bounded ${perRound(boundedWall)} ms`,
        },
        {
          scenario: "launch-concurrent",
          figure: `${n} at once → all RUNNING, wall (median of ${rounds}) vs raw bounded like Berth`,
          unit: "ms",
          berth: bWall,
          raw: boundWall,
          target: `≤ ${TARGET_RATIO}× raw bounded`,
          met: bWall <= TARGET_RATIO * boundWall,
          note: `raw bounded = the same ${n} create+start with Berth's own policy: at most ${BERTH_ENGINE_SLOTS} engine calls in flight, starts served before queued creates`,
        },
      ];
    } finally {
      tap?.close();
      await bestEffort(ctx.progress, "stopping Berth", () => berth?.stop());
      await bestEffort(ctx.progress, "removing Berth\'s containers", () => cleanupHome(ctx.docker, home));
      await bestEffort(ctx.progress, "removing raw containers", dispose);
    }
  },
};
