// runc/crun (through libcontainer's ConvertCPUSharesToCgroupV2Value) map a requested v1
// cpu.shares value S in [2, 262144] onto v2 cpu.weight W in [1, 10000] as
//   W = 1 + floor((S - 2) * 9999 / 262142).
// Several shares values land on one weight, so the inverse returns the middle of that range.
// The kernel default weight (100, what a container gets when no shares were requested) is
// reported as the v1 default of 1024 shares instead, so an unconfigured container reads as one
// CPU on both cgroup versions. Runtimes that adopted the 2025 quadratic mapping (1024 → 100) map
// other values differently; a CFS quota, when set, takes precedence over this estimate anyway.
const MIN_SHARES = 2;
const SHARES_SPAN = 262142;
const WEIGHT_SPAN = 9999;
const DEFAULT_WEIGHT = 100;
const DEFAULT_SHARES = 1024;

/** The v1 cpu.shares value a runtime most likely converted into this v2 cpu.weight. */
export function sharesFromWeight(weight: number): number {
  if (weight === DEFAULT_WEIGHT) return DEFAULT_SHARES;
  const low = MIN_SHARES + ((weight - 1) * SHARES_SPAN) / WEIGHT_SPAN;
  const high = MIN_SHARES + (weight * SHARES_SPAN) / WEIGHT_SPAN;
  return (low + high) / 2;
}
