// One side of a playground session as something to draw: its phase, the model's text in blocks, tool calls
// and their results set apart, and how it ended. Built from the session's events (pure; view.ts draws it).
//
// Events (webapp/playground, arpo_engine/playground.py):
//   playground.status      {state: "loading" | "answering", model, load_s?, cached?}
//   playground.model       {text}                       a chunk of model text
//   playground.tool_call   {index, name, arguments, raw, error}
//   playground.tool_result {index, name, output, error, latency_ms}
//   playground.final       {answer, text, finish_reason, tool_calls, tokens, seconds}
//   playground.error       {code, message}

export type Side = "trained" | "base";
export type Phase = "idle" | "queued" | "loading" | "answering" | "done" | "failed";

export interface ToolCallData {
  index: number;
  name: string;
  arguments: Record<string, unknown>;
  raw: string;
  error: string | null;
}

export interface ToolResultData {
  index: number;
  name: string;
  output: string;
  error: string | null;
  latency_ms: number;
}

export interface FinalData {
  answer: string | null;
  text: string;
  finish_reason: string | null;
  tool_calls: number;
  tokens: number;
  seconds: number;
}

export type Block =
  | { kind: "text"; text: string }
  | ({ kind: "call" } & ToolCallData)
  | ({ kind: "result" } & ToolResultData);

export interface AnswerState {
  phase: Phase;
  model: string;
  loadS: number | null;
  cached: boolean;
  blocks: Block[];
  final: FinalData | null;
  error: { code: string; message: string } | null;
}

export interface SideMessage {
  type: string;
  side?: string | null;
  data: Record<string, unknown>;
}

export function emptyAnswer(phase: Phase = "idle"): AnswerState {
  return { phase, model: "", loadS: null, cached: false, blocks: [], final: null, error: null };
}

const str = (v: unknown, fallback = ""): string => (typeof v === "string" ? v : fallback);
const num = (v: unknown, fallback = 0): number => (typeof v === "number" && Number.isFinite(v) ? v : fallback);

/** The state after one event of this side (a new object; `state` is left as it was). */
export function applyEvent(state: AnswerState, message: SideMessage): AnswerState {
  const d = message.data;
  switch (message.type) {
    case "playground.status": {
      if (d.state === "loading") {
        // A side (re)starts here: what an interrupted attempt wrote before is dropped.
        return { ...emptyAnswer("loading"), model: str(d.model) };
      }
      return { ...state, phase: "answering", model: str(d.model, state.model), loadS: num(d.load_s), cached: d.cached === true };
    }
    case "playground.model": {
      const text = str(d.text);
      if (!text) return state;
      const blocks = state.blocks.slice();
      const last = blocks.at(-1);
      if (last?.kind === "text") blocks[blocks.length - 1] = { kind: "text", text: last.text + text };
      else blocks.push({ kind: "text", text });
      return { ...state, phase: "answering", blocks };
    }
    case "playground.tool_call":
      return {
        ...state,
        blocks: [
          ...state.blocks,
          {
            kind: "call",
            index: num(d.index),
            name: str(d.name, "tool"),
            arguments: (typeof d.arguments === "object" && d.arguments !== null ? d.arguments : {}) as Record<string, unknown>,
            raw: str(d.raw),
            error: typeof d.error === "string" ? d.error : null,
          },
        ],
      };
    case "playground.tool_result":
      return {
        ...state,
        blocks: [
          ...state.blocks,
          {
            kind: "result",
            index: num(d.index),
            name: str(d.name, "tool"),
            output: str(d.output),
            error: typeof d.error === "string" ? d.error : null,
            latency_ms: num(d.latency_ms),
          },
        ],
      };
    case "playground.final":
      return {
        ...state,
        phase: "done",
        final: {
          answer: typeof d.answer === "string" ? d.answer : null,
          text: str(d.text),
          finish_reason: typeof d.finish_reason === "string" ? d.finish_reason : null,
          tool_calls: num(d.tool_calls),
          tokens: num(d.tokens),
          seconds: num(d.seconds),
        },
      };
    case "playground.error":
      return { ...state, phase: "failed", error: { code: str(d.code, "failed"), message: str(d.message, "The answer failed.") } };
    default:
      return state;
  }
}

/** A session's phase per side from its state message ({status, sides}); a side's own events refine it. */
export function phaseFromSession(sideState: unknown, current: Phase): Phase {
  if (sideState === "queued") return current === "idle" ? "queued" : current;
  if (sideState === "done" && (current === "answering" || current === "loading")) return "done";
  if (sideState === "failed" && current !== "failed") return "failed";
  return current;
}

export interface TextPiece {
  kind: "plain" | "think" | "answer";
  text: string;
}

const TAGS: Record<string, TextPiece["kind"]> = { think: "think", answer: "answer" };

/**
 * Model text split into plain text, reasoning (`<think>…</think>`) and the answer block
 * (`<answer>…</answer>`), the tags themselves left out. An unclosed tag (the model is still writing)
 * styles the rest of the text. `\boxed{X}` stays in the text (boxedParts marks it).
 */
export function textPieces(text: string): TextPiece[] {
  const pieces: TextPiece[] = [];
  const push = (kind: TextPiece["kind"], t: string) => {
    if (!t) return;
    const last = pieces.at(-1);
    if (last && last.kind === kind) last.text += t;
    else pieces.push({ kind, text: t });
  };
  const pattern = /<(\/?)(think|answer)>/g;
  let at = 0;
  let kind: TextPiece["kind"] = "plain";
  for (const match of text.matchAll(pattern)) {
    push(kind, text.slice(at, match.index));
    kind = match[1] ? "plain" : TAGS[match[2]];
    at = (match.index ?? 0) + match[0].length;
  }
  push(kind, text.slice(at));
  return pieces;
}

/** Text with each `\boxed{X}` marked: [{text, boxed}], the braces of X kept balanced (nested ones too). */
export function boxedParts(text: string): { text: string; boxed: boolean }[] {
  const parts: { text: string; boxed: boolean }[] = [];
  let at = 0;
  for (let i = text.indexOf("\\boxed{"); i >= 0; i = text.indexOf("\\boxed{", at)) {
    let depth = 0;
    let end = -1;
    for (let j = i + 6; j < text.length; j++) {
      if (text[j] === "{") depth += 1;
      else if (text[j] === "}" && --depth === 0) {
        end = j;
        break;
      }
    }
    if (end < 0) break; // still being written: left as it is
    if (i > at) parts.push({ text: text.slice(at, i), boxed: false });
    parts.push({ text: text.slice(i + 7, end), boxed: true });
    at = end + 1;
  }
  if (at < text.length) parts.push({ text: text.slice(at), boxed: false });
  return parts;
}

/** What a call asks for, in one readable line or block: the code of a python call, a search's query … */
export function callBody(call: Pick<ToolCallData, "arguments" | "raw">): string {
  const values = Object.values(call.arguments);
  if (values.length === 1 && typeof values[0] === "string") return values[0];
  if (values.length) return JSON.stringify(call.arguments, null, 2);
  return call.raw;
}

const ENDINGS: Record<string, string> = {
  eos: "finished",
  length: "hit the response budget",
  call_limit: "hit the tool-call limit",
  stop: "stopped",
};

/** "finished · 2 tool calls · 143 tokens · 8.1 s" */
export function finalSummary(final: FinalData): string {
  const parts = [ENDINGS[final.finish_reason ?? ""] ?? final.finish_reason ?? "ended"];
  parts.push(`${final.tool_calls} tool call${final.tool_calls === 1 ? "" : "s"}`);
  parts.push(`${final.tokens} tokens`);
  parts.push(`${final.seconds.toFixed(1)} s`);
  return parts.join(" · ");
}

export const PHASE_LABELS: Record<Phase, string> = {
  idle: "idle",
  queued: "waiting for a worker",
  loading: "loading the model",
  answering: "writing",
  done: "done",
  failed: "failed",
};
