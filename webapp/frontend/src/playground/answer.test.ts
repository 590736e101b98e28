import { describe, expect, it } from "vitest";

import { isRunMessage } from "../live/contract";
import {
  type AnswerState,
  applyEvent,
  boxedParts,
  callBody,
  emptyAnswer,
  finalSummary,
  phaseFromSession,
  type SideMessage,
  textPieces,
} from "./answer";

const ev = (type: string, data: Record<string, unknown>): SideMessage => ({ type: `playground.${type}`, side: "trained", data });

function play(messages: SideMessage[], start: AnswerState = emptyAnswer("queued")): AnswerState {
  return messages.reduce(applyEvent, start);
}

const STREAM = [
  ev("status", { state: "loading", model: "step 3" }),
  ev("status", { state: "answering", model: "step 3", load_s: 2.5, cached: false }),
  ev("model", { text: "<think>I need the " }),
  ev("model", { text: "population.</think> " }),
  ev("tool_call", { index: 1, name: "search", arguments: { query: "Tenholt population" }, raw: "<search>Tenholt population</search>", error: null }),
  ev("tool_result", { index: 1, name: "search", output: "Tenholt has 112510 people.", error: null, latency_ms: 12.4 }),
  ev("model", { text: "<answer>\\boxed{87}" }),
  ev("model", { text: "</answer>" }),
  ev("final", { answer: "87", text: "…", finish_reason: "eos", tool_calls: 1, tokens: 61, seconds: 8.14 }),
];

describe("applyEvent", () => {
  it("joins consecutive chunks into one text block and sets calls and results apart", () => {
    const state = play(STREAM);
    expect(state.blocks.map((b) => b.kind)).toEqual(["text", "call", "result", "text"]);
    expect(state.blocks[0]).toEqual({ kind: "text", text: "<think>I need the population.</think> " });
    expect(state.blocks[1]).toMatchObject({ kind: "call", name: "search", arguments: { query: "Tenholt population" } });
    expect(state.blocks[2]).toMatchObject({ kind: "result", output: "Tenholt has 112510 people.", latency_ms: 12.4 });
    expect(state.phase).toBe("done");
    expect(state.final?.answer).toBe("87");
    expect(state.loadS).toBe(2.5);
  });

  it("is pure: the state it was given does not change", () => {
    const before = play(STREAM.slice(0, 3));
    const copy = JSON.parse(JSON.stringify(before));
    applyEvent(before, STREAM[3]);
    expect(before).toEqual(copy);
  });

  it("goes through loading and answering before any text", () => {
    expect(play(STREAM.slice(0, 1)).phase).toBe("loading");
    expect(play(STREAM.slice(0, 2)).phase).toBe("answering");
  });

  it("starts over when the side is loaded again (a worker picked up an interrupted answer)", () => {
    const state = play([...STREAM.slice(0, 4), ev("status", { state: "loading", model: "step 3" })]);
    expect(state.blocks).toEqual([]);
    expect(state.phase).toBe("loading");
  });

  it("keeps what was written before an error and marks the side failed", () => {
    const state = play([...STREAM.slice(0, 3), ev("error", { code: "time_cap", message: "Stopped after 120 s" })]);
    expect(state.phase).toBe("failed");
    expect(state.error).toEqual({ code: "time_cap", message: "Stopped after 120 s" });
    expect(state.blocks).toHaveLength(1);
  });

  it("ignores empty chunks and unknown types", () => {
    const state = play(STREAM.slice(0, 2));
    expect(applyEvent(state, ev("model", { text: "" }))).toBe(state);
    expect(applyEvent(state, ev("mystery", {}))).toBe(state);
  });
});

describe("phaseFromSession", () => {
  it("lets the session's state fill in what no event said", () => {
    expect(phaseFromSession("queued", "idle")).toBe("queued");
    expect(phaseFromSession("queued", "answering")).toBe("answering");
    expect(phaseFromSession("failed", "answering")).toBe("failed");
    expect(phaseFromSession("done", "answering")).toBe("done");
    expect(phaseFromSession("running", "loading")).toBe("loading");
  });
});

describe("textPieces", () => {
  it("splits reasoning and the answer block from plain text, without the tags", () => {
    expect(textPieces("<think>hmm</think> so <answer>\\boxed{4}</answer>")).toEqual([
      { kind: "think", text: "hmm" },
      { kind: "plain", text: " so " },
      { kind: "answer", text: "\\boxed{4}" },
    ]);
  });

  it("styles the rest of the text after a tag that is still open", () => {
    expect(textPieces("<think>still going")).toEqual([{ kind: "think", text: "still going" }]);
  });

  it("leaves other angle brackets alone", () => {
    expect(textPieces("a < b and <b>bold</b>")).toEqual([{ kind: "plain", text: "a < b and <b>bold</b>" }]);
  });
});

describe("boxedParts", () => {
  it("marks each boxed answer, nested braces kept, and leaves one still being written alone", () => {
    expect(boxedParts("The answer is \\boxed{157}.")).toEqual([
      { text: "The answer is ", boxed: false },
      { text: "157", boxed: true },
      { text: ".", boxed: false },
    ]);
    expect(boxedParts("\\boxed{\\frac{1}{2}}")).toEqual([{ text: "\\frac{1}{2}", boxed: true }]);
    expect(boxedParts("so \\boxed{15")).toEqual([{ text: "so \\boxed{15", boxed: false }]);
  });
});

describe("callBody", () => {
  it("shows a single string argument as it is (code, a query), others as JSON, else the raw call", () => {
    expect(callBody({ arguments: { code: "print(1)" }, raw: "" })).toBe("print(1)");
    expect(callBody({ arguments: { a: 1, b: "x" }, raw: "" })).toBe('{\n  "a": 1,\n  "b": "x"\n}');
    expect(callBody({ arguments: {}, raw: "<python>oops" })).toBe("<python>oops");
  });
});

describe("finalSummary", () => {
  it("says how the answer ended and what it cost", () => {
    const final = { answer: "87", text: "", finish_reason: "call_limit", tool_calls: 1, tokens: 61, seconds: 8.14 };
    expect(finalSummary(final)).toBe("hit the tool-call limit · 1 tool call · 61 tokens · 8.1 s");
  });
});

describe("the contract", () => {
  it("accepts playground events and the seq-less session state, not other seq-less types", () => {
    expect(isRunMessage({ seq: 4, type: "playground.model", side: "base", data: { text: "hi" } })).toBe(true);
    expect(isRunMessage({ seq: null, type: "playground.session", side: null, data: { status: "running" } })).toBe(true);
    expect(isRunMessage({ seq: null, type: "playground.model", data: {} })).toBe(false);
  });
});
