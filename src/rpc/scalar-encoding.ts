import { ScalarType, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";

// Wire types.
const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const MAX_UINT32 = 0xffff_ffff;
const MAX_UINT64 = (1n << 64n) - 1n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
// A length prefix takes at most 5 bytes (messages are far below 4 GiB).
const MAX_LENGTH_BYTES = 5;

const DOUBLE = 0;
const UINT32 = 1;
const UINT64 = 2;
const MESSAGE = 3;

/** A field written here: a singular double, uint32 or uint64, or a singular message (itself written here), with explicit presence. */
interface Field {
  name: string;
  kind: typeof DOUBLE | typeof UINT32 | typeof UINT64 | typeof MESSAGE;
  /** The field's tag as varint bytes. */
  tag: number[];
  required: boolean;
  /** MESSAGE: the field's message type. */
  schema?: DescMessage;
}

/** A list or map field: when it holds anything, the message goes to protobuf-es. */
interface Collection {
  name: string;
  map: boolean;
}

interface Plan {
  /** In field-number order, as protobuf-es writes them. */
  fields: Field[];
  collections: Collection[];
  /** The largest encoding of the scalar fields. */
  maxScalarBytes: number;
}

function varintBytes(value: number): number[] {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return bytes;
}

/**
 * The plan of a message type made of singular double/uint32/uint64 fields and singular message
 * fields, all with explicit presence (proto2 `optional`/`required`, a proto3 message field), plus
 * list and map fields that stay empty; undefined for any other shape (an other scalar type, a
 * oneof, implicit presence), which always goes to protobuf-es.
 */
function compile(schema: DescMessage): Plan | undefined {
  const fields: Field[] = [];
  const collections: Collection[] = [];
  let maxScalarBytes = 0;
  for (const field of [...schema.fields].sort((a, b) => a.number - b.number)) {
    if (field.oneof !== undefined) return undefined;
    if (field.fieldKind === "list" || field.fieldKind === "map") {
      collections.push({ name: field.localName, map: field.fieldKind === "map" });
      continue;
    }
    if (field.presence === FeatureSet_FieldPresence.IMPLICIT) return undefined;
    const required = field.presence === FeatureSet_FieldPresence.LEGACY_REQUIRED;
    if (field.fieldKind === "message") {
      fields.push({ name: field.localName, kind: MESSAGE, tag: varintBytes(field.number * 8 + LENGTH_DELIMITED), required, schema: field.message });
      continue;
    }
    if (field.fieldKind !== "scalar") return undefined;
    const kind = field.scalar === ScalarType.DOUBLE ? DOUBLE : field.scalar === ScalarType.UINT32 ? UINT32 : field.scalar === ScalarType.UINT64 ? UINT64 : undefined;
    if (kind === undefined) return undefined;
    const tag = varintBytes(field.number * 8 + (kind === DOUBLE ? FIXED64 : VARINT));
    fields.push({ name: field.localName, kind, tag, required });
    maxScalarBytes += tag.length + 10;
  }
  return { fields, collections, maxScalarBytes };
}

const plans = new WeakMap<DescMessage, Plan | null>();

function planOf(schema: DescMessage): Plan | undefined {
  let plan = plans.get(schema);
  if (plan === undefined) {
    // Registered before compiling, so a recursive type finds its own (pending) entry.
    plans.set(schema, null);
    plan = compile(schema) ?? null;
    plans.set(schema, plan);
  }
  return plan ?? undefined;
}

const hasOwn = Object.prototype.hasOwnProperty;

/** Writes a non-negative integer ≤ 2^53 as a varint at `at`; returns the next offset. */
function writeVarint(buf: Uint8Array, at: number, value: number): number {
  while (value > 0x7f) {
    buf[at++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  buf[at++] = value;
  return at;
}

function writeVarint64(buf: Uint8Array, at: number, value: bigint): number {
  if (value <= MAX_SAFE) return writeVarint(buf, at, Number(value));
  while (value > 0x7fn) {
    buf[at++] = Number(value & 0x7fn) | 0x80;
    value >>= 7n;
  }
  buf[at++] = Number(value);
  return at;
}

function writeTag(buf: Uint8Array, at: number, tag: number[]): number {
  for (let i = 0; i < tag.length; i++) buf[at++] = tag[i]!;
  return at;
}

/** Explicit presence: a field is set when it is an own property (protobuf-es keeps defaults on the prototype). */
function isSet(m: Record<string, unknown>, name: string): boolean {
  return m[name] !== undefined && hasOwn.call(m, name);
}

/** The message's bytes, or undefined when this encoder does not take it (see fastBinary). */
function encode(plan: Plan, m: Record<string, unknown>): Buffer | undefined {
  const unknown = m.$unknown as unknown[] | undefined;
  if (unknown !== undefined && unknown.length > 0) return undefined;
  for (const c of plan.collections) {
    const value = m[c.name];
    if (value !== undefined && (c.map ? Object.keys(value as object).length > 0 : (value as unknown[]).length > 0)) return undefined;
  }
  // Sub-messages first: their sizes decide the buffer's.
  let size = plan.maxScalarBytes;
  let subs: Map<Field, Buffer> | undefined;
  for (const field of plan.fields) {
    if (field.kind !== MESSAGE || !isSet(m, field.name)) continue;
    const sub = planOf(field.schema!);
    const bytes = sub === undefined ? undefined : encode(sub, m[field.name] as Record<string, unknown>);
    if (bytes === undefined) return undefined;
    (subs ??= new Map()).set(field, bytes);
    size += field.tag.length + MAX_LENGTH_BYTES + bytes.length;
  }
  const buf = Buffer.allocUnsafe(size);
  let at = 0;
  for (const field of plan.fields) {
    if (!isSet(m, field.name)) {
      // protobuf-es reports a missing required field.
      if (field.required) return undefined;
      continue;
    }
    const value = m[field.name];
    switch (field.kind) {
      case DOUBLE:
        if (typeof value !== "number") return undefined;
        at = writeTag(buf, at, field.tag);
        at = buf.writeDoubleLE(value, at);
        break;
      case UINT32:
        if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX_UINT32) return undefined;
        at = writeTag(buf, at, field.tag);
        at = writeVarint(buf, at, value);
        break;
      case UINT64:
        if (typeof value !== "bigint" || value < 0n || value > MAX_UINT64) return undefined;
        at = writeTag(buf, at, field.tag);
        at = writeVarint64(buf, at, value);
        break;
      case MESSAGE: {
        const bytes = subs!.get(field)!;
        at = writeTag(buf, at, field.tag);
        at = writeVarint(buf, at, bytes.length);
        buf.set(bytes, at);
        at += bytes.length;
        break;
      }
    }
  }
  return buf.subarray(0, at);
}

/**
 * The bytes protobuf-es' toBinary gives for `message`, field for field and in the same order,
 * written in one pass into one buffer for message types made of double/uint32/uint64 and message
 * fields with explicit presence (mesos.v1.ResourceStatistics and berth.v1.UsageResponse). Anything
 * else — another type, a set list, map or unknown field, a value of an unexpected type, a missing
 * required field — goes to toBinary, which encodes it or reports why not. For a Usage() answer,
 * toBinary's generic writer was about a fifth of Berth's own cost of the call.
 */
export function fastBinary<D extends DescMessage>(schema: D, message: MessageShape<D>): Uint8Array {
  const plan = planOf(schema);
  return (plan === undefined ? undefined : encode(plan, message as unknown as Record<string, unknown>)) ?? toBinary(schema, message);
}
