// Page configuration embedded by the Django template:
//   <script type="application/json" id="run-page-config">{{ config|json_script-like }}</script>
// (render it with Django's json_script filter, which escapes </script>).
import type { CheckpointData, LogData, MetricsData, StatusData } from "./contract";

export interface RunPageConfig {
  run_id: number | string;
  /** Absolute or page-relative ("/ws/runs/7/"); http(s) is turned into ws(s). */
  ws_url: string;
  total_steps?: number | null;
  /** GET a whole tree a replay only summarised; "{step}" and "{prompt}" are filled in, e.g.
   * "/api/v1/runs/7/rollouts/?step={step}" (the answer may be that list: see pickTree). */
  tree_url?: string | null;
  tool_names?: string[];
  /** GET the page head (status, actions, state line) again when the run moves on: see live/head.ts. */
  head_url?: string | null;
  history?: {
    /** The newest event seq this history covers: the socket resumes after it. */
    last_seq?: number;
    status?: StatusData;
    phase?: string;
    metrics?: { step: number; values: MetricsData }[];
    trees?: { step: number | null; data: unknown }[];
    checkpoints?: { step: number; data: CheckpointData }[];
    logs?: LogData[];
  };
}

export function readJsonConfig<T>(doc: Document, id: string): T | null {
  const node = doc.getElementById(id);
  if (!node?.textContent) return null;
  try {
    return JSON.parse(node.textContent) as T;
  } catch {
    return null;
  }
}

/** The websocket URL for the page's origin: "/ws/runs/7/" on https://host → wss://host/ws/runs/7/. */
export function socketUrl(url: string, base: string): string {
  const u = new URL(url, base);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  return u.toString();
}

/**
 * The tree in a tree endpoint's answer: the run's rollouts list (`GET …/rollouts/?step=N`, plain or
 * paginated: rows of {step, prompt_index, data}), one such row, or the record itself.
 */
export function pickTree(body: unknown, promptIndex: number): unknown {
  const rows = Array.isArray(body)
    ? body
    : typeof body === "object" && body !== null && Array.isArray((body as { results?: unknown }).results)
      ? (body as { results: unknown[] }).results
      : [body];
  for (const row of rows) {
    if (typeof row !== "object" || row === null) continue;
    const r = row as { prompt_index?: unknown; data?: unknown; paths?: unknown };
    if (rows.length > 1 && r.prompt_index !== promptIndex) continue;
    return Array.isArray(r.paths) ? r : (r.data ?? r);
  }
  throw new Error(`no tree for prompt ${promptIndex}`);
}

export function treeUrl(template: string, step: number | null, prompt: number): string {
  return template.replace("{step}", String(step ?? "")).replace("{prompt}", String(prompt));
}
