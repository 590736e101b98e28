// From per-metric point lists to uPlot's columnar form, and values a log axis can draw.

export interface Points {
  steps: number[];
  values: (number | null)[];
}

/** uPlot's aligned data: the sorted union of steps, then one column per series (null where it has no point). */
export function alignOnSteps(series: ReadonlyArray<Points | undefined>): (number | null)[][] {
  const all = new Set<number>();
  for (const s of series) if (s) for (const step of s.steps) all.add(step);
  const xs = [...all].sort((a, b) => a - b);
  const row = new Map<number, number>();
  xs.forEach((step, i) => row.set(step, i));
  const columns = series.map((s) => {
    const col: (number | null)[] = new Array(xs.length).fill(null);
    if (s) s.steps.forEach((step, i) => (col[row.get(step)!] = s.values[i] ?? null));
    return col;
  });
  return [xs, ...columns];
}

/** A log axis cannot show 0 or negatives: they become gaps (and are counted so the chart can say so). */
export function logSafe(values: ReadonlyArray<number | null>): { values: (number | null)[]; dropped: number } {
  let dropped = 0;
  const out = values.map((v) => {
    if (v === null) return null;
    if (!(v > 0) || !Number.isFinite(v)) {
      dropped += 1;
      return null;
    }
    return v;
  });
  return { values: out, dropped };
}

/** Whether a log axis helps: all present values positive and spanning more than `decades` powers of ten. */
export function logHelps(values: ReadonlyArray<number | null>, decades = 2): boolean {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) continue;
    if (v <= 0) return false;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return hi > lo && Math.log10(hi / lo) >= decades;
}
