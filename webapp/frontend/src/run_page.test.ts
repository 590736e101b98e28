// @vitest-environment happy-dom
import { describe, expect, it, vi } from "vitest";

import type { SocketLike } from "./live/socket";
import { mountRunPage } from "./run_page";
import { handTree } from "./tree/testTree";

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: string[] = [];
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  send(data: string): void {
    this.sent.push(data);
  }
  close(): void {}
  deliver(message: unknown): void {
    this.onmessage?.({ data: JSON.stringify(message) } as MessageEvent);
  }
}

function page() {
  document.body.innerHTML = `
    <div data-run-status></div><div data-run-trees></div><div data-run-log></div><div data-run-checkpoints></div>`;
  const sockets: FakeSocket[] = [];
  const mounted = mountRunPage(
    document,
    {
      run_id: 7,
      ws_url: "/ws/runs/7/",
      total_steps: 10,
      history: {
        last_seq: 40,
        status: { status: "running" },
        trees: [{ step: 3, data: handTree() }],
        logs: [{ line: "loading model" }],
      },
    },
    { socketFactory: (url) => { const s = new FakeSocket(); s.sent.push(url); sockets.push(s); return s; } },
  );
  return { mounted, socket: sockets[0] };
}

describe("mountRunPage", () => {
  it("shows the embedded history and resumes the socket after its last seq", () => {
    const { socket } = page();
    expect(socket.sent[0]).toMatch(/^ws:\/\/.*\/ws\/runs\/7\/$/);
    socket.readyState = 1;
    socket.onopen?.(new Event("open"));
    expect(JSON.parse(socket.sent[1])).toEqual({ type: "resume", after: 40 });
    expect(document.querySelector(".tree-item-title")!.textContent).toBe("Step 3 · prompt #3");
    expect(document.querySelector(".log-lines")!.textContent).toContain("loading model");
    expect(document.querySelector(".status-badge")!.textContent).toContain("Running");
  });

  it("opens the newest tree of the history first", () => {
    document.body.innerHTML = `<div data-run-trees></div>`;
    mountRunPage(
      document,
      {
        run_id: 1,
        ws_url: "/ws/runs/1/",
        history: { trees: [{ step: 1, data: handTree() }, { step: 9, data: handTree() }, { step: 5, data: handTree() }] },
      },
      { offline: true },
    );
    expect(document.querySelector(".tree-heading h3")!.textContent).toBe("Step 9 · prompt #3");
    expect(document.querySelector('.tree-item[aria-current="true"] .tree-item-title')!.textContent).toBe("Step 9 · prompt #3");
  });

  it("fetches a tree the replay only summarised when it is opened", async () => {
    document.body.innerHTML = `<div data-run-trees></div>`;
    const fetch = vi.fn(async (url: string) => ({
      ok: true,
      json: async () => [{ step: 6, prompt_index: 3, data: handTree() }],
      url,
    }));
    vi.stubGlobal("fetch", fetch);
    mountRunPage(
      document,
      {
        run_id: 1,
        ws_url: "/ws/runs/1/",
        tree_url: "/api/v1/runs/1/rollouts/?step={step}",
        history: { trees: [{ step: 6, data: { prompt_index: 3, reward_mean: 0.2, truncated: false } }] },
      },
      { offline: true },
    );
    await vi.waitFor(() => expect(document.querySelector(".tree-leaf")).not.toBeNull());
    vi.unstubAllGlobals();
    expect(fetch.mock.calls[0][0]).toBe("/api/v1/runs/1/rollouts/?step=6");
    expect(document.querySelectorAll(".tree-leaf")).toHaveLength(5);
  });

  it("adds live trees, log lines, checkpoints and status changes", () => {
    const { socket } = page();
    socket.onopen?.(new Event("open"));
    socket.deliver({ seq: 41, type: "run.rollout", step: 4, data: { ...handTree(), prompt_index: 9 } });
    socket.deliver({ seq: 42, type: "run.log", data: { line: "step 4 done", level: "info" } });
    socket.deliver({ seq: 43, type: "run.checkpoint", step: 4, data: { size_bytes: 2048, download_url: "/dl/4/" } });
    socket.deliver({ seq: 44, type: "run.status", data: { status: "failed", reason: "The model never called a tool." } });
    expect([...document.querySelectorAll(".tree-item-title")].map((e) => e.textContent)).toContain("Step 4 · prompt #9");
    expect(document.querySelector(".log-lines")!.textContent).toContain("step 4 done");
    expect(document.querySelector<HTMLAnchorElement>(".checkpoint-list a")!.getAttribute("href")).toBe("/dl/4/");
    expect(document.querySelector(".status-reason")!.textContent).toBe("The model never called a tool.");
  });

  it("says so when the server refuses the viewer", () => {
    const { socket } = page();
    socket.onclose?.({ code: 4404 } as CloseEvent);
    expect(document.querySelector(".conn-badge")!.textContent).toContain("Not allowed");
    expect(document.querySelector("[data-s=refusal]")!.textContent).toMatch(/not visible/);
  });

  it("opens a path from the tree with the keyboard and shows a fork point's numbers", () => {
    page();
    const leaf = document.querySelector<SVGGElement>('.tree-leaf[data-path="2"]')!;
    leaf.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    expect(document.querySelector(".path-reader h3")!.textContent).toBe("Path #2");
    expect(document.querySelector(".read-fork")!.textContent).toContain("forked from path #0");
    const fork = document.querySelector<SVGGElement>('.tree-point[data-key="d:0:30"]')!;
    fork.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(document.querySelector(".point-facts")!.textContent).toContain("ΔH+0.600");
  });

  it("filters the tree list to groups with tool errors", () => {
    const { socket } = page();
    const clean = handTree() as { prompt_index: number; paths: { tool_calls: { error: string | null }[] }[] };
    clean.prompt_index = 5;
    for (const p of clean.paths) for (const c of p.tool_calls) c.error = null;
    socket.deliver({ seq: 41, type: "run.rollout", step: 4, data: clean });
    const box = document.querySelector<HTMLInputElement>("[data-failure]")!;
    box.checked = true;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    expect([...document.querySelectorAll(".tree-item-title")].map((e) => e.textContent)).toEqual(["Step 3 · prompt #3"]);
  });
});
