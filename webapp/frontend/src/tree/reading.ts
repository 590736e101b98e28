// One path as something to read: model text, tool calls and tool results set apart, the prefix it
// shares with its parent marked, and text pieces carrying the entropy of the tokens under them.
import type { TreePath, TreeToolCall } from "./record";

export interface Piece {
  text: string;
  /** Mean entropy (nats) of the tokens under this piece; null when unknown. */
  entropy: number | null;
}

export type Block =
  | { kind: "model"; start: number; end: number; shared: boolean; pieces: Piece[] }
  | { kind: "call"; start: number; end: number; shared: boolean; name: string; text: string }
  | { kind: "result"; start: number; end: number; shared: boolean; call: TreeToolCall | null; text: string }
  | { kind: "fork"; parent: number; boundary: number; toolIndex: number | null };

/**
 * Split text under tokens [start, end) into word pieces, each with the mean entropy of the tokens
 * its characters fall on. The record has no token boundaries, so characters map to tokens
 * proportionally within a segment: exact for the segment, approximate within it.
 */
export function entropyPieces(
  text: string,
  entropies: ReadonlyArray<number | null>,
  start: number,
  end: number,
): Piece[] {
  const n = end - start;
  if (!text) return [];
  if (n <= 0 || entropies.length < end) return [{ text, entropy: null }];
  const pieces: Piece[] = [];
  const len = text.length;
  for (const match of text.matchAll(/\s*\S+\s*|\s+/g)) {
    const a = match.index ?? 0;
    const b = a + match[0].length;
    // The tokens whose centres fall on the piece's characters (at least the one under its middle).
    let t0 = start + Math.max(0, Math.ceil((a / len) * n - 0.5));
    let t1 = start + Math.ceil((b / len) * n - 0.5);
    if (t1 <= t0) {
      t0 = start + Math.min(n - 1, Math.floor((((a + b) / 2) / len) * n));
      t1 = t0 + 1;
    }
    let sum = 0;
    let count = 0;
    for (let t = t0; t < Math.min(t1, end); t++) {
      const h = entropies[t];
      if (h !== null && h !== undefined) (sum += h), (count += 1);
    }
    pieces.push({ text: match[0], entropy: count ? sum / count : null });
  }
  return pieces;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Call markup in model text: the paper's tags (<search>…</search>) or Hermes' <tool_call>…</tool_call>. */
export function callPattern(toolNames: Iterable<string>): RegExp {
  const names = [...new Set(toolNames)].filter(Boolean).map(escapeRegExp);
  const tags = names.length ? `|<(${names.join("|")})>[\\s\\S]*?</\\1>` : "";
  return new RegExp(`<tool_call>[\\s\\S]*?</tool_call>${tags}`, "g");
}

export function readPath(path: TreePath, toolNames: Iterable<string> = []): Block[] {
  const names = new Set([...toolNames, ...path.tool_calls.map((c) => c.name)]);
  const pattern = callPattern(names);
  const shareEnd = path.origin === "fork" && path.fork_boundary !== null ? path.fork_boundary : 0;
  const blocks: Block[] = [];
  let forkMarked = shareEnd === 0;
  const markFork = (at: number) => {
    if (forkMarked || at < shareEnd) return;
    blocks.push({ kind: "fork", parent: path.parent ?? -1, boundary: shareEnd, toolIndex: path.fork_tool_index });
    forkMarked = true;
  };
  for (const seg of path.segments) {
    markFork(seg.start);
    const shared = seg.end <= shareEnd;
    if (seg.kind === "tool") {
      const call = path.tool_calls.find((c) => c.result_start === seg.start) ?? null;
      blocks.push({ kind: "result", start: seg.start, end: seg.end, shared, call, text: seg.text });
      continue;
    }
    // Model text: cut out the call markup; each part keeps its share of the segment's tokens.
    const n = seg.end - seg.start;
    const at = (c: number) => seg.start + Math.round((c / Math.max(seg.text.length, 1)) * n);
    let cursor = 0;
    const prose = (a: number, b: number) => {
      if (b <= a) return;
      const text = seg.text.slice(a, b);
      blocks.push({ kind: "model", start: at(a), end: at(b), shared, pieces: entropyPieces(text, path.entropies, at(a), at(b)) });
    };
    for (const m of seg.text.matchAll(pattern)) {
      const a = m.index ?? 0;
      prose(cursor, a);
      const name = m[1] ?? /"name"\s*:\s*"([^"]+)"/.exec(m[0])?.[1] ?? "tool";
      blocks.push({ kind: "call", start: at(a), end: at(a + m[0].length), shared, name, text: m[0] });
      cursor = a + m[0].length;
    }
    prose(cursor, seg.text.length);
  }
  markFork(Infinity);
  return blocks;
}
