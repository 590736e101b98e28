import { describe, expect, it } from "vitest";

import { etaSeconds, formatBytes, formatDuration, progressOf, statusLook } from "./format";

describe("formatDuration", () => {
  it("reads like a person would say it", () => {
    expect(formatDuration(42)).toBe("42 s");
    expect(formatDuration(125)).toBe("2 min 05 s");
    expect(formatDuration(3 * 3600 + 7 * 60)).toBe("3 h 07 min");
    expect(formatDuration(null)).toBe("–");
  });
});

describe("formatBytes", () => {
  it("uses binary units", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(270 * 1024 * 1024)).toBe("270 MB");
    expect(formatBytes(0)).toBe("–");
  });
});

describe("progressOf", () => {
  it("is steps done over total, clamped, or null without a total", () => {
    expect(progressOf(5, 20)).toBe(0.25);
    expect(progressOf(30, 20)).toBe(1);
    expect(progressOf(5, 0)).toBeNull();
  });
});

describe("etaSeconds", () => {
  it("extrapolates the recent pace to the steps left", () => {
    const times = [0, 1, 2, 3].map((step) => ({ step, at: step * 10 }));
    expect(etaSeconds(times, 10)).toBe(70);
  });

  it("is null before two steps are timed", () => {
    expect(etaSeconds([{ step: 1, at: 5 }], 10)).toBeNull();
  });
});

describe("statusLook", () => {
  it("pairs a tone with a glyph so status is not told by colour alone", () => {
    expect(statusLook("failed")).toEqual({ tone: "err", glyph: "✗", label: "Failed" });
    expect(statusLook("succeeded").glyph).toBe("✓");
    expect(statusLook("weird").tone).toBe("");
  });
});
