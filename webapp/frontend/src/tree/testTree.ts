// A hand-made rollout tree for unit tests, in the worker's record form (worker/trees.py).
//   0 initial ─ t1@30 FORK ─ t2@60 no fork ─ end 100 (reward 1)
//               └ 2 fork ─ t2@55 FORK ─ end 90 (reward −1)
//                          └ 3 fork ─ end 70 (reward 1)
//   1 initial ─ t1@20 (tool error) no fork ─ end 80 (reward 0)
//   4 supplement ─ end 40 (reward 0)

const call = (index: number, start: number, end: number, error: string | null = null) => ({
  index, name: "search", arguments: { query: `q${index}` }, output: `result ${index}`, error,
  latency_ms: 12.5, result_start: start, result_end: end,
});
const decision = (t: number, boundary: number, dh: number, forked: boolean, children: number[] = []) => ({
  tool_index: t, boundary, h_t: 0.4 + dh, delta_h: dh, score: 0.5 + 0.2 * dh, draw: 0.3, forked, children,
});
const entropies = (n: number, toolSpans: [number, number][]) =>
  Array.from({ length: n }, (_, i) => (toolSpans.some(([a, b]) => i >= a && i < b) ? null : (i % 10) / 10));

export function handTree(): Record<string, unknown> {
  return {
    prompt_index: 3,
    question: "How many people live in Brackwater?",
    answers: ["112510"],
    initial_samples: 2,
    budget: 5,
    supplements: 1,
    entropy_estimator: "exact",
    truncated: false,
    paths: [
      {
        id: 0, origin: "initial", parent: null, fork_boundary: null, fork_tool_index: null, h_initial: 0.4,
        finish_reason: "eos", tokens: 100, model_tokens: 80, reward: 1, correct: true, format_ok: true,
        segments: [
          { kind: "model", start: 0, end: 20, text: "<think>look up</think><search>Brackwater</search>" },
          { kind: "tool", start: 20, end: 30, text: " <result>\nBrackwater: 112510\n</result>" },
          { kind: "model", start: 30, end: 50, text: "<python>print(112510)</python>" },
          { kind: "tool", start: 50, end: 60, text: " <result>\n112510\n</result>" },
          { kind: "model", start: 60, end: 100, text: "<answer>\\boxed{112510}</answer>" },
        ],
        tool_calls: [call(1, 20, 30), { ...call(2, 50, 60), name: "python" }],
        decisions: [decision(1, 30, 0.6, true, [2]), decision(2, 60, -0.1, false)],
        entropies: entropies(100, [[20, 30], [50, 60]]),
      },
      {
        id: 1, origin: "initial", parent: null, fork_boundary: null, fork_tool_index: null, h_initial: 0.5,
        finish_reason: "eos", tokens: 80, model_tokens: 70, reward: 0, correct: false, format_ok: true,
        segments: [
          { kind: "model", start: 0, end: 10, text: "<search>x</search>" },
          { kind: "tool", start: 10, end: 20, text: " <result>\ntimeout\n</result>" },
          { kind: "model", start: 20, end: 80, text: "<answer>\\boxed{3}</answer>" },
        ],
        tool_calls: [call(1, 10, 20, "timed out after 10 s")],
        decisions: [decision(1, 20, 0.1, false)],
        entropies: entropies(80, [[10, 20]]),
      },
      {
        id: 2, origin: "fork", parent: 0, fork_boundary: 30, fork_tool_index: 1, h_initial: 0.4,
        finish_reason: "eos", tokens: 90, model_tokens: 70, reward: -1, correct: false, format_ok: false,
        segments: [
          { kind: "model", start: 0, end: 20, text: "<think>look up</think><search>Brackwater</search>" },
          { kind: "tool", start: 20, end: 30, text: " <result>\nBrackwater: 112510\n</result>" },
          { kind: "model", start: 30, end: 45, text: "<search>again</search>" },
          { kind: "tool", start: 45, end: 55, text: " <result>\nagain\n</result>" },
          { kind: "model", start: 55, end: 90, text: "no answer" },
        ],
        tool_calls: [call(1, 20, 30), call(2, 45, 55)],
        decisions: [decision(2, 55, 0.9, true, [3])],
        entropies: entropies(90, [[20, 30], [45, 55]]),
      },
      {
        id: 3, origin: "fork", parent: 2, fork_boundary: 55, fork_tool_index: 2, h_initial: 0.4,
        finish_reason: "eos", tokens: 70, model_tokens: 50, reward: 1, correct: true, format_ok: true,
        segments: [
          { kind: "model", start: 0, end: 20, text: "<think>look up</think><search>Brackwater</search>" },
          { kind: "tool", start: 20, end: 30, text: " <result>\nBrackwater: 112510\n</result>" },
          { kind: "model", start: 30, end: 45, text: "<search>again</search>" },
          { kind: "tool", start: 45, end: 55, text: " <result>\nagain\n</result>" },
          { kind: "model", start: 55, end: 70, text: "<answer>\\boxed{112510}</answer>" },
        ],
        tool_calls: [call(1, 20, 30), call(2, 45, 55)],
        decisions: [],
        entropies: [],
      },
      {
        id: 4, origin: "supplement", parent: null, fork_boundary: null, fork_tool_index: null, h_initial: 0.3,
        finish_reason: "length", tokens: 40, model_tokens: 40, reward: 0, correct: false, format_ok: false,
        segments: [{ kind: "model", start: 0, end: 40, text: "I think the answer is five." }],
        tool_calls: [], decisions: [], entropies: entropies(40, []),
      },
    ],
  };
}
