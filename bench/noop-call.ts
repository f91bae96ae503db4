import { status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import type { BerthClient } from "../test/harness/berth-client.js";
import { withDeadline } from "./deadline.js";

// A container id no Berth knows: Usage answers NOT_FOUND after a map lookup, so the call costs what
// any gRPC call costs on this machine (client, HTTP/2 on the unix socket, both event loops).
const ABSENT_ID = "bench-noop-absent";
const NOOP_MS = 5_000;

/** What a no-op call measures, for footnotes. */
export const NOOP_DESCRIPTION = "Usage() of an unknown id on the same channel (NOT_FOUND after a lookup: no cgroup read, no engine call)";

/** One no-op round trip to Berth; rejects unless Berth answers NOT_FOUND. */
export async function noopCall(client: BerthClient): Promise<void> {
  try {
    await withDeadline(client.usage(ABSENT_ID), NOOP_MS, `Usage of '${ABSENT_ID}'`);
  } catch (err) {
    if ((err as ServiceError).code === grpcStatus.NOT_FOUND) return;
    throw err;
  }
  throw new Error(`Usage of '${ABSENT_ID}' answered, expected NOT_FOUND`);
}
