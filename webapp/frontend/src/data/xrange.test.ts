import { describe, expect, it } from "vitest";

import { normaliseRange, type Range, XRangeSync } from "./xrange";

describe("normaliseRange", () => {
  it("orders and clamps to the domain", () => {
    expect(normaliseRange([80, -5], [0, 100])).toEqual([0, 80]);
  });

  it("is null for an empty range or one that covers the whole domain", () => {
    expect(normaliseRange([5, 5], [0, 100])).toBeNull();
    expect(normaliseRange([-10, 200], [0, 100])).toBeNull();
  });
});

describe("XRangeSync", () => {
  it("tells every other chart, not the one that zoomed", () => {
    const sync = new XRangeSync();
    const seen: Record<string, Range[]> = { a: [], b: [], c: [] };
    for (const id of ["a", "b", "c"]) sync.register(id, (r) => seen[id].push(r));
    sync.publish([10, 20], "a");
    expect(seen).toEqual({ a: [], b: [[10, 20]], c: [[10, 20]] });
  });

  it("ignores the echo a listener publishes while applying a range", () => {
    const sync = new XRangeSync();
    let calls = 0;
    sync.register("a", () => {});
    sync.register("b", (r) => {
      calls += 1;
      sync.publish(r, "b");
    });
    sync.publish([1, 2], "a");
    expect(calls).toBe(1);
  });

  it("does not repeat an unchanged range", () => {
    const sync = new XRangeSync();
    let calls = 0;
    sync.register("b", () => (calls += 1));
    sync.publish([1, 2], "a");
    sync.publish([1, 2], "a");
    sync.publish(null, "a");
    expect(calls).toBe(2);
  });
});
