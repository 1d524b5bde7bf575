// Shared figures for benches: percentiles over samples, and rounding for tables.

export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const median = (samples: readonly number[]): number => percentile(samples, 50);

export const round = (n: number, digits = 3): number => Math.round(n * 10 ** digits) / 10 ** digits;
