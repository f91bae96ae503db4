import assert from "node:assert/strict";
import type { ServiceError } from "@grpc/grpc-js";
import type Dockerode from "dockerode";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import type { WatchResponse } from "../../src/gen/berth/v1/containerizer_pb.js";
import { ensureEngine, ensureTestImages, removeTestContainers, type TestImages } from "../support/engine.js";
import { launchRequest, newId } from "../harness/launches.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";

describe("a Watch ended by a shutdown", function () {
  this.timeout(120_000);
  let docker: Dockerode;
  let images: TestImages;
  let t: TestBerth | undefined;

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
  });
  after(async () => {
    if (t) {
      await removeTestContainers(docker, { [LABEL_AGENT_ID]: t.berth.agentId });
      t.client.close();
      await t.berth.stop().catch(() => undefined);
    }
  });

  it("ends UNAVAILABLE naming from_sequence (never OK, which means every watched container terminated)", async () => {
    t = await startTestBerth();
    const id = newId("shutdown-watch");
    await t.client.launch(launchRequest(id, { image: images.busybox, shell: "sleep 300" }));
    const stream = t.client.watch([id]);
    const sequences: bigint[] = [];
    const firstSeen = new Promise<void>((resolve) => stream.once("data", () => resolve()));
    const ended = new Promise<{ code: number; details: string }>((resolve) => {
      stream.on("data", (r: WatchResponse) => sequences.push(r.event!.sequence));
      stream.on("status", (st: { code: number; details: string }) => resolve(st));
      stream.on("error", (_e: ServiceError) => undefined);
    });
    await firstSeen;
    await t.berth.stop();
    const st = await ended;
    assert.equal(st.code, 14, `the Watch ended ${st.code} ${st.details}`);
    const last = sequences.at(-1)!;
    assert.match(st.details, new RegExp(`shutting down; Watch again with from_sequence ${last} `));
  });
});
