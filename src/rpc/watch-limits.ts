import { BehaviorSubject, type Observable } from "rxjs";
import { ResourceExhausted } from "../containerizer/errors.js";

/** The two Watch stream limits: in total, and on one client connection. */
export interface WatchLimitOptions {
  maxStreams: number;
  maxStreamsPerConnection: number;
}

/**
 * Counts open Watch streams, in total and per connection, so one client (or a client leaking
 * streams) cannot hold every stream the server serves. A connection is what grpc-js's getPeer()
 * names: `ip:port` on TCP, and on unix sockets the name BerthServer gives each accepted connection
 * (see listenUnix) — every connection has its own count, whichever transport it came over.
 */
export class WatchLimits {
  private total = 0;
  private readonly perConnection = new Map<string, number>();
  private readonly count$ = new BehaviorSubject(0);

  constructor(private readonly options: WatchLimitOptions) {}

  /** Takes one stream for `connection`; returns its release (idempotent), or throws ResourceExhausted naming the flag. */
  acquire(connection: string): () => void {
    if (this.total >= this.options.maxStreams) {
      throw new ResourceExhausted("--max_watch_streams", `${this.total} Watch streams are open, the most this server serves at once`);
    }
    const mine = this.perConnection.get(connection) ?? 0;
    if (mine >= this.options.maxStreamsPerConnection) {
      throw new ResourceExhausted("--max_watch_streams_per_connection", `${mine} Watch streams are open on this connection (${connection}), the most one connection may hold`);
    }
    this.total += 1;
    this.perConnection.set(connection, mine + 1);
    this.count$.next(this.total);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      const left = (this.perConnection.get(connection) ?? 1) - 1;
      if (left === 0) this.perConnection.delete(connection);
      else this.perConnection.set(connection, left);
      this.count$.next(this.total);
    };
  }

  /** Streams open now, and every change of it (for tests and status). */
  get open$(): Observable<number> {
    return this.count$.asObservable();
  }
}
