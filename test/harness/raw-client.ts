import { Client, credentials, Metadata, status, type ChannelCredentials, type ChannelOptions, type ServiceError } from "@grpc/grpc-js";

const identity = (b: Buffer): Buffer => b;

/** How a raw call ended: its status and whatever messages came before. */
export interface RawOutcome {
  code: status;
  details: string;
  messages: Buffer[];
}

/** Metadata carrying `authorization: Bearer <token>` (or any given authorization value). */
export function bearer(token: string | undefined, raw?: string): Metadata {
  const md = new Metadata();
  if (raw !== undefined) md.set("authorization", raw);
  else if (token !== undefined) md.set("authorization", `Bearer ${token}`);
  return md;
}

/**
 * A gRPC client that sends and receives raw bytes: the request is put on the wire exactly as given
 * (garbage included), so the server's own decoding is what is tested. Its own connection unless
 * told otherwise (`grpc.use_local_subchannel_pool`): grpc-js would otherwise share one connection
 * between clients of the same target.
 */
export class RawClient {
  readonly client: Client;

  constructor(address: string, creds: ChannelCredentials = credentials.createInsecure(), options: ChannelOptions = {}) {
    this.client = new Client(address, creds, { "grpc.use_local_subchannel_pool": 1, ...options });
  }

  /** A unary call with raw request bytes. */
  unary(path: string, bytes: Buffer, metadata = new Metadata()): Promise<RawOutcome> {
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(path, identity, identity, bytes, metadata, {}, (err: ServiceError | null, res?: Buffer) => {
        if (err) resolve({ code: err.code, details: err.details, messages: [] });
        else resolve({ code: status.OK, details: "", messages: res ? [res] : [] });
      });
    });
  }

  /**
   * A server-streaming call with raw request bytes; resolves when it ends, or, with `until`, as
   * soon as `until(messages)` holds (then the call is cancelled and reported OK).
   */
  serverStream(path: string, bytes: Buffer, metadata = new Metadata(), until?: (messages: Buffer[]) => boolean): Promise<RawOutcome> {
    return this.openServerStream(path, bytes, metadata, until).outcome;
  }

  /** A server-streaming call left open: `cancel()` ends it from the client; `outcome` is how it ended. */
  openServerStream(path: string, bytes: Buffer, metadata = new Metadata(), until?: (messages: Buffer[]) => boolean): { cancel(): void; outcome: Promise<RawOutcome> } {
    const call = this.client.makeServerStreamRequest(path, identity, identity, bytes, metadata, {});
    const outcome = new Promise<RawOutcome>((resolve) => {
      const messages: Buffer[] = [];
      let settled = false;
      call.on("data", (m: Buffer) => {
        messages.push(m);
        if (!settled && until?.(messages)) {
          settled = true;
          resolve({ code: status.OK, details: "", messages });
          call.cancel();
        }
      });
      call.on("error", () => {});
      call.on("status", (s: { code: status; details: string }) => {
        if (settled) return;
        settled = true;
        resolve({ code: s.code, details: s.details, messages });
      });
    });
    return { cancel: () => call.cancel(), outcome };
  }

  /** A bidi call sending the given messages then half-closing; resolves with its status and replies. */
  bidi(path: string, requests: Buffer[], metadata = new Metadata()): Promise<RawOutcome> {
    return new Promise((resolve) => {
      const call = this.client.makeBidiStreamRequest(path, identity, identity, metadata, {});
      const messages: Buffer[] = [];
      call.on("data", (m: Buffer) => messages.push(m));
      call.on("error", () => {});
      call.on("status", (s: { code: status; details: string }) => resolve({ code: s.code, details: s.details, messages }));
      for (const r of requests) call.write(r);
      call.end();
    });
  }

  close(): void {
    this.client.close();
  }
}
