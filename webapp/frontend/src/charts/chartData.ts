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
