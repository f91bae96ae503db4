/**
 * Shared, reference-counted image pulls with a no-progress watchdog and an overall cap.
 *
 * N launches of one image cause one engine pull. Each launch waits with its own AbortSignal: an
 * aborted waiter detaches alone, and the engine request is dropped (which stops the registry
 * transfer) only when the last waiter is gone. That is rxjs `share` with reset on ref-count zero;
 * `shareReplay` would keep the transfer running after everyone left.
 *
 * A no-progress watchdog alone misjudges pulls (layer extraction reports no bytes; a trickle never
 * trips it), so download and extraction progress are tracked separately, any per-layer status
 * change counts as activity, and an overall cap bounds the trickle.
 */
import { Observable, ReplaySubject, share, type Subscription } from "rxjs";
import { EngineRequestFailed, EngineUnreachable, type EnginePort, type PullProgress } from "./engine-port.js";
import { redactCredentials, registryOfImage, type RegistryCredentials } from "./registry-auth.js";

/** Progress of one pull, aggregated across its layers, with the first MAX_LAYERS_REPORTED layers one by one. */
export interface PullProgressSummary {
  ref: string;
  layersTotal: number;
  layersDone: number;
  /** Bytes downloaded so far over all layers whose size is known. */
  bytesCurrent: number;
  bytesTotal: number;
  /** The latest status line, e.g. "Downloading" or "Status: Downloaded newer image for …". */
  status: string;
  /**
   * Layer by layer, in the order the engine first named them; at most MAX_LAYERS_REPORTED entries
   * (an image with more lists its first ones; the totals above still count every layer).
   */
  layers: LayerProgressSummary[];
}

/** One layer of a pull. */
export interface LayerProgressSummary {
  /** The engine's short layer id. */
  id: string;
  /** Bytes downloaded so far (the layer's size once it is in place). */
  bytesCurrent: number;
  /** Compressed size; 0 until the engine reports it (never, for a layer that already exists). */
  bytesTotal: number;
  /** The engine's latest status for the layer ("Waiting", "Downloading", "Extracting", "Pull complete", "Already exists", …). */
  status: string;
  /** The layer is in place ("Pull complete" or "Already exists"). */
  done: boolean;
}

/**
 * Layers listed one by one in a summary. Summaries are copied into every waiting container's
 * events (and the event journal), so a many-layer image must not multiply their size; images
 * rarely have more than a few dozen layers.
 */
export const MAX_LAYERS_REPORTED = 64;

/** A pull that made no progress for too long, or did not finish in time; the transfer was dropped. */
export class PullTimedOut extends Error {
  override readonly name = "PullTimedOut";
  constructor(message: string, readonly ref: string) {
    super(message);
  }
}

/**
 * A pull the engine failed (an error line, an HTTP error, or an unreachable engine — see `cause`,
 * which is the EngineRequestFailed / EngineUnreachable from the port).
 */
export class PullFailed extends Error {
  override readonly name = "PullFailed";
  constructor(message: string, readonly ref: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Construction options of an ImagePuller. */
export interface ImagePullerOptions {
  engine: EnginePort;
  /** A pull still running after this long is aborted with PullTimedOut. */
  overallTimeoutMs: number;
  /** A pull with no download/extraction progress and no layer status change for this long is aborted. */
  activityTimeoutMs: number;
  /**
   * Progress is reported at most once per this interval per pull (default 250 ms; 0 reports every
   * line), plus the final summary: an engine reports every few KiB of every layer, and each report becomes an event per
   * waiting container, which would push everything else out of the event journal.
   */
  progressIntervalMs?: number;
  /**
   * Where registry credentials come from (`--docker_config`), asked at every engine pull so
   * rotated credentials apply at once. Absent: pulls send none.
   */
  credentials?: CredentialsSource;
}

/** A source of registry credentials (the `--docker_config` reader, or a test's). */
export interface CredentialsSource {
  /** Names the source in messages, e.g. `--docker_config '/etc/berth/docker.json'`. */
  readonly description: string;
  /** The image's registry and the credentials held for it now; rejects when the source is unusable. */
  credentialsFor(ref: string): Promise<RegistryCredentials>;
}

const DEFAULT_PROGRESS_INTERVAL_MS = 250;

/** What engines answer when a registry refused the pull's credentials (or their absence). */
const AUTH_FAILURE = /unauthorized|no basic auth credentials|authentication required/i;

/** Options of one waiter. */
export interface PullOptions {
  /** Detaches this waiter (its promise rejects with the signal's reason). */
  signal: AbortSignal;
  onProgress?: (p: PullProgressSummary) => void;
}

/** Layer statuses that mean the layer is in place. */
const LAYER_DONE = new Set(["Pull complete", "Already exists"]);

/** Coalesces concurrent pulls of the same reference into one engine pull. */
export class ImagePuller {
  private readonly engine: EnginePort;
  private readonly overallTimeoutMs: number;
  private readonly activityTimeoutMs: number;
  private readonly progressIntervalMs: number;
  private readonly pulls = new Map<string, Observable<PullProgressSummary>>();
  private readonly credentials: CredentialsSource | undefined;

  constructor(opts: ImagePullerOptions) {
    if (!(opts.overallTimeoutMs > 0)) throw new Error(`overallTimeoutMs must be > 0, got ${opts.overallTimeoutMs}`);
    if (!(opts.activityTimeoutMs > 0)) throw new Error(`activityTimeoutMs must be > 0, got ${opts.activityTimeoutMs}`);
    this.engine = opts.engine;
    this.overallTimeoutMs = opts.overallTimeoutMs;
    this.activityTimeoutMs = opts.activityTimeoutMs;
    this.progressIntervalMs = opts.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
    this.credentials = opts.credentials;
    if (!(this.progressIntervalMs >= 0)) throw new Error(`progressIntervalMs must be >= 0, got ${opts.progressIntervalMs}`);
  }

  /** Number of engine pulls currently running (for tests and metrics). */
  get activePulls(): number {
    return this.pulls.size;
  }

  /**
   * Resolves when `ref` is pulled. Joins a running pull of the same ref if there is one.
   * Rejects with PullTimedOut, PullFailed, or the signal's reason when this waiter is aborted.
   */
  pull(ref: string, opts: PullOptions): Promise<void> {
    const { signal, onProgress } = opts;
    if (signal.aborted) return Promise.reject(signal.reason);
    let shared = this.pulls.get(ref);
    if (shared === undefined) {
      shared = this.sharedPull(ref);
      this.pulls.set(ref, shared);
    }
    const source = shared;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let sub: Subscription | undefined;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        sub?.unsubscribe();
        fn();
      };
      const onAbort = (): void => settle(() => reject(signal.reason));
      signal.addEventListener("abort", onAbort, { once: true });
      sub = source.subscribe({
        next: (p) => {
          if (settled || onProgress === undefined) return;
          try {
            onProgress(p);
          } catch {
            // A waiter's progress callback must not break the pull shared with others.
          }
        },
        error: (err: unknown) => settle(() => reject(err)),
        complete: () => settle(() => resolve()),
      });
      if (settled) sub.unsubscribe();
    });
  }

  /**
   * The PullFailed for an engine's refusal. A registry's authentication refusal says so, for which
   * registry, and whether credentials were sent; whatever the engine said is passed on with every
   * form of the credentials removed (from the cause too, since logs print causes).
   */
  private pullFailure(ref: string, creds: RegistryCredentials, err: unknown): PullFailed {
    const auth = creds.auth;
    const said = redactCredentials(err instanceof Error ? err.message : String(err), auth);
    const cause = auth === undefined ? err : sanitizedCause(err, said);
    if (!AUTH_FAILURE.test(said)) {
      return new PullFailed(said.includes(`'${ref}'`) ? said : `pull of '${ref}' failed: ${said}`, ref, { cause });
    }
    const source = this.credentials?.description;
    const sent =
      auth !== undefined
        ? `the credentials ${source} holds for it were sent`
        : source !== undefined
          ? creds.helper !== undefined
            ? `${source} holds no credentials for it, only the credential helper '${creds.helper}', which Berth does not run; so none were sent`
            : `${source} holds no credentials for it, so none were sent`
          : "no --docker_config is set, so no credentials were sent";
    const engineWords = said.replace(`pull of '${ref}' failed: `, "").replace(/^engine answered \d+ to pull of '[^']*': /, "");
    return new PullFailed(`pull of '${ref}' failed: authentication failed for registry ${creds.registry} (${sent}); the engine said: ${engineWords}`, ref, { cause });
  }

  /** One engine pull as a cold Observable, shared while it has subscribers. */
  private sharedPull(ref: string): Observable<PullProgressSummary> {
    const cold = new Observable<PullProgressSummary>((subscriber) => {
      const ac = new AbortController();
      const tracker = new ProgressTracker(ref);
      let finished = false;
      const fail = (err: Error): void => {
        if (finished) return;
        finished = true;
        ac.abort(err);
        subscriber.error(err);
      };
      const overall = setTimeout(
        () => fail(new PullTimedOut(`pull of '${ref}' did not finish within ${seconds(this.overallTimeoutMs)}s`, ref)),
        this.overallTimeoutMs,
      );
      let activity: NodeJS.Timeout | undefined;
      const armActivity = (): void => {
        clearTimeout(activity);
        activity = setTimeout(
          () => fail(new PullTimedOut(`pull of '${ref}' made no progress for ${seconds(this.activityTimeoutMs)}s`, ref)),
          this.activityTimeoutMs,
        );
      };
      armActivity();

      // Coalescing: the first line is reported at once, later ones at most once per interval (the
      // latest summary wins), and the final summary before completion. The watchdog above still
      // sees every line.
      let throttle: NodeJS.Timeout | undefined;
      let unreported = false;
      const report = (): void => {
        unreported = false;
        subscriber.next(tracker.summary());
      };
      const tick = (): void => {
        if (finished || !unreported) {
          throttle = undefined;
          return;
        }
        report();
        throttle = setTimeout(tick, this.progressIntervalMs);
      };
      const onLine = (p: PullProgress): void => {
        if (finished) return;
        if (tracker.apply(p)) armActivity();
        unreported = true;
        if (this.progressIntervalMs === 0) return report();
        if (throttle !== undefined) return;
        report();
        throttle = setTimeout(tick, this.progressIntervalMs);
      };
      const enginePull = (creds: RegistryCredentials): void => {
        const auth = creds.auth;
        const pulled = auth === undefined ? this.engine.pullImage(ref, onLine, ac.signal) : this.engine.pullImage(ref, onLine, ac.signal, auth);
        pulled.then(
          () => {
            if (finished) return;
            finished = true;
            clearTimeout(throttle);
            if (unreported) report();
            subscriber.complete();
          },
          (err: unknown) => {
            // After a timeout or the last waiter leaving, the rejection is our own abort.
            if (finished || ac.signal.aborted) return;
            fail(this.pullFailure(ref, creds, err));
          },
        );
      };
      if (this.credentials === undefined) {
        enginePull({ registry: registryOfImage(ref) });
      } else {
        // Read at every pull: credentials rotated in the file apply to the next pull.
        this.credentials.credentialsFor(ref).then(
          (creds) => {
            if (!finished) enginePull(creds);
          },
          (err: unknown) => fail(new PullFailed(`pull of '${ref}' failed: ${err instanceof Error ? err.message : String(err)}`, ref)),
        );
      }

      return () => {
        clearTimeout(overall);
        clearTimeout(activity);
        clearTimeout(throttle);
        if (this.pulls.get(ref) === shared) this.pulls.delete(ref);
        if (!finished) {
          finished = true;
          ac.abort(new Error(`pull of '${ref}' has no waiters left`));
        }
      };
    });
    const shared = cold.pipe(
      share({
        // A late joiner sees the current progress at once.
        connector: () => new ReplaySubject<PullProgressSummary>(1),
        resetOnRefCountZero: true,
        resetOnError: true,
        resetOnComplete: true,
      }),
    );
    return shared;
  }
}

/** The engine error again, with the redacted message and nothing else attached. */
function sanitizedCause(err: unknown, message: string): Error {
  if (err instanceof EngineRequestFailed) return new EngineRequestFailed(message, err.statusCode);
  if (err instanceof EngineUnreachable) return new EngineUnreachable(message);
  const clean = new Error(message);
  if (err instanceof Error) clean.name = err.name;
  return clean;
}

/** Per-layer bookkeeping of one pull: decides what counts as activity and builds summaries. */
class ProgressTracker {
  private readonly layers = new Map<string, { status: string; currentByStatus: Map<string, number>; downloaded: number; total: number; done: boolean }>();
  private status = "";
  private readonly seenStatuses = new Set<string>();

  constructor(private readonly ref: string) {}

  /** Records one progress line; true when it shows activity. */
  apply(p: PullProgress): boolean {
    this.status = p.status;
    // Lines without a layer ("Digest: …", "Status: …") and the "Pulling from <repo>" line, whose
    // id is the tag, are not layers; a new such status still counts as activity.
    if (p.layer === undefined || p.status.startsWith("Pulling from")) {
      if (this.seenStatuses.has(p.status)) return false;
      this.seenStatuses.add(p.status);
      return true;
    }
    let layer = this.layers.get(p.layer);
    if (layer === undefined) {
      layer = { status: "", currentByStatus: new Map(), downloaded: 0, total: 0, done: false };
      this.layers.set(p.layer, layer);
    }
    let active = p.status !== layer.status;
    layer.status = p.status;
    if (p.current !== undefined) {
      // Download and extraction report their own byte counters; each is compared to itself.
      const prev = layer.currentByStatus.get(p.status);
      if (prev !== p.current) active = true;
      layer.currentByStatus.set(p.status, p.current);
      if (p.status === "Downloading") layer.downloaded = p.current;
    }
    if (p.status === "Downloading" && p.total !== undefined && p.total > 0) layer.total = p.total;
    if (p.status === "Download complete" || p.status === "Verifying Checksum") layer.downloaded = layer.total;
    if (LAYER_DONE.has(p.status)) {
      layer.done = true;
      layer.downloaded = layer.total;
    }
    return active;
  }

  summary(): PullProgressSummary {
    let layersDone = 0;
    let bytesCurrent = 0;
    let bytesTotal = 0;
    const layers: LayerProgressSummary[] = [];
    for (const [id, l] of this.layers) {
      if (l.done) layersDone++;
      bytesCurrent += l.downloaded;
      bytesTotal += l.total;
      // Fresh objects: a summary handed out is never changed by later lines.
      if (layers.length < MAX_LAYERS_REPORTED) layers.push({ id, bytesCurrent: l.downloaded, bytesTotal: l.total, status: l.status, done: l.done });
    }
    return { ref: this.ref, layersTotal: this.layers.size, layersDone, bytesCurrent, bytesTotal, status: this.status, layers };
  }
}

function seconds(ms: number): string {
  return String(Math.round(ms) / 1000);
}
