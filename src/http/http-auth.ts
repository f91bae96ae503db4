/**
 * Who may read /metrics and the status page when --auth_token_file is set: a request with
 * `Authorization: Bearer <token>` (Prometheus' `authorization` / `bearer_token_file`, curl -H), or
 * a browser holding the session cookie the login form hands out for a valid token. The cookie is a
 * random session id (never the token), HttpOnly and SameSite=Strict (Secure over TLS); the session
 * keeps the token it was opened with and is checked against the token file at every request, so
 * a token removed from the file (and SIGHUP) closes its sessions too. Without a token file nothing
 * is asked (the listener is loopback-only then, unless TLS is configured).
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { TokenStore } from "../rpc/auth.js";

export const SESSION_COOKIE = "berth_session";
/** A session lasts this long (then the form asks again). */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** At most this many sessions; the oldest goes first. */
const MAX_SESSIONS = 1024;

export class HttpAuth {
  private readonly sessions = new Map<string, { token: string; expires: number }>();

  constructor(private readonly tokens: TokenStore | undefined) {}

  /** True when requests need a token. */
  get required(): boolean {
    return this.tokens !== undefined;
  }

  /** True when the request may read: no tokens configured, a valid bearer header, or a live session. */
  allows(req: IncomingMessage): boolean {
    const tokens = this.tokens;
    if (!tokens) return true;
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer +(\S+)\s*$/i.exec(header);
      return m !== null && tokens.accepts(m[1]!);
    }
    const id = sessionId(req.headers.cookie);
    if (id === undefined) return false;
    const session = this.sessions.get(id);
    if (!session) return false;
    if (session.expires < Date.now() || !tokens.accepts(session.token)) {
      this.sessions.delete(id);
      return false;
    }
    return true;
  }

  /** Opens a session for a valid token; undefined for an invalid one. */
  login(token: string): string | undefined {
    if (!this.tokens || !this.tokens.accepts(token)) return undefined;
    const id = randomBytes(32).toString("base64url");
    this.sessions.set(id, { token, expires: Date.now() + SESSION_TTL_MS });
    while (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    return id;
  }

  /** The Set-Cookie value of a new session. */
  static cookie(id: string, secure: boolean): string {
    return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}${secure ? "; Secure" : ""}`;
  }
}

function sessionId(cookieHeader: string | undefined): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}
