import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { NetworkRules } from './address-rules.js';
import type { FetchSource } from './fetch-plan.js';
import { httpGet } from './http-get.js';
import { openLocalFile } from './local-file.js';
import { openLocalFileAs, type ReadAsUser } from './read-as-user.js';
import type { Resolver } from './safe-lookup.js';

/** Bytes downloaded so far by all URIs of one launch, against its cap. */
export interface LaunchBudget {
  used: number;
  readonly max: number;
}

/** How one download is bounded and observed. */
export interface DownloadLimits {
  signal: AbortSignal;
  /** Per-URI cap. */
  maxBytes: number;
  /** Shared by every URI of the launch; this download adds to `used` as bytes arrive. */
  launch: LaunchBudget;
  network: NetworkRules;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxRedirects: number;
  filePrefixes: readonly string[];
  /** Called with the running byte count after every chunk. */
  onBytes?: (bytes: number) => void;
  /** Local files are opened with this user's rights (a child process); undefined: Berth's own. */
  readAs?: ReadAsUser;
  /** Mode of the new file (default 0644). */
  fileMode?: number;
  /** Test seam for the http(s) resolver. */
  resolve?: Resolver;
}

/** The message for a size over one of the two caps, or null when `bytes` fits both. */
function overCap(bytes: number, limits: Pick<DownloadLimits, 'maxBytes' | 'launch'>, launchBefore: number, what: string): string | null {
  if (bytes > limits.maxBytes) return `${what} ${bytes} exceeds the limit of ${limits.maxBytes} bytes (--fetch_max_uri_bytes)`;
  if (launchBefore + bytes > limits.launch.max) {
    return `${what} ${bytes} takes the launch's URIs past their combined limit of ${limits.launch.max} bytes (--fetch_max_launch_bytes; ${launchBefore} already fetched)`;
  }
  return null;
}

/**
 * Counts a file that did not stream through this launch's download (a fetcher cache entry, or a
 * download another launch started) against the per-URI and the per-launch cap; throws when over.
 */
export function chargeFetched(bytes: number, limits: { maxBytes: number; launch: LaunchBudget }): void {
  const before = limits.launch.used;
  const problem = overCap(bytes, limits, before, 'size');
  if (problem !== null) throw new Error(problem);
  limits.launch.used = before + bytes;
}

/**
 * Streams `source` into a new file `dest` (created exclusively, so a racing symlink at that name is
 * never followed), counting bytes against the per-URI and the per-launch cap and failing as soon as
 * either is crossed. The source (socket or file handle) is closed on every path; on error the caller
 * removes `dest`.
 */
export async function download(source: FetchSource, dest: string, limits: DownloadLimits): Promise<void> {
  limits.signal.throwIfAborted();
  const launchBefore = limits.launch.used;
  const opened: { body: AsyncIterable<Uint8Array>; close(): void; size?: number } =
    source.kind === 'http'
      ? await httpGet(source.url, {
          signal: limits.signal,
          network: limits.network,
          connectTimeoutMs: limits.connectTimeoutMs,
          idleTimeoutMs: limits.idleTimeoutMs,
          maxRedirects: limits.maxRedirects,
          maxBytes: Math.min(limits.maxBytes, limits.launch.max - launchBefore),
          tooLarge: (declared) => overCap(declared, limits, launchBefore, 'Content-Length')!,
          resolve: limits.resolve,
        })
      : limits.readAs
        ? await openLocalFileAs(source.path, limits.filePrefixes, limits.readAs)
        : await openLocalFile(source.path, limits.filePrefixes);
  try {
    if (opened.size !== undefined) {
      const problem = overCap(opened.size, limits, launchBefore, 'size');
      if (problem !== null) throw new Error(problem);
    }
    let total = 0;
    const cap = async function* (chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
      for await (const chunk of chunks) {
        total += chunk.byteLength;
        limits.launch.used = launchBefore + total;
        const problem = overCap(total, limits, launchBefore, 'size');
        if (problem !== null) throw new Error(problem);
        limits.onBytes?.(total);
        yield chunk;
      }
    };
    // Opened (and so created) before any byte flows: a write stream opening lazily could create the
    // file after a failed pipeline had returned and the caller had already removed `dest`.
    const out = await open(dest, 'wx', limits.fileMode ?? 0o644);
    await pipeline(opened.body, cap, out.createWriteStream(), { signal: limits.signal });
  } finally {
    opened.close();
  }
}
