import { credentials, makeGenericClientConstructor, type Client } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import type { BerthClient } from "../test/harness/berth-client.js";
import { unary } from "./grpc-clients.js";

const NOOP_MS = 5_000;
const HealthClient = makeGenericClientConstructor(healthService, "Health");

/** What a no-op call measures, for footnotes. */
export const NOOP_DESCRIPTION = "grpc.health.v1.Health/Check on the same channel (a successful call answered from one map lookup: no engine, no disk)";

// One Health client per Berth client, sharing its channel (same connection, same HTTP/2 session).
const healthClients = new WeakMap<BerthClient, Client>();

/** One no-op round trip to Berth on the client's own channel; rejects unless Berth answers SERVING. */
export async function noopCall(client: BerthClient): Promise<void> {
  let health = healthClients.get(client);
  if (!health) {
    health = new HealthClient("unused:0", credentials.createInsecure(), { channelOverride: client.raw.getChannel() }) as Client;
    healthClients.set(client, health);
  }
  const res = await unary<{ status: unknown }>(health, "Check", { service: "" }, NOOP_MS);
  if (res.status !== "SERVING" && res.status !== 1) throw new Error(`Health/Check answered ${String(res.status)}, expected SERVING`);
}
