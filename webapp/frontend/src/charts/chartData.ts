// From the metric store to the columns one chart hands uPlot: align, smooth, thin, make log-safe.
import { alignOnSteps, logSafe, type Points } from "../data/align";
import { downsampleAligned } from "../data/downsample";
import { ema } from "../data/smooth";

export interface ChartDataOptions {
  /** EMA weight, 0 = raw. With smoothing the raw line is kept (drawn faint) before each smoothed one. */
  smoothing: number;
  log: boolean;
  /** Most rows to draw (about two per pixel). */
  maxPoints: number;
  /** Per input series: whether to smooth it (sparse eval series are drawn as they are). Default all. */
  smooth?: readonly boolean[];
}

export interface ChartColumns {
  /** [steps, ...per drawn series]; with smoothing: raw₁, smooth₁, raw₂, smooth₂ … */
  data: (number | null)[][];
  /** For each drawn series: which input series it shows, and whether it is the raw one. */
  drawn: { source: number; raw: boolean }[];
  /** Values a log axis could not show. */
  droppedForLog: number;
  /** Rows before thinning. */
  rows: number;
}

export function chartColumns(series: ReadonlyArray<Points | undefined>, options: ChartDataOptions): ChartColumns {
  const aligned = alignOnSteps(series);
  const [xs, ...ys] = aligned;
  const columns: (number | null)[][] = [xs];
  const drawn: ChartColumns["drawn"] = [];
  ys.forEach((col, source) => {
    if (options.smoothing > 0 && options.smooth?.[source] !== false) {
      columns.push(col, ema(col, options.smoothing));
      drawn.push({ source, raw: true }, { source, raw: false });
    } else {
      columns.push(col);
      drawn.push({ source, raw: false });
    }
  });
  const thinned = downsampleAligned(columns, options.maxPoints);
  let droppedForLog = 0;
  if (options.log) {
    for (let i = 1; i < thinned.length; i++) {
      const safe = logSafe(thinned[i]);
      thinned[i] = safe.values;
      if (!drawn[i - 1].raw) droppedForLog += safe.dropped;
    }
  }
  return { data: thinned, drawn, droppedForLog, rows: xs.length };
}

/**
 * The y range of a linear chart. uPlot's own choice for a flat series is [0, 100] around 0, which on a
 * share (0…1) reads as 10,000 % and is cut off at the axis: a flat series gets a band of ±10 % of its value
 * (±0.1 at zero; a share never below 0), anything else 5 % of its span above and below.
 */
export function yRange(min: number | null, max: number | null, format: string): [number, number] {
  const share = format === "percent";
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (max - min < 1e-12) {
    const half = Math.abs(min) * 0.1 || 0.1;
    return [share && min >= 0 ? Math.max(0, min - half) : min - half, max + half];
  }
  const pad = (max - min) * 0.05;
  return [share && min >= 0 ? Math.max(0, min - pad) : min - pad, max + pad];
}

/** The x range of a chart: the range uPlot chose, except around a lone step, which uPlot stretches over
 * 100 steps (the eval before training, alone on the chart until step 1 ends): one step either side of it. */
export function stepRange(
  steps: ArrayLike<number | null>,
  min: number | null,
  max: number | null,
): [number | null, number | null] {
  const first = steps.length ? steps[0] : null;
  if (first === null || steps[steps.length - 1] !== first) return [min, max];
  return [Math.max(0, first - 1), first + 1];
}
