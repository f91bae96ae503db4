// The container state machine: the happy path in order, DESTROYING from every live state,
// no way back to RUNNING once destroying, nothing after TERMINATED.
import { strict as assert } from "node:assert";
import { canTransition, LAUNCH_STAGES, type ContainerState } from "../../src/containerizer/state.js";

const ALL: ContainerState[] = ["FETCHING", "PULLING", "MOUNTING", "RUNNING", "DESTROYING", "TERMINATED"];
const LIVE: ContainerState[] = ["FETCHING", "PULLING", "MOUNTING", "RUNNING"];

describe("canTransition", () => {
  it("allows the pipeline order", () => {
    assert.ok(canTransition("FETCHING", "PULLING"));
    assert.ok(canTransition("PULLING", "MOUNTING"));
    assert.ok(canTransition("MOUNTING", "RUNNING"));
    assert.ok(canTransition("RUNNING", "DESTROYING"));
    assert.ok(canTransition("DESTROYING", "TERMINATED"));
  });

  it("allows DESTROYING and TERMINATED from every live state", () => {
    for (const from of LIVE) {
      assert.ok(canTransition(from, "DESTROYING"), `${from} → DESTROYING`);
      assert.ok(canTransition(from, "TERMINATED"), `${from} → TERMINATED`);
    }
  });

  it("forbids going back or skipping a stage", () => {
    assert.ok(!canTransition("PULLING", "FETCHING"));
    assert.ok(!canTransition("RUNNING", "MOUNTING"));
    assert.ok(!canTransition("FETCHING", "RUNNING"));
    assert.ok(!canTransition("FETCHING", "MOUNTING"));
    for (const s of ALL) assert.ok(!canTransition(s, s), `${s} → ${s}`);
  });

  it("forbids anything but TERMINATED after DESTROYING", () => {
    for (const to of ALL) assert.equal(canTransition("DESTROYING", to), to === "TERMINATED", `DESTROYING → ${to}`);
  });

  it("forbids anything after TERMINATED", () => {
    for (const to of ALL) assert.ok(!canTransition("TERMINATED", to), `TERMINATED → ${to}`);
  });

  it("names the launch stages in pipeline order", () => {
    assert.deepEqual(LAUNCH_STAGES, ["FETCHING", "PULLING", "MOUNTING"]);
  });
});
