// Smoothing for noisy per-step metrics. Gaps (null) stay gaps and do not feed the average.

export type Values = ReadonlyArray<number | null | undefined>;

/**
 * Exponential moving average with TensorBoard's debiasing, so the first points are not pulled
 * towards zero: weight 0 returns the data, 0.99 is very smooth.
 */
export function ema(values: Values, weight: number): (number | null)[] {
  const w = Math.min(Math.max(weight, 0), 0.999);
  let last = 0;
  let n = 0;
  return values.map((v) => {
    if (v === null || v === undefined || !Number.isFinite(v)) return null;
    last = last * w + (1 - w) * v;
    n += 1;
    const debias = 1 - w ** n;
    return debias > 0 ? last / debias : v;
  });
}

/** Trailing mean of the last `window` present values (a flat alternative to EMA). */
export function windowMean(values: Values, window: number): (number | null)[] {
  const size = Math.max(1, Math.floor(window));
  const recent: number[] = [];
  let sum = 0;
  return values.map((v) => {
    if (v === null || v === undefined || !Number.isFinite(v)) return null;
    recent.push(v);
    sum += v;
    if (recent.length > size) sum -= recent.shift()!;
    return sum / recent.length;
  });
}
