// The run page's websocket contract (server → browser and browser → server), shared by every module.
//
// Browser → server, right after every (re)connect:
//   {"type": "resume", "after": <last seq seen, 0 for everything>}
// Server → browser, one JSON object per frame:
//   {"seq": <int ≥ 1, per run, increasing>, "type": <EventType>, "step": <int | null>?, "data": {...}}
// First the history after `after`, in seq order, then {"type": "history.end", "seq": <newest seq sent>,
// "data": {}}, then live events as they happen. A non-owner may see gaps in seq (private events such
// as tracebacks are not sent to them); a gap is never a reason to resync.
// A status the worker decides itself (starting, resuming, failed when the actor is gone) has no event
// row and comes with "seq": null: it is shown, never deduplicated, and does not move the resume point.
// A replayed run.rollout may carry only a summary ({prompt_index, reward_mean, truncated}); the page
// then fetches the whole tree when someone opens it (see tree/record.ts).
// Refusals close the socket with 4401 (not signed in), 4403 (origin or permission refused) or 4404
// (no such run, or not visible to this user): the client does not retry those.

export const EVENT_TYPES = [
  "run.metrics",
  "run.eval",
  "run.rollout",
  "run.checkpoint",
  "run.log",
  "run.status",
  "run.phase",
  // A playground session's stream (/ws/playground/<id>/, the same protocol): each message also names its
  // "side" ("trained" or "base"); "playground.session" carries the session's state with seq null.
  "playground.status",
  "playground.model",
  "playground.tool_call",
  "playground.tool_result",
  "playground.final",
  "playground.error",
  "playground.session",
  "history.end",
] as const;

/** Types that may come with seq null: states decided without an event row, never deduplicated. */
const SEQLESS: readonly string[] = ["run.status", "playground.session"];

export type EventType = (typeof EVENT_TYPES)[number];

export interface RunMessage<D = Record<string, unknown>> {
  /** null only for out-of-band status messages (no event row behind them). */
  seq: number | null;
  type: EventType;
  step?: number | null;
  /** Playground messages: which answer the event belongs to. */
  side?: "trained" | "base" | null;
  data: D;
}

/** `run.metrics` / `run.eval` data: metric name (PRODUCT.md vocabulary) → value at `step`. */
export type MetricsData = Record<string, number | null>;

/** `run.status` data. */
export interface StatusData {
  status: string;
  reason?: string;
  steps_done?: number;
  progress?: number;
  eta_s?: number | null;
  queue_position?: number | null;
  compute_s?: number | null;
}

/** `run.log` data. */
export interface LogData {
  line: string;
  level?: "info" | "warning" | "error";
}

/** `run.checkpoint` data; `download_url` is filled in by the web app, never a server path. */
export interface CheckpointData {
  step?: number;
  size_bytes?: number;
  metrics?: Record<string, number>;
  download_url?: string;
  /** The playground on this checkpoint ("Try it"). */
  try_url?: string;
}

/** `run.phase` data. */
export interface PhaseData {
  phase: string;
}

export const REFUSAL_CODES: Readonly<Record<number, string>> = {
  4401: "Sign in to watch this run.",
  4403: "You may not watch this run from here.",
  4404: "This run does not exist or is not visible to you.",
};

export function isRunMessage(value: unknown): value is RunMessage {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    ((typeof v.seq === "number" && Number.isFinite(v.seq)) || (v.seq === null && SEQLESS.includes(String(v.type)))) &&
    typeof v.type === "string" &&
    (EVENT_TYPES as readonly string[]).includes(v.type) &&
    typeof v.data === "object" &&
    v.data !== null
  );
}
