// The run's metric history in memory: one sorted point list per metric, fed by run.metrics events.
import type { Points } from "./align";

export class SeriesStore {
  private readonly series = new Map<string, Points>();
  /** Bumped on every change, so a chart can skip redrawing what has not moved. */
  version = 0;

  /** Add one step's metrics; a step seen before (a run resumed and redid it) replaces the old value. */
  append(step: number, metrics: Readonly<Record<string, number | null | undefined>>): void {
    for (const [name, raw] of Object.entries(metrics)) {
      const value = typeof raw === "number" && Number.isFinite(raw) ? raw : null;
      let s = this.series.get(name);
      if (!s) this.series.set(name, (s = { steps: [], values: [] }));
      const n = s.steps.length;
      if (n === 0 || step > s.steps[n - 1]) {
        s.steps.push(step);
        s.values.push(value);
        continue;
      }
      const at = lowerBound(s.steps, step);
      if (s.steps[at] === step) s.values[at] = value;
      else {
        s.steps.splice(at, 0, step);
        s.values.splice(at, 0, value);
      }
    }
    this.version += 1;
  }

  get(name: string): Points | undefined {
    return this.series.get(name);
  }

  names(): string[] {
    return [...this.series.keys()];
  }

  /** The newest value of a metric, with its step. */
  latest(name: string): { step: number; value: number } | null {
    const s = this.series.get(name);
    if (!s) return null;
    for (let i = s.steps.length - 1; i >= 0; i--) {
      const v = s.values[i];
      if (v !== null) return { step: s.steps[i], value: v };
    }
    return null;
  }

  /** Lowest and highest step of any metric. */
  domain(): [number, number] | null {
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of this.series.values()) {
      if (!s.steps.length) continue;
      lo = Math.min(lo, s.steps[0]);
      hi = Math.max(hi, s.steps[s.steps.length - 1]);
    }
    return lo <= hi ? [lo, hi] : null;
  }
}

function lowerBound(sorted: number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
