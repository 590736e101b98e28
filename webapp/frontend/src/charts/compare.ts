// Compare view data: several runs' series on the same charts (one colour per run), and the table.
import type { Points } from "../data/align";
import type { ChartSpec } from "./groups";

export interface CompareRun {
  id: number | string;
  label: string;
  metrics: ReadonlyArray<{ step: number; values: Record<string, number | null> }>;
}

/** The store key of a run's metric: runs share one store, each metric prefixed by the run's position. */
export const runMetric = (runIndex: number, metric: string): string => `${runIndex}\u241f${metric}`;

/** A chart spec whose series are every run × the spec's series; `colour` picks the run's colour. */
export function compareSpec(spec: ChartSpec, runs: readonly CompareRun[]): { spec: ChartSpec; colour: number[] } {
  const series: ChartSpec["series"] = [];
  const colour: number[] = [];
  runs.forEach((run, r) => {
    for (const s of spec.series) {
      series.push({ ...s, metric: runMetric(r, s.metric), label: spec.series.length > 1 ? `${run.label} · ${s.label}` : run.label });
      colour.push(r);
    }
  });
  return { spec: { ...spec, series }, colour };
}

export interface CompareRow {
  label: string;
  evalAccuracy: number | null;
  evalFormatOk: number | null;
  toolCallsPerStep: number | null;
  toolCallsPerTraj: number | null;
  toolCallsPerSolved: number | null;
  tokensPerStep: number | null;
  responseTokens: number | null;
  computeSeconds: number | null;
  steps: number;
}

function series(run: CompareRun, metric: string): Points {
  const steps: number[] = [];
  const values: (number | null)[] = [];
  for (const p of run.metrics) {
    if (!(metric in p.values)) continue;
    steps.push(p.step);
    values.push(p.values[metric]);
  }
  return { steps, values };
}

const present = (p: Points) => p.values.filter((v): v is number => v !== null && Number.isFinite(v));
const last = (p: Points) => present(p).at(-1) ?? null;
const mean = (p: Points) => {
  const v = present(p);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
};
const sum = (p: Points) => present(p).reduce((a, b) => a + b, 0);

/**
 * Tool calls spent per correctly answered item. From the last evaluation (calls per trajectory over the
 * solved fraction, one trajectory per item) when there is one; else over training: every step's own tool
 * calls over its solved paths (accuracy × paths), summed over steps. Null when nothing was solved.
 */
export function toolCallsPerSolved(run: CompareRun): number | null {
  for (let i = run.metrics.length - 1; i >= 0; i--) {
    const v = run.metrics[i].values;
    const calls = v["eval/tool_calls_per_traj"];
    const acc = v["eval/accuracy"];
    if (typeof calls === "number" && typeof acc === "number" && Number.isFinite(calls) && Number.isFinite(acc)) {
      return acc > 0 ? calls / acc : null;
    }
  }
  let calls = 0;
  let solved = 0;
  for (const p of run.metrics) {
    const c = p.values["tools/calls_total"];
    const a = p.values["accuracy"];
    const n = p.values["rollout/paths"];
    if ([c, a, n].every((x) => typeof x === "number" && Number.isFinite(x))) {
      calls += c as number;
      solved += (a as number) * (n as number);
    }
  }
  return solved > 0 ? calls / solved : null;
}

/** The compare table: final eval numbers, means of the per-step costs, total phase time. */
export function compareRows(runs: readonly CompareRun[]): CompareRow[] {
  return runs.map((run) => {
    const timed = ["time/rollout_s", "time/reward_s", "time/update_s", "time/sync_s"].map((m) => series(run, m));
    const compute = timed.some((t) => present(t).length) ? timed.reduce((a, t) => a + sum(t), 0) : null;
    return {
      label: run.label,
      evalAccuracy: last(series(run, "eval/accuracy")),
      evalFormatOk: last(series(run, "eval/format_ok")),
      toolCallsPerStep: mean(series(run, "tools/calls_total")),
      toolCallsPerTraj: last(series(run, "eval/tool_calls_per_traj")) ?? mean(series(run, "tools/calls_per_traj")),
      toolCallsPerSolved: toolCallsPerSolved(run),
      tokensPerStep: mean(series(run, "rollout/tokens_generated")),
      responseTokens: mean(series(run, "response/len_mean")),
      computeSeconds: compute,
      steps: run.metrics.length ? Math.max(...run.metrics.map((p) => p.step)) : 0,
    };
  });
}
