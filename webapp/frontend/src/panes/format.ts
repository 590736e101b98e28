// Small pure formatters for the status, log and checkpoint panes.

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${String(m % 60).padStart(2, "0")} min`;
}

export function formatBytes(bytes: number | null | undefined): string {
  if (!bytes || bytes < 0) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) (v /= 1024), (i += 1);
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Fraction done (0–1) from steps, or null when the total is unknown. */
export function progressOf(stepsDone: number | null | undefined, totalSteps: number | null | undefined): number | null {
  if (!totalSteps || totalSteps <= 0 || stepsDone === null || stepsDone === undefined) return null;
  return Math.min(1, Math.max(0, stepsDone / totalSteps));
}

/**
 * Seconds left, from the pace of the recent steps: (total − done) × mean seconds per step over the
 * last `window` steps. Null until two steps have been timed.
 */
export function etaSeconds(stepTimes: ReadonlyArray<{ step: number; at: number }>, totalSteps: number, window = 10): number | null {
  if (stepTimes.length < 2 || !totalSteps) return null;
  const recent = stepTimes.slice(-window - 1);
  const first = recent[0];
  const last = recent[recent.length - 1];
  const steps = last.step - first.step;
  if (steps <= 0) return null;
  const perStep = (last.at - first.at) / steps;
  return Math.max(0, (totalSteps - last.step) * perStep);
}

export type StatusTone = "ok" | "warn" | "err" | "info" | "";

/** Badge tone and a glyph for each run status (colour plus shape). */
export function statusLook(status: string): { tone: StatusTone; glyph: string; label: string } {
  const map: Record<string, [StatusTone, string]> = {
    draft: ["", "○"],
    queued: ["info", "◷"],
    starting: ["info", "◔"],
    running: ["info", "●"],
    resuming: ["warn", "↻"],
    cancelling: ["warn", "◌"],
    succeeded: ["ok", "✓"],
    failed: ["err", "✗"],
    cancelled: ["", "■"],
  };
  const [tone, glyph] = map[status] ?? ["", "•"];
  return { tone, glyph, label: status ? status[0].toUpperCase() + status.slice(1) : "Unknown" };
}
