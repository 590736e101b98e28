import { describe, expect, it } from "vitest";

import { type Block, callPattern, entropyPieces, readPath } from "./reading";
import { normaliseTree } from "./record";
import { handTree } from "./testTree";

const paths = () => normaliseTree(handTree()).paths;

describe("entropyPieces", () => {
  it("gives each word the mean entropy of the tokens under it", () => {
    // 2 words over 4 tokens: "aa " → tokens 0–1, "bb" → tokens 2–3
    const pieces = entropyPieces("aa bb", [1, 3, 5, 7], 0, 4);
    expect(pieces.map((p) => p.text).join("")).toBe("aa bb");
    expect(pieces[0].entropy).toBeCloseTo(2, 9);
    expect(pieces[1].entropy).toBeCloseTo(6, 9);
  });

  it("gives one untinted piece when entropies were thinned out of the record", () => {
    expect(entropyPieces("some text", [], 0, 5)).toEqual([{ text: "some text", entropy: null }]);
  });
});

describe("callPattern", () => {
  it("finds the paper's tags and Hermes tool_call blocks", () => {
    const text = 'a<search>x</search>b<tool_call>{"name": "python"}</tool_call>c<think>no</think>';
    expect(text.match(callPattern(["search", "python"]))).toEqual([
      "<search>x</search>",
      '<tool_call>{"name": "python"}</tool_call>',
    ]);
  });
});

describe("readPath", () => {
  const kinds = (blocks: Block[]) => blocks.map((b) => (b.kind === "call" ? `call:${b.name}` : b.kind));

  it("sets tool calls and results apart from model text, in order", () => {
    expect(kinds(readPath(paths()[0]))).toEqual(["model", "call:search", "result", "call:python", "result", "model"]);
  });

  it("attaches each result to its call (name, latency, error)", () => {
    const result = readPath(paths()[1]).find((b) => b.kind === "result");
    expect(result).toMatchObject({ call: { name: "search", error: "timed out after 10 s" } });
  });

  it("marks a fork's shared prefix and where it leaves its parent", () => {
    const blocks = readPath(paths()[2]);
    const fork = blocks.findIndex((b) => b.kind === "fork");
    expect(blocks[fork]).toEqual({ kind: "fork", parent: 0, boundary: 30, toolIndex: 1 });
    expect(blocks.slice(0, fork).every((b) => b.kind !== "fork" && b.shared)).toBe(true);
    expect(blocks.slice(fork + 1).every((b) => b.kind !== "fork" && !b.shared)).toBe(true);
  });

  it("tints model text from the per-token entropies", () => {
    const model = readPath(paths()[4])[0];
    expect(model.kind).toBe("model");
    if (model.kind === "model") expect(model.pieces.some((p) => p.entropy !== null && p.entropy > 0)).toBe(true);
  });
});
