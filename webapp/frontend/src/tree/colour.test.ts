import { describe, expect, it } from "vitest";

import {
  entropyScaleMax,
  entropyTint,
  hexToRgb,
  lightness,
  oklabDistance,
  oklabToRgb,
  rewardColour,
  rgbToOklab,
} from "./colour";

describe("OKLab", () => {
  it("round-trips sRGB colours", () => {
    for (const hex of ["#000000", "#ffffff", "#4f46e5", "#f39a5b", "#171b21"]) {
      expect(oklabToRgb(rgbToOklab(hexToRgb(hex)))).toEqual(hexToRgb(hex));
    }
  });

  it("puts white at lightness 1 and black at 0", () => {
    expect(rgbToOklab([255, 255, 255])[0]).toBeCloseTo(1, 3);
    expect(rgbToOklab([0, 0, 0])[0]).toBeCloseTo(0, 6);
  });
});

describe("entropyTint", () => {
  const steps = [0, 0.25, 0.5, 0.75, 1].map((t) => t * 4);

  it("starts at the page's panel colour (zero entropy, no tint)", () => {
    expect(entropyTint(0, 4, "light")).toBe("rgb(255, 255, 255)");
    expect(entropyTint(0, 4, "dark")).toBe("rgb(23, 27, 33)");
  });

  it("moves steadily away from the background as entropy rises, in both themes", () => {
    for (const [theme, bg] of [["light", "#ffffff"], ["dark", "#171b21"]] as const) {
      const d = steps.map((h) => oklabDistance(entropyTint(h, 4, theme)!, bg));
      for (let i = 1; i < d.length; i++) expect(d[i]).toBeGreaterThan(d[i - 1]);
    }
  });

  it("darkens on light pages and lightens on dark pages, keeping text readable", () => {
    const light = steps.map((h) => lightness(entropyTint(h, 4, "light")!));
    const dark = steps.map((h) => lightness(entropyTint(h, 4, "dark")!));
    for (let i = 1; i < steps.length; i++) {
      expect(light[i]).toBeLessThan(light[i - 1]);
      expect(dark[i]).toBeGreaterThan(dark[i - 1]);
    }
    expect(Math.min(...light)).toBeGreaterThan(0.7); // dark text on it
    expect(Math.max(...dark)).toBeLessThan(0.6); // light text on it
  });

  it("clamps above the scale top and gives no tint to unknown entropy", () => {
    expect(entropyTint(40, 4, "light")).toBe(entropyTint(4, 4, "light"));
    expect(entropyTint(null, 4, "light")).toBeNull();
  });
});

describe("entropyScaleMax", () => {
  it("is the 95th percentile, not the single largest outlier", () => {
    const values = [...Array.from({ length: 99 }, (_, i) => i / 99), 50];
    expect(entropyScaleMax(values)).toBeLessThan(1.01);
  });

  it("has a floor, so a calm path is not painted hot", () => {
    expect(entropyScaleMax([0.01, 0.02, null])).toBe(0.5);
    expect(entropyScaleMax([])).toBe(0.5);
  });
});

describe("rewardColour", () => {
  it("runs from red through neutral to green", () => {
    const [bad, mid, good] = [-1, 0, 1].map((r) => hexOf(rewardColour(r, "light")));
    expect(bad[0]).toBeGreaterThan(bad[1]);
    expect(good[1]).toBeGreaterThan(good[0]);
    expect(Math.abs(mid[0] - mid[1])).toBeLessThan(20);
    expect(rewardColour(null, "dark")).toBe(rewardColour(0, "dark"));
    expect(rewardColour(1.1, "light")).toBe(rewardColour(1, "light"));
  });
});

function hexOf(rgb: string): number[] {
  return rgb.match(/\d+/g)!.map(Number);
}
