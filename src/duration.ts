/** Parses a Mesos-style duration ('500ms', '10secs', '2mins', '1hrs', '30s', '5m', or plain seconds) to milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|secs?|m|mins?|h|hrs?|d|days?|w|weeks?)?\s*$/.exec(text);
  if (!m) throw new Error(`${flag} '${text}' is not a duration (e.g. 500ms, 10secs, 2mins, 1hrs)`);
  const value = Number(m[1]);
  const unit = m[2] ?? "s";
  const factor: Record<string, number> = {
    ns: 1e-6, us: 1e-3, ms: 1, s: 1000, sec: 1000, secs: 1000, m: 60_000, min: 60_000, mins: 60_000,
    h: 3_600_000, hr: 3_600_000, hrs: 3_600_000, d: 86_400_000, day: 86_400_000, days: 86_400_000, w: 604_800_000, week: 604_800_000, weeks: 604_800_000,
  };
  return value * factor[unit]!;
}
