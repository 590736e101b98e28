import { describe, expect, it } from "vitest";

import { downsampleAligned, lttbIndices, minMaxIndices } from "./downsample";

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe("lttbIndices", () => {
  it("keeps every point when there are fewer than the threshold", () => {
    expect(lttbIndices([0, 1, 2], [5, 6, 7], 10)).toEqual([0, 1, 2]);
  });

  it("returns exactly `threshold` ascending indices, first and last included", () => {
    const xs = range(5000);
    const ys = xs.map((x) => Math.sin(x / 50));
    const out = lttbIndices(xs, ys, 300);
    expect(out).toHaveLength(300);
    expect(out[0]).toBe(0);
    expect(out[299]).toBe(4999);
    for (let i = 1; i < out.length; i++) expect(out[i]).toBeGreaterThan(out[i - 1]);
  });

  it("keeps a lone spike", () => {
    const xs = range(2000);
    const ys = xs.map((x) => (x === 1234 ? 100 : 0));
    expect(lttbIndices(xs, ys, 100)).toContain(1234);
  });

  it("skips gaps", () => {
    const xs = range(10);
    const ys = [1, null, 2, null, 3, null, 4, null, 5, null];
    expect(lttbIndices(xs, ys, 100)).toEqual([0, 2, 4, 6, 8]);
  });
});

describe("minMaxIndices", () => {
  it("keeps the extremes of every bucket", () => {
    const xs = range(4000);
    const ys = xs.map((x) => (x % 997 === 0 ? -50 : x % 389 === 0 ? 50 : 0));
    const out = minMaxIndices(xs, ys, 50);
    expect(out.length).toBeLessThanOrEqual(200);
    for (const i of [997, 1994, 389, 778]) expect(out).toContain(i);
  });
});

describe("downsampleAligned", () => {
  it("thins every column by the same rows and keeps each series' own shape points", () => {
    const xs = range(3000);
    const a = xs.map((x) => (x === 100 ? 9 : 0));
    const b = xs.map((x) => (x === 2500 ? -9 : 1));
    const [x2, a2, b2] = downsampleAligned([xs, a, b], 200);
    expect(x2.length).toBeLessThanOrEqual(400);
    expect(x2.length).toBe(a2.length);
    expect(a2[x2.indexOf(100)]).toBe(9);
    expect(b2[x2.indexOf(2500)]).toBe(-9);
  });

  it("passes short data through", () => {
    expect(downsampleAligned([[1, 2], [3, null]], 100)).toEqual([[1, 2], [3, null]]);
  });
});
