// One prompt's rollout tree as the dashboard reads it, from either record the back end produces:
// the engine's `RolloutGroup.to_dict()` (token ids, masks, the dataset row) or the worker's compact,
// size-capped tree record (worker/trees.py: question, per-path reward, no token ids). ARPO_SPEC.md §2.

export type Origin = "initial" | "fork" | "supplement";

export interface TreeSegment {
  kind: "model" | "tool";
  start: number;
  end: number;
  text: string;
}

export interface TreeToolCall {
  index: number;
  name: string;
  arguments: Record<string, unknown>;
  output: string;
  error: string | null;
  latency_ms: number;
  result_start: number;
  result_end: number;
}

export interface TreeDecision {
  tool_index: number;
  boundary: number;
  h_t: number;
  delta_h: number;
  score: number;
  draw: number | null;
  forked: boolean;
  children: number[];
}

export interface TreePath {
  id: number;
  origin: Origin;
  parent: number | null;
  fork_boundary: number | null;
  fork_tool_index: number | null;
  h_initial: number | null;
  finish_reason: string | null;
  tokens: number;
  model_tokens: number;
  reward: number | null;
  correct: boolean | null;
  format_ok: boolean | null;
  /** GRPO's soft advantage over the group (ARPO_SPEC.md §4), computed here from the rewards. */
  advantage: number | null;
  segments: TreeSegment[];
  tool_calls: TreeToolCall[];
  decisions: TreeDecision[];
  /** Per-token entropy in nats over the response; null for tool-result tokens; [] when thinned out. */
  entropies: (number | null)[];
}

export interface TreeRecord {
  step: number | null;
  prompt_index: number;
  question: string;
  answers: string[];
  initial_samples: number;
  budget: number;
  supplements: number;
  entropy_estimator: string;
  reward_mean: number | null;
  truncated: boolean;
  paths: TreePath[];
}

type Raw = Record<string, unknown>;

const num = (v: unknown, fallback = 0): number => (typeof v === "number" && Number.isFinite(v) ? v : fallback);
const numOrNull = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const boolOrNull = (v: unknown): boolean | null => (typeof v === "boolean" ? v : null);
const str = (v: unknown): string => (typeof v === "string" ? v : v === null || v === undefined ? "" : String(v));
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const obj = (v: unknown): Raw => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Raw) : {});

/** A(i) = (r_i − mean) / (std + 1e-6) with the unbiased std, over the paths that have a reward. */
export function softAdvantages(rewards: ReadonlyArray<number | null>): (number | null)[] {
  const present = rewards.filter((r): r is number => r !== null);
  if (present.length === 0) return rewards.map(() => null);
  const mean = present.reduce((a, b) => a + b, 0) / present.length;
  const variance =
    present.length > 1 ? present.reduce((a, r) => a + (r - mean) ** 2, 0) / (present.length - 1) : 0;
  const std = Math.sqrt(variance);
  return rewards.map((r) => (r === null ? null : (r - mean) / (std + 1e-6)));
}

function question(raw: Raw): string {
  if (typeof raw.question === "string") return raw.question;
  const sample = obj(raw.sample);
  const messages = arr(sample.messages);
  if (messages.length) return str(obj(messages[messages.length - 1]).content);
  if (typeof sample.question === "string") return sample.question;
  return str(raw.prompt_text);
}

function normalisePath(raw: Raw, reward: number | null): TreePath {
  const mask = arr(raw.mask);
  const tokenIds = arr(raw.token_ids);
  return {
    id: num(raw.id),
    origin: (["initial", "fork", "supplement"].includes(str(raw.origin)) ? raw.origin : "initial") as Origin,
    parent: numOrNull(raw.parent),
    fork_boundary: numOrNull(raw.fork_boundary),
    fork_tool_index: numOrNull(raw.fork_tool_index),
    h_initial: numOrNull(raw.h_initial),
    finish_reason: typeof raw.finish_reason === "string" ? raw.finish_reason : null,
    tokens: typeof raw.tokens === "number" ? raw.tokens : tokenIds.length,
    model_tokens: typeof raw.model_tokens === "number" ? raw.model_tokens : mask.filter((m) => m === 1).length,
    reward: numOrNull(raw.reward) ?? reward,
    correct: boolOrNull(raw.correct),
    format_ok: boolOrNull(raw.format_ok),
    advantage: numOrNull(raw.advantage),
    segments: arr(raw.segments).map((s) => {
      const o = obj(s);
      return { kind: o.kind === "tool" ? "tool" : "model", start: num(o.start), end: num(o.end), text: str(o.text) };
    }),
    tool_calls: arr(raw.tool_calls).map((c) => {
      const o = obj(c);
      return {
        index: num(o.index),
        name: str(o.name),
        arguments: obj(o.arguments),
        output: str(o.output),
        error: typeof o.error === "string" && o.error ? o.error : null,
        latency_ms: num(o.latency_ms),
        result_start: num(o.result_start),
        result_end: num(o.result_end),
      };
    }),
    decisions: arr(raw.decisions).map((d) => {
      const o = obj(d);
      return {
        tool_index: num(o.tool_index),
        boundary: num(o.boundary),
        h_t: num(o.h_t),
        delta_h: num(o.delta_h),
        score: num(o.score),
        draw: numOrNull(o.draw),
        forked: o.forked === true,
        children: arr(o.children).filter((c): c is number => typeof c === "number"),
      };
    }),
    entropies: arr(raw.entropies).map(numOrNull),
  };
}

/**
 * Either record as a TreeRecord. `rewards` (by position in `paths`) fills in rewards the record
 * lacks, e.g. for the engine's raw groups. Advantages are computed when the record has none.
 */
export function normaliseTree(
  input: unknown,
  options: { step?: number | null; rewards?: ReadonlyArray<number | null> } = {},
): TreeRecord {
  const raw = obj(input);
  const paths = arr(raw.paths).map((p, i) => normalisePath(obj(p), options.rewards?.[i] ?? null));
  if (paths.every((p) => p.advantage === null)) {
    softAdvantages(paths.map((p) => p.reward)).forEach((a, i) => (paths[i].advantage = a));
  }
  const rewards = paths.map((p) => p.reward).filter((r): r is number => r !== null);
  const answers = arr(raw.answers ?? obj(raw.sample).answers).map(str);
  return {
    step: options.step ?? numOrNull(raw.step),
    prompt_index: num(raw.prompt_index),
    question: question(raw),
    answers,
    initial_samples: num(raw.initial_samples),
    budget: num(raw.budget, paths.length),
    supplements: num(raw.supplements),
    entropy_estimator: str(raw.entropy_estimator) || "exact",
    reward_mean:
      numOrNull(raw.reward_mean) ?? (rewards.length ? rewards.reduce((a, b) => a + b, 0) / rewards.length : null),
    truncated: raw.truncated === true,
    paths,
  };
}

/** Whether a run.rollout payload carries the whole tree, or only the summary a replay stores. */
export function hasPaths(data: unknown): boolean {
  return Array.isArray(obj(data).paths);
}
