// One uPlot chart of one ChartSpec: draws what the store holds, follows the shared step range,
// shows hover values in its legend, zooms by dragging across steps (double-click resets).
import uPlot from "uplot";

import type { SeriesStore } from "../data/series";
import { normaliseRange, type XRangeSync } from "../data/xrange";
import type { Theme } from "../tree/colour";
import { chartColumns, stepRange, yRange } from "./chartData";
import { type ChartSpec, formatValue } from "./groups";
import { chartColours, withAlpha } from "./theme";

export interface ChartContext {
  store: SeriesStore;
  sync: XRangeSync;
  /** uPlot cursor-sync key: the hover line moves across every chart of the page. */
  cursorKey: string;
  theme: Theme;
  smoothing: number;
  /** Colour index per series (compare view: one colour per run). */
  colourOf?: (seriesIndex: number) => number;
  /** Show the first series' newest value in the chart's head (off in the compare view: runs differ). */
  showLatest?: boolean;
}

/** Tick spacings of the step axis: whole steps only (uPlot would put ticks at 1.5 on a short run). */
const STEP_TICKS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000];
const HEIGHT = 180;

export class MetricChart {
  readonly element: HTMLElement;
  private plot: uPlot | null = null;
  private readonly plotBox: HTMLElement;
  private readonly latest: HTMLElement;
  private readonly summary: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly logButton: HTMLButtonElement;
  private log: boolean;
  /** Scale changes of ours in flight (data, rebuilds, the shared range), not the user's zoom: see `ours`. */
  private applying = 0;
  private drawnVersion = -1;
  /** The first and last step this chart has drawn: what uPlot fits its x axis to when not zoomed. */
  private extent: [number, number] | null = null;
  private unsync: () => void;
  private resize: ResizeObserver | null = null;

  constructor(
    readonly spec: ChartSpec,
    private ctx: ChartContext,
    private readonly sourceOf: (store: SeriesStore) => ReturnType<SeriesStore["get"]>[] = (store) =>
      spec.series.map((s) => store.get(s.metric)),
  ) {
    this.log = spec.log ?? false;
    const el = document.createElement("figure");
    el.className = "chart";
    el.setAttribute("role", "group");
    el.setAttribute("aria-label", spec.title);
    el.innerHTML = `
      <div class="chart-head">
        <h3 class="chart-title"></h3>
        <span class="chart-latest"></span>
        <button type="button" class="chart-log" aria-pressed="false" title="Logarithmic y axis">log</button>
      </div>
      <div class="chart-plot" aria-hidden="true"></div>
      <p class="chart-empty" hidden>No points yet.</p>
      <figcaption class="chart-help"></figcaption>
      <p class="visually-hidden chart-summary"></p>`;
    el.querySelector(".chart-title")!.textContent = spec.title;
    el.querySelector(".chart-help")!.textContent = spec.help;
    this.element = el;
    this.plotBox = el.querySelector(".chart-plot")!;
    this.latest = el.querySelector(".chart-latest")!;
    this.summary = el.querySelector(".chart-summary")!;
    this.empty = el.querySelector(".chart-empty")!;
    this.logButton = el.querySelector(".chart-log")!;
    this.logButton.setAttribute("aria-label", `${spec.title}: logarithmic scale`);
    this.logButton.addEventListener("click", () => {
      this.log = !this.log;
      this.rebuild();
    });
    this.unsync = ctx.sync.register(spec.id, (range) => this.applyRange(range));
  }

  /** Draw into the page (after `element` is attached, so the width is known). */
  mount(): void {
    this.rebuild();
    if (typeof ResizeObserver !== "undefined") {
      this.resize = new ResizeObserver(() => {
        const width = this.width();
        if (this.plot && Math.abs(this.plot.width - width) > 1) this.plot.setSize({ width, height: HEIGHT });
      });
      this.resize.observe(this.plotBox);
    }
  }

  setSmoothing(weight: number): void {
    this.ctx = { ...this.ctx, smoothing: weight };
    this.rebuild();
  }

  setTheme(theme: Theme): void {
    this.ctx = { ...this.ctx, theme };
    this.rebuild();
  }

  /** Redraw if the store changed since the last draw. */
  update(): void {
    if (this.ctx.store.version === this.drawnVersion) return;
    if (!this.plot) return this.rebuild();
    const columns = this.columns();
    if (columns.drawn.length + 1 !== this.plot.series.length) return this.rebuild();
    this.ours(() => {
      this.plot!.setData(columns.data as uPlot.AlignedData, true);
      const range = this.ctx.sync.range;
      if (range) this.plot!.setScale("x", { min: range[0], max: range[1] });
    });
    this.afterDraw(columns.data);
  }

  destroy(): void {
    this.unsync();
    this.resize?.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }

  private width(): number {
    return Math.max(200, Math.floor(this.plotBox.clientWidth || 320));
  }

  private columns() {
    return chartColumns(this.sourceOf(this.ctx.store), {
      smoothing: this.ctx.smoothing,
      log: this.log,
      maxPoints: Math.max(200, this.width() * 2),
      smooth: this.spec.series.map((s) => !s.eval),
    });
  }

  private rebuild(): void {
    this.plot?.destroy();
    this.plot = null;
    this.plotBox.replaceChildren();
    this.logButton.setAttribute("aria-pressed", String(this.log));
    const columns = this.columns();
    const colours = chartColours(this.ctx.theme);
    const format = this.spec.format;
    // Idle legend (cursor off the chart): the newest values; hovering: the values under the cursor.
    const lastPresent = (col: (number | null)[] | undefined) => {
      for (let i = (col?.length ?? 0) - 1; i >= 0; i--) if (col![i] !== null) return col![i];
      return null;
    };
    const series: uPlot.Series[] = [
      {
        label: "step",
        value: (u, v, _s, idx) => {
          const step = idx === null ? lastPresent(u.data[0] as (number | null)[]) : v;
          return step === null || step === undefined ? "–" : String(step);
        },
      },
    ];
    for (const d of columns.drawn) {
      const spec = this.spec.series[d.source];
      const colour = colours.series[(this.ctx.colourOf?.(d.source) ?? d.source) % colours.series.length];
      series.push({
        label: d.raw ? `${spec.label} (raw)` : spec.label,
        stroke: d.raw ? withAlpha(colour, 0.28) : colour,
        width: d.raw ? 1 : 1.75,
        dash: spec.eval && !d.raw ? [5, 4] : undefined,
        spanGaps: true,
        points: { show: spec.eval === true && !d.raw, size: 5, fill: colour },
        value: (u, v, seriesIdx, idx) =>
          formatValue(idx === null ? lastPresent(u.data[seriesIdx] as (number | null)[]) : v, format),
      });
    }
    const axis = {
      stroke: colours.axis,
      grid: { stroke: colours.grid, width: 1 },
      ticks: { stroke: colours.grid, width: 1, size: 4 },
      font: "11px system-ui, sans-serif",
    };
    const opts: uPlot.Options = {
      width: this.width(),
      height: HEIGHT,
      series,
      scales: {
        x: { time: false, range: (u, min, max) => stepRange(u.data[0] as ArrayLike<number | null>, min, max) },
        y: this.log ? { distr: 3 } : { range: (_u, min, max) => yRange(min, max, this.spec.format) },
      },
      axes: [
        { ...axis, size: 28, incrs: STEP_TICKS },
        { ...axis, size: 52, values: (_u, values) => values.map((v) => formatValue(v, format)) },
      ],
      cursor: {
        sync: { key: this.ctx.cursorKey },
        drag: { x: true, y: false, setScale: true },
        points: { size: 6 },
      },
      legend: { live: true },
      hooks: {
        setScale: [
          (u, key) => {
            if (key !== "x" || this.applying) return;
            const min = u.scales.x.min;
            const max = u.scales.x.max;
            if (min === undefined || max === undefined) return;
            // uPlot's double-click reset fits the chart to its own points: that means "show all" here too.
            const own = this.extent;
            const reset = own !== null && min <= own[0] && max >= own[1];
            this.ctx.sync.publish(reset ? null : normaliseRange([min, max], this.ctx.store.domain()), this.spec.id);
          },
        ],
      },
    };
    const plot = new uPlot(opts, columns.data as uPlot.AlignedData, this.plotBox);
    this.plot = plot;
    this.ours(() => {
      const range = this.ctx.sync.range;
      if (range) plot.setScale("x", { min: range[0], max: range[1] });
    });
    // The faint raw lines stay out of the legend: the smoothed value is the one to read.
    const rows = plot.root.querySelectorAll<HTMLElement>(".u-legend .u-series");
    columns.drawn.forEach((d, i) => {
      if (d.raw && rows[i + 1]) rows[i + 1].style.display = "none";
    });
    this.afterDraw(columns.data);
  }

  private afterDraw(data: (number | null)[][]): void {
    this.drawnVersion = this.ctx.store.version;
    const steps = data[0] ?? [];
    const [lo, hi] = [steps[0], steps[steps.length - 1]];
    this.extent = typeof lo === "number" && typeof hi === "number" ? [lo, hi] : null;
    const hasPoints = data.slice(1).some((col) => col.some((v) => v !== null));
    this.empty.hidden = hasPoints;
    this.element.classList.toggle("is-empty", !hasPoints);
    const first = this.spec.series[0];
    const latest = this.ctx.store.latest(first.metric);
    this.latest.textContent = latest && this.ctx.showLatest !== false ? formatValue(latest.value, this.spec.format) : "";
    this.summary.textContent = this.spec.series
      .map((s) => {
        const p = this.ctx.store.latest(s.metric);
        return p ? `${s.label}: ${formatValue(p.value, this.spec.format)} at step ${p.step}` : `${s.label}: no data`;
      })
      .join("; ");
  }

  private applyRange(range: readonly [number, number] | null): void {
    if (!this.plot) return;
    this.ours(() => {
      const domain = this.ctx.store.domain();
      const [min, max] = range ?? domain ?? [0, 1];
      this.plot!.setScale("x", { min, max });
    });
  }

  /** uPlot calls its setScale hook when it commits, in a microtask, not inside the call that changed the
   * scale. A chart drawn without a zoom fits its own series, which may start later than the page's (eval at
   * step 0, train from step 1): read as a zoom, that fit would pin every chart to it, and new steps would
   * fall off the right edge. So our own changes stay marked until after uPlot's commit: a microtask
   * queued now runs after the one uPlot queued. */
  private ours(change: () => void): void {
    this.applying += 1;
    try {
      change();
    } finally {
      queueMicrotask(() => {
        this.applying -= 1;
      });
    }
  }
}
