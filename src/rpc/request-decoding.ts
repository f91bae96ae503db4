import { configureTextEncoding, getTextEncoding } from "@bufbuild/protobuf/wire";
import { Metadata, status, type MethodDefinition, type ServerDuplexStream, type ServerUnaryCall, type ServerWritableStream, type ServiceDefinition, type UntypedServiceImplementation, type sendUnaryData } from "@grpc/grpc-js";

/**
 * Strings decoded by protobuf-es must be valid UTF-8, also in proto2 messages (mesos.v1), which
 * protobuf-es otherwise decodes leniently, turning bad bytes into U+FFFD: two different byte
 * strings would then name one container (ids become directory names and engine labels). Berth
 * never has a reason to accept invalid UTF-8, so every string is decoded strictly; what Berth
 * encodes from JS strings is always valid, so nothing Berth wrote itself is refused.
 */
function strictUtf8(): void {
  const encoding = getTextEncoding();
  configureTextEncoding({ ...encoding, decodeUtf8: (bytes: Uint8Array) => encoding.decodeUtf8(bytes, true) });
}
strictUtf8();

const identity = (bytes: Buffer): Buffer => bytes;

function invalid(method: string, err: unknown): { code: status; details: string; metadata: Metadata } {
  const reason = err instanceof Error ? err.message : String(err);
  return { code: status.INVALID_ARGUMENT, details: `${method}: the request is not a valid protobuf message: ${reason}`, metadata: new Metadata() };
}

type Handler = (...args: unknown[]) => void;

/**
 * Moves request decoding from grpc-js into the handler. grpc-js answers INTERNAL ("Error
 * deserializing request") itself when a method's deserializer throws, before any handler or
 * interceptor runs, and no option changes that code. Registered with an identity deserializer, a
 * method receives the raw bytes; the wrapper decodes them with the method's own deserializer (for
 * berth.v1: protobuf-es fromBinary) and answers INVALID_ARGUMENT naming the method and the decode
 * error, so a client sending garbage learns it sent garbage and the server serves on.
 *
 * Bidi-streaming methods (Exec) get every message decoded as it arrives: the first one that does
 * not decode ends the call with INVALID_ARGUMENT (emitted as the call's 'error', which the handler
 * also sees, to release what the call holds) and nothing after it is delivered. Client-streaming
 * methods (none in berth.v1) are left to grpc-js, which answers INTERNAL and serves on; the
 * reflection service is added without this wrapper.
 */
export function decodedInHandlers(definition: ServiceDefinition, implementation: UntypedServiceImplementation): { definition: ServiceDefinition; implementation: UntypedServiceImplementation } {
  const defs: Record<string, MethodDefinition<unknown, unknown>> = {};
  const impls: UntypedServiceImplementation = { ...implementation };
  for (const [name, method] of Object.entries(definition as Record<string, MethodDefinition<unknown, unknown>>)) {
    // grpc-js looks a handler up by the definition's key first, then by its originalName.
    const key = implementation[name] === undefined && typeof method.originalName === "string" ? method.originalName : name;
    const found = implementation[key] as Handler | undefined;
    if ((method.requestStream && !method.responseStream) || !found) {
      defs[name] = method;
      continue;
    }
    const handler: Handler = (...args) => found.apply(implementation, args);
    const decode = method.requestDeserialize;
    // "/berth.v1.Containerizer/Launch" → "berth.v1.Containerizer.Launch"
    const methodName = method.path.slice(1).replace("/", ".");
    defs[name] = { ...method, requestDeserialize: identity };
    if (method.requestStream) {
      impls[key] = (call: ServerDuplexStream<unknown, unknown>) => {
        decodeEachMessage(call, decode, methodName);
        handler(call);
      };
    } else if (method.responseStream) {
      impls[key] = (call: ServerWritableStream<unknown, unknown>) => {
        try {
          call.request = decode(call.request as Buffer);
        } catch (err) {
          call.emit("error", invalid(methodName, err));
          return;
        }
        handler(call);
      };
    } else {
      impls[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        try {
          call.request = decode(call.request as Buffer);
        } catch (err) {
          callback(invalid(methodName, err));
          return;
        }
        handler(call, callback);
      };
    }
  }
  return { definition: defs as ServiceDefinition, implementation: impls };
}

/**
 * Decodes each message of a bidi call where grpc-js hands it over (it pushes every received
 * message into the call's readable side), so 'data' listeners and async iteration alike see
 * decoded messages. The first bad message ends the call with INVALID_ARGUMENT; later ones and the
 * half-close are dropped.
 */
function decodeEachMessage(call: ServerDuplexStream<unknown, unknown>, decode: (bytes: Buffer) => unknown, methodName: string): void {
  const push = call.push.bind(call);
  let failed = false;
  call.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (failed) return false;
    if (chunk === null) return push(null, encoding);
    let message: unknown;
    try {
      message = decode(chunk as Buffer);
    } catch (err) {
      failed = true;
      call.emit("error", invalid(methodName, err));
      return false;
    }
    return push(message, encoding);
  };
}
