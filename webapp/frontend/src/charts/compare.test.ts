import { describe, expect, it } from "vitest";

import { type CompareRun, compareRows, compareSpec, runMetric, toolCallsPerSolved } from "./compare";
import type { ChartSpec } from "./groups";

const runs: CompareRun[] = [
  {
    id: 1,
    label: "ARPO",
    metrics: [
      { step: 1, values: { "tools/calls_total": 10, "time/rollout_s": 5, "time/update_s": 1, "eval/accuracy": 0.2 } },
      { step: 2, values: { "tools/calls_total": 20, "time/rollout_s": 7, "time/update_s": 1 } },
      { step: 3, values: { "tools/calls_total": 30, "time/rollout_s": 6, "eval/accuracy": 0.5 } },
    ],
  },
  { id: 2, label: "GRPO", metrics: [{ step: 1, values: { "tools/calls_total": 40 } }] },
];

describe("compareSpec", () => {
  it("draws every run's series with the run's colour", () => {
    const spec: ChartSpec = {
      id: "acc", title: "Accuracy", format: "percent", help: "",
      series: [{ metric: "accuracy", label: "train" }, { metric: "eval/accuracy", label: "eval", eval: true }],
    };
    const out = compareSpec(spec, runs);
    expect(out.spec.series.map((s) => s.label)).toEqual(["ARPO · train", "ARPO · eval", "GRPO · train", "GRPO · eval"]);
    expect(out.spec.series[3]).toMatchObject({ metric: runMetric(1, "eval/accuracy"), eval: true });
    expect(out.colour).toEqual([0, 0, 1, 1]);
  });
});

describe("compareRows", () => {
  it("takes the final eval accuracy, mean tool calls per step and the total phase time", () => {
    const [arpo, grpo] = compareRows(runs);
    expect(arpo).toMatchObject({ label: "ARPO", evalAccuracy: 0.5, toolCallsPerStep: 20, computeSeconds: 20, steps: 3 });
    expect(grpo).toMatchObject({ evalAccuracy: null, toolCallsPerStep: 40, computeSeconds: null, steps: 1 });
  });
});

describe("toolCallsPerSolved", () => {
  it("uses the last evaluation: calls per trajectory over the solved fraction", () => {
    const run: CompareRun = {
      id: 1, label: "a",
      metrics: [
        { step: 1, values: { "eval/tool_calls_per_traj": 3, "eval/accuracy": 0.1 } },
        { step: 2, values: { "eval/tool_calls_per_traj": 1.5, "eval/accuracy": 0.5, "tools/calls_total": 99 } },
      ],
    };
    expect(toolCallsPerSolved(run)).toBeCloseTo(3);
  });
  it("falls back to training: own calls over solved paths, summed over steps", () => {
    const run: CompareRun = {
      id: 1, label: "a",
      metrics: [
        { step: 1, values: { "tools/calls_total": 12, accuracy: 0.25, "rollout/paths": 16 } },
        { step: 2, values: { "tools/calls_total": 8, accuracy: 0.5, "rollout/paths": 16 } },
      ],
    };
    expect(toolCallsPerSolved(run)).toBeCloseTo(20 / 12);
  });
  it("is null when nothing was solved", () => {
    expect(toolCallsPerSolved({ id: 1, label: "a", metrics: [{ step: 1, values: { "eval/tool_calls_per_traj": 2, "eval/accuracy": 0 } }] })).toBeNull();
    expect(toolCallsPerSolved({ id: 1, label: "a", metrics: [] })).toBeNull();
  });
  it("shows up in the table rows with tokens per step", () => {
    const [row] = compareRows([{ id: 1, label: "a", metrics: [
      { step: 1, values: { "rollout/tokens_generated": 1000, "eval/tool_calls_per_traj": 2, "eval/accuracy": 0.5 } },
      { step: 2, values: { "rollout/tokens_generated": 3000 } },
    ] }]);
    expect(row).toMatchObject({ toolCallsPerSolved: 4, tokensPerStep: 2000 });
  });
});
