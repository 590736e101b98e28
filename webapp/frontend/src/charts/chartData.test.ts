import { describe, expect, it } from "vitest";

import { chartColumns, stepRange, yRange } from "./chartData";

const points = (n: number, f: (i: number) => number) => ({
  steps: Array.from({ length: n }, (_, i) => i),
  values: Array.from({ length: n }, (_, i) => f(i)),
});

describe("chartColumns", () => {
  it("passes raw aligned data through without smoothing", () => {
    const out = chartColumns([{ steps: [1, 2], values: [3, 4] }], { smoothing: 0, log: false, maxPoints: 100 });
    expect(out.data).toEqual([[1, 2], [3, 4]]);
    expect(out.drawn).toEqual([{ source: 0, raw: false }]);
  });

  it("draws a faint raw line before each smoothed one", () => {
    const out = chartColumns([points(3, (i) => i), points(3, () => 1)], { smoothing: 0.5, log: false, maxPoints: 100 });
    expect(out.drawn.map((d) => `${d.source}${d.raw ? "r" : "s"}`)).toEqual(["0r", "0s", "1r", "1s"]);
    expect(out.data[4]).toEqual([1, 1, 1]);
  });

  it("leaves series marked not to smooth (sparse eval points) as they are", () => {
    const out = chartColumns([points(3, (i) => i), points(3, (i) => i)], {
      smoothing: 0.5, log: false, maxPoints: 100, smooth: [true, false],
    });
    expect(out.drawn.map((d) => `${d.source}${d.raw ? "r" : "s"}`)).toEqual(["0r", "0s", "1s"]);
    expect(out.data[3]).toEqual([0, 1, 2]);
  });

  it("thins 2,000+ steps to about maxPoints rows per series", () => {
    const out = chartColumns([points(5000, (i) => Math.sin(i / 30))], { smoothing: 0.9, log: false, maxPoints: 500 });
    expect(out.rows).toBe(5000);
    expect(out.data[0].length).toBeLessThanOrEqual(1000);
    expect(out.data[0].length).toBeGreaterThanOrEqual(500);
  });

  it("makes values log-safe and counts what the smoothed lines lost", () => {
    const out = chartColumns([{ steps: [1, 2, 3], values: [1, 0, 10] }], { smoothing: 0, log: true, maxPoints: 100 });
    expect(out.data[1]).toEqual([1, null, 10]);
    expect(out.droppedForLog).toBe(1);
  });
});

describe("yRange", () => {
  it("gives a flat share a band around it, never below 0 %", () => {
    expect(yRange(0, 0, "percent")).toEqual([0, 0.1]);
    const [lo, hi] = yRange(0.5, 0.5, "percent");
    expect(lo).toBeCloseTo(0.45);
    expect(hi).toBeCloseTo(0.55);
  });

  it("gives a flat number ±10 % of itself, or ±0.1 at zero", () => {
    expect(yRange(0, 0, "number")).toEqual([-0.1, 0.1]);
    const [lo, hi] = yRange(-2, -2, "number");
    expect(lo).toBeCloseTo(-2.2);
    expect(hi).toBeCloseTo(-1.8);
  });

  it("pads a span by 5 % each side, and an empty chart shows 0 to 1", () => {
    const [lo, hi] = yRange(0.2, 0.6, "percent");
    expect(lo).toBeCloseTo(0.18);
    expect(hi).toBeCloseTo(0.62);
    expect(yRange(0, 1, "percent")[0]).toBe(0);
    expect(yRange(null, null, "number")).toEqual([0, 1]);
  });
});

describe("stepRange", () => {
  it("keeps uPlot's range for several steps and gives a lone step one step either side, never below 0", () => {
    expect(stepRange([1, 2, 40], 1, 40)).toEqual([1, 40]);
    expect(stepRange([0], 0, 100)).toEqual([0, 1]);
    expect(stepRange([7], -43, 57)).toEqual([6, 8]);
    expect(stepRange([], null, null)).toEqual([null, null]);
  });
});
