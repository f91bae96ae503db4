/**
 * A URI as written, with any `user:password@` in its authority replaced by `***@`, for events, log
 * lines and error messages (credentials never leave the fetcher). The rest is kept character for
 * character (not re-serialised by the URL parser), so a framework recognises its own URI. The
 * authority ends at the first '/', '?' or '#' after '//', and its userinfo at the last '@' in it,
 * as the WHATWG parser splits them.
 */
export function redactUri(value: string): string {
  const scheme = /^\s*[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(value);
  if (!scheme) return value;
  const start = scheme[0].length;
  const rest = value.slice(start);
  const end = rest.search(/[/?#\\]/);
  const authority = end === -1 ? rest : rest.slice(0, end);
  const at = authority.lastIndexOf('@');
  if (at === -1) return value;
  return `${value.slice(0, start)}***@${value.slice(start + at + 1)}`;
}
