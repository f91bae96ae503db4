/**
 * Wall-clock time in milliseconds with sub-millisecond resolution. Latencies that compare a
 * timestamp stamped by another process (the engine's `timeNano`, an event's `time`) with a
 * receipt here need the wall clock; Date.now() alone would round every receipt to 1 ms.
 */
export function wallNowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** A protobuf Timestamp as wall-clock milliseconds. */
export function timestampMs(t: { seconds: bigint; nanos: number } | undefined): number {
  if (!t) return Number.NaN;
  return Number(t.seconds) * 1000 + t.nanos / 1e6;
}
