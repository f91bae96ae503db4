import { State } from "../../src/gen/berth/v1/containerizer_pb.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { BenchBerth, cleanupHome, newBerthHome } from "../bench-berth.js";
import { launchOrThrow } from "../bench-launch.js";
import { BerthEventTap } from "../berth-event-tap.js";
import { wallNowMs } from "../clock.js";
import { withDeadline } from "../deadline.js";
import { ENGINE_CALL_MS, openRawEngine } from "../raw-engine.js";
import type { Figure } from "../report.js";
import type { BenchContext, Scenario } from "../scenario.js";
import { median, p99Label, percentile, shuffled, spread } from "../stats.js";
import { bestEffort } from "../best-effort.js";
import { checkBerthExit, checkRawExit } from "../exits.js";

const COMMAND = "sleep 0.5";
const RUNNING_MS = 60_000;
const EXIT_MS = 30_000;
/** Berth's own cost the issue allows on top of the raw create+start, at the median. */
const TARGET_DIFF_MS = 5;
const TARGET_RATIO = 1.03;

/**
 * Launch → RUNNING event, serial, beside raw create+start. Both sides finish a sample completely
 * before the next one starts — the container exited AND removed from the engine (Berth's: Wait,
 * then Destroy's answer, then a list confirms it is gone) — and the order of each pair is random.
 */
export const launchScenario: Scenario = {
  name: "launch",
  describe: "Launch → RUNNING event, serial launches of a short busybox command, vs raw create+start",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const n = ctx.quick ? 5 : 40;
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
        // The whole teardown is awaited, so no removal overlaps the next sample (raw's is awaited too).
        checkBerthExit(id, (await withDeadline(b.client.wait(id), EXIT_MS, `Wait of '${id}'`)).termination, 0);
        await withDeadline(b.client.destroy(id), EXIT_MS, `Destroy of '${id}'`);
        const left = await withDeadline(ctx.docker.listContainers({ all: true, filters: { label: [`${LABEL_AGENT_ID}=${home.agentId}`, `${LABEL_CONTAINER_ID}=${id}`] } }), ENGINE_CALL_MS, "list");
        if (left.length > 0) throw new Error(`Berth's container of '${id}' is still in the engine after Destroy answered`);
        t.forget(id);
        return ms;
      };
      const oneRaw = async (): Promise<number> => {
        const { container, ms } = await raw.createStart(COMMAND);
        checkRawExit(container.id, await withDeadline(container.wait(), EXIT_MS, `exit of raw container '${container.id}'`), 0);
        await raw.remove(container.id);
        return ms;
      };

      // One untimed pair first: the first launch pays for cold caches on both sides.
      await oneBerth(-1);
      await oneRaw();
      for (const [i, berthFirst] of shuffled(Array.from({ length: n }, (_, i) => [i, i % 2 === 0] as const)).entries()) {
        if (berthFirst) {
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
      const diff = bMed - rMed;
      return [
        {
          scenario: "launch",
          figure: `Launch→RUNNING median (n=${n})`,
          unit: "ms",
          berth: bMed,
          raw: rMed,
          target: `≤ ${TARGET_RATIO}× raw median`,
          met: bMed <= TARGET_RATIO * rMed,
          note: `raw = create+start of the same image, command ('${COMMAND}'), network none, bind-mounted sandbox, labels and pids limit; each sample ends with its container exited and removed (Berth's: Wait, Destroy, then a list confirms it is gone) before the next starts; the order in each pair is random (half Berth first). Spread: berth ${spread(berthMs)} ms; raw ${spread(rawMs)} ms`,
        },
        { scenario: "launch", figure: "Launch→RUNNING median − raw median", unit: "ms", berthText: `${diff.toFixed(1)} ms`, rawText: "", target: `≤ ${TARGET_DIFF_MS} ms`, met: diff <= TARGET_DIFF_MS },
        { scenario: "launch", figure: `Launch→RUNNING ${p99Label(n)}`, unit: "ms", berth: percentile(berthMs, 99), raw: percentile(rawMs, 99) },
      ];
    } finally {
      tap?.close();
      await bestEffort(ctx.progress, "stopping Berth", () => berth?.stop());
      await bestEffort(ctx.progress, "removing Berth's containers", () => cleanupHome(ctx.docker, home));
      await bestEffort(ctx.progress, "removing raw containers", dispose);
    }
  },
};
