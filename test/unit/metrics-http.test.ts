// The HTTP server of --http_listen without an engine: the live page stream (SSE) starts with a
// snapshot and then carries each change; at most maxSseClients are served (503 past it); a client
// that stops reading is dropped once it falls maxSseBufferedBytes behind while a reading one stays;
// stop() ends every stream; the login form's body is bounded.
import { strict as assert } from "node:assert";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { setImmediate as tick } from "node:timers/promises";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { TokenStore } from "../../src/rpc/auth.js";
import { BerthMetrics } from "../../src/metrics/berth-metrics.js";
import { StatusHttpServer } from "../../src/http/http-server.js";
import { StatusModel } from "../../src/http/status-model.js";
import type { ContainerState } from "../../src/containerizer/state.js";
import { pollUntil } from "../harness/engine-control.js";

let seq = 0n;
const stateEvent = (containerId: string, state: ContainerState) => ({ sequence: ++seq, time: new Date(), containerId, snapshot: false, kind: { type: "state" as const, state } });

/** A raw SSE client: the bytes received so far, and the socket. */
function sseClient(address: string): { socket: Socket; received: () => string; closed: Promise<void> } {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  const socket = connect(port, host);
  let text = "";
  socket.setEncoding("utf8");
  socket.on("data", (d: string) => (text += d));
  const closed = new Promise<void>((r) => socket.once("close", () => r()));
  socket.write(`GET /events HTTP/1.1\r\nHost: ${address}\r\n\r\n`);
  return { socket, received: () => text, closed };
}

describe("StatusHttpServer (SSE limits, no engine)", () => {
  let server: StatusHttpServer;
  let model: StatusModel;
  const list: Array<{ containerId: string; state: ContainerState; image: string }> = [];
  const sockets: Socket[] = [];

  async function start(o: { maxSseClients?: number; maxSseBufferedBytes?: number } = {}) {
    model = new StatusModel({ list: () => list }, "agent-1", "unix:///var/run/docker.sock");
    server = new StatusHttpServer({ listen: "127.0.0.1:0", transport: {}, metrics: new BerthMetrics({ defaultMetrics: false }), model, log: pino({ level: "silent" }), ...o });
    await server.start();
  }

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await server?.stop();
    list.length = 0;
  });

  it("sends a snapshot first, then each change as it happens; stop() ends the stream", async () => {
    list.push({ containerId: "c1", state: "RUNNING", image: "img:1" });
    await start();
    const c = sseClient(server.bound);
    sockets.push(c.socket);
    await pollUntil(() => c.received().includes("event: snapshot"), 5000, "the snapshot");
    assert.match(c.received(), /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(c.received(), /content-type: text\/event-stream/i);
    assert.match(c.received(), /"id":"c1","state":"RUNNING","image":"img:1"/);
    model.observe(stateEvent("c2", "FETCHING"));
    await pollUntil(() => c.received().includes("event: row"), 5000, "the row event");
    assert.match(c.received(), /event: row\ndata: \{"id":"c2","state":"FETCHING"/);
    await server.stop();
    await c.closed;
  });

  it("serves at most maxSseClients page streams; the next one is 503 with the reason", async () => {
    await start({ maxSseClients: 2 });
    const a = sseClient(server.bound);
    const b = sseClient(server.bound);
    sockets.push(a.socket, b.socket);
    await pollUntil(() => server.sseClients === 2, 5000, "two streams");
    const third = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      request(`http://${server.bound}/events`, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
        .on("error", reject)
        .end();
    });
    assert.equal(third.status, 503);
    assert.match(third.body, /2 live page connections are open, the most this server serves/);
    a.socket.destroy();
    await pollUntil(() => server.sseClients === 1, 5000, "a closed stream to be forgotten");
  });

  it("drops a client that stops reading once it is maxSseBufferedBytes behind; a reading client stays", async () => {
    await start({ maxSseBufferedBytes: 64 * 1024 });
    const slow = sseClient(server.bound);
    const fast = sseClient(server.bound);
    sockets.push(slow.socket, fast.socket);
    await pollUntil(() => slow.received().includes("event: snapshot") && fast.received().includes("event: snapshot"), 5000, "both snapshots");
    slow.socket.pause();
    // Rows of ~1 KiB: the kernel's socket buffers fill first, then Berth's own buffer for the slow one.
    const pad = "x".repeat(1000);
    for (let i = 0; i < 100_000 && server.dropped === 0; i++) {
      model.observe(stateEvent(`c${i}-${pad}`, "FETCHING"));
      // Let the reading client read.
      if (i % 10 === 0) await tick();
    }
    assert.equal(server.dropped, 1, "the slow client was dropped");
    // Reading again, it finds its stream ended (a paused socket reports no end).
    slow.socket.resume();
    await slow.closed;
    assert.equal(server.sseClients, 1, "the reading client is still served");
  });

  it("bounds the login form's body (413 past 4 KiB) and answers a bad token with the form again", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "berth-http-unit-"));
    try {
      await writeFile(path.join(dir, "tokens"), "unit-token-123456\n");
      model = new StatusModel({ list: () => list }, "agent-1", "unix:///var/run/docker.sock");
      server = new StatusHttpServer({
        listen: "127.0.0.1:0",
        transport: {},
        tokens: await TokenStore.load(path.join(dir, "tokens")),
        metrics: new BerthMetrics({ defaultMetrics: false }),
        model,
        log: pino({ level: "silent" }),
      });
      await server.start();
      const post = (body: string) =>
        new Promise<number>((resolve, reject) => {
          request(`http://${server.bound}/login`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
            .on("error", (err: NodeJS.ErrnoException) => (err.code === "ECONNRESET" || err.code === "EPIPE" ? resolve(-1) : reject(err)))
            .end(body);
        });
      assert.equal(await post("token=wrong"), 401);
      assert.equal(await post("token=unit-token-123456"), 303);
      assert.ok([413, -1].includes(await post(`token=${"a".repeat(5000)}`)), "an oversized form is refused");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
