import { fromBinary, toBinary, type DescMessage, type DescService, type MessageShape } from "@bufbuild/protobuf";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import { assertRequiredFields } from "./required-fields.js";

/** Wraps protobuf-es bytes as a Buffer without copying (grpc-js calls Buffer methods on it). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A message that was encoded once and may be written to many streams as is. */
export class PreEncoded {
  constructor(readonly bytes: Buffer) {}
}

function serializer<D extends DescMessage>(schema: D): (value: MessageShape<D> | PreEncoded) => Buffer {
  return (value) => (value instanceof PreEncoded ? value.bytes : asBuffer(toBinary(schema, value as MessageShape<D>)));
}

/** Encodes a message once, for writing the same bytes to many streams. */
export function preEncode<D extends DescMessage>(schema: D, message: MessageShape<D>): PreEncoded {
  return new PreEncoded(asBuffer(toBinary(schema, message)));
}

/**
 * Builds a grpc-js ServiceDefinition from a protobuf-es service descriptor: there is no
 * maintained adapter, and the definition is plain data (path, stream flags, codecs).
 */
export function serviceDefinition(service: DescService): ServiceDefinition {
  const definition: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: serializer(method.input) as (v: unknown) => Buffer,
      requestDeserialize: (bytes: Buffer) => {
        const request = fromBinary(method.input, bytes);
        assertRequiredFields(method.input, request);
        return request;
      },
      responseSerialize: serializer(method.output) as (v: unknown) => Buffer,
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
      originalName: method.name,
    };
  }
  return definition as ServiceDefinition;
}
