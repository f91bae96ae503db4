import { InvalidRequest } from "./errors.js";

/** Longest container id Berth accepts (Mesos ids are UUIDs; engine names must stay short). */
export const MAX_CONTAINER_ID_LENGTH = 128;

const ALLOWED = /^[A-Za-z0-9_.-]+$/;

/** An environment variable's name as Berth accepts it (launch, parameters, exec, health checks): non-empty, no '=' or NUL. */
export const ENV_NAME = /^[^=\0]+$/;

/** A user as the engine takes it (launch, `user` parameter, exec): a name or uid, optionally ':group' or ':gid'. */
export const USER_SPEC = /^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$/;

// Characters JSON.stringify leaves alone but a reader cannot see or that reorder the text around
// them: C1 controls, format characters (zero-width, bidi overrides) and line/paragraph separators.
const INVISIBLE = /[\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}]/gu;

/** Prints a value safely inside an error message (control characters escaped, long values cut). */
export function quote(value: string, max = 80): string {
  const shown = value.length > max ? `${value.slice(0, max)}…` : value;
  const escaped = JSON.stringify(shown)
    .slice(1, -1)
    .replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return `'${escaped.replace(/'/g, "\\'")}'`;
}

/** `U+00E9`, the conventional name of a code point. */
function codePoint(c: string): string {
  return `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * Checks a container (or agent) id: non-empty, at most 128 of [A-Za-z0-9_.-], not starting with
 * '.' or '-', no '..'. Ids become engine names, label values and sandbox directory names.
 */
export function validateId(value: string, field: string): string {
  if (value.length === 0) throw new InvalidRequest(`${field} is empty`);
  if (value.length > MAX_CONTAINER_ID_LENGTH) {
    throw new InvalidRequest(`${field} ${quote(value)} is ${value.length} characters long; at most ${MAX_CONTAINER_ID_LENGTH} are allowed`);
  }
  if (!ALLOWED.test(value)) {
    const bad = [...value].find((c) => !ALLOWED.test(c)) ?? "";
    const code = bad.codePointAt(0) ?? 0;
    const shown =
      code < 0x20 || (code >= 0x7f && code <= 0x9f)
        ? `control character ${codePoint(bad)}`
        : code > 0x7e
          ? // Invisible or direction-changing characters are named only by code point.
            new RegExp(INVISIBLE.source, "u").test(bad) ? `character ${codePoint(bad)}` : `'${bad}' (${codePoint(bad)})`
          : `'${bad}'`;
    throw new InvalidRequest(`${field} ${quote(value)} contains ${shown}; allowed are letters, digits, '_', '.' and '-'`);
  }
  if (value.startsWith(".") || value.startsWith("-")) {
    throw new InvalidRequest(`${field} ${quote(value)} starts with '${value[0]}'; it must start with a letter, digit or '_'`);
  }
  if (value.includes("..")) throw new InvalidRequest(`${field} ${quote(value)} contains '..'`);
  return value;
}
