import { describe, expect, it } from "vitest";

import { alignOnSteps, logHelps, logSafe } from "./align";

describe("alignOnSteps", () => {
  it("puts series of different steps on one sorted x column with nulls where a series has no point", () => {
    const out = alignOnSteps([
      { steps: [1, 2, 3], values: [0.1, 0.2, 0.3] },
      { steps: [2, 4], values: [5, 6] },
    ]);
    expect(out).toEqual([
      [1, 2, 3, 4],
      [0.1, 0.2, 0.3, null],
      [null, 5, null, 6],
    ]);
  });

  it("gives an all-null column for a metric the run never reported", () => {
    expect(alignOnSteps([{ steps: [1], values: [2] }, undefined])).toEqual([[1], [2], [null]]);
  });
});

describe("logSafe", () => {
  it("turns zero, negatives and non-finite values into gaps and counts them", () => {
    expect(logSafe([1, 0, -2, null, 3, Infinity])).toEqual({ values: [1, null, null, null, 3, null], dropped: 3 });
  });
});

describe("logHelps", () => {
  it("is true for positive data spanning several decades", () => {
    expect(logHelps([1e-6, 1e-3, 0.5])).toBe(true);
  });

  it("is false when any value is not positive or the span is small", () => {
    expect(logHelps([0, 1e-3, 10])).toBe(false);
    expect(logHelps([1, 2, 3])).toBe(false);
  });
});
