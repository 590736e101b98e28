// The compare page: several runs overlaid on the same charts (one colour per run) and a table.
// Config: <script type="application/json" id="compare-config">{"runs": [{id, label, metrics: [{step, values}]}]}</script>

import { type CompareRun, compareRows, compareSpec, runMetric } from "./charts/compare";
import { CHART_GROUPS, formatValue } from "./charts/groups";
import { MetricChart } from "./charts/MetricChart";
import { RunCharts } from "./charts/RunCharts";
import { SeriesStore } from "./data/series";
import { readJsonConfig } from "./live/config";
import { formatDuration } from "./panes/format";
import { chartColours, currentTheme } from "./charts/theme";

export interface CompareConfig {
  runs: CompareRun[];
}

function table(root: HTMLElement, runs: readonly CompareRun[]): void {
  const rows = compareRows(runs);
  const colours = chartColours(currentTheme()).series;
  const head: [string, string][] = [
    ["Run", ""],
    ["Eval accuracy", "Final evaluation: share of held-out items answered correctly"],
    ["Eval format valid", "Final evaluation: share of answers in the required format"],
    ["Tool calls / step", "Mean tool calls per training step (a forked path's shared calls counted once)"],
    ["Tool calls / trajectory", "Final evaluation, else the training mean"],
    ["Tool calls / solved item", "Tool calls spent per correctly answered item (final evaluation, else training)"],
    ["Tokens / step", "Mean tokens generated per training step (shared prefixes counted once)"],
    ["Response tokens", "Mean response length per trajectory"],
    ["Compute time", "Rollout, reward, update and sync time summed over steps"],
    ["Steps", ""],
  ];
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  const t = document.createElement("table");
  t.innerHTML = `<thead><tr>${head
    .map(([h, help], i) => `<th${i ? ' class="num"' : ""}${help ? ` title="${help}"` : ""} scope="col">${h}</th>`)
    .join("")}</tr></thead><tbody></tbody>`;
  const body = t.querySelector("tbody")!;
  rows.forEach((r, i) => {
    const tr = document.createElement("tr");
    const cells = [
      formatValue(r.evalAccuracy, "percent"),
      formatValue(r.evalFormatOk, "percent"),
      formatValue(r.toolCallsPerStep, "number"),
      formatValue(r.toolCallsPerTraj, "number"),
      formatValue(r.toolCallsPerSolved, "number"),
      formatValue(r.tokensPerStep, "tokens"),
      formatValue(r.responseTokens, "tokens"),
      formatDuration(r.computeSeconds),
      String(r.steps),
    ];
    const name = document.createElement("th");
    name.scope = "row";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colours[i % colours.length];
    name.append(swatch, document.createTextNode(r.label));
    tr.append(name);
    for (const c of cells) {
      const td = document.createElement("td");
      td.className = "num";
      td.textContent = c;
      tr.append(td);
    }
    body.append(tr);
  });
  wrap.append(t);
  root.replaceChildren(wrap);
}

export function mountCompare(doc: Document, config: CompareConfig): RunCharts | null {
  const chartsRoot = doc.querySelector<HTMLElement>("[data-compare-charts]");
  const tableRoot = doc.querySelector<HTMLElement>("[data-compare-table]");
  if (tableRoot) table(tableRoot, config.runs);
  if (!chartsRoot) return null;
  const store = new SeriesStore();
  config.runs.forEach((run, r) => {
    for (const p of run.metrics) {
      const values: Record<string, number | null> = {};
      for (const [k, v] of Object.entries(p.values)) values[runMetric(r, k)] = v;
      store.append(p.step, values);
    }
  });
  const charts = new RunCharts(chartsRoot, {
    store,
    showOther: false,
    groups: CHART_GROUPS,
    chartFactory: (spec, ctx) => {
      const { spec: overlaid, colour } = compareSpec(spec, config.runs);
      return new MetricChart(overlaid, { ...ctx, colourOf: (i) => colour[i] ?? i, showLatest: false });
    },
  });
  charts.flush();
  return charts;
}

const config = readJsonConfig<CompareConfig>(document, "compare-config");
if (config) mountCompare(document, config);
