import { chmod, lstat, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { archiveKindOf, gunzippedName } from './archive-kind.js';
import { assertSymlinksConfined } from './confine-symlinks.js';
import { chargeFetched, download, type DownloadLimits, type LaunchBudget } from './download.js';
import { extractGz } from './extract-gz.js';
import { extractTar } from './extract-tar.js';
import { extractZip } from './extract-zip.js';
import { FetchFailed, FetchUriInvalid } from './fetch-errors.js';
import { FetchLog } from './fetch-log.js';
import { FetcherCache, type CacheOutcome } from './fetcher-cache.js';
import { planFetch, type FetchPlan } from './fetch-plan.js';
import { readAsUserOf, type FetchUser, type ReadAsUser } from './read-as-user.js';
import { redactUri } from './redact-uri.js';
import {
  ensureDirNoFollow,
  mergeTree,
  placeFile,
  removeQuietly,
  resolveSandbox,
  scratchName,
} from './sandbox-paths.js';

export { FetchFailed, FetchUriInvalid, FetcherCache, redactUri };
export type { CacheOutcome, FetchUser };

/** One URI to fetch, as Mesos' CommandInfo.URI. */
export interface FetchUri {
  value: string;
  executable?: boolean;
  /** Default true, as Mesos. */
  extract?: boolean;
  outputFile?: string;
  /** Through the fetcher cache (FetchOptions.cache), as Mesos' URI.cache. */
  cache?: boolean;
}

/** One URI placed in the sandbox: what the FETCHING events report. */
export interface FetchedUri {
  /** Index in the launch's command_info.uris. */
  uriIndex: number;
  /** The URI with any user:password replaced by '***'. */
  uri: string;
  cache: CacheOutcome;
  /** Bytes of the fetched file (before extraction). */
  bytes: number;
}

/** Cancellation, limits and progress for fetchUris. Every bound has a safe default when absent. */
export interface FetchOptions {
  signal: AbortSignal;
  /** Per-URI download cap; default DEFAULT_MAX_FETCH_BYTES (2 GiB). */
  maxBytes?: number;
  /** All URIs of one launch together; default DEFAULT_MAX_LAUNCH_BYTES (4 GiB). */
  maxLaunchBytes?: number;
  /** Connect + response headers of each request (each redirect hop); default 30 s. Independent of `signal`. */
  connectTimeoutMs?: number;
  /** No byte received for this long aborts the download; default 60 s. */
  idleTimeoutMs?: number;
  /** Default 5. */
  maxRedirects?: number;
  /** Entries of one archive; default 100000. */
  archiveMaxEntries?: number;
  /** Extracted bytes of one archive; default 4 GiB. */
  archiveMaxBytes?: number;
  /** Which addresses http(s) may connect to; default { allowLoopback: false, denyPrivate: false }. Link-local is never allowed. */
  network?: { allowLoopback: boolean; denyPrivate: boolean };
  /** Absolute prefixes file:// URIs and bare paths may read from (compared after realpath); default [] = none. */
  filePrefixes?: string[];
  onProgress?: (uri: string, bytes: number) => void;
  /** URIs with `cache: true` go through it; without one they are fetched directly (and reported NOT_CACHED). */
  cache?: FetcherCache;
  /** The task's user: local files are read with its rights (never root's), and cache entries are kept per user. */
  user?: FetchUser;
  /** Called once per URI, after it is in place. */
  onFetched?: (result: FetchedUri) => void;
  /** A file in the sandbox root the fetcher appends its log lines to (Mesos: `stderr`); none when unset. */
  logFile?: string;
}

/** Default per-URI cap on downloaded bytes. */
export const DEFAULT_MAX_FETCH_BYTES = 2 * 1024 ** 3;
/** Default cap on the bytes all URIs of one launch download together. */
export const DEFAULT_MAX_LAUNCH_BYTES = 4 * 1024 ** 3;
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_REDIRECTS = 5;
export const DEFAULT_ARCHIVE_MAX_ENTRIES = 100_000;
export const DEFAULT_ARCHIVE_MAX_BYTES = 4 * 1024 ** 3;

/** FetchOptions with every default applied (internal). */
interface Bounds {
  maxBytes: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxRedirects: number;
  archiveMaxEntries: number;
  archiveMaxBytes: number;
  network: { allowLoopback: boolean; denyPrivate: boolean };
  filePrefixes: readonly string[];
  launch: LaunchBudget;
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`FetchOptions.${name} must be a non-negative number, got ${value}`);
  return value;
}

function boundsOf(options: FetchOptions): Bounds {
  return {
    maxBytes: nonNegative(options.maxBytes, DEFAULT_MAX_FETCH_BYTES, 'maxBytes'),
    connectTimeoutMs: nonNegative(options.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS, 'connectTimeoutMs'),
    idleTimeoutMs: nonNegative(options.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS, 'idleTimeoutMs'),
    maxRedirects: nonNegative(options.maxRedirects, DEFAULT_MAX_REDIRECTS, 'maxRedirects'),
    archiveMaxEntries: nonNegative(options.archiveMaxEntries, DEFAULT_ARCHIVE_MAX_ENTRIES, 'archiveMaxEntries'),
    archiveMaxBytes: nonNegative(options.archiveMaxBytes, DEFAULT_ARCHIVE_MAX_BYTES, 'archiveMaxBytes'),
    network: {
      allowLoopback: options.network?.allowLoopback === true,
      denyPrivate: options.network?.denyPrivate === true,
    },
    filePrefixes: [...(options.filePrefixes ?? [])],
    launch: { used: 0, max: nonNegative(options.maxLaunchBytes, DEFAULT_MAX_LAUNCH_BYTES, 'maxLaunchBytes') },
  };
}

/** Validates without touching disk or network; throws FetchUriInvalid naming the field and value. */
export function validateFetchUris(uris: FetchUri[]): void {
  uris.forEach((uri, i) => planFetch(uri, i));
}

/** Fetches every URI into `sandbox` (which exists); rejects with FetchFailed (message names the URI and the cause) or the signal's reason. */
export async function fetchUris(uris: FetchUri[], sandbox: string, options: FetchOptions): Promise<void> {
  const { signal } = options;
  const bounds = boundsOf(options);
  // Validate everything first: a bad 3rd URI should not cost the download of the first two.
  const plans = uris.map((uri, i) => planFetch(uri, i));
  signal.throwIfAborted();
  let sandboxReal: string;
  try {
    sandboxReal = await resolveSandbox(sandbox);
  } catch (err) {
    throw new FetchFailed(`sandbox '${sandbox}' is unusable: ${describe(err)}`, { cause: err });
  }
  // Nothing fetched, nothing written: no log lines in stderr for a launch without URIs (as Mesos).
  if (uris.length === 0) return;
  const readAs = options.user ? await readAsUserOf(options.user) : undefined;
  const log = await FetchLog.open(sandboxReal, options.logFile);
  try {
    // Sequential on purpose: deterministic order, and a later URI may overwrite an earlier one's file.
    for (let i = 0; i < uris.length; i++) {
      const uri = uris[i]!;
      const shown = redactUri(uri.value);
      await log.info(`Fetching URI '${shown}'`);
      let result: FetchedUri;
      try {
        result = await fetchOne(uri, i, plans[i]!, sandboxReal, bounds, options, { readAs, log, shown });
      } catch (err) {
        if (signal.aborted) {
          await log.error(`Failed to fetch '${shown}': the launch was aborted`);
          throw signal.reason;
        }
        await log.error(`Failed to fetch '${shown}': ${describe(err)}`);
        throw new FetchFailed(`fetching '${shown}' (command_info.uris[${i}]) failed: ${describe(err)}`, { cause: err });
      }
      options.onFetched?.(result);
    }
  } finally {
    await log.close();
  }
}

/** What fetchOne needs besides the URI: who reads local files, where lines go, the URI as shown. */
interface FetchContext {
  readAs: ReadAsUser | undefined;
  log: FetchLog;
  shown: string;
}

async function fetchOne(
  uri: FetchUri,
  index: number,
  plan: FetchPlan,
  sandboxReal: string,
  bounds: Bounds,
  options: FetchOptions,
  ctx: FetchContext,
): Promise<FetchedUri> {
  const { signal } = options;
  const { log } = ctx;
  const temp = path.join(sandboxReal, scratchName('fetch'));
  let staging: string | null = null;
  try {
    const limits: DownloadLimits = {
      signal,
      maxBytes: bounds.maxBytes,
      launch: bounds.launch,
      network: bounds.network,
      connectTimeoutMs: bounds.connectTimeoutMs,
      idleTimeoutMs: bounds.idleTimeoutMs,
      maxRedirects: bounds.maxRedirects,
      filePrefixes: bounds.filePrefixes,
      readAs: ctx.readAs,
      onBytes: options.onProgress && ((bytes) => options.onProgress!(uri.value, bytes)),
    };
    let cache: CacheOutcome;
    let bytes: number;
    if (uri.cache === true && options.cache !== undefined) {
      // The shared download is bounded by the per-URI cap only; each launch then counts the file
      // against its own launch budget (whoever started the download).
      const fill = (cacheTemp: string, fillSignal: AbortSignal) =>
        download(plan.source, cacheTemp, { ...limits, signal: fillSignal, launch: { used: 0, max: Number.POSITIVE_INFINITY }, fileMode: 0o600 });
      const key = FetcherCache.keyOf(options.user?.name ?? '', uri.value);
      const got = await options.cache.fetchInto(key, temp, fill, signal, (size) => chargeFetched(size, limits));
      cache = got.outcome;
      bytes = got.bytes;
      await log.info(
        cache === 'HIT'
          ? 'Fetching from cache'
          : cache === 'MISS'
            ? 'Downloaded into cache; fetching from cache'
            : `Downloaded ${bytes} bytes, more than the fetcher cache keeps; fetched directly`,
      );
    } else {
      if (uri.cache === true) await log.warn('No fetcher cache is configured; fetching directly into the sandbox directory');
      else await log.info('Fetching directly into the sandbox directory');
      await download(plan.source, temp, limits);
      cache = 'NOT_CACHED';
      bytes = (await lstat(temp)).size;
    }
    signal.throwIfAborted();
    const fileName = plan.destSegments[plan.destSegments.length - 1]!;
    const kind = uri.executable ? null : uri.extract === false ? null : archiveKindOf(fileName);
    if (uri.executable) await chmod(temp, 0o755);
    // Resolve (and create) the destination directory before extracting, so a bad output_file fails
    // before the archive has been spread over the sandbox.
    const dir = await ensureDirNoFollow(sandboxReal, plan.destSegments.slice(0, -1));
    const dest = path.join(dir, fileName);
    if (kind !== null) {
      // Extract into a fresh scratch directory first: it holds no pre-existing symlinks, a failed or
      // aborted extraction is removed whole, and the result is merged without following any link.
      staging = path.join(sandboxReal, scratchName('extract'));
      await mkdir(staging, { mode: 0o755 });
      const extractLimits = { signal, maxBytes: bounds.archiveMaxBytes, maxEntries: bounds.archiveMaxEntries };
      if (kind === 'tar') await extractTar(temp, staging, extractLimits);
      else if (kind === 'zip') await extractZip(temp, staging, extractLimits);
      else await extractGz(temp, staging, gunzippedName(fileName), extractLimits);
      signal.throwIfAborted();
      await assertSymlinksConfined(staging);
      // Mesos extracts into the sandbox root regardless of where output_file put the archive.
      await mergeTree(staging, sandboxReal, sandboxReal);
      await log.info(`Extracted '${dest}' into '${sandboxReal}'`);
    }
    await placeFile(temp, dest, sandboxReal);
    await log.info(`Fetched '${ctx.shown}' to '${dest}'`);
    return { uriIndex: index, uri: ctx.shown, cache, bytes };
  } finally {
    // After success both are gone (renamed / emptied); after failure or abort nothing half-written stays.
    await removeQuietly(temp);
    if (staging !== null) await removeQuietly(staging);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
