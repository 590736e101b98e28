import { describe, expect, it } from "vitest";

import { socketUrl, treeUrl } from "./config";

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
