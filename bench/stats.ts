/** Summary statistics of a sample of timings (ms) or sizes. */

/** Thrown for a sample no figure may be made from: a negative or non-finite value is a bug in the bench. */
export class BadSample extends Error {}

/** Checks every value of a sample: finite and ≥ 0, else BadSample naming `what` and the value. */
export function checkSample(values: readonly number[], what = "sample"): void {
  for (const [i, v] of values.entries()) {
    if (!Number.isFinite(v) || v < 0) throw new BadSample(`${what}: value #${i} is ${v}; latencies and sizes are finite and ≥ 0 (a clock or bookkeeping bug)`);
  }
}

/** The p-th percentile (0..100) by the nearest-rank method; NaN for an empty sample. Throws BadSample on a negative or NaN value. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  checkSample(values);
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank: with 30 samples p99 is the largest one; no interpolation invents a value never seen.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

/**
 * The p-th percentile (nearest rank) of values that may be negative (differences between paired
 * samples); throws BadSample on a value that is not finite.
 */
export function signedPercentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  for (const [i, v] of values.entries()) {
    if (!Number.isFinite(v)) throw new BadSample(`difference #${i} is ${v}; differences are finite (a clock or bookkeeping bug)`);
  }
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

/** The median (nearest rank) of values that may be negative. */
export function signedMedian(values: readonly number[]): number {
  return signedPercentile(values, 50);
}

/** The median (p50, nearest rank). */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Mean; NaN for an empty sample. */
export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

/**
 * How a p99 figure is named: with fewer than 100 samples the nearest-rank p99 is the largest
 * sample, and the label says so ("p99 (= max of 30)").
 */
export function p99Label(n: number): string {
  return n < 100 ? `p99 (= max of ${n})` : `p99 (n=${n})`;
}

/** The spread of a sample, for footnotes: p25–p75 and min–max. */
export function spread(values: readonly number[], digits = 1): string {
  if (values.length === 0) return "no samples";
  const f = (v: number) => v.toFixed(digits);
  return `p25–p75 ${f(percentile(values, 25))}–${f(percentile(values, 75))}, min–max ${f(percentile(values, 0))}–${f(percentile(values, 100))}`;
}

/** Fisher–Yates shuffle of a copy (the order in which paired measurements run). */
export function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
