import { lchown, lstat, readFile } from "node:fs/promises";
import { createServer, isIP, type Server as NetServer, type Socket } from "node:net";
import { createSecureContext } from "node:tls";
import { ServerCredentials } from "@grpc/grpc-js";
import { addressKind, unbracket } from "../fetcher/address-rules.js";
import { groupIdOf, HOST_GROUP_FILE } from "../host-users.js";

/** A transport setting a person must fix before Berth can start; the message is one line. */
export class TransportConfigError extends Error {}

/** How TCP listeners are secured and who may open the unix socket, resolved from the flags. */
export interface TransportSettings {
  /** TLS for TCP listeners (undefined: plaintext, which only loopback addresses accept). */
  tls?: { cert: Buffer; key: Buffer; clientCa?: Buffer };
  /** The socket group's gid: the unix socket is 0660 owned by it; undefined: 0600. */
  socketGid?: number;
}

/** The flags TransportSettings are read from (a subset of ServeConfig). */
export interface TransportFlags {
  listen: string[];
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  socketGroup?: string;
}

/** The host part of a TCP `--listen` address (`[::1]:5051` → `::1`). */
export function listenHost(address: string): string {
  return unbracket(address.slice(0, address.lastIndexOf(":")));
}

/** True for addresses only this host can reach: 127.0.0.0/8, ::1 (IPv4-mapped forms too) and `localhost`. */
export function isLoopback(host: string): boolean {
  if (host.toLowerCase() === "localhost") return true;
  return isIP(host) !== 0 && addressKind(host) === "loopback";
}

async function readPem(file: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new TransportConfigError(`${flag} '${file}' cannot be read: ${(err as Error).message}`);
  }
}

/** A group name from /etc/group, or a numeric gid. */
export async function resolveGroup(group: string, groupFile = HOST_GROUP_FILE): Promise<number> {
  const gid = await groupIdOf(group, groupFile);
  if (gid !== undefined) return gid;
  throw new TransportConfigError(`--socket_group '${group}' is not a group on this host (not in ${groupFile}; give a name listed there or a numeric gid)`);
}

/**
 * Checks the transport flags against the listen addresses and reads the files they name. Refuses
 * a non-loopback TCP listener without TLS: anything on the network could then run containers as
 * root on this host, and read every request in passing.
 */
export async function resolveTransport(flags: TransportFlags): Promise<TransportSettings> {
  if (flags.tlsKey !== undefined && flags.tlsCert === undefined) throw new TransportConfigError("--tls_key is given without --tls_cert: give both to serve TCP over TLS");
  if (flags.tlsCert !== undefined && flags.tlsKey === undefined) throw new TransportConfigError("--tls_cert is given without --tls_key: give both to serve TCP over TLS");
  if (flags.tlsClientCa !== undefined && flags.tlsCert === undefined) throw new TransportConfigError("--tls_client_ca needs --tls_cert and --tls_key: mutual TLS is TLS with client certificates");
  const tcp = flags.listen.filter((a) => !a.startsWith("unix://"));
  if (flags.tlsCert === undefined) {
    const exposed = tcp.find((a) => !isLoopback(listenHost(a)));
    if (exposed) {
      throw new TransportConfigError(`--listen '${exposed}' is not a loopback address and TLS is not configured: give --tls_cert and --tls_key (and --tls_client_ca for client certificates), or listen on 127.0.0.1 or a unix socket`);
    }
  }
  const settings: TransportSettings = {};
  if (flags.tlsCert !== undefined && flags.tlsKey !== undefined) {
    settings.tls = {
      cert: await readPem(flags.tlsCert, "--tls_cert"),
      key: await readPem(flags.tlsKey, "--tls_key"),
      clientCa: flags.tlsClientCa !== undefined ? await readPem(flags.tlsClientCa, "--tls_client_ca") : undefined,
    };
    try {
      // Builds a secure context now, so a key that does not match the certificate, or a file
      // that is not PEM, is one start-up line instead of a failed bind later.
      createSecureContext({ cert: settings.tls.cert, key: settings.tls.key, ca: settings.tls.clientCa });
    } catch (err) {
      throw new TransportConfigError(`--tls_cert/--tls_key/--tls_client_ca are not usable: ${(err as Error).message}`);
    }
  }
  if (flags.socketGroup !== undefined) settings.socketGid = await resolveGroup(flags.socketGroup);
  return settings;
}

/** Credentials of a TCP listener: TLS (mutual when a client CA is given) or plaintext. */
export function tcpCredentials(settings: TransportSettings): ServerCredentials {
  const tls = settings.tls;
  if (!tls) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(tls.clientCa ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], tls.clientCa !== undefined);
}

/** A unix socket Berth accepts connections on itself and hands to grpc-js. */
export interface UnixListener {
  server: NetServer;
  close(): void;
}

/**
 * Listens on a unix socket with mode 0600 (0660 and the socket group with `gid`), never left to
 * the umask: the bind runs under umask 0177 (0117 for a group), so the file has its final mode
 * from its first instant, and a group socket is then given to its group with lchown. No chmod
 * follows: chmod follows symlinks, and a socket path swapped for a symlink in between would
 * hand the mode to whatever it points at. An lstat checks the result.
 *
 * Every accepted connection is named `unix:<path>#<n>` (as its remote address) before grpc-js
 * gets it (through Server.createConnectionInjector, its public API for connections accepted by
 * other means). A unix socket has no remote address of its own, so without this every local client
 * would share one peer (`getPeer()` answers "unknown") and limits per connection could not tell
 * them apart; with it, getPeer() names the connection on unix sockets as `ip:port` does on TCP.
 */
export async function listenUnix(path: string, gid: number | undefined, accept: (socket: Socket) => void): Promise<UnixListener> {
  let n = 0;
  const server = createServer((socket) => {
    Object.defineProperty(socket, "remoteAddress", { value: `unix:${path}#${++n}`, configurable: true });
    accept(socket);
  });
  const mode = gid === undefined ? 0o600 : 0o660;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // net binds a unix socket synchronously inside listen(): the umask is restored right after.
    const previous = process.umask(0o777 & ~mode);
    try {
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    } finally {
      process.umask(previous);
    }
  });
  try {
    if (gid !== undefined) await lchown(path, -1, gid);
    const st = await lstat(path);
    if (!st.isSocket() || (st.mode & 0o777) !== mode || (gid !== undefined && st.gid !== gid)) {
      throw new Error(`the socket came out ${st.isSocket() ? "a socket" : "not a socket"} with mode ${(st.mode & 0o777).toString(8)} and gid ${st.gid}, not mode ${mode.toString(8)}${gid !== undefined ? ` and gid ${gid}` : ""}`);
    }
  } catch (err) {
    server.close();
    throw err;
  }
  return {
    server,
    close: () => server.close(),
  };
}
