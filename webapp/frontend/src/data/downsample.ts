// Downsampling long series for drawing: LTTB (Largest-Triangle-Three-Buckets, Steinarsson 2013) keeps
// the visual shape; min-max keeps every spike. Both return indices into the input, so several
// series sharing one x column can be thinned together.

export type Column = ReadonlyArray<number | null | undefined>;

function present(ys: Column, i: number): boolean {
  const v = ys[i];
  return v !== null && v !== undefined && Number.isFinite(v);
}

/** Indices (ascending) of at most `threshold` points chosen by LTTB among the present points. */
export function lttbIndices(xs: ReadonlyArray<number>, ys: Column, threshold: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < xs.length; i++) if (present(ys, i)) idx.push(i);
  const n = idx.length;
  if (threshold >= n || threshold < 3) return threshold < 3 && n > 2 ? [idx[0], idx[n - 1]] : idx;
  const out = [idx[0]];
  const every = (n - 2) / (threshold - 2);
  let a = 0; // position in idx of the last chosen point
  for (let b = 0; b < threshold - 2; b++) {
    // Average of the next bucket: the third corner of the triangle.
    const nextStart = Math.floor((b + 1) * every) + 1;
    const nextEnd = Math.min(Math.floor((b + 2) * every) + 1, n);
    let avgX = 0;
    let avgY = 0;
    for (let j = nextStart; j < nextEnd; j++) {
      avgX += xs[idx[j]];
      avgY += ys[idx[j]] as number;
    }
    const count = Math.max(nextEnd - nextStart, 1);
    avgX /= count;
    avgY /= count;
    const start = Math.floor(b * every) + 1;
    const end = Math.floor((b + 1) * every) + 1;
    const ax = xs[idx[a]];
    const ay = ys[idx[a]] as number;
    let best = start;
    let bestArea = -1;
    for (let j = start; j < end; j++) {
      const area = Math.abs((ax - avgX) * ((ys[idx[j]] as number) - ay) - (ax - xs[idx[j]]) * (avgY - ay));
      if (area > bestArea) {
        bestArea = area;
        best = j;
      }
    }
    out.push(idx[best]);
    a = best;
  }
  out.push(idx[n - 1]);
  return out;
}

/** Indices of the first, min, max and last present point of each of `buckets` equal-width x buckets. */
export function minMaxIndices(xs: ReadonlyArray<number>, ys: Column, buckets: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < xs.length; i++) if (present(ys, i)) idx.push(i);
  if (idx.length <= buckets * 4 || buckets < 1) return idx;
  const x0 = xs[idx[0]];
  const span = xs[idx[idx.length - 1]] - x0 || 1;
  const chosen = new Set<number>();
  let bucket = -1;
  let first = -1;
  let lo = -1;
  let hi = -1;
  let lastInBucket = -1;
  const flush = () => {
    if (first >= 0) for (const i of [first, lo, hi, lastInBucket]) chosen.add(i);
  };
  for (const i of idx) {
    const b = Math.min(Math.floor(((xs[i] - x0) / span) * buckets), buckets - 1);
    if (b !== bucket) {
      flush();
      bucket = b;
      first = lo = hi = i;
    }
    if ((ys[i] as number) < (ys[lo] as number)) lo = i;
    if ((ys[i] as number) > (ys[hi] as number)) hi = i;
    lastInBucket = i;
  }
  flush();
  return [...chosen].sort((p, q) => p - q);
}

/** Aligned data `[xs, ...ys]` thinned to the union of each series' LTTB points (about `target` per series). */
export function downsampleAligned(data: ReadonlyArray<Column>, target: number): (number | null)[][] {
  const xs = data[0] as ReadonlyArray<number>;
  if (xs.length <= target) return data.map((col) => [...col].map((v) => v ?? null));
  const keep = new Set<number>();
  for (let s = 1; s < data.length; s++) for (const i of lttbIndices(xs, data[s], target)) keep.add(i);
  const rows = [...keep].sort((p, q) => p - q);
  return data.map((col) => rows.map((i) => col[i] ?? null));
}
