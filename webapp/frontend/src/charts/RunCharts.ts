// The run page's charts: a toolbar (smoothing, step range), then each group of CHART_GROUPS as a
// section of MetricCharts. Points are appended live; redraws are batched to one per frame.
import { SeriesStore } from "../data/series";
import { normaliseRange, type Range, XRangeSync } from "../data/xrange";
import { type ChartGroup, CHART_GROUPS, type ChartSpec, otherCharts } from "./groups";
import { type ChartContext, MetricChart } from "./MetricChart";
import { currentTheme, onThemeChange } from "./theme";

export interface RunChartsOptions {
  groups?: readonly ChartGroup[];
  smoothing?: number;
  /** Compare view: draw these series per chart instead of the spec's (see compare.ts). */
  chartFactory?: (spec: ChartSpec, ctx: ChartContext) => MetricChart;
  store?: SeriesStore;
  showOther?: boolean;
}

let instances = 0;

export class RunCharts {
  readonly store: SeriesStore;
  readonly sync = new XRangeSync();
  private charts: MetricChart[] = [];
  private readonly known = new Set<string>();
  private otherSection: HTMLElement | null = null;
  private frame: number | null = null;
  private smoothing: number;
  private readonly ctx: ChartContext;
  private readonly fromInput: HTMLInputElement;
  private readonly toInput: HTMLInputElement;
  private readonly resetButton: HTMLButtonElement;
  private readonly body: HTMLElement;

  constructor(
    root: HTMLElement,
    private readonly options: RunChartsOptions = {},
  ) {
    this.store = options.store ?? new SeriesStore();
    this.smoothing = options.smoothing ?? 0.6;
    const id = ++instances;
    this.ctx = {
      store: this.store,
      sync: this.sync,
      cursorKey: `run-charts-${id}`,
      theme: currentTheme(),
      smoothing: this.smoothing,
    };
    root.classList.add("run-charts");
    root.innerHTML = `
      <div class="chart-toolbar" role="toolbar" aria-label="Chart controls">
        <label class="inline-field">Smoothing
          <input type="range" min="0" max="0.98" step="0.02" data-smoothing>
          <output data-smoothing-value></output>
        </label>
        <fieldset class="inline-field step-range">
          <legend>Steps</legend>
          <label><span class="visually-hidden">From step</span><input type="number" inputmode="numeric" data-from placeholder="from"></label>
          <span aria-hidden="true">–</span>
          <label><span class="visually-hidden">To step</span><input type="number" inputmode="numeric" data-to placeholder="to"></label>
          <button type="button" class="secondary small" data-reset disabled>Show all</button>
        </fieldset>
        <span class="muted small toolbar-hint">Drag across a chart to zoom; double-click to reset.</span>
      </div>
      <div class="chart-groups"></div>`;
    this.body = root.querySelector(".chart-groups")!;
    const slider = root.querySelector<HTMLInputElement>("[data-smoothing]")!;
    const shown = root.querySelector<HTMLOutputElement>("[data-smoothing-value]")!;
    slider.value = String(this.smoothing);
    shown.textContent = this.smoothing.toFixed(2);
    slider.addEventListener("input", () => {
      this.smoothing = Number(slider.value);
      shown.textContent = this.smoothing.toFixed(2);
      this.ctx.smoothing = this.smoothing;
      for (const chart of this.charts) chart.setSmoothing(this.smoothing);
    });
    this.fromInput = root.querySelector("[data-from]")!;
    this.toInput = root.querySelector("[data-to]")!;
    this.resetButton = root.querySelector("[data-reset]")!;
    const applyInputs = () => {
      const domain = this.store.domain();
      if (!domain) return;
      const from = this.fromInput.value === "" ? domain[0] : Number(this.fromInput.value);
      const to = this.toInput.value === "" ? domain[1] : Number(this.toInput.value);
      this.setRange(normaliseRange([from, to], domain));
    };
    for (const input of [this.fromInput, this.toInput]) {
      input.addEventListener("change", applyInputs);
      input.addEventListener("keydown", (event) => {
        if (event.key === "Enter") applyInputs(); // a number typed and Enter pressed: apply it there and then
      });
    }
    this.resetButton.addEventListener("click", () => this.setRange(null));
    this.sync.register("toolbar", (range) => this.showRange(range));

    for (const group of options.groups ?? CHART_GROUPS) this.addGroup(group.title, group.charts, group.id);
    onThemeChange((theme) => {
      this.ctx.theme = theme;
      for (const chart of this.charts) chart.setTheme(theme);
    });
  }

  /** One step's metrics (history or live); drawn on the next frame. */
  append(step: number, metrics: Record<string, number | null>): void {
    this.store.append(step, metrics);
    this.schedule();
  }

  /** Many steps at once (the page's embedded history): one draw. */
  load(points: ReadonlyArray<{ step: number; values: Record<string, number | null> }>): void {
    for (const p of points) this.store.append(p.step, p.values);
    this.schedule();
  }

  setRange(range: Range): void {
    this.sync.publish(range, "toolbar");
    this.showRange(range);
  }

  /** Draw now (tests and the first paint); otherwise batched per animation frame. */
  flush(): void {
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    this.frame = null;
    if (this.options.showOther !== false) this.addOtherCharts();
    for (const chart of this.charts) chart.update();
  }

  private schedule(): void {
    if (this.frame !== null) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.flush();
    });
  }

  private showRange(range: Range): void {
    this.fromInput.value = range ? String(Math.round(range[0])) : "";
    this.toInput.value = range ? String(Math.round(range[1])) : "";
    this.resetButton.disabled = range === null;
  }

  private addGroup(title: string, specs: readonly ChartSpec[], id: string): HTMLElement {
    const section = document.createElement("section");
    section.className = "chart-group";
    section.setAttribute("aria-labelledby", `chart-group-${id}`);
    section.innerHTML = `<h2 class="chart-group-title" id="chart-group-${id}"></h2><div class="chart-grid"></div>`;
    section.querySelector("h2")!.textContent = title;
    this.body.append(section);
    this.addCharts(section, specs);
    return section;
  }

  private addCharts(section: HTMLElement, specs: readonly ChartSpec[]): void {
    const grid = section.querySelector(".chart-grid")!;
    for (const spec of specs) {
      for (const s of spec.series) this.known.add(s.metric);
      const chart = this.options.chartFactory?.(spec, this.ctx) ?? new MetricChart(spec, this.ctx);
      grid.append(chart.element);
      chart.mount();
      this.charts.push(chart);
    }
  }

  private addOtherCharts(): void {
    const fresh = otherCharts(this.store.names()).filter((spec) => !this.known.has(spec.series[0].metric));
    if (!fresh.length) return;
    this.otherSection ??= this.addGroup("Other metrics", [], "other");
    this.addCharts(this.otherSection, fresh);
  }
}
