import { State } from "../../src/gen/berth/v1/containerizer_pb.js";
import { BenchBerth, cleanupHome, newBerthHome } from "../bench-berth.js";
import { launchOrThrow } from "../bench-launch.js";
import { BerthEventTap } from "../berth-event-tap.js";
import { wallNowMs } from "../clock.js";
import { forEachBounded } from "../../src/containerizer/bounded.js";
import { withDeadline } from "../deadline.js";
import { openRawEngine, type RawEngine } from "../raw-engine.js";
import type { Figure } from "../report.js";
import type { BenchContext, Scenario } from "../scenario.js";
import { median } from "../stats.js";
import { bestEffort } from "../best-effort.js";

// Long enough that every container is still up when the last of the batch starts.
const COMMAND = "sleep 300";
const BATCH_MS = 180_000;
const DESTROY_MS = 60_000;

/** N launches at once until all are RUNNING, beside N raw create+start at once; rounds alternate. */
export const launchConcurrentScenario: Scenario = {
  name: "launch-concurrent",
  describe: "50 launches at once until all RUNNING (wall time), vs 50 raw create+start at once",
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

      for (let round = 0; round < rounds; round++) {
        if (round % 2 === 0) {
          berthWall.push(await berthBatch(round));
          rawWall.push(await rawBatch(raw));
        } else {
          rawWall.push(await rawBatch(raw));
          berthWall.push(await berthBatch(round));
        }
        ctx.progress(`launch-concurrent: round ${round + 1}/${rounds}: berth ${berthWall.at(-1)!.toFixed(0)} ms, raw ${rawWall.at(-1)!.toFixed(0)} ms`);
      }
      const bWall = median(berthWall);
      const rWall = median(rawWall);
      return [
        {
          scenario: "launch-concurrent",
          figure: `${n} at once → all RUNNING, wall (median of ${rounds})`,
          unit: "ms",
          berth: bWall,
          raw: rWall,
          target: "≤ 1.05× raw wall",
          met: bWall <= 1.05 * rWall,
          note: `raw = ${n} create+start at once (same options as Berth's); rounds alternate who goes first; per round berth ${berthWall.map((x) => x.toFixed(0)).join("/")} ms, raw ${rawWall.map((x) => x.toFixed(0)).join("/")} ms`,
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
