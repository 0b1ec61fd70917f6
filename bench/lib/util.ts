/** Small helpers shared by the harness: time, statistics, formatting. */

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
export const wallMs = (): number => performance.timeOrigin + performance.now();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every `everyMs` until it returns truthy or `timeoutMs` passes (then returns undefined). */
export async function until<T>(
  check: () => T | Promise<T>,
  timeoutMs: number,
  everyMs = 50,
): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() >= end) return undefined;
    await sleep(everyMs);
  }
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Percentile (0–100) of an already sorted array, nearest-rank. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** p50 / p99 / p999 / max of samples (sorted in place). */
export function latencySummary(samples: Float64Array): {
  n: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
} {
  samples.sort();
  return {
    n: samples.length,
    p50: percentileSorted(samples, 50),
    p99: percentileSorted(samples, 99),
    p999: percentileSorted(samples, 99.9),
    max: samples.length ? samples[samples.length - 1]! : Number.NaN,
  };
}

/** Rounds for reports: 3 significant digits at most, integers kept whole. */
export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x;
  if (Math.abs(x) >= 10 ** digits) return Math.round(x);
  return Number(x.toPrecision(digits));
}

export const fmt = (x: number | null | undefined, unit = ''): string =>
  x === null || x === undefined || Number.isNaN(x) ? '–' : `${round(x).toLocaleString('en-US')}${unit}`;

/** Payload of ~`bytes` bytes of JSON carrying a round number and a send time. */
export function benchPayload(
  round: number,
  bytes: number,
  t = wallMs(),
): { r: number; t: number; p: string } {
  const base = JSON.stringify({ r: round, t, p: '' }).length;
  return { r: round, t, p: 'x'.repeat(Math.max(0, bytes - base)) };
}

export function isoStamp(d = new Date()): string {
  return d
    .toISOString()
    .replace(/:/g, '-')
    .replace(/\.\d+Z$/, 'Z');
}

export class BenchError extends Error {
  override name = 'BenchError';
}
