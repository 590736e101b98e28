// Which charts the run page shows, grouped, from PRODUCT.md's metric vocabulary. Pure data: the
// layout code draws whatever is listed here; a metric not listed lands in "Other metrics".

export type Format = "number" | "percent" | "ms" | "seconds" | "tokens" | "rate" | "sci";

export interface SeriesSpec {
  metric: string;
  label: string;
  /** Eval series are drawn dashed with points: they come every few steps. */
  eval?: boolean;
}

export interface ChartSpec {
  id: string;
  title: string;
  series: SeriesSpec[];
  format: Format;
  /** Start on a log scale (the user can switch). */
  log?: boolean;
  /** One sentence for people: what a healthy curve looks like. */
  help: string;
}

export interface ChartGroup {
  id: string;
  title: string;
  charts: ChartSpec[];
}

const s = (metric: string, label: string, evalSeries = false): SeriesSpec =>
  evalSeries ? { metric, label, eval: true } : { metric, label };

export const CHART_GROUPS: readonly ChartGroup[] = [
  {
    id: "outcome",
    title: "Reward and accuracy",
    charts: [
      { id: "reward", title: "Reward", format: "number", series: [s("reward/mean", "train"), s("eval/reward_mean", "eval", true)], help: "Mean reward per path; eval at greedy decoding." },
      { id: "accuracy", title: "Accuracy", format: "percent", series: [s("accuracy", "train"), s("eval/accuracy", "eval", true)], help: "Final answer right, whatever the format penalty did." },
      { id: "format", title: "Format valid", format: "percent", series: [s("format/ok_frac", "train"), s("eval/format_ok", "eval", true)], help: "Share of paths whose tags and answer parse." },
      { id: "degenerate", title: "Degenerate groups", format: "percent", series: [s("groups/degenerate_frac", "all rewards equal")], help: "Groups with all-equal rewards teach nothing (zero advantage)." },
    ],
  },
  {
    id: "entropy",
    title: "Entropy at tool boundaries",
    charts: [
      { id: "token-entropy", title: "Token entropy", format: "number", series: [s("entropy/token_mean", "mean per token")], help: "Collapse towards 0 or explosion both mean trouble." },
      { id: "boundary-entropy", title: "Initial vs after tool", format: "number", series: [s("entropy/initial_mean", "H_initial"), s("entropy/after_tool_mean", "H after tool")], help: "ARPO's premise: entropy rises right after a tool result." },
      { id: "delta-h", title: "ΔH after tool", format: "number", series: [s("entropy/delta_mean", "mean ΔH")], help: "H_t − H_initial at each tool boundary; drives the branch decision." },
    ],
  },
  {
    id: "branching",
    title: "Branching",
    charts: [
      { id: "forks", title: "Forks and supplements", format: "number", series: [s("branch/forks", "forks"), s("branch/supplements", "supplements")], help: "Paths forked at tool boundaries, and fresh samples added to reach M." },
      { id: "fork-rate", title: "Fork rate", format: "percent", series: [s("branch/fork_rate", "forks per decision")], help: "Share of tool boundaries where a fork was taken." },
    ],
  },
  {
    id: "tools",
    title: "Tool use",
    charts: [
      { id: "calls-per-traj", title: "Tool calls per trajectory", format: "number", series: [s("tools/calls_per_traj", "train"), s("eval/tool_calls_per_traj", "eval", true)], help: "Falling to 0 means the policy stopped using tools." },
      { id: "calls-per-step", title: "Tool calls per step", format: "number", series: [s("tools/calls_total", "calls")], help: "What a step cost in tool calls." },
      { id: "tool-errors", title: "Tool errors", format: "percent", series: [s("tools/error_rate", "error rate")], help: "Share of tool calls that failed (timeout, crash, bad arguments)." },
      { id: "limit-hits", title: "Call-limit hits", format: "number", series: [s("tools/limit_hits", "paths cut")], help: "Paths ended because they reached max_tool_calls." },
      { id: "tool-latency", title: "Tool latency (p50)", format: "ms", log: true, series: [s("tools/latency_ms_p50", "p50")], help: "Median time per call." },
    ],
  },
  {
    id: "responses",
    title: "Responses",
    charts: [
      { id: "length", title: "Response length", format: "tokens", series: [s("response/len_mean", "mean tokens")], help: "Tokens per response, tool results included." },
      { id: "clip-rate", title: "Clipped at max length", format: "percent", series: [s("response/clip_frac", "clipped")], help: "Responses cut at max_response_tokens." },
    ],
  },
  {
    id: "optimisation",
    title: "Optimisation",
    charts: [
      { id: "policy-loss", title: "Policy loss", format: "number", series: [s("loss/policy", "loss")], help: "Clipped surrogate loss." },
      { id: "clip-frac", title: "Clip fraction", format: "percent", series: [s("clip/frac", "clipped ratios")], help: "Tokens whose ratio was clipped." },
      { id: "kl", title: "KL to reference", format: "sci", log: true, series: [s("loss/kl", "KL")], help: "Distance from the reference policy." },
      { id: "grad-norm", title: "Gradient norm", format: "number", log: true, series: [s("grad/norm", "norm")], help: "Before clipping; spikes precede divergence." },
      { id: "lr", title: "Learning rate", format: "sci", series: [s("lr", "lr")], help: "After warm-up and schedule." },
    ],
  },
  {
    id: "speed",
    title: "Speed",
    charts: [
      { id: "throughput", title: "Throughput", format: "rate", series: [s("throughput/rollout_tok_s", "rollout"), s("throughput/train_tok_s", "train")], help: "Tokens per second." },
      { id: "timings", title: "Phase timings", format: "seconds", series: [s("time/rollout_s", "rollout"), s("time/reward_s", "reward"), s("time/update_s", "update"), s("time/sync_s", "weight sync")], help: "Seconds per phase per step." },
    ],
  },
];

/** Every metric a listed chart draws. */
export function chartedMetrics(groups: readonly ChartGroup[] = CHART_GROUPS): Set<string> {
  return new Set(groups.flatMap((g) => g.charts.flatMap((c) => c.series.map((x) => x.metric))));
}

/** A chart per metric the run reports that no chart lists (a new metric still shows up somewhere). */
export function otherCharts(names: Iterable<string>, groups: readonly ChartGroup[] = CHART_GROUPS): ChartSpec[] {
  const known = chartedMetrics(groups);
  return [...names]
    .filter((n) => !known.has(n))
    .sort()
    .map((n) => ({ id: `other-${n}`, title: n, format: "number", series: [{ metric: n, label: n }], help: "" }));
}

/** A value as the chart's axis and legend show it. */
export function formatValue(value: number | null | undefined, format: Format): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  const abs = Math.abs(value);
  switch (format) {
    case "percent":
      return `${(value * 100).toFixed(abs >= 0.1 || value === 0 ? 1 : 2)}%`;
    case "ms":
      return abs >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(abs >= 10 ? 0 : 1)} ms`;
    case "seconds":
      return abs >= 120 ? `${(value / 60).toFixed(1)} min` : `${value.toFixed(abs >= 10 ? 1 : 2)} s`;
    case "tokens":
      return abs >= 1000 ? `${(value / 1000).toFixed(1)}k` : value.toFixed(0);
    case "rate":
      return abs >= 1000 ? `${(value / 1000).toFixed(1)}k/s` : `${value.toFixed(0)}/s`;
    case "sci":
      return abs !== 0 && (abs < 1e-3 || abs >= 1e4) ? value.toExponential(1) : value.toPrecision(3);
    default:
      return abs !== 0 && (abs < 1e-3 || abs >= 1e5) ? value.toExponential(2) : String(Number(value.toPrecision(4)));
  }
}
