import { State } from "../../src/gen/berth/v1/containerizer_pb.js";
import { BenchBerth, cleanupHome, newBerthHome } from "../bench-berth.js";
import { launchOrThrow } from "../bench-launch.js";
import { BerthEventTap } from "../berth-event-tap.js";
import { wallNowMs } from "../clock.js";
import { withDeadline } from "../deadline.js";
import { openRawEngine } from "../raw-engine.js";
import type { Figure } from "../report.js";
import type { BenchContext, Scenario } from "../scenario.js";
import { median, percentile } from "../stats.js";
import { bestEffort } from "../best-effort.js";

const COMMAND = "sleep 0.5";
const RUNNING_MS = 60_000;
const EXIT_MS = 30_000;

/** Launch → RUNNING event, serial, beside raw create+start; each pair alternates who goes first. */
export const launchScenario: Scenario = {
  name: "launch",
  describe: "Launch → RUNNING event, serial launches of a short busybox command, vs raw create+start",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const n = ctx.quick ? 5 : 30;
    const home = await newBerthHome("launch");
    const { raw, dispose } = await openRawEngine(ctx.docker, ctx.image, `${ctx.run}-launch`);
    let berth: BenchBerth | undefined;
    let tap: BerthEventTap | undefined;
    try {
      berth = await BenchBerth.start(home);
      tap = new BerthEventTap(berth.client);
      const b = berth;
      const t = tap;
      const berthMs: number[] = [];
      const rawMs: number[] = [];

      const oneBerth = async (i: number): Promise<number> => {
        const id = `launch-${i < 0 ? "warm" : i}`;
        const t0 = wallNowMs();
        await launchOrThrow(b.client, id, ctx.image, COMMAND);
        const running = await t.waitState(id, State.RUNNING, RUNNING_MS);
        const ms = running.receivedMs - t0;
        // Wait for the exit so that no container's teardown overlaps the next measurement.
        await t.waitState(id, State.TERMINATED, EXIT_MS);
        t.forget(id);
        return ms;
      };
      const oneRaw = async (): Promise<number> => {
        const { container, ms } = await raw.createStart(COMMAND);
        await withDeadline(container.wait(), EXIT_MS, `exit of raw container '${container.id}'`);
        await raw.remove(container.id);
        return ms;
      };

      // One untimed pair first: the first launch pays for cold caches on both sides.
      await oneBerth(-1);
      await oneRaw();
      for (let i = 0; i < n; i++) {
        if (i % 2 === 0) {
          berthMs.push(await oneBerth(i));
          rawMs.push(await oneRaw());
        } else {
          rawMs.push(await oneRaw());
          berthMs.push(await oneBerth(i));
        }
        if ((i + 1) % 10 === 0) ctx.progress(`launch: ${i + 1}/${n}`);
      }
      const bMed = median(berthMs);
      const rMed = median(rawMs);
      return [
        { scenario: "launch", figure: `Launch→RUNNING median (n=${n})`, unit: "ms", berth: bMed, raw: rMed, target: "≤ 1.03× raw median", met: bMed <= 1.03 * rMed, note: `raw = create+start of the same image, command ('${COMMAND}'), network none, bind-mounted sandbox and labels; pairs alternate who goes first; each container exits before the next launch` },
        { scenario: "launch", figure: `Launch→RUNNING p99 (n=${n})`, unit: "ms", berth: percentile(berthMs, 99), raw: percentile(rawMs, 99) },
      ];
    } finally {
      tap?.close();
      await bestEffort(ctx.progress, "stopping Berth", () => berth?.stop());
      await bestEffort(ctx.progress, "removing Berth\'s containers", () => cleanupHome(ctx.docker, home));
      await bestEffort(ctx.progress, "removing raw containers", dispose);
    }
  },
};
