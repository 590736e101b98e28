import { describe, expect, it } from "vitest";

import { ema, windowMean } from "./smooth";

describe("ema", () => {
  it("returns the data unchanged at weight 0", () => {
    expect(ema([1, 5, 2], 0)).toEqual([1, 5, 2]);
  });

  it("is debiased: a constant series stays constant from the first point", () => {
    for (const v of ema([3, 3, 3, 3], 0.9)) expect(v).toBeCloseTo(3, 12);
  });

  it("matches a hand-computed debiased average", () => {
    // w = 0.5: raw 0.5·1 = 0.5 → /0.5 = 1; then 0.25 + 0.5·3 = 1.75 → /0.75 = 2.333…
    const [a, b] = ema([1, 3], 0.5);
    expect(a).toBeCloseTo(1, 12);
    expect(b).toBeCloseTo(7 / 3, 12);
  });

  it("keeps gaps as gaps and does not let them pull the average", () => {
    const out = ema([2, null, 2, Number.NaN, 2], 0.8);
    expect(out[1]).toBeNull();
    expect(out[3]).toBeNull();
    expect(out[4]).toBeCloseTo(2, 12);
  });

  it("smooths: a spike moves the smoothed line less than the raw one", () => {
    const out = ema([0, 0, 0, 10, 0], 0.9);
    expect(out[3]!).toBeLessThan(10);
    expect(out[3]!).toBeGreaterThan(0);
  });
});

describe("windowMean", () => {
  it("averages the trailing window of present values", () => {
    expect(windowMean([1, 2, 3, 4], 2)).toEqual([1, 1.5, 2.5, 3.5]);
  });

  it("skips gaps", () => {
    expect(windowMean([1, null, 3], 2)).toEqual([1, null, 2]);
  });
});
