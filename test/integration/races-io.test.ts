// Issue 9 item 6 against the real engine and a served Berth: a failing checkpoint disk turns health
// NOT_SERVING (and Launch answers an error naming the cause) until a write succeeds again.
import assert from "node:assert/strict";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { credentials, makeGenericClientConstructor, type Client, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { SERVICE_NAME } from "../../src/rpc/server.js";
import { ensureEngine, ensureTestImages, type TestImages } from "../support/engine.js";
import { launchRequest, newId } from "../harness/launches.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";

type ServingStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

/** Follows grpc.health.v1.Health/Watch; `reach(s)` resolves once `s` is the status (now or later). */
function watchHealth(address: string): { reach(want: ServingStatus): Promise<void>; close(): void } {
  const client: Client = new (makeGenericClientConstructor(healthService, "Health"))(address, credentials.createInsecure());
  const stream = (client as unknown as Record<string, Function>).Watch!.call(client, { service: SERVICE_NAME }) as ClientReadableStream<{ status: ServingStatus }>;
  let current: ServingStatus | undefined;
  const seen: ServingStatus[] = [];
  const waiters: { want: ServingStatus; resolve: () => void; reject: (e: Error) => void }[] = [];
  stream.on("data", (r: { status: ServingStatus }) => {
    current = r.status;
    seen.push(r.status);
    for (const w of waiters.filter((x) => x.want === r.status)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  const fail = (why: string) => waiters.splice(0).forEach((w) => w.reject(new Error(`health Watch ${why} before ${w.want}; seen ${seen.join(",")}`)));
  stream.on("error", (err: ServiceError) => fail(`failed (${err.code} ${err.details})`));
  stream.on("end", () => fail("ended"));
  return {
    reach: (want) => (current === want ? Promise.resolve() : new Promise<void>((resolve, reject) => waiters.push({ want, resolve, reject }))),
    close: () => {
      stream.cancel();
      client.close();
    },
  };
}

describe("a failing checkpoint disk under a serving berth (issue 9 item 6)", function () {
  this.timeout(120_000);
  let images: TestImages;
  let t: TestBerth | undefined;

  before(async () => {
    images = await ensureTestImages(await ensureEngine());
  });

  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it("health turns NOT_SERVING while records cannot be written, Launch names the cause, and SERVING returns with the disk", async () => {
    t = await startTestBerth();
    const health = watchHealth(t.berth.addresses[0]!);
    try {
      await health.reach("SERVING");
      const containers = path.join(t.workDir, "meta", "containers");
      const aside = `${containers}.aside`;
      // The records folder becomes unwritable (a file where the folder was): every write fails.
      await rename(containers, aside);
      await writeFile(containers, "not a folder\n");
      const refused = newId("disk");
      await assert.rejects(t.client.launch(launchRequest(refused, { image: images.busybox, shell: "sleep 600" })), (err: Error) => {
        assert.match(err.message, /could not record container .*ENOTDIR/);
        return true;
      });
      await health.reach("NOT_SERVING");
      // The disk comes back: the next record lands and health follows.
      await rm(containers);
      await rename(aside, containers);
      const id = newId("disk");
      await t.client.launch(launchRequest(id, { image: images.busybox, shell: "sleep 600" }));
      await health.reach("SERVING");
      await t.client.destroy(id);
    } finally {
      health.close();
      await mkdir(path.join(t.workDir, "meta", "containers"), { recursive: true }).catch(() => undefined);
    }
  });
});
