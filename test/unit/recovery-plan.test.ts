import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ContainerCheckpointSchema } from "../../src/gen/berth/checkpoint/v1/checkpoint_pb.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { planRecovery } from "../../src/containerizer/recovery-plan.js";

const AGENT = "agent-plan";

function record(containerId: string, state: string) {
  return create(ContainerCheckpointSchema, { containerId, agentId: AGENT, state, sandbox: `/s/${containerId}` });
}

function row(containerId: string, state: string) {
  return { id: `engine-${containerId}`, labels: { [LABEL_AGENT_ID]: AGENT, [LABEL_CONTAINER_ID]: containerId }, state };
}

describe("recovery plan: a launch caught before RUNNING", () => {
  it("is abandoned at the stage its record names when the engine has nothing of it", () => {
    const plan = planRecovery([record("a", "FETCHING"), record("b", "PULLING")], [], AGENT);
    assert.deepEqual(
      plan.actions.map((a) => (a.kind === "abandon" ? [a.checkpoint.containerId, a.stage] : [a.kind])),
      [
        ["a", "FETCHING"],
        ["b", "PULLING"],
      ],
    );
  });

  it("is abandoned during MOUNTING when the engine has a container of it (the launch records no stage between FETCHING and RUNNING)", () => {
    const plan = planRecovery([record("c", "FETCHING")], [row("c", "created")], AGENT);
    const [action] = plan.actions;
    assert.equal(action?.kind, "abandon");
    assert.equal(action.kind === "abandon" && action.stage, "MOUNTING");
    assert.equal(action.kind === "abandon" && action.leftovers.length, 1, "the created container is removed with it");
  });
});
