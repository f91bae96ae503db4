import type { MessageInitShape } from "@bufbuild/protobuf";
import { LaunchResult, type LaunchRequestSchema } from "../src/gen/berth/v1/containerizer_pb.js";
import type { BerthClient } from "../test/harness/berth-client.js";
import { launchRequest } from "../test/harness/launches.js";
import { withDeadline } from "./deadline.js";
import { ENGINE_CALL_MS } from "./raw-engine.js";

/**
 * A LaunchRequest for a busybox shell command with network NONE. It carries no label of the
 * bench's own (Berth keeps the `berth.` namespace for itself): Berth's containers are found by
 * their agent id, which for every benchmark Berth starts with `bench-`.
 */
export function benchLaunch(id: string, image: string, shell: string): MessageInitShape<typeof LaunchRequestSchema> {
  return launchRequest(id, { image, shell });
}

/** Launches `shell` as container `id`, bounded; throws unless Berth answers LAUNCHED. */
export async function launchOrThrow(client: BerthClient, id: string, image: string, shell: string): Promise<void> {
  const res = await withDeadline(client.launch(benchLaunch(id, image, shell)), ENGINE_CALL_MS, `Launch of '${id}'`);
  if (res.result !== LaunchResult.LAUNCHED) throw new Error(`Launch of '${id}' answered ${LaunchResult[res.result]}`);
}
