import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Metadata, ServerInterceptingCall, status, type ServerInterceptor } from "@grpc/grpc-js";
import type { Logger } from "pino";

/** What a refused call is answered; it never says which part (scheme, token) was wrong. */
export const UNAUTHENTICATED_DETAILS = "missing or invalid bearer token";

const digest = (value: string | Buffer): Buffer => createHash("sha256").update(value).digest();

/** Parses a token file: one token per line; blank lines and lines starting with `#` are ignored. */
export function parseTokens(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

/**
 * The bearer tokens a caller may present (`--auth_token_file`). Only their SHA-256 digests are
 * kept: a check hashes the presented token and compares it with every digest, with
 * timingSafeEqual and without stopping at a match, so neither the content nor the position of a
 * token shows in the time a check takes. Tokens are never logged.
 */
export class TokenStore {
  private digests: Buffer[] = [];

  private constructor(readonly file: string) {}

  /** Reads the file; fails (naming the file, not its content) when it is unreadable or holds no token. */
  static async load(file: string): Promise<TokenStore> {
    const store = new TokenStore(file);
    await store.reload();
    return store;
  }

  /** Re-reads the file; on failure the tokens in use stay as they were. Returns how many are in use. */
  async reload(): Promise<number> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      throw new Error(`--auth_token_file '${this.file}' cannot be read: ${(err as Error).message}`);
    }
    const tokens = parseTokens(text);
    if (tokens.length === 0) throw new Error(`--auth_token_file '${this.file}' holds no token (one per line; blank lines and # comments are ignored)`);
    this.digests = tokens.map(digest);
    return this.digests.length;
  }

  /** True when `presented` is one of the tokens. */
  accepts(presented: string): boolean {
    const candidate = digest(presented);
    let match = false;
    for (const known of this.digests) match = timingSafeEqual(candidate, known) || match;
    return match;
  }

  /** True when the `authorization` metadata is `Bearer <one of the tokens>`. */
  authorizes(metadata: Metadata): boolean {
    const values = metadata.get("authorization");
    if (values.length !== 1) return false;
    const header = values[0];
    const text = typeof header === "string" ? header : header!.toString("utf8");
    const m = /^Bearer +(\S+)\s*$/i.exec(text);
    // A malformed header is still run through a comparison, so its answer takes as long.
    return this.accepts(m ? m[1]! : text) && m !== null;
  }
}

/**
 * Services callable without a token. Health is for probes (kubelet, load balancers, `grpc_health_probe`),
 * which carry no credentials and learn nothing but SERVING / NOT_SERVING. Reflection is NOT open: it
 * hands out the whole API surface (every method and message), which is reconnaissance worth a token;
 * grpcurl passes one with `-H 'authorization: Bearer …'` for reflection and calls alike.
 */
export const OPEN_SERVICES = ["grpc.health.v1.Health"];

/**
 * A grpc-js server interceptor requiring `authorization: Bearer <token>` on every call to a service
 * not in OPEN_SERVICES. A refused call is answered UNAUTHENTICATED before its handler runs (its
 * request is never even decoded) and logged at warn with the peer and method, never the token.
 */
export function bearerTokenInterceptor(tokens: TokenStore, log: Logger, open: readonly string[] = OPEN_SERVICES): ServerInterceptor {
  const openPrefixes = open.map((service) => `/${service}/`);
  return (method, call) => {
    if (openPrefixes.some((prefix) => method.path.startsWith(prefix))) return new ServerInterceptingCall(call);
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            if (tokens.authorizes(metadata)) {
              pass(metadata);
              return;
            }
            // Who called: the connection, and under mutual TLS the client certificate's subject.
            const subject = call.getAuthContext().sslPeerCertificate?.subject?.CN;
            log.warn(
              { peer: call.getPeer(), method: method.path, client_cert: subject, had_authorization: metadata.get("authorization").length > 0 },
              "call refused: missing or invalid bearer token",
            );
            call.sendStatus({ code: status.UNAUTHENTICATED, details: UNAUTHENTICATED_DETAILS, metadata: new Metadata() });
          },
        }),
    });
  };
}
