import { describe, expect, it } from "vitest";

import { hasPaths, normaliseTree, softAdvantages } from "./record";
import { handTree } from "./testTree";

describe("softAdvantages", () => {
  it("is (r − mean) / (unbiased std + 1e-6)", () => {
    // rewards 1, 0, −1: mean 0, unbiased std 1
    const [a, b, c] = softAdvantages([1, 0, -1]);
    expect(a).toBeCloseTo(1 / (1 + 1e-6), 9);
    expect(b).toBe(0);
    expect(c).toBeCloseTo(-1 / (1 + 1e-6), 9);
  });

  it("gives zero advantage to a degenerate group", () => {
    expect(softAdvantages([0.5, 0.5, 0.5])).toEqual([0, 0, 0]);
  });

  it("leaves paths without a reward without an advantage", () => {
    expect(softAdvantages([1, null, -1])[1]).toBeNull();
    expect(softAdvantages([null, null])).toEqual([null, null]);
  });
});

describe("normaliseTree", () => {
  it("reads the worker's record and computes advantages from the rewards", () => {
    const tree = normaliseTree(handTree(), { step: 12 });
    expect(tree.step).toBe(12);
    expect(tree.prompt_index).toBe(3);
    expect(tree.paths).toHaveLength(5);
    expect(tree.reward_mean).toBeCloseTo(0.2, 9);
    expect(tree.paths[0].advantage!).toBeGreaterThan(0);
    expect(tree.paths[2].advantage!).toBeLessThan(0);
    expect(tree.paths[1].tool_calls[0].error).toBe("timed out after 10 s");
  });

  it("reads the engine's RolloutGroup.to_dict() (token ids, masks, the dataset row) with rewards given apart", () => {
    const group = {
      prompt_index: 0,
      prompt_ids: [1, 2],
      prompt_text: "<|user|>Q",
      sample: { messages: [{ role: "user", content: "What is 2+2?" }], answers: ["4"] },
      initial_samples: 1,
      budget: 1,
      supplements: 0,
      entropy_estimator: "topk-10",
      paths: [
        {
          id: 0, origin: "initial", parent: null, fork_boundary: null, fork_tool_index: null, h_initial: 0.2,
          token_ids: [5, 6, 7], mask: [1, 1, 0], entropies: [0.1, 0.2, null],
          segments: [{ kind: "model", start: 0, end: 3, text: "4" }], tool_calls: [], decisions: [],
          finish_reason: "eos",
        },
      ],
    };
    const tree = normaliseTree(group, { rewards: [1] });
    expect(tree.question).toBe("What is 2+2?");
    expect(tree.answers).toEqual(["4"]);
    expect(tree.entropy_estimator).toBe("topk-10");
    expect(tree.paths[0].tokens).toBe(3);
    expect(tree.paths[0].model_tokens).toBe(2);
    expect(tree.paths[0].reward).toBe(1);
  });

  it("survives junk without throwing", () => {
    const tree = normaliseTree({ paths: [null, { id: "x", segments: "no" }] });
    expect(tree.paths).toHaveLength(2);
    expect(tree.paths[1].segments).toEqual([]);
  });

  it("tells a replayed summary from a whole tree", () => {
    expect(hasPaths({ prompt_index: 1, reward_mean: 0.5 })).toBe(false);
    expect(hasPaths(handTree())).toBe(true);
  });
});
