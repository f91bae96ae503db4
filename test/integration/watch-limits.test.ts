import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { filter, firstValueFrom } from "rxjs";
import { LogsRequestSchema, WatchRequestSchema } from "../../src/gen/berth/v1/containerizer_pb.js";
import { ensureEngine } from "../support/engine.js";
import { startCapturedBerth, type CapturedBerth } from "../harness/in-process-berth.js";
import { RawClient } from "../harness/raw-client.js";

const WATCH = "/berth.v1.Containerizer/Watch";
const LOGS = "/berth.v1.Containerizer/Logs";
/** WatchRequest {}: every container, now and later — a stream that stays open. */
const ALL = Buffer.alloc(0);

describe("Watch stream limits: --max_watch_streams and --max_watch_streams_per_connection", function () {
  this.timeout(120_000);
  let b: CapturedBerth;
  let dir: string;
  const clients: RawClient[] = [];
  const open: { cancel(): void }[] = [];

  before(async () => {
    await ensureEngine();
    dir = await mkdtemp(path.join(os.tmpdir(), "berth-watch-limits-"));
    b = await startCapturedBerth({ listen: [`unix://${path.join(dir, "b.sock")}`, "127.0.0.1:0"], max_watch_streams: "3", max_watch_streams_per_connection: "2" });
  });

  after(async () => {
    for (const s of open) s.cancel();
    for (const c of clients) c.close();
    await b?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A client with its own connection (grpc-js would otherwise share one per target). */
  function connection(address: string): RawClient {
    const c = new RawClient(address);
    clients.push(c);
    return c;
  }

  /** Resolves once exactly `n` Watch streams are open on the server. */
  const openStreams = (n: number) => firstValueFrom(b.berth.server.watchStreamsOpen$.pipe(filter((count) => count === n)));

  function watch(c: RawClient) {
    const s = c.openServerStream(WATCH, ALL);
    open.push(s);
    return s;
  }

  for (const transport of ["unix", "tcp"] as const) {
    it(`${transport}: each connection has its own count; past it, and past the total, Watch is RESOURCE_EXHAUSTED naming the flag; a closed stream frees its slot`, async () => {
      const address = b.berth.addresses.find((a) => a.startsWith("unix://") === (transport === "unix"))!;
      const a = connection(address);
      const bConn = connection(address);
      const a1 = watch(a);
      watch(a);
      await openStreams(2);
      const a3 = await watch(a).outcome;
      assert.equal(a3.code, status.RESOURCE_EXHAUSTED, `${status[a3.code]} ${a3.details}`);
      assert.match(a3.details, /\(limit --max_watch_streams_per_connection\)$/);

      // Another connection to the same address is not charged for the first one's streams...
      watch(bConn);
      await openStreams(3);
      // ...but the total holds for everyone.
      const b2 = await watch(bConn).outcome;
      assert.equal(b2.code, status.RESOURCE_EXHAUSTED, `${status[b2.code]} ${b2.details}`);
      assert.match(b2.details, /\(limit --max_watch_streams\)$/);

      a1.cancel();
      await openStreams(2);
      watch(bConn);
      await openStreams(3);
      for (const s of open.splice(0)) s.cancel();
      await openStreams(0);
    });
  }

  it("a Logs stream counts against the same limits: past them RESOURCE_EXHAUSTED naming the flag; a refused one (unknown container) holds no slot", async () => {
    const logs = (id: string) => Buffer.from(toBinary(LogsRequestSchema, create(LogsRequestSchema, { containerId: { value: id }, follow: true })));
    const a = connection(b.berth.addresses[0]!);
    watch(a);
    watch(a);
    await openStreams(2);
    const refused = await a.serverStream(LOGS, logs("never-launched"));
    assert.equal(refused.code, status.RESOURCE_EXHAUSTED, `${status[refused.code]} ${refused.details}`);
    assert.match(refused.details, /\(limit --max_watch_streams_per_connection\)$/);
    const other = connection(b.berth.addresses[0]!);
    const unknown = await other.serverStream(LOGS, logs("never-launched"));
    assert.equal(unknown.code, status.NOT_FOUND, `${status[unknown.code]} ${unknown.details}`);
    await openStreams(2);
    for (const s of open.splice(0)) s.cancel();
    await openStreams(0);
  });

  it("a Watch refused for a bad request holds no slot; one of a container not launched yet waits, holding a slot until it ends", async () => {
    const c = connection(b.berth.addresses[0]!);
    const missing = await c.serverStream(WATCH, Buffer.from(toBinary(WatchRequestSchema, create(WatchRequestSchema, { containerIds: [{ value: "" }] }))));
    assert.notEqual(missing.code, status.OK);
    await openStreams(0);
    // Not NOT_FOUND: the container may be launched after the Watch (issue 9 item 12).
    const waiting = c.openServerStream(WATCH, Buffer.from(toBinary(WatchRequestSchema, create(WatchRequestSchema, { containerIds: [{ value: "never-launched" }] }))));
    await openStreams(1);
    waiting.cancel();
    const ended = await waiting.outcome;
    assert.equal(ended.code, status.CANCELLED, `${status[ended.code]} ${ended.details}`);
    assert.equal(ended.messages.length, 0, "nothing to say about a container never launched");
    await openStreams(0);
    // All three slots are still there.
    for (let i = 0; i < 3; i++) watch(connection(b.berth.addresses[0]!));
    await openStreams(3);
    for (const s of open.splice(0)) s.cancel();
    await openStreams(0);
  });
});
