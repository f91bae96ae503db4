import type { Figure } from "../report.js";
import type { BenchContext, Scenario } from "../scenario.js";
import { fleetFigures } from "./fleet.js";

/** kill -9 with 100 and 500 live containers, restart, until SERVING and all adopted. */
export const recoverScenario: Scenario = {
  name: "recover",
  describe: "kill -9 with 100 and 500 live containers, restart until SERVING and all RUNNING (vs engine list+inspect)",
  async run(ctx: BenchContext): Promise<Figure[]> {
    return (await fleetFigures(ctx)).recover;
  },
};
