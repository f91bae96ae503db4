import type { MessageInitShape } from "@bufbuild/protobuf";
import type { LaunchRequestSchema } from "../src/gen/berth/v1/containerizer_pb.js";
import { launchRequest } from "../test/harness/launches.js";

/**
 * A LaunchRequest for a busybox shell command with network NONE. It carries no label of the
 * bench's own (Berth keeps the `berth.` namespace for itself): Berth's containers are found by
 * their agent id, which for every benchmark Berth starts with `bench-`.
 */
export function benchLaunch(id: string, image: string, shell: string): MessageInitShape<typeof LaunchRequestSchema> {
  return launchRequest(id, { image, shell });
}
