import { describe, expect, it } from "vitest";

import { SeriesStore } from "./series";

describe("SeriesStore", () => {
  it("appends steps in order per metric", () => {
    const store = new SeriesStore();
    store.append(1, { "reward/mean": 0.1, lr: 1e-6 });
    store.append(2, { "reward/mean": 0.3 });
    expect(store.get("reward/mean")).toEqual({ steps: [1, 2], values: [0.1, 0.3] });
    expect(store.get("lr")).toEqual({ steps: [1], values: [1e-6] });
    expect(store.domain()).toEqual([1, 2]);
  });

  it("replaces a step the run redid after a resume, and inserts late steps in order", () => {
    const store = new SeriesStore();
    for (const step of [1, 2, 4]) store.append(step, { accuracy: step });
    store.append(2, { accuracy: 20 });
    store.append(3, { accuracy: 30 });
    expect(store.get("accuracy")).toEqual({ steps: [1, 2, 3, 4], values: [1, 20, 30, 4] });
  });

  it("stores non-numbers as gaps and reports the newest present value", () => {
    const store = new SeriesStore();
    store.append(1, { "grad/norm": 2 });
    store.append(2, { "grad/norm": null });
    expect(store.latest("grad/norm")).toEqual({ step: 1, value: 2 });
    expect(store.latest("missing")).toBeNull();
  });
});
