import { fromBinary, toBinary, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, type CallOptions, type ServiceError } from "@grpc/grpc-js";

/**
 * A grpc-js client that knows nothing of Berth's generated code: every call is encoded and
 * decoded with descriptors obtained at run time (e.g. through server reflection).
 */
export class DynamicClient {
  readonly raw: Client;

  constructor(address: string, readonly service: DescService) {
    this.raw = new Client(address, credentials.createInsecure());
  }

  /** The service's method by its proto name (e.g. "Launch"); throws naming the method when absent. */
  method(name: string): DescMethod {
    const m = this.service.methods.find((x) => x.name === name);
    if (!m) throw new Error(`service '${this.service.typeName}' has no method '${name}'`);
    return m;
  }

  /** Calls a unary method with a message of its (dynamic) input type. */
  unary(name: string, request: Message, options: CallOptions = {}): Promise<Message> {
    const method = this.method(name);
    if (method.methodKind !== "unary") throw new Error(`method '${method.name}' is ${method.methodKind}, not unary`);
    const path = `/${this.service.typeName}/${method.name}`;
    return new Promise((resolve, reject) => {
      this.raw.makeUnaryRequest(
        path,
        (value: Message) => Buffer.from(toBinary(method.input, value)),
        (bytes: Buffer) => fromBinary(method.output, bytes) as Message,
        request,
        new Metadata(),
        options,
        (err: ServiceError | null, response?: Message) => (err ? reject(err) : resolve(response!)),
      );
    });
  }

  close(): void {
    this.raw.close();
  }
}
