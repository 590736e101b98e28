import { describe, expect, it } from "vitest";

import { runAlerts } from "./alerts";
import { SeriesStore } from "./series";

function store(n: number, f: (step: number) => Record<string, number>): SeriesStore {
  const s = new SeriesStore();
  for (let step = 1; step <= n; step++) s.append(step, f(step));
  return s;
}

const healthy = (step: number) => ({
  "tools/calls_total": 100,
  "groups/degenerate_frac": 0.3,
  "entropy/token_mean": 1,
  "reward/mean": 0.1 + step * 0.001,
  "format/ok_frac": 0.9,
  "tools/error_rate": 0.05,
});
const ids = (s: SeriesStore) => runAlerts(s, { window: 10 }).map((a) => a.id);

describe("runAlerts", () => {
  it("is quiet for a healthy run", () => expect(ids(store(40, healthy))).toEqual([]));

  it("is quiet before it has a window of history", () => {
    expect(ids(store(5, (s) => ({ ...healthy(s), "tools/calls_total": 0 })))).toEqual([]);
  });

  it("flags K steps without a tool call, not K − 1", () => {
    expect(ids(store(20, (s) => ({ ...healthy(s), "tools/calls_total": s > 10 ? 0 : 5 })))).toContain("no-tool-calls");
    expect(ids(store(20, (s) => ({ ...healthy(s), "tools/calls_total": s > 11 ? 0 : 5 })))).not.toContain("no-tool-calls");
  });

  it("flags every group degenerate", () => {
    expect(ids(store(20, (s) => ({ ...healthy(s), "groups/degenerate_frac": 1 })))).toContain("all-degenerate");
  });

  it("flags entropy collapse and explosion", () => {
    expect(ids(store(30, (s) => ({ ...healthy(s), "entropy/token_mean": s > 15 ? 0.01 : 1 })))).toContain("entropy-collapse");
    expect(ids(store(30, (s) => ({ ...healthy(s), "entropy/token_mean": s > 15 ? 3 : 1 })))).toContain("entropy-explosion");
  });

  it("flags reward and format falling, tool errors rising, each with advice", () => {
    const s = store(30, (step) => ({
      ...healthy(step),
      "reward/mean": step > 20 ? 0.1 : 0.5,
      "format/ok_frac": step > 20 ? 0.6 : 0.9,
      "tools/error_rate": step > 20 ? 0.4 : 0.05,
    }));
    const alerts = runAlerts(s, { window: 10 });
    expect(alerts.map((a) => a.id)).toEqual(["reward-falling", "format-falling", "tool-errors-rising"]);
    for (const a of alerts) expect(a.advice.length).toBeGreaterThan(40);
  });
});
