import { State } from "../../src/gen/berth/v1/containerizer_pb.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { BenchBerth, cleanupHome, newBerthHome } from "../bench-berth.js";
import { launchOrThrow } from "../bench-launch.js";
import { BerthEventTap } from "../berth-event-tap.js";
import { wallNowMs } from "../clock.js";
import { withDeadline } from "../deadline.js";
import { EngineEventTap } from "../engine-events.js";
import type { Figure } from "../report.js";
import type { BenchContext, Scenario } from "../scenario.js";
import { median, p99Label, percentile, spread } from "../stats.js";
import { bestEffort } from "../best-effort.js";
import { checkBerthExit, checkRawExit } from "../exits.js";
import { ENGINE_CALL_MS } from "../raw-engine.js";

const COMMAND = "sleep 0.3";
const RUNNING_MS = 60_000;
const EXIT_MS = 30_000;
/** Berth's own cost allowed on top of the engine's wait endpoint: median and p99. */
const TARGET_MEDIAN_MS = 2;
const TARGET_P99_MS = 5;

/**
 * Engine `die` → Berth's client learns of the termination, through Wait and through Watch. The
 * die's own timestamp comes from a separate raw /events subscription. The floor is the engine's
 * own `POST /containers/{id}/wait` on the same container, opened (like Berth's Wait) long before
 * the exit and timed from the same die stamp: what a client of the raw engine waits anyway.
 */
export const exitScenario: Scenario = {
  name: "exit",
  describe: "engine die event → Wait returns / TERMINATED event delivered (p99), vs the die event's own delivery",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const n = ctx.quick ? 5 : 30;
    const home = await newBerthHome("exit");
    let berth: BenchBerth | undefined;
    let tap: BerthEventTap | undefined;
    let engineTap: EngineEventTap | undefined;
    try {
      berth = await BenchBerth.start(home);
      tap = new BerthEventTap(berth.client);
      engineTap = await EngineEventTap.open(ctx.docker, [`${LABEL_AGENT_ID}=${home.agentId}`], ["die"]);
      const b = berth;
      const t = tap;
      const e = engineTap;
      const viaWait: number[] = [];
      const viaWatch: number[] = [];
      const viaEngineWait: number[] = [];
      const dieDelivery: number[] = [];

      const one = async (i: number) => {
        const id = `exit-${i < 0 ? "warm" : i}`;
        await launchOrThrow(b.client, id, ctx.image, COMMAND);
        await t.waitState(id, State.RUNNING, RUNNING_MS);
        const engineId = (await withDeadline(b.client.status(id), ENGINE_CALL_MS, `Status of '${id}'`)).engineId;
        // Both waits are in place long before the exit (the command sleeps), so they measure delivery only.
        const engineWaited = withDeadline(ctx.docker.getContainer(engineId).wait(), EXIT_MS, `engine wait of '${engineId}'`).then((res) => {
          const at = wallNowMs();
          checkRawExit(engineId, res, 0);
          return at;
        });
        const waited = withDeadline(b.client.wait(id), EXIT_MS, `Wait of '${id}'`).then((res) => {
          const at = wallNowMs();
          checkBerthExit(id, res.termination, 0);
          return at;
        });
        const [waitMs, engineWaitMs, terminated, die] = await Promise.all([
          waited,
          engineWaited,
          t.waitState(id, State.TERMINATED, EXIT_MS),
          e.waitFor((ev) => ev.attributes[LABEL_CONTAINER_ID] === id, EXIT_MS, `die of '${id}'`),
        ]);
        t.forget(id);
        // Nothing of this sample may overlap the next one: Destroy answers once the container is gone.
        await withDeadline(b.client.destroy(id), EXIT_MS, `Destroy of '${id}'`);
        if (i < 0) return;
        viaWait.push(waitMs - die.stampedMs);
        viaWatch.push(terminated.receivedMs - die.stampedMs);
        viaEngineWait.push(engineWaitMs - die.stampedMs);
        dieDelivery.push(die.receivedMs - die.stampedMs);
      };

      await one(-1);
      for (let i = 0; i < n; i++) {
        await one(i);
        if ((i + 1) % 10 === 0) ctx.progress(`exit: ${i + 1}/${n}`);
      }
      const note = `time from the die event's timeNano (engine clock = this host's clock) to receipt; floor = the engine's own POST /containers/{id}/wait on the same container, opened before the exit, from the same die stamp; n=${n} serial exits of '${COMMAND}', each container destroyed before the next launch; Berth runs with its default --docker_remove_delay 0. Spread: Wait ${spread(viaWait)} ms, engine wait ${spread(viaEngineWait)} ms`;
      const p99 = p99Label(n);
      const diffMedian = median(viaWait) - median(viaEngineWait);
      const diffP99 = percentile(viaWait, 99) - percentile(viaEngineWait, 99);
      return [
        { scenario: "exit", figure: "die → Wait returns, median", unit: "ms", berth: median(viaWait), raw: median(viaEngineWait), note },
        { scenario: "exit", figure: `die → Wait returns, ${p99}`, unit: "ms", berth: percentile(viaWait, 99), raw: percentile(viaEngineWait, 99) },
        { scenario: "exit", figure: "Wait − engine wait, median / p99", unit: "ms", berthText: `${diffMedian.toFixed(1)} / ${diffP99.toFixed(1)} ms`, rawText: "", target: `≤ ${TARGET_MEDIAN_MS} / ≤ ${TARGET_P99_MS} ms`, met: diffMedian <= TARGET_MEDIAN_MS && diffP99 <= TARGET_P99_MS },
        { scenario: "exit", figure: "die → TERMINATED event, median", unit: "ms", berth: median(viaWatch), raw: median(viaEngineWait) },
        { scenario: "exit", figure: `die → TERMINATED event, ${p99}`, unit: "ms", berth: percentile(viaWatch, 99), raw: percentile(viaEngineWait, 99) },
        { scenario: "exit", figure: "die event delivery on /events, median / p99 (context)", unit: "ms", berthText: "", rawText: `${median(dieDelivery).toFixed(1)} / ${percentile(dieDelivery, 99).toFixed(1)} ms`, note: "the die event's own delivery on a separate raw /events subscription (timeNano → receipt): what any events client waits" },
      ];
    } finally {
      engineTap?.close();
      tap?.close();
      await bestEffort(ctx.progress, "stopping Berth", () => berth?.stop());
      await bestEffort(ctx.progress, "removing Berth\'s containers", () => cleanupHome(ctx.docker, home));
    }
  },
};
