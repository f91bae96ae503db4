import { InvalidRequest } from "./errors.js";

/** Longest container id Berth accepts (Mesos ids are UUIDs; engine names must stay short). */
export const MAX_CONTAINER_ID_LENGTH = 128;

const ALLOWED = /^[A-Za-z0-9_.-]+$/;

/** Prints a value safely inside an error message (control characters escaped, long values cut). */
export function quote(value: string, max = 80): string {
  const shown = value.length > max ? `${value.slice(0, max)}…` : value;
  return `'${JSON.stringify(shown).slice(1, -1).replace(/'/g, "\\'")}'`;
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
    const shown = bad.charCodeAt(0) < 0x20 || bad.charCodeAt(0) === 0x7f ? `control character U+${bad.charCodeAt(0).toString(16).padStart(4, "0")}` : `'${bad}'`;
    throw new InvalidRequest(`${field} ${quote(value)} contains ${shown}; allowed are letters, digits, '_', '.' and '-'`);
  }
  if (value.startsWith(".") || value.startsWith("-")) {
    throw new InvalidRequest(`${field} ${quote(value)} starts with '${value[0]}'; it must start with a letter, digit or '_'`);
  }
  if (value.includes("..")) throw new InvalidRequest(`${field} ${quote(value)} contains '..'`);
  return value;
}
