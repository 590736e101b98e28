// One step range shared by every chart of a page: zoom one, all follow; reset one, all reset.

export type Range = readonly [number, number] | null;
type Listener = (range: Range, source: string) => void;

/** The range ordered, clamped to the data's domain; null when it is empty or covers all of it. */
export function normaliseRange(range: Range, domain: readonly [number, number] | null): Range {
  if (range === null || domain === null) return null;
  let [a, b] = range[0] <= range[1] ? range : [range[1], range[0]];
  a = Math.max(a, domain[0]);
  b = Math.min(b, domain[1]);
  if (!(b > a)) return null;
  if (a <= domain[0] && b >= domain[1]) return null;
  return [a, b];
}

export class XRangeSync {
  private listeners = new Map<string, Listener>();
  private publishing = false;
  range: Range = null;

  /** Charts register with an id; a chart is not told about changes it published itself. */
  register(id: string, listener: Listener): () => void {
    this.listeners.set(id, listener);
    return () => this.listeners.delete(id);
  }

  publish(range: Range, source: string): void {
    // A chart that applies a range fires its own scale hook: ignore that echo.
    if (this.publishing) return;
    const same =
      (range === null && this.range === null) ||
      (range !== null && this.range !== null && range[0] === this.range[0] && range[1] === this.range[1]);
    if (same) return;
    this.range = range;
    this.publishing = true;
    try {
      for (const [id, listener] of this.listeners) if (id !== source) listener(range, source);
    } finally {
      this.publishing = false;
    }
  }
}
