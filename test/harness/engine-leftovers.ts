import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import path from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { status } from "@grpc/grpc-js";
import type Dockerode from "dockerode";
import type { LaunchRequestSchema } from "../../src/gen/berth/v1/containerizer_pb.js";
import { LABEL_AGENT_ID, LABEL_CONTAINER_ID } from "../../src/docker/names.js";
import { TEST_LABEL } from "../support/engine.js";
import type { BerthClient } from "./berth-client.js";

/** A launch refused with `code`, whose message names each of `names`, and that left nothing behind: no record, sandbox, checkpoint or engine container. */
export async function refusedLeavingNothing(
  t: { client: BerthClient; workDir: string },
  docker: Dockerode,
  req: MessageInitShape<typeof LaunchRequestSchema>,
  code: status,
  names: string[],
): Promise<void> {
  const id = req.containerId!.value!;
  await assert.rejects(t.client.launch(req), (err: { code: number; details: string }) => {
    assert.equal(err.code, code, `code for ${err.details}`);
    for (const n of names) assert.ok(err.details.includes(n), `'${err.details}' names ${n}`);
    return true;
  });
  assert.ok(!(await t.client.containers()).containers.some((c) => c.containerId?.value === id), "not recorded");
  assert.ok(!existsSync(path.join(t.workDir, "sandboxes", id)), "no sandbox");
  const checkpoints = await readdir(path.join(t.workDir, "meta", "containers")).catch(() => [] as string[]);
  assert.ok(!checkpoints.some((f) => f.startsWith(id)), "no checkpoint");
  const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_CONTAINER_ID}=${id}`] } });
  assert.deepEqual(left, [], "no engine container");
}

/** An engine container labelled as one of `agentId`'s (a `sleep 300`), with no checkpoint behind it; its engine id. */
export async function plantOrphan(docker: Dockerode, image: string, agentId: string, containerId: string, testTag: string, options: { start: boolean } = { start: true }): Promise<string> {
  const created = await docker.createContainer({
    Image: image,
    Cmd: ["sleep", "300"],
    Labels: { [LABEL_AGENT_ID]: agentId, [LABEL_CONTAINER_ID]: containerId, [TEST_LABEL]: testTag },
    HostConfig: { NetworkMode: "none" },
  });
  if (options.start) await created.start();
  return created.id;
}
