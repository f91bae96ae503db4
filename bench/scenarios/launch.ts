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
import { median, p99Label, pairedBootstrap, percentile, shuffled, spread } from "../stats.js";
import { NOOP_DESCRIPTION, noopCall } from "../noop-call.js";
import { bestEffort } from "../best-effort.js";
import { checkBerthExit, checkRawExit } from "../exits.js";

const COMMAND = "sleep 0.3";
const RUNNING_MS = 60_000;
const EXIT_MS = 30_000;
/** Berth's own cost the issue allows on top of the raw create+start, at the median. */
const TARGET_DIFF_MS = 5;
const TARGET_RATIO = 1.03;

/**
 * Launch → RUNNING event, serial, beside raw create+start (the floor) and raw
 * create+attach+start (the same engine work as Berth's, output capture included). Every side
 * finishes a sample completely before the next one starts — the container exited AND removed from
 * the engine (Berth's: Wait, then Destroy's answer, then a list confirms it is gone) — and the
 * order within each round is random. A no-op gRPC call's round trip is measured beside, as context.
 */
export const launchScenario: Scenario = {
  name: "launch",
  describe: "Launch → RUNNING event, serial launches of a short busybox command, vs raw create+start",
  async run(ctx: BenchContext): Promise<Figure[]> {
    const n = ctx.quick ? 5 : 50;
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
      const attachMs: number[] = [];
      const noopMs: number[] = [];

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
      // The same engine work as Berth's launch, output capture included: create, attach to the
      // output (before the start, as Berth does, so no byte is missed), start.
      const oneRawAttached = async (): Promise<number> => {
        const name = raw.nextName();
        const t0 = wallNowMs();
        const container = await withDeadline(ctx.docker.createContainer(raw.spec(name, COMMAND)), ENGINE_CALL_MS, `raw create of '${name}'`);
        const output = (await withDeadline(container.attach({ stream: true, stdout: true, stderr: true, hijack: true }), ENGINE_CALL_MS, `raw attach of '${name}'`)) as unknown as NodeJS.ReadWriteStream & { destroy(): void };
        output.resume();
        await withDeadline(container.start(), ENGINE_CALL_MS, `raw start of '${name}'`);
        const ms = wallNowMs() - t0;
        try {
          checkRawExit(container.id, await withDeadline(container.wait(), EXIT_MS, `exit of raw container '${container.id}'`), 0);
        } finally {
          output.destroy();
        }
        await raw.remove(container.id);
        return ms;
      };
      const oneNoop = async (): Promise<number> => {
        const t0 = wallNowMs();
        await noopCall(b.client);
        return wallNowMs() - t0;
      };

      // One untimed round first: the first launch pays for cold caches on every side.
      await oneBerth(-1);
      await oneRaw();
      await oneRawAttached();
      for (let w = 0; w < 20; w++) await oneNoop();
      for (let i = 0; i < n; i++) {
        // Each round runs the three launches in a random order, then three no-op calls.
        for (const kind of shuffled(["berth", "raw", "attached"] as const)) {
          if (kind === "berth") berthMs.push(await oneBerth(i));
          else if (kind === "raw") rawMs.push(await oneRaw());
          else attachMs.push(await oneRawAttached());
        }
        for (let k = 0; k < 3; k++) noopMs.push(await oneNoop());
        if ((i + 1) % 10 === 0) ctx.progress(`launch: ${i + 1}/${n}`);
      }
      const bMed = median(berthMs);
      const rMed = median(rawMs);
      const aMed = median(attachMs);
      const diff = bMed - rMed;
      const ratioCi = (floor: number[]) => pairedBootstrap(berthMs, floor, (x, y) => median(x) / median(y));
      const diffCi = (floor: number[]) => pairedBootstrap(berthMs, floor, (x, y) => median(x) - median(y));
      return [
        {
          scenario: "launch",
          figure: `Launch→RUNNING median (n=${n})`,
          unit: "ms",
          berth: bMed,
          raw: rMed,
          ci95: ratioCi(rawMs),
          target: `≤ ${TARGET_RATIO}× raw median`,
          met: bMed <= TARGET_RATIO * rMed,
          note: `raw = create+start of the same image, command ('${COMMAND}'), network none, bind-mounted sandbox, labels and pids limit; each sample ends with its container exited and removed (Berth's: Wait, Destroy, then a list confirms it is gone) before the next starts; each round runs Berth, raw and raw with attach in a random order. Spread: berth ${spread(berthMs)} ms; raw ${spread(rawMs)} ms`,
        },
        { scenario: "launch", figure: "Launch→RUNNING median − raw median", unit: "ms", difference: { value: diff, floor: rMed }, ci95: diffCi(rawMs), rawText: "", target: `≤ ${TARGET_DIFF_MS} ms`, met: diff <= TARGET_DIFF_MS },
        { scenario: "launch", figure: `Launch→RUNNING ${p99Label(n)}`, unit: "ms", berth: percentile(berthMs, 99), raw: percentile(rawMs, 99) },
        {
          scenario: "launch",
          figure: "Launch→RUNNING median vs raw create+attach+start (context)",
          unit: "ms",
          berth: bMed,
          raw: aMed,
          ci95: ratioCi(attachMs),
          note: `raw with attach = the engine work of Berth's launch including its output capture: create, attach to stdout/stderr (opened before the start, as Berth does, so no byte is missed), start; same image, options and command. Spread: ${spread(attachMs)} ms`,
        },
        { scenario: "launch", figure: "Launch→RUNNING median − raw create+attach+start median (context)", unit: "ms", difference: { value: bMed - aMed, floor: aMed }, ci95: diffCi(attachMs), rawText: "" },
        {
          scenario: "launch",
          figure: "no-op gRPC call median (context)",
          unit: "ms",
          berthText: `${median(noopMs).toFixed(2)} ms`,
          rawText: "",
          note: `${NOOP_DESCRIPTION}, three after each round (n=${noopMs.length}): a Launch call and the RUNNING event on a Watch stream each cross this transport once. Spread: ${spread(noopMs, 2)} ms`,
        },
      ];
    } finally {
      tap?.close();
      await bestEffort(ctx.progress, "stopping Berth", () => berth?.stop());
      await bestEffort(ctx.progress, "removing Berth's containers", () => cleanupHome(ctx.docker, home));
      await bestEffort(ctx.progress, "removing raw containers", dispose);
    }
  },
};
