import type { Figure } from "../report.js";
import type { BenchContext, Scenario } from "../scenario.js";
import { fleetFigures } from "./fleet.js";

/** 500 live containers: Containers() latency, agent RSS, events handled. */
export const scaleScenario: Scenario = {
  name: "scale",
  describe: "500 live sleep containers: Containers() latency (vs engine list), agent RSS, events handled",
  async run(ctx: BenchContext): Promise<Figure[]> {
    return (await fleetFigures(ctx)).scale;
  },
};
