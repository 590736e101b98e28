// Run health checks over the metric history (issue 10, "Run list and alerts"): each alert says what
// went wrong and what to try. Pure: the store in, a list out; the page shows it.
import type { SeriesStore } from "./series";

export interface Alert {
  id: string;
  severity: "warn" | "err";
  title: string;
  advice: string;
}

export interface AlertOptions {
  /** Steps a condition must hold (or the window compared with the one before it). */
  window: number;
}

function tail(store: SeriesStore, metric: string, n: number, skip = 0): number[] {
  const s = store.get(metric);
  if (!s) return [];
  const present: number[] = [];
  for (let i = s.values.length - 1; i >= 0 && present.length < n + skip; i--) {
    const v = s.values[i];
    if (v !== null) present.push(v);
  }
  return present.slice(skip).reverse();
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

/** Mean of the last window and of the window before it, when both are full. */
function windows(store: SeriesStore, metric: string, k: number): [number, number] | null {
  const recent = tail(store, metric, k);
  const before = tail(store, metric, k, k);
  if (recent.length < k || before.length < k) return null;
  return [mean(before), mean(recent)];
}

export function runAlerts(store: SeriesStore, options: AlertOptions = { window: 10 }): Alert[] {
  const k = Math.max(2, options.window);
  const alerts: Alert[] = [];
  const calls = tail(store, "tools/calls_total", k);
  if (calls.length >= k && calls.every((c) => c === 0)) {
    alerts.push({
      id: "no-tool-calls",
      severity: "err",
      title: `No tool call in the last ${k} steps`,
      advice:
        "The policy is not using its tools, so ARPO has no tool boundaries to branch at. Add SFT demonstrations " +
        "that show tool calls (a cold start), or start from a model that already calls tools; check that the " +
        "call format (tags or Hermes) is the one the model was taught.",
    });
  }
  const degenerate = tail(store, "groups/degenerate_frac", k);
  if (degenerate.length >= k && degenerate.every((d) => d >= 0.999)) {
    alerts.push({
      id: "all-degenerate",
      severity: "err",
      title: `Every group degenerate for ${k} steps`,
      advice:
        "All paths of every prompt got the same reward, so every advantage is zero and nothing is learned. " +
        "If all rewards are −1 the format is never valid (look at a path); if all are 0 or 1 the data is too " +
        "hard or too easy for this model. A larger group size M also helps.",
    });
  }
  const entropy = tail(store, "entropy/token_mean", k);
  const startEntropy = store.get("entropy/token_mean")?.values.filter((v): v is number => v !== null).slice(0, k) ?? [];
  if (entropy.length >= k && mean(entropy) < 0.05) {
    alerts.push({
      id: "entropy-collapse",
      severity: "warn",
      title: "Token entropy has collapsed",
      advice:
        "The policy has become nearly deterministic: exploration (and ARPO's branching) stops. Lower the " +
        "learning rate, raise the sampling temperature, or add a small entropy bonus (algorithm.entropy_coef).",
    });
  } else if (entropy.length >= k && startEntropy.length >= k && mean(entropy) > 2 * mean(startEntropy) && mean(entropy) > 2) {
    alerts.push({
      id: "entropy-explosion",
      severity: "warn",
      title: "Token entropy is exploding",
      advice:
        "Entropy has more than doubled since the start: the policy is drifting towards noise. Lower the " +
        "learning rate, raise the KL coefficient, or tighten the clip range.",
    });
  }
  const reward = windows(store, "reward/mean", k);
  if (reward && reward[1] < reward[0] - 0.15) {
    alerts.push({
      id: "reward-falling",
      severity: "warn",
      title: `Reward falling (${reward[0].toFixed(2)} → ${reward[1].toFixed(2)} over ${k} steps)`,
      advice:
        "Look at the newest rollout trees for what changed (format, tool errors, longer answers cut at the " +
        "length limit). A lower learning rate or resuming from an earlier checkpoint often helps.",
    });
  }
  const format = windows(store, "format/ok_frac", k);
  if (format && format[1] < format[0] - 0.1) {
    alerts.push({
      id: "format-falling",
      severity: "warn",
      title: `Format-valid rate falling (${(format[0] * 100).toFixed(0)}% → ${(format[1] * 100).toFixed(0)}%)`,
      advice:
        "More answers break the tag format (missing </think>, no \\boxed{}, a call without a result). Check " +
        "response/clip_frac: answers cut at max_response_tokens are invalid too.",
    });
  }
  const errors = windows(store, "tools/error_rate", k);
  if (errors && errors[1] > errors[0] + 0.1 && errors[1] > 0.2) {
    alerts.push({
      id: "tool-errors-rising",
      severity: "warn",
      title: `Tool error rate rising (${(errors[0] * 100).toFixed(0)}% → ${(errors[1] * 100).toFixed(0)}%)`,
      advice:
        "Open a tree filtered to tool errors to read the failing calls: timeouts call for a larger limit, " +
        "bad arguments for better tool descriptions or SFT examples.",
    });
  }
  return alerts;
}
