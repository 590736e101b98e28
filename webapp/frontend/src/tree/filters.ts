// The tree list's summaries, filters and orderings ("jump to the trees where ΔH was largest").
import type { TreeRecord } from "./record";

export interface TreeSummary {
  key: string;
  step: number | null;
  prompt_index: number;
  question: string;
  reward_mean: number | null;
  paths: number;
  forks: number;
  supplements: number;
  maxDeltaH: number | null;
  toolCalls: number;
  toolErrors: number;
  /** All rewards equal: the group teaches nothing (zero advantage). */
  degenerate: boolean;
  anyCorrect: boolean;
}

export type Outcome = "all" | "mixed" | "degenerate" | "solved" | "unsolved";
export type TreeOrder = "newest" | "delta-h" | "reward-low" | "reward-high";

export interface TreeFilter {
  outcome: Outcome;
  toolFailure: boolean;
  /** A prompt number ("3" or "#3") or words of the question. */
  prompt: string;
}

export const NO_FILTER: TreeFilter = { outcome: "all", toolFailure: false, prompt: "" };

export function treeKey(step: number | null, promptIndex: number): string {
  return `${step ?? "-"}:${promptIndex}`;
}

export function summarise(record: TreeRecord): TreeSummary {
  const rewards = record.paths.map((p) => p.reward).filter((r): r is number => r !== null);
  let maxDeltaH: number | null = null;
  let forks = 0;
  let toolCalls = 0;
  let toolErrors = 0;
  for (const p of record.paths) {
    if (p.origin === "fork") forks += 1;
    for (const d of p.decisions) maxDeltaH = maxDeltaH === null ? d.delta_h : Math.max(maxDeltaH, d.delta_h);
    // A fork repeats its parent's calls before the fork point: count each call once.
    const own = p.tool_calls.filter((c) => p.fork_boundary === null || c.result_start >= p.fork_boundary);
    toolCalls += own.length;
    toolErrors += own.filter((c) => c.error).length;
  }
  return {
    key: treeKey(record.step, record.prompt_index),
    step: record.step,
    prompt_index: record.prompt_index,
    question: record.question,
    reward_mean: record.reward_mean,
    paths: record.paths.length,
    forks,
    supplements: record.supplements,
    maxDeltaH,
    toolCalls,
    toolErrors,
    degenerate: rewards.length > 1 && rewards.every((r) => r === rewards[0]),
    anyCorrect: record.paths.some((p) => p.correct === true),
  };
}

function matchesPrompt(s: TreeSummary, query: string): boolean {
  const q = query.trim().toLowerCase();
  if (!q) return true;
  const asIndex = /^#?(\d+)$/.exec(q);
  if (asIndex) return s.prompt_index === Number(asIndex[1]);
  return q.split(/\s+/).every((word) => s.question.toLowerCase().includes(word));
}

export function filterTrees(list: readonly TreeSummary[], filter: TreeFilter): TreeSummary[] {
  return list.filter((s) => {
    if (filter.toolFailure && s.toolErrors === 0) return false;
    if (!matchesPrompt(s, filter.prompt)) return false;
    switch (filter.outcome) {
      case "mixed":
        return !s.degenerate;
      case "degenerate":
        return s.degenerate;
      case "solved":
        return s.anyCorrect;
      case "unsolved":
        return !s.anyCorrect;
      default:
        return true;
    }
  });
}

/** A sorted copy; ties keep the newest step first, then the lower prompt number. */
export function orderTrees(list: readonly TreeSummary[], order: TreeOrder): TreeSummary[] {
  const newest = (a: TreeSummary, b: TreeSummary) =>
    (b.step ?? -1) - (a.step ?? -1) || a.prompt_index - b.prompt_index;
  const key: Record<TreeOrder, (s: TreeSummary) => number> = {
    newest: () => 0,
    "delta-h": (s) => -(s.maxDeltaH ?? -Infinity),
    "reward-low": (s) => s.reward_mean ?? Infinity,
    "reward-high": (s) => -(s.reward_mean ?? -Infinity),
  };
  return [...list].sort((a, b) => key[order](a) - key[order](b) || newest(a, b));
}
