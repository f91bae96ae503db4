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
import { median, percentile } from "../stats.js";
import { bestEffort } from "../best-effort.js";

const COMMAND = "sleep 0.3";
const RUNNING_MS = 60_000;
const EXIT_MS = 30_000;
const TARGET_MS = 20;

/**
 * Engine `die` → Berth's client learns of the termination, through Wait and through Watch. The
 * die's own timestamp comes from a separate raw /events subscription, whose delivery latency
 * (timeNano → receipt) is the raw figure: what any client of the engine waits anyway.
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
      const dieDelivery: number[] = [];

      const one = async (i: number) => {
        const id = `exit-${i < 0 ? "warm" : i}`;
        await launchOrThrow(b.client, id, ctx.image, COMMAND);
        await t.waitState(id, State.RUNNING, RUNNING_MS);
        // Wait is in place long before the exit (the command sleeps), so it measures delivery only.
        const waited = withDeadline(b.client.wait(id), EXIT_MS, `Wait of '${id}'`).then(() => wallNowMs());
        const [waitMs, terminated, die] = await Promise.all([
          waited,
          t.waitState(id, State.TERMINATED, EXIT_MS),
          e.waitFor((ev) => ev.attributes[LABEL_CONTAINER_ID] === id, EXIT_MS, `die of '${id}'`),
        ]);
        t.forget(id);
        if (i < 0) return;
        viaWait.push(waitMs - die.stampedMs);
        viaWatch.push(terminated.receivedMs - die.stampedMs);
        dieDelivery.push(die.receivedMs - die.stampedMs);
      };

      await one(-1);
      for (let i = 0; i < n; i++) {
        await one(i);
        if ((i + 1) % 10 === 0) ctx.progress(`exit: ${i + 1}/${n}`);
      }
      const note = `time from the die event's timeNano (engine clock = this host's clock) to receipt; raw = the die event's own delivery on a separate /events subscription; n=${n} serial exits of '${COMMAND}'; Berth runs with its default --docker_remove_delay 0`;
      const p99Wait = percentile(viaWait, 99);
      const p99Watch = percentile(viaWatch, 99);
      return [
        { scenario: "exit", figure: "die → Wait returns, median", unit: "ms", berth: median(viaWait), raw: median(dieDelivery), note },
        { scenario: "exit", figure: "die → Wait returns, p99", unit: "ms", berth: p99Wait, raw: percentile(dieDelivery, 99), target: `p99 ≤ ${TARGET_MS} ms`, met: p99Wait <= TARGET_MS },
        { scenario: "exit", figure: "die → TERMINATED event, median", unit: "ms", berth: median(viaWatch), raw: median(dieDelivery) },
        { scenario: "exit", figure: "die → TERMINATED event, p99", unit: "ms", berth: p99Watch, raw: percentile(dieDelivery, 99), target: `p99 ≤ ${TARGET_MS} ms`, met: p99Watch <= TARGET_MS },
      ];
    } finally {
      engineTap?.close();
      tap?.close();
      await bestEffort(ctx.progress, "stopping Berth", () => berth?.stop());
      await bestEffort(ctx.progress, "removing Berth\'s containers", () => cleanupHome(ctx.docker, home));
    }
  },
};
