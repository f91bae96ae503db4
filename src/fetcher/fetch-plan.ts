import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FetchUriInvalid } from './fetch-errors.js';

/** Where a URI's bytes come from. */
export type FetchSource = { kind: 'http'; url: URL } | { kind: 'file'; path: string };

/** A validated URI: its source and its destination relative to the sandbox, split into segments. */
export interface FetchPlan {
  source: FetchSource;
  /** Non-empty, each segment a plain name (no '', '.', '..', '/', NUL). */
  destSegments: string[];
}

/** The subset of FetchUri that planning needs (kept structural to avoid an import cycle). */
interface UriLike {
  value: string;
  outputFile?: string;
}

// C0 controls and DEL: never meaningful in a URI or a file name, and a classic log/header injection vector.
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** Validates one URI and computes its plan; throws FetchUriInvalid naming the field and value. */
export function planFetch(uri: UriLike, index: number): FetchPlan {
  const valueField = `command_info.uris[${index}].value`;
  const value = uri.value;
  if (typeof value !== 'string' || value === '') {
    throw new FetchUriInvalid(`${valueField} is empty`);
  }
  if (CONTROL_CHARS.test(value)) {
    throw new FetchUriInvalid(`${valueField} ${JSON.stringify(value)} contains a control character`);
  }
  const source = parseSource(value, valueField);

  // proto3-style adapters send '' for an unset string; Mesos treats an unset output_file as "use the URI's name".
  const outputFile = uri.outputFile;
  if (outputFile !== undefined && outputFile !== '') {
    return { source, destSegments: outputFileSegments(outputFile, `command_info.uris[${index}].output_file`) };
  }
  const name = basenameOf(source, value);
  if (name === '' || name === '.' || name === '..' || name.includes('/') || CONTROL_CHARS.test(name)) {
    throw new FetchUriInvalid(
      `${valueField} '${value}' has no usable file name (last path segment is ${JSON.stringify(name)}); set output_file`,
    );
  }
  return { source, destSegments: [name] };
}

function parseSource(value: string, field: string): FetchSource {
  if (value.startsWith('/')) {
    return { kind: 'file', path: path.normalize(value) };
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // Relative paths and scheme-less strings land here: Mesos would resolve them against the agent's
    // frameworks_home, which Berth does not have.
    throw new FetchUriInvalid(`${field} '${value}' is neither an absolute path nor a URI with a scheme`);
  }
  switch (url.protocol) {
    case 'http:':
    case 'https:':
      if (url.hostname === '') throw new FetchUriInvalid(`${field} '${value}' has no host`);
      return { kind: 'http', url };
    case 'file:': {
      if (url.hostname !== '' && url.hostname !== 'localhost') {
        throw new FetchUriInvalid(`${field} '${value}' names a remote host '${url.hostname}'; only local file URIs are supported`);
      }
      let p: string;
      try {
        p = fileURLToPath(url);
      } catch (err) {
        throw new FetchUriInvalid(`${field} '${value}' is not a valid file URI: ${(err as Error).message}`);
      }
      if (p.includes('\0')) throw new FetchUriInvalid(`${field} '${value}' decodes to a path containing NUL`);
      return { kind: 'file', path: p };
    }
    default:
      throw new FetchUriInvalid(
        `${field} '${value}' has unsupported scheme '${url.protocol.slice(0, -1)}' (supported: http, https, file, absolute path)`,
      );
  }
}

function basenameOf(source: FetchSource, value: string): string {
  if (source.kind === 'file') {
    // A bare path is a path, not a URI: no percent-decoding (fileURLToPath already decoded file:// URIs).
    return value.endsWith('/') ? '' : path.basename(source.path);
  }
  const segments = source.url.pathname.split('/');
  const last = segments[segments.length - 1] ?? '';
  try {
    return decodeURIComponent(last);
  } catch {
    return last; // malformed %-escape: keep it literal, as Mesos does
  }
}

function outputFileSegments(outputFile: string, field: string): string[] {
  const bad = (why: string): never => {
    throw new FetchUriInvalid(`${field} ${JSON.stringify(outputFile)} ${why}`);
  };
  if (CONTROL_CHARS.test(outputFile)) bad('contains a control character');
  if (outputFile.startsWith('/')) bad('is absolute; it must be a path relative to the sandbox');
  const raw = outputFile.split('/');
  if (raw.includes('..')) bad("contains a '..' segment");
  if (raw[raw.length - 1] === '' || raw[raw.length - 1] === '.') bad('does not end in a file name');
  const segments = raw.filter((s) => s !== '' && s !== '.');
  if (segments.length === 0) bad('does not name a file');
  return segments;
}
