import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Metadata } from "@grpc/grpc-js";
import { parseTokens, TokenStore } from "../../src/rpc/auth.js";
import { isLoopback, listenHost, resolveGroup, resolveTransport, TransportConfigError } from "../../src/rpc/transport.js";

describe("bearer tokens (--auth_token_file)", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "berth-auth-unit-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const md = (value?: string | string[]) => {
    const m = new Metadata();
    for (const v of value === undefined ? [] : Array.isArray(value) ? value : [value]) m.add("authorization", v);
    return m;
  };

  it("one token per line; blank lines, surrounding spaces, CRLF and # comments are ignored", () => {
    assert.deepEqual(parseTokens("# ops\n\n  alpha  \r\nbeta\n#gamma\n   \n"), ["alpha", "beta"]);
  });

  it("accepts exactly `Bearer <token>` for a listed token, whatever its position in the file", async () => {
    const file = path.join(dir, "t1");
    await writeFile(file, "first\nsecond\nthird\n");
    const store = await TokenStore.load(file);
    for (const t of ["first", "second", "third"]) assert.ok(store.authorizes(md(`Bearer ${t}`)), t);
    assert.ok(store.authorizes(md("bearer second")), "the scheme is case-insensitive (RFC 6750 / 7235)");
    for (const bad of [undefined, "", "Bearer", "Bearer ", "second", "Basic second", "Bearer secon", "Bearer second2", "Bearer second extra", "Bearer first,second"]) {
      assert.ok(!store.authorizes(md(bad)), `refused: ${JSON.stringify(bad)}`);
    }
    assert.ok(!store.authorizes(md(["Bearer first", "Bearer second"])), "two authorization values are refused");
  });

  it("a reload replaces the tokens; a failed reload (unreadable, or empty) keeps the tokens in use", async () => {
    const file = path.join(dir, "t2");
    await writeFile(file, "old\n");
    const store = await TokenStore.load(file);
    await writeFile(file, "new\n");
    assert.equal(await store.reload(), 1);
    assert.ok(store.authorizes(md("Bearer new")));
    assert.ok(!store.authorizes(md("Bearer old")));
    await writeFile(file, "# emptied by mistake\n");
    await assert.rejects(store.reload(), /holds no token/);
    assert.ok(store.authorizes(md("Bearer new")));
    await rm(file);
    await assert.rejects(store.reload(), /cannot be read/);
    assert.ok(store.authorizes(md("Bearer new")));
  });

  it("errors name the file, never a token", async () => {
    const file = path.join(dir, "t3");
    await writeFile(file, "\n# only comments\n");
    await assert.rejects(TokenStore.load(file), (err: Error) => err.message.includes(file) && /holds no token/.test(err.message));
  });
});

describe("transport settings", () => {
  it("loopback is 127.0.0.0/8, ::1 and localhost; 0.0.0.0, :: and other addresses are not", () => {
    for (const a of ["127.0.0.1:5051", "127.1.2.3:1", "localhost:80", "[::1]:5051", "LOCALHOST:1"]) assert.ok(isLoopback(listenHost(a)), a);
    for (const a of ["0.0.0.0:5051", "10.0.0.1:1", "[::]:5051", "192.168.1.1:2", "[fe80::1]:3", "128.0.0.1:1"]) assert.ok(!isLoopback(listenHost(a)), a);
  });

  it("TCP off loopback without TLS is refused, naming the address; unix sockets and loopback need no TLS", async () => {
    await assert.rejects(resolveTransport({ listen: ["unix:///tmp/x.sock", "0.0.0.0:5051"] }), (err: Error) => err instanceof TransportConfigError && /--listen '0\.0\.0\.0:5051' is not a loopback address/.test(err.message));
    await assert.rejects(resolveTransport({ listen: ["[::]:5051"] }), TransportConfigError);
    assert.deepEqual(await resolveTransport({ listen: ["unix:///tmp/x.sock", "127.0.0.1:5051", "localhost:1"] }), {});
  });

  it("--socket_group resolves a name from the group file or takes a numeric gid; an unknown name is one line", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "berth-group-"));
    try {
      const file = path.join(dir, "group");
      await writeFile(file, "root:x:0:\nberth-ops:x:1234:alice,bob\n");
      assert.equal(await resolveGroup("berth-ops", file), 1234);
      assert.equal(await resolveGroup("77", file), 77);
      await assert.rejects(resolveGroup("berth", file), /--socket_group 'berth' is not a group on this host/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
