import { describe, expect, it } from "vitest";

import { CHART_GROUPS, chartedMetrics, formatValue, otherCharts } from "./groups";

// PRODUCT.md's metric vocabulary: every name must have a chart.
const VOCABULARY = `reward/mean reward/std accuracy format/ok_frac groups/degenerate_frac entropy/token_mean
entropy/initial_mean entropy/after_tool_mean entropy/delta_mean branch/forks branch/fork_rate branch/supplements
tools/calls_per_traj tools/calls_total tools/error_rate tools/limit_hits tools/latency_ms_p50 response/len_mean
response/clip_frac loss/policy loss/kl clip/frac grad/norm lr time/rollout_s time/reward_s time/update_s time/sync_s
throughput/rollout_tok_s throughput/train_tok_s eval/accuracy eval/format_ok eval/reward_mean
eval/tool_calls_per_traj`.split(/\s+/);

describe("CHART_GROUPS", () => {
  it("charts every metric of the vocabulary except reward/std", () => {
    const charted = chartedMetrics();
    expect(VOCABULARY.filter((m) => m !== "reward/std" && !charted.has(m))).toEqual([]);
  });

  it("uses unique chart ids", () => {
    const ids = CHART_GROUPS.flatMap((g) => g.charts.map((c) => c.id));
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("otherCharts", () => {
  it("gives an unlisted metric its own chart", () => {
    expect(otherCharts(["accuracy", "custom/thing"]).map((c) => c.title)).toEqual(["custom/thing"]);
  });
});

describe("formatValue", () => {
  it("formats by kind", () => {
    expect(formatValue(0.4567, "percent")).toBe("45.7%");
    expect(formatValue(1500, "ms")).toBe("1.50 s");
    expect(formatValue(3e-6, "sci")).toBe("3.0e-6");
    expect(formatValue(2480, "tokens")).toBe("2.5k");
    expect(formatValue(null, "number")).toBe("–");
    expect(formatValue(0.123456, "number")).toBe("0.1235");
  });
});
