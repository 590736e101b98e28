import { describe, expect, it } from "vitest";

import { sparkPath } from "./sparkline";

describe("sparkPath", () => {
  it("scales the values into the box, highest at the top", () => {
    expect(sparkPath([0, 1], 12, 12)).toBe("M1.0,11.0L11.0,1.0");
  });

  it("breaks the line at gaps", () => {
    expect(sparkPath([1, null, 2, 3], 10, 10).match(/M/g)).toHaveLength(2);
  });

  it("draws a flat series in the middle and nothing without data", () => {
    expect(sparkPath([2, 2], 10, 10)).toBe("M1.0,5.0L9.0,5.0");
    expect(sparkPath([null], 10, 10)).toBe("");
  });
});
