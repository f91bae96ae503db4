import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { create, ScalarType, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { Containerizer, LaunchRequestSchema, type LaunchRequest } from "../../src/gen/berth/v1/containerizer_pb.js";
import { ContainerConfigSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import { CommandInfoSchema, ContainerIDSchema, ContainerInfoSchema, ContainerInfo_DockerInfo_Network, ContainerInfo_Type, Value_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { ensureEngine } from "../support/engine.js";
import { BerthClient } from "../harness/berth-client.js";
import { startCapturedBerth, type CapturedBerth } from "../harness/in-process-berth.js";
import { RawClient, type RawOutcome } from "../harness/raw-client.js";

const MiB = 1024 * 1024;

/** A varint, as protobuf encodes tags and lengths. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** Field numbers leading from `desc` to a string field (through singular or repeated message fields), if any. */
function pathToString(desc: DescMessage, depth = 0): number[] | undefined {
  if (depth > 4) return undefined;
  for (const f of desc.fields) {
    if ((f.fieldKind === "scalar" || (f.fieldKind === "list" && f.listKind === "scalar")) && f.scalar === ScalarType.STRING) return [f.number];
  }
  for (const f of desc.fields) {
    const sub = f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message") ? f.message : undefined;
    const rest = sub && pathToString(sub, depth + 1);
    if (rest) return [f.number, ...rest];
  }
  return undefined;
}

/** A message whose string field (at `path`) holds `bytes`, each level length-delimited. */
function nestedString(path: number[], bytes: number[]): Buffer {
  let inner = bytes;
  for (const no of [...path].reverse()) inner = [...varint((no << 3) | 2), ...varint(inner.length), ...inner];
  return Buffer.from(inner);
}

/** Malformed encodings that no message type can decode, whatever its fields. */
const MALFORMED: [string, Buffer][] = [
  ["a truncated tag (varint continuation bit, then nothing)", Buffer.from([0x80])],
  ["a length-delimited field cut off before its length", Buffer.from([0x0a])],
  ["a length prefix past the end", Buffer.from([0x0a, 0x05, 0x01])],
  ["a 4 GiB length prefix", Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00])],
  ["wire type 6 (no such wire type)", Buffer.from([0x0e, 0x00])],
  ["wire type 7 (no such wire type)", Buffer.from([0x0f, 0x00])],
  ["an end-group tag with no group open", Buffer.from([0x0c])],
  ["a group that never ends", Buffer.from([0x0b, 0x10, 0x01])],
  ["field number 0", Buffer.from([0x00, 0x01])],
  ["a truncated fixed64", Buffer.from([0x09, 0x01, 0x02])],
  ["10 MB of garbage (0xff: one varint that never ends)", Buffer.alloc(10 * 1000 * 1000, 0xff)],
];

interface Case {
  what: string;
  bytes: Buffer;
}

function casesFor(input: DescMessage): Case[] {
  const cases = MALFORMED.map(([what, bytes]) => ({ what, bytes }));
  const path = pathToString(input);
  // "\xc3\x28": a two-byte sequence whose second byte is no continuation byte.
  if (path) cases.push({ what: `invalid UTF-8 in a string field (field path ${path.join(".")})`, bytes: nestedString(path, [0x6f, 0x6b, 0xc3, 0x28]) });
  return cases;
}

describe("malformed request bytes on the wire", function () {
  this.timeout(120_000);
  let b: CapturedBerth;
  let raw: RawClient;

  before(async () => {
    await ensureEngine();
    // Large enough for the 10 MB case to reach decoding (the default 1 MiB refuses it earlier; see below).
    b = await startCapturedBerth({ max_request_bytes: "16MiB" });
    raw = new RawClient(b.berth.addresses[0]!, undefined, { "grpc.max_send_message_length": 32 * MiB });
  });

  after(async () => {
    raw?.close();
    await b?.close();
  });

  const send = (method: { name: string; methodKind: string }, bytes: Buffer): Promise<RawOutcome> => {
    const path = `/${Containerizer.typeName}/${method.name}`;
    return method.methodKind === "server_streaming" ? raw.serverStream(path, bytes) : raw.unary(path, bytes);
  };

  for (const method of Containerizer.methods) {
    it(`${method.name}: every malformed encoding is INVALID_ARGUMENT naming the method and the decode error, and the server serves on`, async () => {
      const cases = casesFor(method.input);
      for (const c of cases) {
        const outcome = await send(method, c.bytes);
        assert.equal(outcome.code, status.INVALID_ARGUMENT, `${method.name}, ${c.what}: ${status[outcome.code]} ${outcome.details}`);
        assert.match(outcome.details, new RegExp(`^berth\\.v1\\.Containerizer\\.${method.name}: the request is not a valid protobuf message: \\S`), `${method.name}, ${c.what}`);
      }
      // Still serving, on the same connection and on a new one.
      const again = await raw.unary(`/${Containerizer.typeName}/Containers`, Buffer.alloc(0));
      assert.equal(again.code, status.OK, again.details);
      const fresh = new BerthClient(b.berth.addresses[0]!);
      try {
        await fresh.containers();
        await assert.rejects(fresh.status("never-launched"), (err: { code: number }) => err.code === status.NOT_FOUND);
      } finally {
        fresh.close();
      }
    });
  }

  it("invalid UTF-8 is refused also in proto2 (mesos.v1) strings, which protobuf-es would otherwise decode as U+FFFD", async () => {
    // LaunchRequest.container_id (mesos.v1.ContainerID, proto2) .value
    const outcome = await raw.unary(`/${Containerizer.typeName}/Launch`, nestedString([1, 1], [0x61, 0xff]));
    assert.equal(outcome.code, status.INVALID_ARGUMENT);
    assert.match(outcome.details, /utf-8/i);
  });

  it("a Mesos required field left unset, or holding an enum value the schema does not know, is INVALID_ARGUMENT naming it (found by the fuzzer: it was INTERNAL)", async () => {
    const launch = (mutate: (r: LaunchRequest) => void): Buffer => {
      const r = create(LaunchRequestSchema, {
        containerId: { value: "req-fields" },
        containerConfig: {
          directory: "",
          commandInfo: { shell: true, value: "true" },
          containerInfo: { type: ContainerInfo_Type.DOCKER, docker: { image: "127.0.0.1:5000/never:pulled", network: ContainerInfo_DockerInfo_Network.NONE } },
          resources: [{ name: "mem", type: Value_Type.SCALAR, scalar: { value: 64 } }],
        },
      });
      mutate(r);
      return Buffer.from(toBinary(LaunchRequestSchema, r));
    };
    // Value.Type 9 does not exist: protobuf-es keeps it as an unknown field, so `type` reads as unset.
    const unknownEnum = launch((r) => (r.containerConfig!.resources[0]!.type = 9 as Value_Type));
    const a = await raw.unary(`/${Containerizer.typeName}/Launch`, unknownEnum);
    assert.equal(a.code, status.INVALID_ARGUMENT, `${status[a.code]} ${a.details}`);
    assert.match(a.details, /required field container_config\.resources\[0\]\.type is not set/);
    // ContainerConfig.directory is required in Mesos' schema (empty asks Berth to pick the sandbox).
    // protobuf-es will not encode a message missing a required field, so this one is put together by hand.
    const config = create(ContainerConfigSchema, create(LaunchRequestSchema, { containerConfig: { directory: "" } }).containerConfig);
    const lenDelimited = (no: number, bytes: Uint8Array) => Buffer.from([...varint((no << 3) | 2), ...varint(bytes.length), ...bytes]);
    const configBytes = Buffer.concat([
      lenDelimited(11, toBinary(CommandInfoSchema, create(CommandInfoSchema, { shell: true, value: "true" }))),
      lenDelimited(12, toBinary(ContainerInfoSchema, create(ContainerInfoSchema, { type: ContainerInfo_Type.DOCKER, docker: { image: "127.0.0.1:5000/never:pulled" } }))),
    ]);
    assert.equal(config.directory, "", "(the schema's own default)");
    const noDirectory = Buffer.concat([lenDelimited(1, toBinary(ContainerIDSchema, create(ContainerIDSchema, { value: "req-fields" }))), lenDelimited(2, configBytes)]);
    const d = await raw.unary(`/${Containerizer.typeName}/Launch`, noDirectory);
    assert.equal(d.code, status.INVALID_ARGUMENT, `${status[d.code]} ${d.details}`);
    assert.match(d.details, /required field container_config\.directory is not set/);
    assert.equal(existsSync(path.join(b.workDir, "sandboxes", "req-fields")), false, "nothing was made for the refused launch");
    const ok = await raw.unary(`/${Containerizer.typeName}/Launch`, launch(() => undefined));
    assert.equal(ok.code, status.OK, `${status[ok.code]} ${ok.details}`);
    const client = new BerthClient(b.berth.addresses[0]!);
    try {
      await client.destroy("req-fields");
    } finally {
      client.close();
    }
  });

  it("grpc.health.v1.Health answers malformed bytes INVALID_ARGUMENT too; reflection's stream fails without taking the server down", async () => {
    // (Health decodes with protobufjs, which reads a length prefix past the end leniently: an unending varint it refuses.)
    const health = await raw.unary("/grpc.health.v1.Health/Check", Buffer.from([0xff, 0xff]));
    assert.equal(health.code, status.INVALID_ARGUMENT, health.details);
    assert.match(health.details, /^grpc\.health\.v1\.Health\.Check: the request is not a valid protobuf message/);
    const reflection = await raw.bidi("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", [Buffer.from([0xff, 0xff])]);
    assert.notEqual(reflection.code, status.OK, "garbage is not a reflection request");
    const ok = await raw.unary("/grpc.health.v1.Health/Check", Buffer.alloc(0));
    assert.equal(ok.code, status.OK, ok.details);
  });
});

describe("--max_request_bytes", function () {
  this.timeout(120_000);
  const berths: CapturedBerth[] = [];
  const clients: RawClient[] = [];

  before(async () => {
    await ensureEngine();
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const b of berths) await b.close();
  });

  async function serve(flags: Record<string, string>): Promise<RawClient> {
    const b = await startCapturedBerth(flags);
    berths.push(b);
    const c = new RawClient(b.berth.addresses[0]!, undefined, { "grpc.max_send_message_length": 32 * MiB });
    clients.push(c);
    return c;
  }

  it("a request of exactly the limit is decoded; one byte more is RESOURCE_EXHAUSTED before any decoding", async () => {
    const c = await serve({ max_request_bytes: "1KiB" });
    const at = await c.unary(`/${Containerizer.typeName}/Launch`, Buffer.alloc(1024, 0xff));
    assert.equal(at.code, status.INVALID_ARGUMENT, `${status[at.code]} ${at.details}`);
    const over = await c.unary(`/${Containerizer.typeName}/Launch`, Buffer.alloc(1025, 0xff));
    assert.equal(over.code, status.RESOURCE_EXHAUSTED, `${status[over.code]} ${over.details}`);
    const watchOver = await c.serverStream(`/${Containerizer.typeName}/Watch`, Buffer.alloc(1025, 0xff));
    assert.equal(watchOver.code, status.RESOURCE_EXHAUSTED, `${status[watchOver.code]} ${watchOver.details}`);
    const ok = await c.unary(`/${Containerizer.typeName}/Containers`, Buffer.alloc(0));
    assert.equal(ok.code, status.OK, ok.details);
  });

  it("the default is 1 MiB: a 1 MiB + 1 byte request is RESOURCE_EXHAUSTED", async () => {
    const c = await serve({});
    const over = await c.unary(`/${Containerizer.typeName}/Launch`, Buffer.alloc(MiB + 1, 0xff));
    assert.equal(over.code, status.RESOURCE_EXHAUSTED, `${status[over.code]} ${over.details}`);
    const at = await c.unary(`/${Containerizer.typeName}/Launch`, Buffer.alloc(MiB, 0xff));
    assert.equal(at.code, status.INVALID_ARGUMENT, `${status[at.code]} ${at.details}`);
  });
});
