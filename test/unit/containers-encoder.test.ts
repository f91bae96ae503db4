import { strict as assert } from "node:assert";
import { fromBinary } from "@bufbuild/protobuf";
import { ContainersResponseSchema, State } from "../../src/gen/berth/v1/containerizer_pb.js";
import type { ContainerInfoSummary } from "../../src/containerizer/containerizer.js";
import { ContainersEncoder } from "../../src/rpc/containerizer-service.js";

function summary(i: number, state: ContainerInfoSummary["state"] = "RUNNING"): ContainerInfoSummary {
  return { containerId: `c-${i}`, state, image: "busybox:1", engineId: `${i}`.padStart(64, "e"), sandbox: `/sandboxes/c-${i}` };
}

const decode = (bytes: Buffer) => fromBinary(ContainersResponseSchema, bytes).containers;

describe("ContainersEncoder (Containers() responses)", () => {
  it("encodes every summary as field 1, readable by any protobuf decoder", () => {
    const list = Array.from({ length: 300 }, (_, i) => summary(i));
    const rows = decode(new ContainersEncoder().encode(list).bytes);
    assert.equal(rows.length, 300);
    assert.equal(rows[299]!.containerId?.value, "c-299");
    assert.equal(rows[299]!.state, State.RUNNING);
    assert.equal(rows[299]!.sandboxDirectory, "/sandboxes/c-299");
    assert.equal(rows[0]!.engineId, summary(0).engineId);
  });

  it("answers the same bytes while the same summaries are listed, and new bytes once one changes, one is added or one goes", () => {
    const enc = new ContainersEncoder();
    const list = [summary(1), summary(2), summary(3)];
    const first = enc.encode(list);
    assert.equal(enc.encode([...list]), first, "unchanged: the cached response");

    const changed = [list[0]!, summary(2, "TERMINATED"), list[2]!];
    const second = enc.encode(changed);
    assert.notEqual(second, first);
    assert.deepEqual(decode(second.bytes).map((r) => r.state), [State.RUNNING, State.TERMINATED, State.RUNNING]);

    const added = enc.encode([...changed, summary(4)]);
    assert.deepEqual(decode(added.bytes).map((r) => r.containerId?.value), ["c-1", "c-2", "c-3", "c-4"]);

    const removed = enc.encode([changed[0]!, changed[2]!]);
    assert.deepEqual(decode(removed.bytes).map((r) => r.containerId?.value), ["c-1", "c-3"]);
    assert.equal(decode(enc.encode([]).bytes).length, 0);
  });
});
