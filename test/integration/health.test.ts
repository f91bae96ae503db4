import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, connect, type Server, type Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { credentials, makeGenericClientConstructor, status, type Client, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import type Dockerode from "dockerode";
import { service as healthService } from "grpc-health-check";
import { TaskState } from "../../src/gen/mesos/v1/mesos_pb.js";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import { SERVICE_NAME } from "../../src/rpc/server.js";
import { ensureEngine, ensureTestImages, removeTestContainers, type TestImages } from "../support/engine.js";
import { launchRequest, newId } from "../harness/launches.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";

type ServingStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";
interface HealthResponse {
  status: ServingStatus;
}

const HealthClient = makeGenericClientConstructor(healthService, "Health");

/** grpc.health.v1.Health over a real channel; grpc-health-check's proto-loader definition decodes enums as strings. */
class Health {
  private readonly client: Client;
  private readonly streams = new Set<ClientReadableStream<HealthResponse>>();

  constructor(address: string) {
    this.client = new HealthClient(address, credentials.createInsecure());
  }

  check(service: string): Promise<ServingStatus> {
    const fn = (this.client as unknown as Record<string, Function>).Check!.bind(this.client);
    return new Promise((resolve, reject) => fn({ service }, (err: ServiceError | null, res: HealthResponse) => (err ? reject(err) : resolve(res.status))));
  }

  /** Opens a Watch and records every status it streams; `until(s)` resolves when `s` arrives. */
  watch(service: string): { seen: ServingStatus[]; until(want: ServingStatus): Promise<void>; cancel(): void } {
    const stream = (this.client as unknown as Record<string, Function>).Watch!.call(this.client, { service }) as ClientReadableStream<HealthResponse>;
    this.streams.add(stream);
    const seen: ServingStatus[] = [];
    const waiters: { want: ServingStatus; resolve: () => void; reject: (e: Error) => void }[] = [];
    stream.on("data", (r: HealthResponse) => {
      seen.push(r.status);
      for (const w of waiters.filter((x) => x.want === r.status)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    });
    const fail = (why: string) => waiters.splice(0).forEach((w) => w.reject(new Error(`health Watch('${service}') ${why} before ${w.want}; seen ${seen.join(",")}`)));
    stream.on("error", (err: ServiceError) => fail(`failed (${err.code} ${err.details})`));
    stream.on("end", () => fail("ended"));
    return {
      seen,
      // Waits for the next `want` after the call (a status already seen earlier does not count).
      until: (want) => new Promise<void>((resolve, reject) => waiters.push({ want, resolve, reject })),
      cancel: () => {
        stream.cancel();
        this.streams.delete(stream);
      },
    };
  }

  /** Waits for `want`, counting the status Watch sends first (the current one). */
  async reach(service: string, want: ServingStatus): Promise<void> {
    const w = this.watch(service);
    try {
      const next = w.until(want);
      if (w.seen.includes(want)) return;
      await next;
    } finally {
      w.cancel();
    }
  }

  close(): void {
    for (const s of this.streams) s.cancel();
    this.client.close();
  }
}

/** A unix socket that forwards to the engine's socket; closing it (and its connections) makes the engine unreachable. */
class EngineProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(readonly socketPath: string, private readonly target: string) {}

  get address(): string {
    return `unix://${this.socketPath}`;
  }

  /** Starts forwarding (idempotent). */
  async open(): Promise<void> {
    if (this.server) return;
    const server = createServer((downstream) => {
      const upstream = connect(this.target);
      for (const s of [downstream, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        // Either side failing ends the pair: the other side sees the connection drop.
        s.on("error", () => {
          downstream.destroy();
          upstream.destroy();
        });
      }
      downstream.pipe(upstream);
      upstream.pipe(downstream);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.socketPath, () => resolve());
    });
    this.server = server;
  }

  /** Stops accepting and drops every forwarded connection (so the engine's events stream breaks too). */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

describe("grpc.health.v1.Health follows the engine's reachability", function () {
  this.timeout(120_000);
  let docker: Dockerode;
  let images: TestImages;

  before(async () => {
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
  });

  describe("with the engine up", () => {
    let t: TestBerth;
    let health: Health;

    before(async () => {
      t = await startTestBerth();
      health = new Health(t.berth.addresses[0]!);
      await health.reach("", "SERVING");
    });
    after(async () => {
      health?.close();
      await t?.close();
    });

    it(`Check answers SERVING for the server ("") and for ${SERVICE_NAME}`, async () => {
      assert.equal(await health.check(""), "SERVING");
      assert.equal(await health.check(SERVICE_NAME), "SERVING");
    });

    it("Watch streams SERVING first, for both names", async () => {
      for (const name of ["", SERVICE_NAME]) {
        const w = health.watch(name);
        await w.until("SERVING");
        assert.deepEqual(w.seen, ["SERVING"], `Watch('${name}') sends the current status first`);
        w.cancel();
      }
    });

    it("Check for a service Berth does not serve answers NOT_FOUND", async () => {
      await assert.rejects(health.check("no.such.Service"), (err: ServiceError) => err.code === status.NOT_FOUND);
    });
  });

  describe("with the engine behind a proxy that goes away and comes back", () => {
    let dir: string;
    let proxy: EngineProxy;
    let t: TestBerth | undefined;
    let health: Health | undefined;

    before(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), "berth-health-"));
      proxy = new EngineProxy(path.join(dir, "engine.sock"), "/var/run/docker.sock");
      await proxy.open();
      t = await startTestBerth({ docker_socket: proxy.address });
      health = new Health(t.berth.addresses[0]!);
      await health.reach("", "SERVING");
    });
    after(async () => {
      health?.close();
      await proxy?.open(); // Berth's shutdown and cleanup need the engine
      if (t) {
        await removeTestContainers(docker, { [LABEL_AGENT_ID]: t.berth.agentId });
        await t.close();
      }
      await proxy?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("closing the proxy turns health NOT_SERVING and Launch UNAVAILABLE naming the engine address; reopening it turns SERVING again", async () => {
      const server = health!.watch("");
      const service = health!.watch(SERVICE_NAME);
      await server.until("SERVING");

      const serverDown = server.until("NOT_SERVING");
      const serviceDown = service.until("NOT_SERVING");
      await proxy.close();
      await Promise.all([serverDown, serviceDown]);
      assert.equal(await health!.check(""), "NOT_SERVING");
      assert.equal(await health!.check(SERVICE_NAME), "NOT_SERVING");

      const id = newId("down");
      const err = await t!.client.launch(launchRequest(id, { image: images.busybox, shell: "true" })).then(
        () => assert.fail("Launch answered OK with the engine unreachable"),
        (e: ServiceError) => e,
      );
      assert.equal(err.code, status.UNAVAILABLE, err.message);
      assert.ok(err.details.includes(proxy.address), `'${err.details}' names the engine address '${proxy.address}'`);
      await assert.rejects(t!.client.status(id), (e: ServiceError) => e.code === status.NOT_FOUND, "a refused launch records nothing");

      const serverUp = server.until("SERVING");
      const serviceUp = service.until("SERVING");
      await proxy.open();
      await Promise.all([serverUp, serviceUp]);
      assert.deepEqual(server.seen, ["SERVING", "NOT_SERVING", "SERVING"]);
      assert.equal(await health!.check(SERVICE_NAME), "SERVING");
      server.cancel();
      service.cancel();

      // And the engine path works again end to end.
      const again = newId("up");
      await t!.client.launch(launchRequest(again, { image: images.busybox, shell: "true" }));
      const { termination } = await t!.client.wait(again);
      assert.equal(termination?.containerTermination?.state, TaskState.TASK_FINISHED);
    });
  });
});
