import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { FetchSource } from './fetch-plan.js';

/** How one download is bounded and observed. */
export interface DownloadLimits {
  signal: AbortSignal;
  maxBytes: number;
  /** Called with the running byte count after every chunk. */
  onBytes?: (bytes: number) => void;
}

/**
 * Streams `source` into a new file `dest` (created exclusively, so a racing symlink at that name is
 * never followed), counting bytes and failing as soon as the cap is crossed. On error the caller
 * removes `dest`.
 */
export async function download(source: FetchSource, dest: string, limits: DownloadLimits): Promise<void> {
  const body = source.kind === 'http' ? await openHttp(source.url, limits) : await openFile(source.path, limits);
  let total = 0;
  const cap = async function* (chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of chunks) {
      total += chunk.byteLength;
      if (total > limits.maxBytes) {
        throw new Error(`size exceeds the limit of ${limits.maxBytes} bytes`);
      }
      limits.onBytes?.(total);
      yield chunk;
    }
  };
  await pipeline(body, cap, createWriteStream(dest, { flags: 'wx', mode: 0o644 }), { signal: limits.signal });
}

async function openHttp(url: URL, limits: DownloadLimits): Promise<AsyncIterable<Uint8Array>> {
  // fetch follows redirects itself (up to 20) and ties both the request and the body to the signal.
  const res = await fetch(url, { signal: limits.signal, redirect: 'follow' });
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}${res.redirected ? ` from '${res.url}'` : ''}`);
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limits.maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`Content-Length ${declared} exceeds the limit of ${limits.maxBytes} bytes`);
  }
  return (res.body ?? emptyBody()) as unknown as AsyncIterable<Uint8Array>;
}

async function openFile(path: string, limits: DownloadLimits): Promise<AsyncIterable<Uint8Array>> {
  const st = await stat(path);
  if (!st.isFile()) throw new Error(`'${path}' is not a regular file`);
  if (st.size > limits.maxBytes) {
    throw new Error(`size ${st.size} exceeds the limit of ${limits.maxBytes} bytes`);
  }
  return createReadStream(path);
}

async function* emptyBody(): AsyncGenerator<Uint8Array> {}
