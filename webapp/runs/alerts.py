"""Run health alerts: pure functions over a run's metric history, each alert with what to try.

The same checks, ids and thresholds as the run page's live ones (webapp/frontend/src/data/alerts.ts), so
the run list and the API say what the page says. `history` is the run's metric points oldest first,
`[(step, {metric: value})]` in PRODUCT.md's vocabulary; a metric a step lacks is simply absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

History = Sequence[tuple[int, Mapping[str, Any]]]
WINDOW = 10  # steps a condition must hold, or the window compared with the one before it


@dataclass(frozen=True)
class Alert:
    id: str
    severity: str  # "warn" | "err"
    title: str
    advice: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def series(history: History, metric: str) -> list[float]:
    """The metric's values in step order, steps without it (or with a null) skipped."""
    values = []
    for _, point in history:
        value = point.get(metric)
        if isinstance(value, int | float) and value == value:  # NaN is not a value
            values.append(float(value))
    return values


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _windows(values: Sequence[float], k: int) -> tuple[float, float] | None:
    """Mean of the window before the last one and of the last one, when both are full."""
    if len(values) < 2 * k:
        return None
    return _mean(values[-2 * k : -k]), _mean(values[-k:])


def no_tool_calls(history: History, k: int = WINDOW) -> Alert | None:
    calls = series(history, "tools/calls_total")[-k:]
    if len(calls) < k or any(c != 0 for c in calls):
        return None
    return Alert(
        "no-tool-calls", "err", f"No tool call in the last {k} steps",
        "The policy is not using its tools, so ARPO has no tool boundaries to branch at. Add SFT demonstrations "
        "that show tool calls (a cold start), or start from a model that already calls tools; check that the "
        "call format (tags or Hermes) is the one the model was taught.",
    )  # fmt: skip


def all_groups_degenerate(history: History, k: int = WINDOW) -> Alert | None:
    degenerate = series(history, "groups/degenerate_frac")[-k:]
    if len(degenerate) < k or any(d < 0.999 for d in degenerate):
        return None
    return Alert(
        "all-degenerate", "err", f"Every group degenerate for {k} steps",
        "All paths of every prompt got the same reward, so every advantage is zero and nothing is learned. "
        "If all rewards are −1 the format is never valid (look at a path); if all are 0 or 1 the data is too "
        "hard or too easy for this model. A larger group size M also helps.",
    )  # fmt: skip


def entropy_out_of_range(history: History, k: int = WINDOW) -> Alert | None:
    entropy = series(history, "entropy/token_mean")
    if len(entropy) < k:
        return None
    recent, start = _mean(entropy[-k:]), entropy[:k]
    if recent < 0.05:
        return Alert(
            "entropy-collapse", "warn", "Token entropy has collapsed",
            "The policy has become nearly deterministic: exploration (and ARPO's branching) stops. Lower the "
            "learning rate, raise the sampling temperature, or add a small entropy bonus (algorithm.entropy_coef).",
        )  # fmt: skip
    if len(start) >= k and recent > 2 * _mean(start) and recent > 2:
        return Alert(
            "entropy-explosion", "warn", "Token entropy is exploding",
            "Entropy has more than doubled since the start: the policy is drifting towards noise. Lower the "
            "learning rate, raise the KL coefficient, or tighten the clip range.",
        )  # fmt: skip
    return None


def reward_falling(history: History, k: int = WINDOW) -> Alert | None:
    w = _windows(series(history, "reward/mean"), k)
    if w is None or w[1] >= w[0] - 0.15:
        return None
    return Alert(
        "reward-falling", "warn", f"Reward falling ({w[0]:.2f} → {w[1]:.2f} over {k} steps)",
        "Look at the newest rollout trees for what changed (format, tool errors, longer answers cut at the "
        "length limit). A lower learning rate or resuming from an earlier checkpoint often helps.",
    )  # fmt: skip


def format_falling(history: History, k: int = WINDOW) -> Alert | None:
    w = _windows(series(history, "format/ok_frac"), k)
    if w is None or w[1] >= w[0] - 0.1:
        return None
    return Alert(
        "format-falling", "warn", f"Format-valid rate falling ({w[0] * 100:.0f}% → {w[1] * 100:.0f}%)",
        "More answers break the tag format (missing </think>, no \\boxed{}, a call without a result). Check "
        "response/clip_frac: answers cut at max_response_tokens are invalid too.",
    )  # fmt: skip


def tool_errors_rising(history: History, k: int = WINDOW) -> Alert | None:
    w = _windows(series(history, "tools/error_rate"), k)
    if w is None or not (w[1] > w[0] + 0.1 and w[1] > 0.2):
        return None
    return Alert(
        "tool-errors-rising", "warn", f"Tool error rate rising ({w[0] * 100:.0f}% → {w[1] * 100:.0f}%)",
        "Open a tree filtered to tool errors to read the failing calls: timeouts call for a larger limit, "
        "bad arguments for better tool descriptions or SFT examples.",
    )  # fmt: skip


CHECKS = (no_tool_calls, all_groups_degenerate, entropy_out_of_range, reward_falling, format_falling,
          tool_errors_rising)  # fmt: skip


def run_alerts(history: History, k: int = WINDOW) -> list[Alert]:
    """Every alert that holds at the end of this history, errors first."""
    k = max(2, k)
    found = [alert for check in CHECKS if (alert := check(history, k)) is not None]
    return sorted(found, key=lambda a: a.severity != "err")
