import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { archiveKindOf } from './archive-kind.js';
import { assertSymlinksConfined } from './confine-symlinks.js';
import { download, type LaunchBudget } from './download.js';
import { extractTar } from './extract-tar.js';
import { extractZip } from './extract-zip.js';
import { FetchFailed, FetchUriInvalid } from './fetch-errors.js';
import { planFetch, type FetchPlan } from './fetch-plan.js';
import {
  ensureDirNoFollow,
  mergeTree,
  placeFile,
  removeQuietly,
  resolveSandbox,
  scratchName,
} from './sandbox-paths.js';

export { FetchFailed, FetchUriInvalid };

/** One URI to fetch, as Mesos' CommandInfo.URI. */
export interface FetchUri {
  value: string;
  executable?: boolean;
  /** Default true, as Mesos. */
  extract?: boolean;
  outputFile?: string;
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
  // Sequential on purpose: deterministic order, and a later URI may overwrite an earlier one's file.
  for (let i = 0; i < uris.length; i++) {
    const uri = uris[i]!;
    try {
      await fetchOne(uri, plans[i]!, sandboxReal, bounds, options);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw new FetchFailed(`fetching '${uri.value}' (command_info.uris[${i}]) failed: ${describe(err)}`, { cause: err });
    }
  }
}

async function fetchOne(
  uri: FetchUri,
  plan: FetchPlan,
  sandboxReal: string,
  bounds: Bounds,
  options: FetchOptions,
): Promise<void> {
  const { signal } = options;
  const temp = path.join(sandboxReal, scratchName('fetch'));
  let staging: string | null = null;
  try {
    await download(plan.source, temp, {
      signal,
      maxBytes: bounds.maxBytes,
      launch: bounds.launch,
      network: bounds.network,
      connectTimeoutMs: bounds.connectTimeoutMs,
      idleTimeoutMs: bounds.idleTimeoutMs,
      maxRedirects: bounds.maxRedirects,
      filePrefixes: bounds.filePrefixes,
      onBytes: options.onProgress && ((bytes) => options.onProgress!(uri.value, bytes)),
    });
    signal.throwIfAborted();
    const fileName = plan.destSegments[plan.destSegments.length - 1]!;
    const kind = uri.executable ? null : uri.extract === false ? null : archiveKindOf(fileName);
    if (uri.executable) await chmod(temp, 0o755);
    // Resolve (and create) the destination directory before extracting, so a bad output_file fails
    // before the archive has been spread over the sandbox.
    const dir = await ensureDirNoFollow(sandboxReal, plan.destSegments.slice(0, -1));
    if (kind !== null) {
      // Extract into a fresh scratch directory first: it holds no pre-existing symlinks, a failed or
      // aborted extraction is removed whole, and the result is merged without following any link.
      staging = path.join(sandboxReal, scratchName('extract'));
      await mkdir(staging, { mode: 0o755 });
      const limits = { signal, maxBytes: bounds.archiveMaxBytes, maxEntries: bounds.archiveMaxEntries };
      if (kind === 'tar') await extractTar(temp, staging, limits);
      else await extractZip(temp, staging, limits);
      signal.throwIfAborted();
      await assertSymlinksConfined(staging);
      // Mesos extracts into the sandbox root regardless of where output_file put the archive.
      await mergeTree(staging, sandboxReal, sandboxReal);
    }
    await placeFile(temp, path.join(dir, fileName), sandboxReal);
  } finally {
    // After success both are gone (renamed / emptied); after failure or abort nothing half-written stays.
    await removeQuietly(temp);
    if (staging !== null) await removeQuietly(staging);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
