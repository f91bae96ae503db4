import { State } from "../../src/gen/berth/v1/containerizer_pb.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { BenchBerth, cleanupHome, newBerthHome } from "../bench-berth.js";
import { launchOrThrow } from "../bench-launch.js";
import { BerthEventTap } from "../berth-event-tap.js";
import { wallNowMs } from "../clock.js";
import { withDeadline } from "../deadline.js";
import { EngineEventTap, type TimedEngineEvent } from "../engine-events.js";
import type { Figure } from "../report.js";
import type { BenchContext, Scenario } from "../scenario.js";
import { checkSample, median, pairedBootstrap, p99Label, percentile, shuffled, signedMedian, signedPercentile, spread } from "../stats.js";
import { bestEffort } from "../best-effort.js";
import { checkBerthExit, checkRawExit } from "../exits.js";
import { BENCH_LABEL, openRawEngine } from "../raw-engine.js";

const COMMAND = "sleep 0.3";
const RUNNING_MS = 60_000;
const EXIT_MS = 30_000;
/** Berth's own cost allowed on top of the engine's wait endpoint: median and p99. */
const TARGET_MEDIAN_MS = 2;
const TARGET_P99_MS = 5;
/** Pairs measured in a full run (and in --quick). */
const PAIRS = 100;
const QUICK_PAIRS = 5;

/** One side's sample: the die's stamp and delivery, and when the client learnt of the exit. */
interface ExitSample {
  die: TimedEngineEvent;
  /** When the wait (Berth's Wait, or the engine's POST /containers/{id}/wait) answered. */
  waitedMs: number;
}

/** Throws unless the wait was asked for before the engine stamped the die: a late wait measures nothing. */
function checkOpenedBefore(what: string, openedMs: number, die: TimedEngineEvent): void {
  if (!(openedMs < die.stampedMs)) {
    throw new Error(`${what} was opened ${(openedMs - die.stampedMs).toFixed(1)} ms after the die stamp; the sample measures delivery only if the wait is open before the exit`);
  }
}

/**
 * Engine `die` → the client learns of the exit: Berth's Wait (and its Watch's TERMINATED) on one
 * side, the engine's own `POST /containers/{id}/wait` on the other. The floor has a container of
 * its own, made by a raw create+start of the same image, options and command, so Berth's work on
 * its container (the removal after the exit) cannot slow the floor. Each pair runs Berth's sample
 * and the raw one in a random order, one after the other; each side's wait is open long before
 * its exit (the command sleeps) and is timed from its own container's `die` stamp (timeNano), read
 * on raw /events subscriptions of this process. Each sample ends with its container removed
 * (Berth's Destroy answered, the raw remove awaited) before the next begins.
 */
export const exitScenario: Scenario = {
  name: "exit",
  describe: "engine die → Wait returns / TERMINATED event delivered, vs the engine's own wait on a raw container of the same command",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const n = ctx.quick ? QUICK_PAIRS : PAIRS;
    const home = await newBerthHome("exit");
    const rawRun = `${ctx.run}-exit`;
    const { raw, dispose } = await openRawEngine(ctx.docker, ctx.image, rawRun);
    let berth: BenchBerth | undefined;
    let tap: BerthEventTap | undefined;
    let berthDies: EngineEventTap | undefined;
    let rawDies: EngineEventTap | undefined;
    try {
      berth = await BenchBerth.start(home);
      tap = new BerthEventTap(berth.client);
      // Engine label filters are ANDed: one subscription per side.
      berthDies = await EngineEventTap.open(ctx.docker, [`${LABEL_AGENT_ID}=${home.agentId}`], ["die"]);
      rawDies = await EngineEventTap.open(ctx.docker, [`${BENCH_LABEL}.run=${rawRun}`], ["die"]);
      const b = berth;
      const t = tap;
      const bd = berthDies;
      const rd = rawDies;
      const viaWait: number[] = [];
      const viaWatch: number[] = [];
      const viaRawWait: number[] = [];
      const dieDelivery: number[] = [];
      const viaLog: number[] = [];

      const oneBerth = async (i: number): Promise<ExitSample & { terminatedMs: number; loggedMs: number }> => {
        const id = `exit-${i < 0 ? "warm" : i}`;
        await launchOrThrow(b.client, id, ctx.image, COMMAND);
        await t.waitState(id, State.RUNNING, RUNNING_MS);
        // Wait is open long before the exit (the command sleeps 0.3 s), so it measures delivery only.
        const openedMs = wallNowMs();
        const waited = withDeadline(b.client.wait(id), EXIT_MS, `Wait of '${id}'`).then((res) => {
          const at = wallNowMs();
          checkBerthExit(id, res.termination, 0);
          return at;
        });
        const [waitedMs, terminated, die, logged] = await Promise.all([
          waited,
          t.waitState(id, State.TERMINATED, EXIT_MS),
          bd.waitFor((ev) => ev.attributes[LABEL_CONTAINER_ID] === id, EXIT_MS, `die of '${id}'`),
          // Berth logs this line right after publishing the termination: where its own time ends.
          withDeadline(b.process.waitForLog((l) => l.msg === "container terminated" && l.container_id === id), EXIT_MS, `Berth's 'container terminated' line for '${id}'`),
        ]);
        checkOpenedBefore(`Wait of '${id}'`, openedMs, die);
        t.forget(id);
        // Nothing of this sample may overlap the next one: Destroy answers once the container is gone.
        await withDeadline(b.client.destroy(id), EXIT_MS, `Destroy of '${id}'`);
        return { die, waitedMs, terminatedMs: terminated.receivedMs, loggedMs: Number(logged.time) };
      };
      const oneRaw = async (): Promise<ExitSample> => {
        const { container } = await raw.createStart(COMMAND);
        const openedMs = wallNowMs();
        const waited = withDeadline(container.wait(), EXIT_MS, `engine wait of raw container '${container.id}'`).then((res) => {
          const at = wallNowMs();
          checkRawExit(container.id, res, 0);
          return at;
        });
        const [waitedMs, die] = await Promise.all([waited, rd.waitFor((ev) => ev.id === container.id, EXIT_MS, `die of raw container '${container.id}'`)]);
        checkOpenedBefore(`engine wait of raw container '${container.id}'`, openedMs, die);
        // As Berth's Destroy is awaited, so is the raw removal: no removal overlaps the next sample.
        await raw.remove(container.id);
        return { die, waitedMs };
      };

      // One untimed pair first: the first launch pays for cold caches on both sides.
      await oneBerth(-1);
      await oneRaw();
      let done = 0;
      for (const [i, berthFirst] of shuffled(Array.from({ length: n }, (_, i) => [i, i % 2 === 0] as const))) {
        let bs: Awaited<ReturnType<typeof oneBerth>>;
        let rs: ExitSample;
        if (berthFirst) {
          bs = await oneBerth(i);
          rs = await oneRaw();
        } else {
          rs = await oneRaw();
          bs = await oneBerth(i);
        }
        viaWait.push(bs.waitedMs - bs.die.stampedMs);
        viaWatch.push(bs.terminatedMs - bs.die.stampedMs);
        viaLog.push(bs.loggedMs - bs.die.stampedMs);
        viaRawWait.push(rs.waitedMs - rs.die.stampedMs);
        dieDelivery.push(bs.die.receivedMs - bs.die.stampedMs, rs.die.receivedMs - rs.die.stampedMs);
        done += 1;
        if (done % 10 === 0) ctx.progress(`exit: ${done}/${n}`);
      }
      checkSample(viaWait, "die → Wait");
      checkSample(viaWatch, "die → TERMINATED");
      checkSample(viaRawWait, "die → engine wait");
      checkSample(dieDelivery, "die delivery");

      const p99 = p99Label(n);
      const waitMed = median(viaWait);
      const rawMed = median(viaRawWait);
      const waitP99 = percentile(viaWait, 99);
      const rawP99 = percentile(viaRawWait, 99);
      const paired = viaWait.map((w, i) => w - viaRawWait[i]!);
      // Each figure's own precision: a 95 % paired-bootstrap interval (pairs resampled whole).
      const p99Of = (v: number[]) => percentile(v, 99);
      const ratioCi = (a: number[], stat: (v: number[]) => number) => pairedBootstrap(a, viaRawWait, (x, y) => stat(x) / stat(y));
      const diffCi = (stat: (v: number[]) => number) => pairedBootstrap(viaWait, viaRawWait, (x, y) => stat(x) - stat(y));
      const note =
        `time from each container's own die event (timeNano; engine clock = this host's clock) to receipt; floor = the engine's own POST /containers/{id}/wait on a raw container of its own ` +
        `(create+start of the same image, options and '${COMMAND}'), opened before the exit; n=${n} pairs, each running Berth's sample and the raw one in a random order (half Berth first), ` +
        `each container removed before the next sample (Berth's Destroy answered, the raw remove awaited); Berth runs with its default --docker_remove_delay 0. ` +
        `Brackets: 95 % paired-bootstrap interval of the ratio or difference (2000 resamples of the ${n} pairs). Spread: Wait ${spread(viaWait, 2)} ms, engine wait ${spread(viaRawWait, 2)} ms, TERMINATED ${spread(viaWatch, 2)} ms; per pair, Wait − engine wait: median ${signedMedian(paired).toFixed(2)} ms, p25 ${signedPercentile(paired, 25).toFixed(2)} ms, p75 ${signedPercentile(paired, 75).toFixed(2)} ms`;
      return [
        { scenario: "exit", figure: "die → Wait returns, median", unit: "ms", berth: waitMed, raw: rawMed, ci95: ratioCi(viaWait, median), note },
        { scenario: "exit", figure: `die → Wait returns, ${p99}`, unit: "ms", berth: waitP99, raw: rawP99, ci95: ratioCi(viaWait, p99Of) },
        { scenario: "exit", figure: "Wait − engine wait, median", unit: "ms", difference: { value: waitMed - rawMed, floor: rawMed }, ci95: diffCi(median), rawText: "", target: `≤ ${TARGET_MEDIAN_MS} ms`, met: waitMed - rawMed <= TARGET_MEDIAN_MS },
        { scenario: "exit", figure: `Wait − engine wait, ${p99}`, unit: "ms", difference: { value: waitP99 - rawP99, floor: rawP99 }, ci95: diffCi(p99Of), rawText: "", target: `≤ ${TARGET_P99_MS} ms`, met: waitP99 - rawP99 <= TARGET_P99_MS },
        { scenario: "exit", figure: "die → TERMINATED event, median", unit: "ms", berth: median(viaWatch), raw: rawMed, ci95: ratioCi(viaWatch, median) },
        { scenario: "exit", figure: `die → TERMINATED event, ${p99}`, unit: "ms", berth: percentile(viaWatch, 99), raw: rawP99, ci95: ratioCi(viaWatch, p99Of) },
        {
          scenario: "exit",
          figure: "die → Berth logs 'container terminated', median / p99 (context)",
          unit: "ms",
          berthText: `${signedMedian(viaLog).toFixed(1)} / ${signedPercentile(viaLog, 99).toFixed(1)} ms`,
          rawText: "",
          note: `the \`time\` of the log line Berth writes right after publishing the termination (die event received, output drained, termination published; the record's fsync and the removal follow it), from the die stamp; pino's time is Date.now(): 1 ms resolution, truncated, so up to 1 ms early. The rest of Wait's time is the answer's way back over gRPC. Spread: p25 ${signedPercentile(viaLog, 25).toFixed(1)}, p75 ${signedPercentile(viaLog, 75).toFixed(1)}, min ${signedPercentile(viaLog, 0).toFixed(1)} ms`,
        },
        {
          scenario: "exit",
          figure: "die event delivery on /events, median / p99 (context)",
          unit: "ms",
          berthText: "",
          rawText: `${median(dieDelivery).toFixed(1)} / ${percentile(dieDelivery, 99).toFixed(1)} ms`,
          note: `each die event's own delivery (timeNano → receipt) on this process's raw /events subscriptions, Berth's containers' and the raw ones' together (n=${dieDelivery.length}): what any events client waits`,
        },
      ];
    } finally {
      berthDies?.close();
      rawDies?.close();
      tap?.close();
      await bestEffort(ctx.progress, "stopping Berth", () => berth?.stop());
      await bestEffort(ctx.progress, "removing Berth's containers", () => cleanupHome(ctx.docker, home));
      await bestEffort(ctx.progress, "removing raw containers", dispose);
    }
  },
};
