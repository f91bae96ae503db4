// fastBinary (src/rpc/scalar-encoding.ts) writes Usage() answers itself; these tests hold it to
// protobuf-es' toBinary byte for byte, and check that everything it does not take goes to toBinary.
import { strict as assert } from "node:assert";
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { UsageResponseSchema } from "../../src/gen/berth/v1/containerizer_pb.js";
import { ResourceStatisticsSchema, type ResourceStatistics } from "../../src/gen/mesos/v1/mesos_pb.js";
import { fastBinary } from "../../src/rpc/scalar-encoding.js";

type StatsInit = MessageInitShape<typeof ResourceStatisticsSchema>;

/** What Usage() answers for a busy v1 container, limits and disk included. */
const TYPICAL: StatsInit = {
  timestamp: 1_764_460_800.123456,
  processes: 3,
  threads: 3,
  cpusUserTimeSecs: 48.24,
  cpusSystemTimeSecs: 0.39,
  cpusLimit: 0.5,
  cpusSoftLimit: 0.5,
  cpusNrPeriods: 1010,
  cpusNrThrottled: 759,
  cpusThrottledTimeSecs: 21.124740462,
  memTotalBytes: 614_400n,
  memTotalMemswBytes: 614_400n,
  memLimitBytes: 64n * 1024n * 1024n,
  memRssBytes: 176_128n,
  memCacheBytes: 0n,
  memAnonBytes: 176_128n,
  memFileBytes: 0n,
  memMappedFileBytes: 0n,
  memSwapBytes: 0n,
  memUnevictableBytes: 0n,
  diskUsedBytes: 4096n,
  diskLimitBytes: 1n << 30n,
};

function stats(init: StatsInit): ResourceStatistics {
  return create(ResourceStatisticsSchema, init);
}

function assertSameBytes(message: ResourceStatistics): void {
  assert.deepEqual(Buffer.from(fastBinary(ResourceStatisticsSchema, message)), Buffer.from(toBinary(ResourceStatisticsSchema, message)));
  const response = create(UsageResponseSchema, { statistics: message });
  assert.deepEqual(Buffer.from(fastBinary(UsageResponseSchema, response)), Buffer.from(toBinary(UsageResponseSchema, response)));
}

/** A small deterministic generator, so a failing case can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1_664_525 + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("fastBinary: Usage() answers encoded in one pass, byte for byte as toBinary", () => {
  it("encodes a typical answer exactly as toBinary, and it decodes back to the same message", () => {
    const message = stats(TYPICAL);
    assertSameBytes(message);
    const decoded = fromBinary(UsageResponseSchema, fastBinary(UsageResponseSchema, create(UsageResponseSchema, { statistics: message })));
    assert.deepEqual(decoded.statistics, message);
  });

  it("encodes edge values of each type exactly as toBinary", () => {
    const edges: StatsInit[] = [
      { timestamp: 0 },
      { timestamp: -0, cpusLimit: Number.NaN, cpusUserTimeSecs: Number.POSITIVE_INFINITY, cpusSystemTimeSecs: Number.NEGATIVE_INFINITY },
      { timestamp: 1e-300, processes: 0, threads: 0xffff_ffff, cpusNrPeriods: 127, cpusNrThrottled: 128 },
      // uint64 at and beyond 2^53, and the largest value.
      { timestamp: 1, memTotalBytes: 2n ** 53n - 1n, memLimitBytes: 2n ** 53n, memSoftLimitBytes: 2n ** 63n, memSwapBytes: 2n ** 64n - 1n, memRssBytes: 0n },
    ];
    for (const init of edges) assertSameBytes(stats(init));
  });

  it("encodes random subsets of the scalar fields exactly as toBinary", () => {
    const next = random(12);
    const scalars = ResourceStatisticsSchema.fields.filter((f) => f.fieldKind === "scalar");
    for (let round = 0; round < 300; round++) {
      const init: Record<string, unknown> = { timestamp: next() * 2e9 };
      for (const field of scalars) {
        if (field.fieldKind !== "scalar" || next() < 0.5) continue;
        const r = next();
        if (field.scalar === 1 /* DOUBLE */) init[field.localName] = r < 0.1 ? 0 : (r - 0.3) * 10 ** Math.floor(next() * 20);
        else if (field.scalar === 13 /* UINT32 */) init[field.localName] = Math.floor(r * 2 ** 32);
        else init[field.localName] = BigInt(Math.floor(r * 2 ** 32)) * BigInt(Math.floor(next() * 2 ** 32));
      }
      assertSameBytes(stats(init as StatsInit));
    }
  });

  it("leaves an answer with a list, unknown fields or an unexpected value to toBinary, and writes scalar sub-messages itself", () => {
    const withBlkio = stats({ ...TYPICAL, blkioStatistics: { cfq: [{ sectors: 5n, ioServiced: [{ value: 1n }] }] } });
    assertSameBytes(withBlkio);
    // Value.Range (two required uint64) is written here too, as a sub-message.
    const withPorts = stats({ ...TYPICAL, netEphemeralPorts: { begin: 32768n, end: 61000n } });
    assertSameBytes(withPorts);
    const withUnknown = stats(TYPICAL);
    withUnknown.$unknown = [{ no: 999, wireType: 0, data: new Uint8Array([1]) }];
    assertSameBytes(withUnknown);
    // A number where a uint64 belongs is written by toBinary (which accepts it), not misread here.
    const loose = stats(TYPICAL);
    (loose as unknown as Record<string, unknown>).memTotalBytes = 4096;
    assertSameBytes(loose);
  });

  it("leaves a missing required field to toBinary, which names it", () => {
    const missing = stats(TYPICAL);
    delete (missing as unknown as Record<string, unknown>).timestamp;
    assert.throws(() => toBinary(ResourceStatisticsSchema, missing), /required field not set/);
    assert.throws(() => fastBinary(ResourceStatisticsSchema, missing), /required field not set/);
  });

  it("encodes an empty UsageResponse (no statistics) as toBinary does", () => {
    const empty = create(UsageResponseSchema, {});
    assert.deepEqual(Buffer.from(fastBinary(UsageResponseSchema, empty)), Buffer.from(toBinary(UsageResponseSchema, empty)));
  });
});
