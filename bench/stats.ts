/** Summary statistics of a sample of timings (ms) or sizes. */

/** The p-th percentile (0..100) by the nearest-rank method; NaN for an empty sample. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank: with 30 samples p99 is the largest one; no interpolation invents a value never seen.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

/** The median (p50, nearest rank). */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Mean; NaN for an empty sample. */
export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length;
}
