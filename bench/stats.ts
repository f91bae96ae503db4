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

/** A small seeded PRNG (mulberry32): the same seed gives the same resamples, so a run's intervals are reproducible from its samples. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A confidence interval of a statistic. */
export interface Interval {
  low: number;
  high: number;
}

/**
 * The 95 % (or `level`) percentile-bootstrap interval of `statistic` over paired samples: each
 * resample draws pair indices with replacement and keeps both sides of a pair together (the pairs
 * ran back to back, so a slow moment of the machine hits both). It is the run's own precision: a
 * second run's figure outside it has moved by more than this run's noise explains.
 */
export function pairedBootstrap(a: readonly number[], b: readonly number[], statistic: (a: number[], b: number[]) => number, options: { resamples?: number; seed?: number; level?: number } = {}): Interval {
  if (a.length !== b.length) throw new Error(`pairedBootstrap: ${a.length} and ${b.length} samples are not pairs`);
  if (a.length === 0) return { low: Number.NaN, high: Number.NaN };
  const { resamples = 2000, seed = 12, level = 0.95 } = options;
  const random = seededRandom(seed);
  const stats: number[] = [];
  const ra = new Array<number>(a.length);
  const rb = new Array<number>(b.length);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < a.length; i++) {
      const j = Math.floor(random() * a.length);
      ra[i] = a[j]!;
      rb[i] = b[j]!;
    }
    const s = statistic(ra, rb);
    if (Number.isFinite(s)) stats.push(s);
  }
  if (stats.length === 0) return { low: Number.NaN, high: Number.NaN };
  const tail = ((1 - level) / 2) * 100;
  return { low: signedPercentile(stats, tail), high: signedPercentile(stats, 100 - tail) };
}
