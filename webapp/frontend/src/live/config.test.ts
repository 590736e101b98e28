import { describe, expect, it } from "vitest";

import { pickTree, socketUrl, treeUrl } from "./config";

describe("socketUrl", () => {
  it("follows the page's scheme and host", () => {
    expect(socketUrl("/ws/runs/7/", "https://studio.example/runs/7/")).toBe("wss://studio.example/ws/runs/7/");
    expect(socketUrl("/ws/runs/7/", "http://127.0.0.1:8000/x")).toBe("ws://127.0.0.1:8000/ws/runs/7/");
    expect(socketUrl("ws://other:1/ws/runs/7/", "https://a/")).toBe("ws://other:1/ws/runs/7/");
  });
});

describe("treeUrl", () => {
  it("fills in step and prompt", () => {
    expect(treeUrl("/api/v1/runs/7/trees/{step}/{prompt}/", 12, 3)).toBe("/api/v1/runs/7/trees/12/3/");
  });
});

describe("pickTree", () => {
  const row = (prompt: number) => ({ step: 4, prompt_index: prompt, data: { prompt_index: prompt, paths: [] } });

  it("finds the prompt's tree in the rollouts list, plain or paginated", () => {
    expect(pickTree([row(0), row(3)], 3)).toEqual({ prompt_index: 3, paths: [] });
    expect(pickTree({ count: 2, results: [row(0), row(3)] }, 0)).toEqual({ prompt_index: 0, paths: [] });
  });

  it("takes a single row or the record itself", () => {
    expect(pickTree(row(5), 5)).toEqual({ prompt_index: 5, paths: [] });
    expect(pickTree({ prompt_index: 1, paths: [1] }, 1)).toEqual({ prompt_index: 1, paths: [1] });
  });

  it("fails when the prompt is not in the list", () => {
    expect(() => pickTree([row(0), row(1)], 7)).toThrow();
  });
});
