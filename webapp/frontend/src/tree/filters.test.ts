import { describe, expect, it } from "vitest";

import { filterTrees, NO_FILTER, orderTrees, summarise, type TreeSummary } from "./filters";
import { normaliseTree } from "./record";
import { handTree } from "./testTree";

const base = summarise(normaliseTree(handTree(), { step: 4 }));
const make = (over: Partial<TreeSummary>): TreeSummary => ({ ...base, ...over });

describe("summarise", () => {
  it("counts forks, own tool calls (not the shared prefix twice), errors and the largest ΔH", () => {
    expect(base).toMatchObject({
      key: "4:3", paths: 5, forks: 2, supplements: 1, toolCalls: 4, toolErrors: 1, degenerate: false, anyCorrect: true,
    });
    expect(base.maxDeltaH).toBeCloseTo(0.9, 9);
  });

  it("marks a group with all-equal rewards degenerate", () => {
    const raw = handTree() as { paths: { reward: number }[] };
    for (const p of raw.paths) p.reward = 0;
    expect(summarise(normaliseTree(raw)).degenerate).toBe(true);
  });
});

describe("filterTrees", () => {
  const list = [
    make({ key: "a", prompt_index: 1, question: "Population of Brackwater?", degenerate: true, anyCorrect: false, toolErrors: 0 }),
    make({ key: "b", prompt_index: 2, question: "Founding year of Olmfield", degenerate: false, anyCorrect: true, toolErrors: 2 }),
    make({ key: "c", prompt_index: 12, question: "Staff of Brackwater Mills", degenerate: false, anyCorrect: false, toolErrors: 0 }),
  ];
  const keys = (f: Partial<typeof NO_FILTER>) => filterTrees(list, { ...NO_FILTER, ...f }).map((s) => s.key);

  it("keeps everything without a filter", () => expect(keys({})).toEqual(["a", "b", "c"]));
  it("filters by outcome", () => {
    expect(keys({ outcome: "degenerate" })).toEqual(["a"]);
    expect(keys({ outcome: "mixed" })).toEqual(["b", "c"]);
    expect(keys({ outcome: "solved" })).toEqual(["b"]);
    expect(keys({ outcome: "unsolved" })).toEqual(["a", "c"]);
  });
  it("filters by tool failure", () => expect(keys({ toolFailure: true })).toEqual(["b"]));
  it("filters by prompt number or by words of the question", () => {
    expect(keys({ prompt: "#12" })).toEqual(["c"]);
    expect(keys({ prompt: "2" })).toEqual(["b"]);
    expect(keys({ prompt: "brackwater mills" })).toEqual(["c"]);
  });
});

describe("orderTrees", () => {
  const list = [
    make({ key: "old-big", step: 1, maxDeltaH: 2.0, reward_mean: 0.1 }),
    make({ key: "new-small", step: 3, maxDeltaH: 0.1, reward_mean: 0.9 }),
    make({ key: "none", step: 2, maxDeltaH: null, reward_mean: null }),
  ];
  const keys = (o: Parameters<typeof orderTrees>[1]) => orderTrees(list, o).map((s) => s.key);

  it("puts the largest ΔH first, trees without decisions last", () =>
    expect(keys("delta-h")).toEqual(["old-big", "new-small", "none"]));
  it("puts the newest step first by default", () => expect(keys("newest")).toEqual(["new-small", "none", "old-big"]));
  it("sorts by reward either way", () => {
    expect(keys("reward-low")).toEqual(["old-big", "new-small", "none"]);
    expect(keys("reward-high")).toEqual(["new-small", "old-big", "none"]);
  });
});
